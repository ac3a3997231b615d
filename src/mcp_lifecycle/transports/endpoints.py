"""The HTTP paths a server run by our handlers answers besides MCP, open to any client: what
Kubernetes' probes and load balancers ask."""

HEALTHZ = "/healthz"  # the process is alive and its event loop turns
READYZ = "/readyz"  # it accepts MCP work
