"""Service definitions: a systemd unit and Kubernetes manifests for a server."""
