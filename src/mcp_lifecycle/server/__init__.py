"""Inside the server process: the runtime around the start handler, its heartbeat and reload,
signals, readiness, and the minimal init that runs when the server is PID 1."""
