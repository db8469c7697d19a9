"""Networking for containers: bridges, veth, IPAM, embedded DNS, port publishing."""
