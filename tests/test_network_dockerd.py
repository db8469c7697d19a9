"""dockyardd beside a real dockerd that manages iptables (its DOCKER, DOCKER-USER and
DOCKER-ISOLATION chains; its jumps ahead of one dockyardd's and behind another's): the published
ports of each engine answer from the host (127.0.0.1 and a host address), from the engine's own
containers and from the other engine's, also with FORWARD dropping what no rule accepted (as
dockerd's policy DROP does). dockerd runs on temp paths with a bridge and subnet of its own
(bench/_peers.py), and what it added to iptables, its bridge and the FORWARD policy are undone
afterwards. Needs root and docker.io (dockerd, docker, containerd)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.network import firewall
from tests.conftest import TEST_CGROUP_PARENT
from tests.daemon import Dockyardd, busybox_archive
from tests.test_network import SERVE, free_port, host_address, http_get, inspect, iptables_dump, links, ok

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from _common import remove_cgroups  # noqa: E402
from _peers import DockerEngine, Skip, forward_policy, iptables_rules  # noqa: E402

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not firewall.available(), reason="needs iptables")]


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.254.0.0/16 that no route of this host overlaps (nor our daemons' pools)."""
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    routes = [ipaddress.ip_network(word, strict=False) for line in out.splitlines()
              for word in line.split()[:2] if word[0].isdigit()]
    for subnet in ipaddress.ip_network("10.254.0.0/16").subnets(new_prefix=24):
        if not any(subnet.overlaps(r) for r in routes if r.prefixlen > 0):
            return subnet
    pytest.skip("no free /24 in 10.254.0.0/16")


@pytest.fixture
def docker_bridge() -> Iterator[str]:
    """A bridge for dockerd's default network on a free subnet (removed afterwards)."""
    name, subnet = f"docker-dy{os.getpid() % 100000}", free_subnet()
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet[1]}/{subnet.prefixlen}", "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp directory with a short path (containerd's socket path must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def docker_engine(short_tmp: Path, parent: str, **options: Any) -> DockerEngine:
    """A private dockerd (not started yet); the test is skipped when docker.io is missing."""
    try:
        return DockerEngine(short_tmp, parent, **options)
    except Skip as exc:
        pytest.skip(str(exc))


def wget(run: list[str], url: str) -> str:
    """A busybox wget in a running container (run: the exec command line up to the container)."""
    proc = subprocess.run([*run, "wget", "-qO-", url], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, (run, url, proc.stderr)
    return proc.stdout


def test_published_ports_beside_a_dockerd_with_iptables(tmp_path: Path, short_tmp: Path, docker_bridge: str) -> None:
    parent = f"{TEST_CGROUP_PARENT}/dockerd-iptables"
    docker = docker_engine(short_tmp, parent, bridge=docker_bridge, iptables=True, userland_proxy=True)
    policy, archive = forward_policy(), busybox_archive(tmp_path)
    before, after = Dockyardd(), Dockyardd()  # started before dockerd (its jumps go ahead) and after
    dropping: list[list[str]] = []
    try:
        before.start()
        try:
            docker.start()
        except Skip as exc:
            pytest.skip(str(exc))
        after.start()
        assert "-N DOCKER-USER" in iptables_rules("filter") and "-N DOCKER" in iptables_rules("nat")
        docker.run("load", "-i", str(archive))
        servers: dict[str, tuple[list[str], int, str]] = {}  # engine -> (exec argv, host port, hostname)
        for name, daemon in (("before", before), ("after", after)):
            ok(daemon, "load", "-i", str(archive))
            port = free_port()
            cid = ok(daemon, "run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c", SERVE).strip()
            servers[name] = (["docker", "-H", daemon.host, "exec", "web"], port, cid[:12])
        port = free_port()
        cid = docker.run("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c", SERVE).strip()
        servers["dockerd"] = ([*docker.cli("exec"), "web"], port, cid[:12])
        # what FORWARD's policy DROP would drop, for these bridges only (other users' traffic stays as it is)
        for bridge in (docker_bridge, *(inspect(d, "bridge", "network")["Options"]["com.docker.network.bridge.name"]
                                        for d in (before, after))):
            for direction in ("-i", "-o"):
                dropping.append(["FORWARD", direction, bridge, "-j", "DROP"])
                subprocess.run(["iptables", "-w", "-A", *dropping[-1]], check=True)
        address = host_address()
        for name, (_, port, hostname) in servers.items():
            for host in ("127.0.0.1", address):
                assert http_get(f"http://{host}:{port}/") == f"hello from {hostname}\n", (name, host)
            for client, (run, _, _) in servers.items():  # its own containers and the other engines'
                assert wget(run, f"http://{address}:{port}/") == f"hello from {hostname}\n", (client, name)
    finally:
        for rule in dropping:
            subprocess.run(["iptables", "-w", "-D", *rule], check=False)
        problems = docker.stop()  # its containers, networks, chains and rules, the FORWARD policy
        for daemon in (after, before):
            daemon.remove_containers()
            daemon.cleanup()
        problems += remove_cgroups(parent)
    assert not problems, problems
    assert forward_policy() == policy
    dump = iptables_dump()
    assert "DOCKER" not in dump and docker_bridge not in dump


def test_a_dockerd_peer_that_died_leaves_no_bridge(short_tmp: Path) -> None:
    """dockerd keeps its networks' bridges when it stops, and a dead one cannot remove its
    networks: DockerEngine.stop deletes the bridges its network store names (and says so)."""
    parent = f"{TEST_CGROUP_PARENT}/dockerd-killed"
    docker = docker_engine(short_tmp, parent)
    bridge = ""
    try:
        docker.start()
        bridge = "br-" + docker.run("network", "create", "dy-killed").strip()[:12]
        assert bridge in links()
        assert docker.proc is not None
        docker.proc.kill()
        docker.proc.wait()
    finally:
        problems = [*docker.stop(), *remove_cgroups(parent)]
    assert f"docker: bridges left by dockerd removed: {bridge}" in problems, problems
    assert bridge not in links()
