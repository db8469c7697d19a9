"""The Docker Engine API client used by the dockyard CLI (stdlib only)."""
