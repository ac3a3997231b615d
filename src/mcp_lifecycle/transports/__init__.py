"""MCP over HTTP and stdio: the start handlers that serve a server, the client probes that check
one, and who may talk to it (token, Host and Origin)."""
