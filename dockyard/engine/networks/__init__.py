"""The daemon's networks: records and kernel state (service.NetworkService) and the network side
of each container's life (endpoints.ContainerNetworking)."""
