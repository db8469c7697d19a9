"""OCI distribution: a registry client (pull, push, login) and a registry server."""
