"""dockyard's image store: content-addressed blobs, image metadata, layers, snapshots, archives.

A library that knows nothing of the daemon (see docs/ARCHITECTURE.md)."""
