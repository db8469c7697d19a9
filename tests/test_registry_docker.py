"""The real docker CLI through dockyardd (and the dockyard CLI) to registries: push and pull with
our server and with distribution 2.8, `docker run` of an image only the registry has, login to an
htpasswd-protected registry (and refused credentials), logout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Dockyardd, busybox_archive, other_children
from tests.registries import Distribution, Dockyard, write_htpasswd

DOCKYARD = str(Path(sys.executable).parent / "dockyard")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("servers")
    htpasswd = write_htpasswd(tmp / "htpasswd", {"alice": "wonderland"})
    with Dockyardd() as d, Dockyard(tmp=tmp / "ours") as ours, Distribution(tmp=tmp / "dist") as dist, \
            Dockyard("--htpasswd", str(htpasswd), tmp=tmp / "private") as private:
        proc = d.docker("load", "-i", str(busybox_archive(tmp)))
        assert proc.returncode == 0, proc.stderr
        yield {"daemon": d, "ours": ours, "dist": dist, "private": private}


@pytest.fixture(autouse=True)
def no_leftover_children(servers: dict) -> Iterator[None]:
    yield
    pids = {s.proc.pid for s in servers.values()}
    assert not other_children(pids), "a test left child processes running"


def ok(d: Dockyardd, *args: str, input: bytes | None = None) -> str:
    proc = d.docker(*args, input=input)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def dockyard(d: Dockyardd, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKYARD, "-H", d.host, *args], capture_output=True, text=True, input=input,
                          env={**d.env(), "DOCKYARD_NO_AUTOSTART": "1"}, timeout=120)


@pytest.mark.parametrize("which", ["ours", "dist"])
def test_docker_push_pull_run(servers: dict, which: str) -> None:
    d, reg = servers["daemon"], servers[which]
    name = f"{reg.addr}/cli/busybox:1"
    ok(d, "tag", "busybox", name)
    out = ok(d, "push", name)
    assert f"The push refers to repository [{reg.addr}/cli/busybox]" in out and "1: digest: sha256:" in out
    digest = out.split("digest: ")[1].split()[0]
    assert "Layer already exists" in ok(d, "push", name)
    ok(d, "rmi", name)
    out = ok(d, "pull", name)
    assert f"Digest: {digest}" in out and f"Status: Downloaded newer image for {name}" in out and out.endswith(f"{name}\n")
    assert f"Status: Image is up to date for {name}" in ok(d, "pull", name)
    assert ok(d, "image", "inspect", "--format", "{{json .RepoDigests}}", name).strip() == \
        json.dumps([f"{reg.addr}/cli/busybox@{digest}"])
    ok(d, "rmi", name)
    proc = d.docker("run", "--rm", name, "echo", "from the registry")
    assert proc.returncode == 0 and proc.stdout == "from the registry\n", proc.stderr
    assert f"Unable to find image '{name}' locally" in proc.stderr
    ok(d, "pull", f"{reg.addr}/cli/busybox@{digest}")
    ok(d, "rmi", name)


def test_docker_pull_missing(servers: dict) -> None:
    d, reg = servers["daemon"], servers["ours"]
    proc = d.docker("pull", f"{reg.addr}/nosuch/image")
    assert proc.returncode == 1
    assert f"Error response from daemon: manifest for {reg.addr}/nosuch/image:latest not found" in proc.stderr
    proc = d.docker("push", f"{reg.addr}/not/local:1")
    assert proc.returncode == 1
    assert f"An image does not exist locally with the tag: {reg.addr}/not/local" in proc.stderr


def test_docker_login_push_logout(servers: dict) -> None:
    d, reg = servers["daemon"], servers["private"]
    name = f"{reg.addr}/secret/busybox:1"
    ok(d, "tag", "busybox", name)
    proc = d.docker("push", name)
    assert proc.returncode == 1 and "unauthorized: authentication required" in proc.stderr
    proc = d.docker("login", reg.addr, "-u", "alice", "--password-stdin", input=b"wrong\n")
    assert proc.returncode == 1
    assert f"login attempt to http://{reg.addr}/v2/ failed with status: 401 Unauthorized" in proc.stderr
    assert "Login Succeeded" in ok(d, "login", reg.addr, "-u", "alice", "--password-stdin", input=b"wonderland\n")
    config = json.loads((d.docker_config / "config.json").read_text())
    assert reg.addr in config["auths"]
    ok(d, "push", name)
    ok(d, "rmi", name)
    ok(d, "pull", name)
    ok(d, "logout", reg.addr)
    ok(d, "rmi", name)
    assert d.docker("pull", name).returncode == 1


def test_dockyard_cli(servers: dict) -> None:
    d, reg = servers["daemon"], servers["private"]
    name = f"{reg.addr}/mine/busybox:2"
    ok(d, "tag", "busybox", name)
    bad = dockyard(d, "login", reg.addr, "-u", "alice", "--password-stdin", input="nope\n")
    assert bad.returncode == 1 and "401 Unauthorized" in bad.stderr
    good = dockyard(d, "login", reg.addr, "-u", "alice", "--password-stdin", input="wonderland\n")
    assert good.returncode == 0 and good.stdout == "Login Succeeded\n", good.stderr
    push = dockyard(d, "push", name)
    assert push.returncode == 0 and "2: digest: sha256:" in push.stdout, push.stderr
    ok(d, "rmi", name)
    pull = dockyard(d, "pull", name)
    assert pull.returncode == 0 and pull.stdout.endswith(f"{name}\n"), pull.stderr
    assert dockyard(d, "logout", reg.addr).stdout == f"Removing login credentials for {reg.addr}\n"
    assert dockyard(d, "logout", reg.addr).stdout == f"Not logged in to {reg.addr}\n"
    assert os.path.exists(d.docker_config / "config.json")
    ok(d, "rmi", name)


def test_manifest_inspect_and_distribution_endpoint(servers: dict) -> None:
    d, reg = servers["daemon"], servers["ours"]
    name = f"{reg.addr}/inspect/busybox:1"
    ok(d, "tag", "busybox", name)
    digest = ok(d, "push", name).split("digest: ")[1].split()[0]
    proc = dockyard(d, "manifest", "inspect", name)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["schemaVersion"] == 2 and proc.stdout.startswith("{\n\t\"")
    status, _, body = d.request("GET", f"/v1.45/distribution/{name}/json")
    assert status == 200, body
    info = json.loads(body)
    assert info["Descriptor"]["digest"] == digest and info["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
    status, _, body = d.request("GET", f"/v1.45/distribution/{reg.addr}/inspect/none:1/json")
    assert status == 404
    missing = dockyard(d, "manifest", "inspect", f"{reg.addr}/inspect/none:1")
    assert missing.returncode == 1 and "not found" in missing.stderr
    ok(d, "rmi", name)


def test_concurrent_pulls_and_push_all_tags(servers: dict) -> None:
    d, reg = servers["daemon"], servers["dist"]
    for tag in ("x", "y"):
        ok(d, "tag", "busybox", f"{reg.addr}/alltags/bb:{tag}")
    out = ok(d, "push", "--all-tags", f"{reg.addr}/alltags/bb")
    assert "x: digest: sha256:" in out and "y: digest: sha256:" in out
    ok(d, "rmi", f"{reg.addr}/alltags/bb:x", f"{reg.addr}/alltags/bb:y")
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        procs = list(pool.map(lambda tag: d.docker("pull", f"{reg.addr}/alltags/bb:{tag}"), ["x", "y", "x", "y"]))
    assert [p.returncode for p in procs] == [0] * 4, [p.stderr for p in procs]
    ok(d, "rmi", f"{reg.addr}/alltags/bb:x", f"{reg.addr}/alltags/bb:y")


def test_docker_pull_all_tags(servers: dict) -> None:
    d, reg = servers["daemon"], servers["ours"]
    for tag in ("p", "q"):
        ok(d, "tag", "busybox", f"{reg.addr}/pullall/bb:{tag}")
        ok(d, "push", f"{reg.addr}/pullall/bb:{tag}")
        ok(d, "rmi", f"{reg.addr}/pullall/bb:{tag}")
    out = ok(d, "pull", "--all-tags", f"{reg.addr}/pullall/bb")
    assert "p: Pulling from pullall/bb" in out and "q: Pulling from pullall/bb" in out
    assert f"Status: Downloaded newer image for {reg.addr}/pullall/bb" in out
    tags = ok(d, "images", "--format", "{{.Tag}}", f"{reg.addr}/pullall/bb").split()
    assert sorted(tags) == ["p", "q"]
    ok(d, "rmi", f"{reg.addr}/pullall/bb:p", f"{reg.addr}/pullall/bb:q")
    proc = d.docker("pull", "-a", f"{reg.addr}/pullall/none")
    assert proc.returncode == 1 and "not found" in proc.stderr


def test_docker_py(servers: dict) -> None:
    d, reg = servers["daemon"], servers["private"]
    client = d.client()
    try:
        with pytest.raises(Exception, match="401"):
            client.login("alice", "bad", registry=reg.addr, reauth=True)
        assert client.login("alice", "wonderland", registry=reg.addr, reauth=True)["Status"] == "Login Succeeded"
        auth = {"username": "alice", "password": "wonderland"}
        client.images.get("busybox").tag(f"{reg.addr}/py/bb", "3")
        lines = list(client.images.push(f"{reg.addr}/py/bb", "3", auth_config=auth, stream=True, decode=True))
        assert not [m for m in lines if "error" in m], lines
        assert any(m.get("aux", {}).get("Tag") == "3" for m in lines)
        client.images.remove(f"{reg.addr}/py/bb:3")
        image = client.images.pull(f"{reg.addr}/py/bb", tag="3", auth_config=auth)
        assert f"{reg.addr}/py/bb:3" in image.tags
        client.images.remove(f"{reg.addr}/py/bb:3")
    finally:
        client.close()


def test_pull_and_push_events(servers: dict) -> None:
    import time
    d, reg = servers["daemon"], servers["ours"]
    name = f"{reg.addr}/events/bb:1"
    since = str(time.time() - 1)
    ok(d, "tag", "busybox", name)
    ok(d, "push", name)
    ok(d, "rmi", name)
    ok(d, "pull", name)
    until = str(time.time() + 1)
    out = ok(d, "events", "--since", since, "--until", until, "--filter", "type=image", "--format",
             "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}")
    assert f"push {name} {reg.addr}/events/bb" in out.splitlines()
    assert f"pull {name} {reg.addr}/events/bb" in out.splitlines()
    ok(d, "rmi", name)
