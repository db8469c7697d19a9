"""The image builder: Dockerfile parser, build context, executor and cache (no daemon needed)."""
