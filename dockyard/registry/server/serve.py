"""Running the registry server: listener address, TLS and access control from the command line."""

from __future__ import annotations

import ssl
import sys

from aiohttp import web

from dockyard.registry.server.app import Registry
from dockyard.registry.server.auth import Access, read_htpasswd


def parse_addr(addr: str) -> tuple[str, int]:
    """("host", port) of "host:port", "[::1]:port" or ":port" (all interfaces)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid listen address {addr!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(root: str, addr: str = "127.0.0.1:5000", htpasswd: str | None = None, token_auth: bool = False,
          tls_cert: str | None = None, tls_key: str | None = None, delete: bool = True) -> None:
    """Serve the registry stored under root until interrupted (SIGINT/SIGTERM)."""
    host, port = parse_addr(addr)
    access = Access(read_htpasswd(htpasswd) if htpasswd else {}, tokens=token_auth)
    context = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
    app = Registry(root, access, delete).app()
    scheme = "https" if context else "http"
    auth = "token" if token_auth else "htpasswd" if htpasswd else "none"
    sys.stderr.write(f"dockyard registry: serving {root} on {scheme}://{addr} (auth: {auth})\n")
    web.run_app(app, host=host, port=port, ssl_context=context, print=None, access_log=None,
                handle_signals=True, shutdown_timeout=5)
