"""TLS: `dockyard registry serve --tls-cert/--tls-key`, the client's certs.d CAs (verification
against them for a registry name, skipped for loopback as docker's default insecure range), and
plain HTTP refused for a registry that is neither loopback nor insecure."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.store import ImageStore
from dockyard.registry.client.endpoint import RegistryConfig
from dockyard.registry.client.pull import pull
from dockyard.registry.client.push import push
from dockyard.registry.client.transport import Transport
from tests.registries import Dockyard, generated_image, make_certificates


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "pki"
    d.mkdir()
    return make_certificates(d)


@pytest.fixture
def tls_registry(tmp_path: Path, certs: dict[str, Path]) -> Iterator[Dockyard]:
    with Dockyard("--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"]), tmp=tmp_path / "r") as r:
        yield r


def handshake(context: ssl.SSLContext, port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname="registry.test"):
        pass


def test_push_pull_over_tls(tls_registry: Dockyard, tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "s"))
    generated_image(store, "gen:1", [{"x": b"tls" * 1000}])
    name = f"{tls_registry.addr}/secure/gen:1"
    store.tag("gen:1", name)
    push(store, name)
    target = ImageStore(str(tmp_path / "t"))
    assert pull(target, name) == store.resolve("gen:1")
    transport = Transport(tls_registry.addr)
    transport.ping()
    assert transport.scheme == "https"
    transport.close()
    store.close()
    target.close()


def test_certs_dir_ca_is_trusted(tls_registry: Dockyard, tmp_path: Path, certs: dict[str, Path]) -> None:
    certs_dir = tmp_path / "certs.d"
    host = f"registry.test:{tls_registry.port}"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(RegistryConfig(certs_dir=str(certs_dir)).tls_context(host), tls_registry.port)
    (certs_dir / host).mkdir(parents=True)
    (certs_dir / host / "ca.crt").write_bytes(certs["ca"].read_bytes())
    handshake(RegistryConfig(certs_dir=str(certs_dir)).tls_context(host), tls_registry.port)


def test_http_only_for_loopback_and_insecure() -> None:
    names = RegistryConfig(insecure=("registry.test:5000",))  # names only: nothing is resolved
    assert names.allows_http("127.0.0.1:5000") and names.allows_http("[::1]:5000")
    assert names.allows_http("localhost:5000") and names.allows_http("registry.test:5000")
    assert not names.allows_http("registry.test:5001") and not RegistryConfig().allows_http("example.com")
    cidrs = RegistryConfig(insecure=("10.1.0.0/16",))
    assert cidrs.allows_http("10.1.2.3:5000") and not cidrs.allows_http("10.2.0.1")
