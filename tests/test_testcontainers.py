"""testcontainers-python's DockerContainer against a private dockyardd, as its users drive Docker
(scripts/testcontainers_suite.py runs its own core tests): published ports read back from
inspect, log waits, exec, copy in and out, stop; everything over loopback."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from testcontainers.core.config import ConnectionMode
from testcontainers.core.config import testcontainers_config as tc_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from tests.daemon import Dockyardd
from tests.daemon import busybox_daemon as daemon  # noqa: F401
from tests.daemon import containers_removed as no_leftover_children  # noqa: F401

SERVE = "mkdir /www && echo hello from busybox > /www/index.html && echo serving && exec httpd -f -p 80 -h /www"


@pytest.fixture(autouse=True)
def private_daemon(daemon: Dockyardd, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # noqa: F811
    """testcontainers pointed at the private daemon, without its reaper (an image from Docker
    Hub), reaching published ports on 127.0.0.1 (never the host's gateway, which it picks when
    it believes it runs in a container)."""
    monkeypatch.setenv("DOCKER_HOST", daemon.host)
    monkeypatch.setenv("DOCKER_CONFIG", str(daemon.docker_config))
    monkeypatch.setattr(tc_config, "ryuk_disabled", True)
    monkeypatch.setattr(tc_config, "tc_host_override", "127.0.0.1")
    monkeypatch.setattr(tc_config, "connection_mode_override", ConnectionMode.docker_host)
    yield


def test_docker_container_serves_a_published_port(tmp_path: Path) -> None:
    """busybox httpd with port 80 published: the log wait, the mapped port read from inspect and
    fetched over loopback, exec, copy to and from the container, then stop removes it."""
    (tmp_path / "extra.txt").write_bytes(b"copied in\n")
    container = DockerContainer("busybox", command=["sh", "-c", SERVE]).with_exposed_ports(80) \
        .waiting_for(LogMessageWaitStrategy("serving").with_startup_timeout(30))
    with container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(80)
        assert host == "127.0.0.1" and port != 80
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as response:
            assert response.read() == b"hello from busybox\n"
        result = container.exec(["cat", "/www/index.html"])
        assert (result.exit_code, result.output) == (0, b"hello from busybox\n")
        assert container.exec("sh -c 'exit 3'").exit_code == 3
        container.copy_into_container(tmp_path / "extra.txt", "/www/extra.txt")
        with urllib.request.urlopen(f"http://{host}:{port}/extra.txt", timeout=10) as response:
            assert response.read() == b"copied in\n"
        container.copy_from_container("/www/index.html", tmp_path / "index.html")
        assert (tmp_path / "index.html").read_bytes() == b"hello from busybox\n"
        stdout, _ = container.get_logs()
        assert stdout == b"serving\n"
        cid = container.get_wrapped_container().id
    with pytest.raises(docker.errors.NotFound):
        container.get_docker_client().client.containers.get(cid)


@pytest.mark.parametrize("container_port", [0, -1])
def test_bind_of_an_invalid_container_port_is_refused_at_create(container_port: int) -> None:
    """As dockerd: PortBindings of container port 0 (or not a port) is a 400 at create."""
    container = DockerContainer("busybox", command=["true"]).with_bind_ports(container_port, 8080)
    with pytest.raises(docker.errors.APIError, match="invalid port specification") as err:
        container.start()
    assert err.value.status_code == 400
    assert not container.get_docker_client().client.containers.list(all=True)
