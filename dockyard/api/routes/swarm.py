"""Swarm endpoints: this engine is never part of a swarm, and says so as dockerd does outside one
(clients such as docker-py's test suites call POST /swarm/leave?force=1 to make sure)."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.errors import error_response
from dockyard.api.routes import api_path

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
                 "this node to swarm and try again.")


def routes() -> list[web.RouteDef]:
    return [web.post(api_path("/swarm/leave"), leave), web.route("*", api_path("/swarm{rest:.*}"), not_a_manager)]


async def leave(request: web.Request) -> web.Response:
    """POST /swarm/leave: 503, this node is not part of a swarm."""
    return error_response(503, "This node is not part of a swarm")


async def not_a_manager(request: web.Request) -> web.Response:
    """Every other /swarm call: 503, as on a daemon outside a swarm."""
    return error_response(503, NOT_A_MANAGER)
