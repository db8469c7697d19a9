"""Where builds get their inputs besides a local context: base images from a registry that needs
credentials (the docker CLI's X-Registry-Config, config.json for `dockyard build`), all on
loopback with a private daemon and a private htpasswd registry."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_CGROUP_PARENT
from tests.daemon import Dockyardd, busybox_archive, other_children
from tests.registries import Dockyard, write_htpasswd

DOCKYARD = str(Path(sys.executable).parent / "dockyard")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("servers")
    htpasswd = write_htpasswd(tmp / "htpasswd", {"alice": "wonderland"})
    os.environ["DOCKYARD_BUILD_CGROUP_PARENT"] = TEST_CGROUP_PARENT
    try:
        with Dockyardd() as d, Dockyard("--htpasswd", str(htpasswd), tmp=tmp / "private") as private:
            proc = d.docker("load", "-i", str(busybox_archive(tmp)))
            assert proc.returncode == 0, proc.stderr
            yield {"daemon": d, "private": private}
    finally:
        os.environ.pop("DOCKYARD_BUILD_CGROUP_PARENT", None)


@pytest.fixture(autouse=True)
def no_leftover_children(servers: dict) -> Iterator[None]:
    yield
    assert not other_children({s.proc.pid for s in servers.values()}), "a test left child processes running"


def ok(d: Dockyardd, *args: str, input: bytes | None = None) -> str:
    proc = d.docker(*args, input=input, timeout=180)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def dockyard(d: Dockyardd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKYARD, "-H", d.host, *args], capture_output=True, text=True,
                          env={**d.env(), "DOCKYARD_NO_AUTOSTART": "1"}, timeout=180)


def test_from_image_of_a_registry_that_needs_credentials(servers: dict, tmp_path: Path) -> None:
    d, reg = servers["daemon"], servers["private"]
    base = f"{reg.addr}/priv/base:1"
    ok(d, "login", reg.addr, "-u", "alice", "--password-stdin", input=b"wonderland\n")
    try:
        ok(d, "tag", "busybox", base)
        ok(d, "push", base)
        ok(d, "rmi", base)
        (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo built > /built\n")
        # the docker CLI sends its config.json credentials as X-Registry-Config
        out = ok(d, "build", "-t", "fromreg:docker", str(tmp_path))
        assert "Successfully tagged fromreg:docker" in out
        assert ok(d, "run", "--rm", "fromreg:docker", "cat", "/built") == "built\n"
        ok(d, "rmi", base)
        # dockyard build reads the same file
        proc = dockyard(d, "build", "-q", "-t", "fromreg:dockyard", str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert ok(d, "image", "inspect", "-f", "{{.Id}}", base).strip()
        ok(d, "rmi", base)
    finally:
        ok(d, "logout", reg.addr)
    proc = dockyard(d, "build", "-q", "-t", "fromreg:anonymous", str(tmp_path))
    assert proc.returncode != 0
    assert f"pull access denied for {reg.addr}/priv/base" in proc.stderr
    proc = d.docker("build", "-t", "fromreg:anonymous", str(tmp_path), timeout=180)
    assert proc.returncode != 0 and "pull access denied" in proc.stderr + proc.stdout
    ok(d, "rmi", "fromreg:docker", "fromreg:dockyard")


def test_registry_config_header_picks_credentials_by_host() -> None:
    import base64
    import json

    from dockyard.registry.client.auth import Credentials
    from dockyard.registry.client.endpoint import credentials_for
    doc = {"https://index.docker.io/v1/": {"username": "hub", "password": "h"},
           "http://127.0.0.1:5000/v2/": {"username": "local", "password": "l"}, "bad": "x"}
    for encode in (base64.urlsafe_b64encode, base64.b64encode):
        configs = Credentials.map_from_header(encode(json.dumps(doc).encode()).decode())
        assert credentials_for(configs, "docker.io") == Credentials("hub", "h")
        assert credentials_for(configs, "127.0.0.1:5000") == Credentials("local", "l")
        assert credentials_for(configs, "127.0.0.1:5001") is None
    assert Credentials.map_from_header("not base64!") == {}
