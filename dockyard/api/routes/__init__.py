"""API routes. Every path is served with and without a /vX.Y/ prefix (the version middleware
checks it); image names may hold slashes, so `{name:.+}` takes everything up to the suffix."""

from __future__ import annotations

from aiohttp import web

VERSION_PREFIX = "/{version:(?:v[0-9][0-9.]*/)?}"


def api_path(path: str) -> str:
    """A route path that also matches under /vX.Y/."""
    return VERSION_PREFIX + path.lstrip("/")


def add_routes(app: web.Application) -> None:
    """Register the system, image, container, exec, volume, network, swarm and build routes."""
    from dockyard.api.routes import (
        build,
        container_files,
        container_stats,
        containers,
        execs,
        images,
        networks,
        swarm,
        system,
        volumes,
    )
    for module in (system, images, containers, container_stats, container_files, execs, volumes, networks, swarm,
                   build):
        app.router.add_routes(module.routes())
