"""Networking end to end on a private daemon: real bridges, veths and namespaces; busybox httpd,
wget and nslookup as servers and clients; the real docker CLI and docker-py as clients."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from dockyard.network import firewall, netns
from dockyard.network.ports import ipv6_available
from tests.daemon import Dockyardd, busybox_archive, other_children, ula_prefix

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
SERVE = "mkdir -p /w && echo hello from $(hostname) > /w/index.html && exec httpd -f -p 80 -h /w"


def links() -> set[str]:
    """The names of the host's network interfaces."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def ports_of(bridge: str) -> set[str]:
    """The interfaces enslaved to one bridge (the host's other veths belong to other users)."""
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def iptables_dump(command: str = "iptables") -> str:
    """The filter and nat tables of iptables (or ip6tables)."""
    return "".join(subprocess.run([command, "-t", table, "-S"], capture_output=True, text=True).stdout
                   for table in ("filter", "nat"))


def dnat_gone(port: int, command: str = "iptables", timeout: float = 5) -> bool:
    """Whether no rule names host port `port` within timeout: the rules of an unpublished port
    are deleted just after `rm -f` or the exit was handled (a delete makes the kernel wait)."""
    deadline = time.monotonic() + timeout
    while f"--dport {port} " in iptables_dump(command):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(busybox_archive(tmp_path_factory.mktemp("busybox")))


def bridge_of(d: Dockyardd) -> str:
    """The default network's bridge (dy<hash of the data root> for a test daemon)."""
    return inspect(d, "bridge", "network")["Options"]["com.docker.network.bridge.name"]


@pytest.fixture(scope="module")
def daemon(archive: str) -> Iterator[Dockyardd]:
    d = Dockyardd()
    try:
        d.start()
        ok(d, "load", "-i", archive)
        bridge = bridge_of(d)
        assert bridge.startswith("dy") and len(bridge) == 10 and bridge in links()
        yield d
    finally:
        d.cleanup()
    # a daemon that stops with nothing running leaves no bridge, veth, rule, sandbox or mount behind
    assert not any(bridge in word or word.startswith("dyt-") for word in links())
    assert f"-{bridge}" not in iptables_dump()
    with open("/proc/self/mountinfo") as f:
        assert str(d.tmp) not in f.read()


@pytest.fixture(autouse=True)
def no_leftover_children(daemon: Dockyardd) -> Iterator[None]:
    """Every container and user network goes after each test; no child process stays."""
    try:
        yield
    finally:
        clear(daemon)
    assert not other_children({daemon.proc.pid}, timeout=15), "a test left child processes running"  # type: ignore[union-attr]


def clear(daemon: Dockyardd) -> None:
    """Remove every container and user network of a running daemon."""
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.remove_containers()
        daemon.docker("network", "prune", "-f")


def ok(d: Dockyardd, *args: str) -> str:
    proc = d.docker(*args)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def inspect(d: Dockyardd, ref: str, kind: str = "container") -> dict:
    return json.loads(ok(d, kind, "inspect", ref))[0]


def host_address() -> str:
    """An IPv4 address of this host that is not on a bridge of ours (nor loopback)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if not fields[1].startswith(("dyt", "br-", "dockyard", "docker")):
            return fields[3].split("/")[0]
    pytest.skip("no global IPv4 address on this host")


def free_port(count: int = 1) -> int:
    """The first of count consecutive ports that nothing holds (sockets in TIME_WAIT included)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        try:
            for port in range(base + 1, base + count):
                with socket.socket() as s:
                    s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue


def http_get(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def unreachable(d: Dockyardd, network: str, target: str, *args: str) -> bool:
    """Whether a container on network gets no reply from target (an address or a name): one
    ping, one second. (busybox wget -T crashes here, so its failure would prove nothing.)"""
    proc = d.docker("run", "--rm", "--network", network, *args, "busybox", "ping", "-c1", "-W1", target)
    return proc.returncode == 1 and ("0 packets received" in proc.stdout or "bad address" in proc.stderr
                                     or "unreachable" in proc.stderr)


def serve(d: Dockyardd, name: str, *args: str) -> str:
    """A detached busybox httpd answering 'hello from <hostname>'; its ID."""
    return ok(d, "run", "-d", "--name", name, *args, "busybox", "sh", "-c", SERVE).strip()


def test_default_bridge(daemon: Dockyardd) -> None:
    bridge = inspect(daemon, "bridge", "network")
    subnet = ipaddress.ip_network(bridge["IPAM"]["Config"][0]["Subnet"])
    assert bridge["Driver"] == "bridge" and bridge["Options"]["com.docker.network.bridge.name"] in links()
    cid = serve(daemon, "web")
    info = inspect(daemon, cid)
    settings = info["NetworkSettings"]
    endpoint = settings["Networks"]["bridge"]
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    assert ipaddress.ip_address(endpoint["IPAddress"]) in subnet and endpoint["IPPrefixLen"] == subnet.prefixlen
    assert endpoint["Gateway"] == bridge["IPAM"]["Config"][0]["Gateway"] and endpoint["NetworkID"] == bridge["Id"]
    assert settings["IPAddress"] == endpoint["IPAddress"] and settings["MacAddress"] == endpoint["MacAddress"]
    assert settings["SandboxKey"] and os.path.exists(settings["SandboxKey"])
    assert endpoint["Aliases"] is None and endpoint["DNSNames"] is None
    assert ok(daemon, "ps", "--format", "{{.Networks}}").strip() == "bridge"
    assert cid in inspect(daemon, "bridge", "network")["Containers"]
    # the host reaches the container's address; a second container does too, but not by name (no DNS here)
    assert http_get(f"http://{endpoint['IPAddress']}/") == f"hello from {cid[:12]}\n"
    assert ok(daemon, "run", "--rm", "busybox", "wget", "-qO-", f"http://{endpoint['IPAddress']}/") \
        == f"hello from {cid[:12]}\n"
    assert unreachable(daemon, "bridge", "web")
    # a legacy --link puts the linked container in /etc/hosts
    out = ok(daemon, "run", "--rm", "--link", "web:w", "busybox", "sh", "-c", "grep web /etc/hosts; wget -qO- http://w/")
    assert out == f"{endpoint['IPAddress']}\tw {cid[:12]} web\nhello from {cid[:12]}\n"
    proc = daemon.docker("run", "--rm", "--link", "nosuch:x", "busybox", "true")
    assert proc.returncode != 0 and "could not get container for nosuch" in proc.stderr
    hosts = ok(daemon, "exec", "web", "cat", "/etc/hosts")
    assert f"{endpoint['IPAddress']}\t{cid[:12]}" in hosts
    assert "127.0.0.11" not in ok(daemon, "exec", "web", "cat", "/etc/resolv.conf")
    ok(daemon, "rm", "-f", "web")
    assert not os.path.exists(settings["SandboxKey"])
    assert inspect(daemon, "bridge", "network")["Containers"] == {}


def test_ps_name_filter_is_a_regular_expression_on_the_own_name(daemon: Dockyardd) -> None:
    ok(daemon, "run", "-d", "--name", "child", "busybox", "sleep", "60")
    ok(daemon, "run", "-d", "--name", "parent", "--link", "child:kid", "busybox", "sleep", "60")
    names = ok(daemon, "ps", "--no-trunc", "--format", "{{.Names}}", "--filter", "name=^child$").split()
    assert names == ["child,parent/kid"]  # listed with its link name
    assert ok(daemon, "ps", "-q", "--filter", "name=^/parent$").count("\n") == 1
    assert ok(daemon, "ps", "-q", "--filter", "name=parent/kid") == ""  # link names do not match, as dockerd
    assert ok(daemon, "ps", "-q", "--filter", "name=ch.ld").count("\n") == 1


def test_link_env_vars_as_docker_writes_them() -> None:
    from dockyard.engine.networks.links import env_vars

    env = env_vars("/web/my-db", "10.0.0.5", ["PATH=/bin", "HOME=/root", "SECRET=a=b", "junk"],
                   ["53/udp", "7001/tcp", "7000/tcp", "5432/tcp", "7002/tcp"])
    assert env == [
        "MY_DB_PORT=tcp://10.0.0.5:5432",
        *(f"MY_DB_PORT_{p}_TCP{s}" for p in (5432, 7000, 7001, 7002) for s in (
            f"=tcp://10.0.0.5:{p}", "_ADDR=10.0.0.5", f"_PORT={p}", "_PROTO=tcp")),
        # as moby: a range's variables follow the first port after it
        "MY_DB_PORT_53_UDP=udp://10.0.0.5:53", "MY_DB_PORT_53_UDP_ADDR=10.0.0.5", "MY_DB_PORT_53_UDP_PORT=53",
        "MY_DB_PORT_53_UDP_PROTO=udp",
        "MY_DB_PORT_7000_TCP_START=tcp://10.0.0.5:7000", "MY_DB_PORT_7000_TCP_PORT_START=7000",
        "MY_DB_PORT_7000_TCP_END=tcp://10.0.0.5:7002", "MY_DB_PORT_7000_TCP_PORT_END=7002",
        "MY_DB_NAME=/web/my-db", "MY_DB_ENV_SECRET=a=b"]
    assert env_vars("/a/b", "10.0.0.6", [], []) == ["B_NAME=/a/b"]
    assert env_vars("/a/b", "10.0.0.6", [], ["1/tcp", "2/tcp"])[-5:] == [
        "B_PORT_1_TCP_START=tcp://10.0.0.6:1", "B_PORT_1_TCP_PORT_START=1", "B_PORT_1_TCP_END=tcp://10.0.0.6:2",
        "B_PORT_1_TCP_PORT_END=2", "B_NAME=/a/b"]  # a range at the end


def test_legacy_links(daemon: Dockyardd) -> None:
    db = ok(daemon, "run", "-d", "--name", "db", "-e", "SECRET=s3", "--expose", "5432", "busybox",
            "sleep", "300").strip()
    db_ip = inspect(daemon, db)["NetworkSettings"]["IPAddress"]
    ok(daemon, "run", "-d", "--name", "web", "--link", "db:my-db", "-e", "MY_DB_NAME=mine", "busybox", "sleep", "300")
    env = ok(daemon, "exec", "web", "env").splitlines()
    assert f"MY_DB_PORT=tcp://{db_ip}:5432" in env and f"MY_DB_PORT_5432_TCP_ADDR={db_ip}" in env
    assert "MY_DB_PORT_5432_TCP_PORT=5432" in env and "MY_DB_PORT_5432_TCP_PROTO=tcp" in env
    assert "MY_DB_ENV_SECRET=s3" in env and "MY_DB_NAME=mine" in env  # the container's own Env wins
    assert not any(e.startswith("MY_DB_ENV_PATH=") for e in env)
    assert f"{db_ip}\tmy-db {db[:12]} db" in ok(daemon, "exec", "web", "cat", "/etc/hosts")
    assert inspect(daemon, "web")["HostConfig"]["Links"] == ["/db:/web/my-db"]
    names = {c["Id"]: c["Names"] for c in json.loads(daemon.request("GET", "/containers/json")[2])}
    assert names[db] == ["/db", "/web/my-db"]
    # the child restarts elsewhere: the running parent's /etc/hosts follows
    ok(daemon, "stop", "-t", "0", "db")
    ok(daemon, "run", "-d", "--name", "filler", "busybox", "sleep", "300")  # takes db's old address
    ok(daemon, "start", "db")
    new_ip = inspect(daemon, db)["NetworkSettings"]["IPAddress"]
    assert new_ip != db_ip and f"{new_ip}\tmy-db {db[:12]} db" in ok(daemon, "exec", "web", "cat", "/etc/hosts")
    ok(daemon, "rename", "db", "store")  # links follow the child by ID
    assert inspect(daemon, "web")["HostConfig"]["Links"] == ["/store:/web/my-db"]
    # docker rm --link: only parent/alias names a link
    proc = daemon.docker("rm", "--link", "store")
    assert proc.returncode == 1 and "cannot remove the default link name of the container" in proc.stderr
    proc = daemon.docker("rm", "--link", "web/nope")
    assert proc.returncode == 1 and "No such container: web/nope" in proc.stderr
    assert ok(daemon, "rm", "--link", "/web/my-db").strip() == "/web/my-db"
    assert inspect(daemon, "web")["HostConfig"]["Links"] is None
    assert "my-db" not in ok(daemon, "exec", "web", "cat", "/etc/hosts")
    assert inspect(daemon, "store")["State"]["Running"]
    client = daemon.client()  # docker-py: links={name: alias}, remove_container(link=True)
    try:
        parent = client.containers.run("busybox", ["sleep", "300"], detach=True, name="p2", links={"store": "s2"})
        assert "S2_NAME=/p2/s2" in parent.exec_run("env").output.decode()
        client.api.remove_container("p2/s2", link=True)
        assert client.api.inspect_container("p2")["HostConfig"]["Links"] is None
    finally:
        client.close()
    # Docker's refusals
    for args, text in [
        (("--link", "nosuch:x"), "could not get container for nosuch: No such container: nosuch"),
        (("--network", "host", "--link", "store"), "host type networking can't be used with links"),
        (("--network", "container:store", "--link", "store"), "container type network can't be used with links"),
    ]:
        proc = daemon.docker("run", "--rm", *args, "busybox", "true")
        assert proc.returncode == 125 and text in proc.stderr, (args, proc.stderr)
    ok(daemon, "create", "--name", "idle", "busybox", "true")
    proc = daemon.docker("run", "--rm", "--name", "late", "--link", "idle:i", "busybox", "true")
    assert proc.returncode != 0 and "Cannot link to a non running container: /idle AS /late/i" in proc.stderr
    ok(daemon, "network", "create", "linknet")
    ok(daemon, "run", "-d", "--name", "away", "--network", "linknet", "busybox", "sleep", "300")
    proc = daemon.docker("run", "--rm", "--link", "away", "busybox", "true")
    assert proc.returncode != 0 and "Cannot link to /away, as it does not belong to the default network" in proc.stderr


def test_user_network_names_and_aliases(daemon: Dockyardd) -> None:
    ok(daemon, "network", "create", "appnet")
    web = serve(daemon, "web", "--network", "appnet", "--network-alias", "www")
    info = inspect(daemon, web)["NetworkSettings"]["Networks"]["appnet"]
    assert info["Aliases"] == ["www"] and info["DNSNames"] == ["web", "www", web[:12]]
    for name in ("web", "www", web[:12], "web.appnet"):
        out = ok(daemon, "run", "--rm", "--network", "appnet", "busybox", "wget", "-qO-", f"http://{name}/")
        assert out == f"hello from {web[:12]}\n", name
    out = ok(daemon, "run", "--rm", "--network", "appnet", "busybox", "nslookup", info["IPAddress"])
    assert "web.appnet" in out  # PTR
    resolv = ok(daemon, "run", "--rm", "--network", "appnet", "busybox", "cat", "/etc/resolv.conf")
    assert resolv.startswith("nameserver 127.0.0.11\n") and "ndots:0" in resolv
    out = ok(daemon, "run", "--rm", "--network", "appnet", "--link", "web:linked", "busybox", "wget", "-qO-",
             "http://linked/")  # --link on a user-defined network: an alias for this container only
    assert out == f"hello from {web[:12]}\n"
    serve(daemon, "named", "--network", "appnet", "--hostname", "box.example")  # the hostname is a name too
    assert inspect(daemon, "named")["NetworkSettings"]["Networks"]["appnet"]["DNSNames"][-1] == "box.example"
    assert ok(daemon, "run", "--rm", "--network", "appnet", "busybox", "wget", "-qO-", "http://box.example/")
    # one alias on two containers: both addresses answer
    serve(daemon, "web2", "--network", "appnet", "--network-alias", "www")
    out = ok(daemon, "run", "--rm", "--network", "appnet", "busybox", "nslookup", "www")
    addresses = {inspect(daemon, n)["NetworkSettings"]["Networks"]["appnet"]["IPAddress"] for n in ("web", "web2")}
    assert addresses <= set(out.split()), out


class StubResolver:
    """A UDP DNS server on address:53 answering every query with one A record, until closed."""

    def __init__(self, address: str, answer: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 53))
        self.sock.settimeout(0.1)
        self.answer = socket.inet_aton(answer)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            end = query.index(b"\0", 12) + 5  # the question: name, type, class
            header = query[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
            record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + self.answer
            self.sock.sendto(header + query[12:end] + record, peer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_other_names_are_forwarded(daemon: Dockyardd) -> None:
    stub = StubResolver("127.0.0.77", "10.1.2.3")  # a loopback resolver: reached from the daemon's namespace
    try:
        ok(daemon, "network", "create", "fwdnet")
        out = ok(daemon, "run", "--rm", "--network", "fwdnet", "--dns", "127.0.0.77", "busybox", "nslookup",
                 "elsewhere.example")
        assert "10.1.2.3" in out
        assert ok(daemon, "run", "--rm", "--network", "fwdnet", "busybox", "cat", "/etc/resolv.conf").startswith(
            "nameserver 127.0.0.11\n")
    finally:
        stub.close()


def test_published_ports(daemon: Dockyardd) -> None:
    port = free_port()
    cid = serve(daemon, "pub", "-p", f"{port}:80")
    expected = f"hello from {cid[:12]}\n"
    v6 = ipv6_available()  # as Docker, an unspecified host IP binds [::] too (proxied to the IPv4 container)
    assert ok(daemon, "port", "pub") == f"80/tcp -> 0.0.0.0:{port}\n" + (f"80/tcp -> [::]:{port}\n" if v6 else "")
    assert ok(daemon, "port", "pub", "80") == f"0.0.0.0:{port}\n" + (f"[::]:{port}\n" if v6 else "")
    assert inspect(daemon, cid)["NetworkSettings"]["Ports"] == {"80/tcp": [
        {"HostIp": "0.0.0.0", "HostPort": str(port)}, *([{"HostIp": "::", "HostPort": str(port)}] if v6 else [])]}
    assert f"0.0.0.0:{port}->80/tcp" in ok(daemon, "ps")
    if v6:
        assert f"[::]:{port}->80/tcp" in ok(daemon, "ps") and http_get(f"http://[::1]:{port}/") == expected
    for wanted in (f"publish={port}", "expose=80/tcp", "network=bridge"):
        assert ok(daemon, "ps", "-q", "--filter", wanted) == cid[:12] + "\n", wanted
    assert ok(daemon, "ps", "-q", "--filter", "publish=1") == ""
    address = host_address()
    assert http_get(f"http://127.0.0.1:{port}/") == expected
    assert http_get(f"http://localhost:{port}/") == expected
    assert http_get(f"http://{address}:{port}/") == expected
    # from another container through the host, and from the container itself (hairpin)
    assert ok(daemon, "run", "--rm", "busybox", "wget", "-qO-", f"http://{address}:{port}/") == expected
    assert ok(daemon, "exec", "pub", "wget", "-qO-", f"http://{address}:{port}/") == expected
    ok(daemon, "network", "create", "othernet")
    assert ok(daemon, "run", "--rm", "--network", "othernet", "busybox", "wget", "-qO-",
              f"http://{address}:{port}/") == expected
    # but not straight to the container's address: only what was DNATed enters its bridge
    direct = inspect(daemon, cid)["NetworkSettings"]["IPAddress"]
    probe = ["busybox", "sh", "-c", f"echo | nc -w 2 {direct} 80"]
    assert daemon.docker("run", "--rm", *probe).returncode == 0  # the probe works on its own network
    assert daemon.docker("run", "--rm", "--network", "othernet", *probe).returncode != 0
    # the port is taken: Docker's error, and the failed container holds nothing
    proc = daemon.docker("run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox", "sleep", "60")
    assert proc.returncode != 0 and f"Bind for 0.0.0.0:{port} failed: port is already allocated" in proc.stderr
    ok(daemon, "rm", "-f", "clash")
    ok(daemon, "rm", "-f", "pub")
    for family, wildcard in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"))[:2 if v6 else 1]:
        with socket.socket(family) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # proxied connections leave TIME_WAITs
            s.bind((wildcard, port))  # released
    assert dnat_gone(port)


def test_rm_f_frees_the_port_for_a_new_container_at_once(daemon: Dockyardd) -> None:
    """`rm -f` answers before the old DNAT rule is deleted from the kernel; still, a `run -p`
    of the same host port right after succeeds and its first connection reaches the new
    container (whose server listens on another container port than the old one's, so the old
    rule, were it still first, would be refused), from 127.0.0.1 and a host address."""
    port, address = free_port(), host_address()
    for round_ in range(4):
        old = ok(daemon, "run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c", SERVE).strip()
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello from {old[:12]}\n"
        ok(daemon, "rm", "-f", old)
        new = ok(daemon, "run", "-d", "-p", f"{port}:8080", "busybox", "sh", "-c",
                 SERVE.replace("-p 80 ", "-p 8080 ")).strip()
        deadline = time.monotonic() + 10
        while daemon.docker("exec", new, "wget", "-qO/dev/null", "http://127.0.0.1:8080/").returncode:
            assert time.monotonic() < deadline, "httpd does not listen"
            time.sleep(0.05)
        for host in ("127.0.0.1", address):  # no retry: the first connection must reach it
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as resp:
                assert resp.read().decode() == f"hello from {new[:12]}\n", (round_, host)
        assert iptables_dump().count(f"--dport {port} ") == 1
        ok(daemon, "rm", "-f", new)
        if round_ % 2:  # the next round also after the sweep
            assert dnat_gone(port)


def test_a_port_published_again_before_the_sweep_replaces_the_old_rule(tmp_path: Path) -> None:
    """NetworkService: the DNAT rules of unpublished ports stay loaded until a sweep thread
    deletes them; a container that publishes one of those host ports before the sweep runs (a
    busy host) gets its rule in place of the old one, in one batch, and the sweep leaves it."""
    from dockyard.engine.networks.service import NetworkOptions, NetworkService
    from dockyard.network.firewall import PortRule

    tag = f"dyt{os.getpid() % 100000:05d}sw"
    service = NetworkService(str(tmp_path / "data"), NetworkOptions(bridge=tag, ip6tables=False))
    taken, freed = free_port(), free_port()
    try:
        service.set_ports("a", [PortRule("tcp", "0.0.0.0", taken, "10.233.74.2", 80, tag),
                                PortRule("tcp", "0.0.0.0", freed, "10.233.74.2", 81, tag)])
        with service._lock:  # the sweep waits for it
            service.set_ports("a", [])  # as `rm -f a`
            assert iptables_dump().count("--to-destination 10.233.74.2:") == 2  # not deleted yet
            service.set_ports("b", [PortRule("tcp", "0.0.0.0", taken, "10.233.74.3", 8080, tag)])
            dump = iptables_dump()
            assert "10.233.74.2:80" not in dump and dump.count(f"--dport {taken} ") == 1
            assert f"--dport {freed} -j DNAT --to-destination 10.233.74.2:81" in dump  # for the sweep
        assert dnat_gone(freed)
        assert f"--dport {taken} -j DNAT --to-destination 10.233.74.3:8080" in iptables_dump()
        service.set_ports("b", [])
        assert dnat_gone(taken)
    finally:
        service.shutdown(containers_running=False)
    assert tag not in iptables_dump()


def test_ephemeral_ports_and_publish_all(daemon: Dockyardd) -> None:
    cid = serve(daemon, "eph", "-p", "127.0.0.1::80", "--expose", "81", "-P")
    ports = inspect(daemon, cid)["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "81/tcp"}
    assert ports["80/tcp"][0]["HostIp"] == "127.0.0.1" and ports["81/tcp"][0]["HostIp"] == "0.0.0.0"
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert all(low <= int(ports[k][0]["HostPort"]) <= high for k in ports)
    assert http_get(f"http://127.0.0.1:{ports['80/tcp'][0]['HostPort']}/") == f"hello from {cid[:12]}\n"
    # ranges: container ports onto host ports one by one; one port onto the first free of a host range
    base = free_port(3)
    ranged = inspect(daemon, ok(daemon, "run", "-d", "-p", f"127.0.0.1:{base}-{base + 1}:80-81", "-p",
                                f"127.0.0.1:{base}-{base + 2}:82", "busybox", "sleep", "60").strip())
    assert {k: v[0]["HostPort"] for k, v in ranged["NetworkSettings"]["Ports"].items()} == \
        {"80/tcp": str(base), "81/tcp": str(base + 1), "82/tcp": str(base + 2)}
    # UDP (busybox has no UDP server: a socket of this test, bound inside the container's namespace)
    udp = free_port()
    ok(daemon, "run", "-d", "--name", "udp", "-p", f"127.0.0.1:{udp}:5000/udp", "busybox", "sleep", "60")
    assert ok(daemon, "port", "udp") == f"5000/udp -> 127.0.0.1:{udp}\n"
    server = netns.run_in(inspect(daemon, "udp")["NetworkSettings"]["SandboxKey"],
                          lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("0.0.0.0", 5000))
        client.settimeout(10)
        server.settimeout(10)
        client.sendto(b"datagram", ("127.0.0.1", udp))
        data, peer = server.recvfrom(100)
        server.sendto(b"re:" + data, peer)
        assert client.recv(100) == b"re:datagram"
    ok(daemon, "stop", "-t", "1", "eph")
    stopped = inspect(daemon, cid)["NetworkSettings"]
    assert stopped["Ports"] == {} and stopped["IPAddress"] == "" and stopped["Networks"]["bridge"]["IPAddress"] == ""
    ok(daemon, "start", "eph")
    assert inspect(daemon, cid)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    # a container restarted by its policy gets its network again: it succeeds on its third run only
    # if every run saw an IPv4 address on eth0
    ok(daemon, "run", "-d", "--name", "again", "--restart", "on-failure:5", "busybox", "sh", "-c",
       "ip -4 -o addr show eth0 | grep -q inet && echo seen >> /seen; [ $(wc -l < /seen) -ge 3 ] || exit 1")
    deadline = time.monotonic() + 30
    while (state := inspect(daemon, "again"))["State"]["Status"] != "exited" or state["RestartCount"] < 2:
        assert time.monotonic() < deadline, state["State"]
        time.sleep(0.2)
    assert (state["State"]["ExitCode"], state["RestartCount"]) == (0, 2)


def test_connect_and_disconnect_running(daemon: Dockyardd) -> None:
    ok(daemon, "network", "create", "side")
    serve(daemon, "web")
    ok(daemon, "network", "connect", "--alias", "sideweb", "side", "web")
    networks = inspect(daemon, "web")["NetworkSettings"]["Networks"]
    assert set(networks) == {"bridge", "side"}
    address = networks["side"]["IPAddress"]
    assert f"inet {address}/" in ok(daemon, "exec", "web", "ip", "-4", "addr", "show", "eth1")
    out = ok(daemon, "run", "--rm", "--network", "side", "busybox", "wget", "-qO-", "http://sideweb/")
    assert out.startswith("hello from")
    assert ok(daemon, "exec", "web", "cat", "/etc/resolv.conf").startswith("nameserver 127.0.0.11\n")
    assert address in ok(daemon, "exec", "web", "nslookup", "sideweb")
    # as Docker's sandbox: /etc/hosts names the container on the new network too (rewritten in place)
    hostname, first = ok(daemon, "exec", "web", "hostname").strip(), networks["bridge"]["IPAddress"]
    assert ok(daemon, "exec", "web", "cat", "/etc/hosts").endswith(f"{first}\t{hostname}\n{address}\t{hostname}\n")
    proc = daemon.docker("network", "connect", "side", "web")
    assert proc.returncode != 0 and "already exists in network side" in proc.stderr
    proc = daemon.docker("network", "rm", "side")
    assert proc.returncode != 0 and "has active endpoints" in proc.stderr
    ok(daemon, "network", "disconnect", "side", "web")
    assert "eth1" not in ok(daemon, "exec", "web", "ip", "link")
    hosts = ok(daemon, "exec", "web", "cat", "/etc/hosts")
    assert hosts.endswith(f"{first}\t{hostname}\n") and address not in hosts
    assert set(inspect(daemon, "web")["NetworkSettings"]["Networks"]) == {"bridge"}
    assert unreachable(daemon, "side", "sideweb")
    ok(daemon, "network", "rm", "side")
    # two networks at create (API 1.44+): one interface on each; the default route goes as Docker
    # orders endpoints (highest GwPriority, not internal, then by name), whatever the order given
    ok(daemon, "network", "create", "net-b")
    ok(daemon, "network", "create", "net-a")
    out = ok(daemon, "run", "--rm", "--network", "net-b", "--network", "net-a", "--hostname", "two", "busybox",
             "sh", "-c", "ip -o -4 addr show; ip route; cat /etc/hosts")
    gw_a, gw_b = (inspect(daemon, n, "network")["IPAM"]["Config"][0]["Gateway"] for n in ("net-a", "net-b"))
    assert " eth0 " in out and " eth1 " in out and f"default via {gw_a} dev eth1" in out and gw_b not in out
    named = [line.split("\t")[0] for line in out.splitlines() if line.endswith("\ttwo")]  # one line per address
    assert len(named) == 2 and all(f"inet {a}/" in out for a in named)


def test_connect_disconnect_race_with_exits(daemon: Dockyardd) -> None:
    """connect/disconnect while containers exit: afterwards each record holds what the last
    successful call asked, and no endpoint, veth, sandbox or address is left."""
    ok(daemon, "network", "create", "racenet")
    bridges = ["br-" + inspect(daemon, "racenet", "network")["Id"][:12], bridge_of(daemon)]
    client = daemon.client()
    try:
        ids = [client.containers.run("busybox", ["sh", "-c", "sleep 0.2"], detach=True, name=f"race{i}").id
               for i in range(10)]

        def churn(cid: str) -> bool:
            """Connect and disconnect until well after the exit; whether racenet is wanted at the end."""
            connected, until = False, time.monotonic() + 1.5
            while time.monotonic() < until:
                try:
                    if connected:
                        client.api.disconnect_container_from_network(cid, "racenet")
                    else:
                        client.api.connect_container_to_network(cid, "racenet")
                    connected = not connected
                except docker.errors.APIError as e:
                    raise AssertionError(f"{'dis' if connected else ''}connect {cid[:12]}: {e}") from None
            return connected

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            wanted = dict(zip(ids, pool.map(churn, ids), strict=True))
        for cid, connected in wanted.items():
            assert client.api.wait(cid, timeout=10)["StatusCode"] == 0
            doc = client.api.inspect_container(cid)
            networks = doc["NetworkSettings"]["Networks"]
            assert set(networks) == ({"bridge", "racenet"} if connected else {"bridge"}), cid
            assert doc["NetworkSettings"]["SandboxKey"] == "" and not doc["State"]["Running"]
            assert all(not n["IPAddress"] and not n["EndpointID"] for n in networks.values())
        for net in ("racenet", "bridge"):
            assert inspect(daemon, net, "network")["Containers"] == {}
        assert all(not ports_of(b) for b in bridges)
        assert not os.listdir(daemon.exec_root / "netns")
    finally:
        client.close()


def test_static_addresses_and_concurrency(daemon: Dockyardd) -> None:
    net = ok(daemon, "network", "create", "--subnet", "10.231.7.0/24", "--gateway", "10.231.7.254",
             "--ip-range", "10.231.7.128/25", "--label", "k=v", "-o", "com.docker.network.bridge.name=dyt-static",
             "static").strip()
    doc = inspect(daemon, "static", "network")
    assert doc["Id"] == net and doc["Labels"] == {"k": "v"}
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.231.7.0/24", "IPRange": "10.231.7.128/25", "Gateway": "10.231.7.254"}]
    assert "dyt-static" in " ".join(links())
    ok(daemon, "run", "-d", "--name", "fixed", "--network", "static", "--ip", "10.231.7.5", "busybox", "sleep", "60")
    assert "inet 10.231.7.5/24" in ok(daemon, "exec", "fixed", "ip", "-4", "addr")
    assert "default via 10.231.7.254" in ok(daemon, "exec", "fixed", "ip", "route")
    proc = daemon.docker("run", "--rm", "--network", "static", "--ip", "10.231.7.5", "busybox", "true")
    assert proc.returncode != 0 and "Address already in use" in proc.stderr
    proc = daemon.docker("run", "--rm", "--ip", "10.231.7.9", "busybox", "true")
    assert proc.returncode != 0 and "user specified IP address is supported on user defined networks only" in proc.stderr
    client = daemon.client()
    try:
        def start(i: int) -> str:
            ct = client.containers.run("busybox", ["sleep", "60"], detach=True, network="static", name=f"many{i}")
            return ct.attrs["Id"]

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            ids = list(pool.map(start, range(20)))
        addresses = [client.api.inspect_container(cid)["NetworkSettings"]["Networks"]["static"]["IPAddress"]
                     for cid in ids]
        assert len(set(addresses)) == 20
        assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.231.7.128/25") for a in addresses)
        assert len(inspect(daemon, "static", "network")["Containers"]) == 21
    finally:
        client.close()


def test_isolation_and_internal(daemon: Dockyardd) -> None:
    ok(daemon, "network", "create", "neta")
    ok(daemon, "network", "create", "--internal", "inside")
    serve(daemon, "srva", "--network", "neta")
    address = inspect(daemon, "srva")["NetworkSettings"]["Networks"]["neta"]["IPAddress"]
    assert ok(daemon, "run", "--rm", "--network", "neta", "busybox", "wget", "-qO-", f"http://{address}/")
    for net in ("bridge", "inside"):
        assert unreachable(daemon, net, address), net
    assert not unreachable(daemon, "neta", address)
    route = ok(daemon, "run", "--rm", "--network", "inside", "busybox", "ip", "route")
    assert "default" not in route and route.strip()
    assert inspect(daemon, "inside", "network")["Internal"] is True
    # enable_icc=false: no traffic between the network's containers; mtu applies to their interfaces
    ok(daemon, "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "-o",
       "com.docker.network.driver.mtu=1400", "noicc")
    serve(daemon, "lonely", "--network", "noicc")
    lonely = inspect(daemon, "lonely")["NetworkSettings"]["Networks"]["noicc"]["IPAddress"]
    assert http_get(f"http://{lonely}/").startswith("hello from")  # the host still reaches it
    assert "mtu 1400" in ok(daemon, "run", "--rm", "--network", "noicc", "busybox", "ip", "link", "show", "eth0")
    if os.path.exists(firewall.BRIDGE_NF_CALL_IPTABLES):  # br_netfilter loaded: icc is enforced
        assert unreachable(daemon, "noicc", lonely)


def test_host_none_and_container_modes(daemon: Dockyardd) -> None:
    assert len(ok(daemon, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").splitlines()) == 1
    host_links = ok(daemon, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert bridge_of(daemon) in host_links
    files = ok(daemon, "run", "--rm", "--network", "host", "--add-host", "db:10.1.2.3", "busybox", "cat",
               "/etc/hosts", "/etc/resolv.conf")
    with open("/etc/hosts") as hosts, open("/etc/resolv.conf") as resolv:
        assert files == hosts.read() + "10.1.2.3\tdb\n" + resolv.read()
    info = inspect(daemon, ok(daemon, "create", "--network", "host", "busybox", "true").strip())
    assert set(info["NetworkSettings"]["Networks"]) == {"host"}
    assert info["Config"]["Hostname"] == socket.gethostname()
    serve(daemon, "owner")
    owner_ip = inspect(daemon, "owner")["NetworkSettings"]["IPAddress"]
    out = ok(daemon, "run", "--rm", "--network", "container:owner", "busybox", "wget", "-qO-", "http://127.0.0.1/")
    assert out.startswith("hello from")
    assert f"inet {owner_ip}/" in ok(daemon, "run", "--rm", "--network", "container:owner", "busybox", "ip", "-4", "addr")
    owner_name = inspect(daemon, "owner")["Config"]["Hostname"]
    assert ok(daemon, "run", "--rm", "--network", "container:owner", "busybox", "hostname") == owner_name + "\n"
    proc = daemon.docker("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert proc.returncode == 125 and "network nosuchnet not found" in proc.stderr


def test_name_resolution_files(daemon: Dockyardd) -> None:
    out = ok(daemon, "run", "--rm", "--hostname", "box", "--add-host", "db:10.1.2.3", "--add-host",
             "gw:host-gateway", "--dns", "10.9.9.9", "--dns-search", "example.test", "--dns-option", "ndots:3",
             "busybox", "sh", "-c", "cat /etc/hosts /etc/resolv.conf /etc/hostname")
    gateway = inspect(daemon, "bridge", "network")["IPAM"]["Config"][0]["Gateway"]
    assert "10.1.2.3\tdb\n" in out and f"{gateway}\tgw\n" in out and "\tbox\n" in out
    assert "nameserver 10.9.9.9\n" in out and "search example.test\n" in out and "options ndots:3\n" in out
    assert out.endswith("box\n")
    ok(daemon, "network", "create", "dnsnet")
    out = ok(daemon, "run", "--rm", "--network", "dnsnet", "--dns-search", "example.test", "busybox",
             "cat", "/etc/resolv.conf")
    assert out == "nameserver 127.0.0.11\nsearch example.test\noptions ndots:0\n"


def test_network_api_with_docker_py(daemon: Dockyardd) -> None:
    import docker

    client = daemon.client()
    try:
        net = client.networks.create("pynet", driver="bridge", labels={"team": "a"}, internal=False,
                                     options={"com.docker.network.bridge.enable_icc": "true"})
        assert client.networks.get(net.id).name == "pynet"
        with pytest.raises(docker.errors.APIError) as err:
            client.networks.create("pynet")
        assert err.value.status_code == 409 and "network with name pynet already exists" in str(err.value)
        assert [n.name for n in client.networks.list(filters={"label": "team=a"})] == ["pynet"]
        assert {n.name for n in client.networks.list(filters={"type": "builtin"})} == {"bridge", "host", "none"}
        assert [n.name for n in client.networks.list(names=["pynet"])] == ["pynet"]
        ct = client.containers.run("busybox", ["sleep", "60"], detach=True)
        net.connect(ct, aliases=["pyalias"])
        net.reload()
        assert [c.id for c in net.containers] == [ct.id]
        ct.reload()
        assert ct.attrs["NetworkSettings"]["Networks"]["pynet"]["Aliases"] == ["pyalias"]
        net.disconnect(ct)
        ct.remove(force=True)
        with pytest.raises(docker.errors.APIError) as err:
            client.networks.get("bridge").remove()
        assert err.value.status_code == 403
        with pytest.raises(docker.errors.NotFound):
            client.networks.get("nosuch")
        client.networks.create("unused")
        assert set(client.networks.prune()["NetworksDeleted"]) == {"pynet", "unused"}
        assert client.api.leave_swarm(force=True) is True  # 503 "not part of a swarm", as dockerd
        assert daemon.request("GET", "/v1.45/swarm")[0] == 503
    finally:
        client.close()


def test_daemon_restart_restores(daemon: Dockyardd) -> None:
    port = free_port()
    ok(daemon, "network", "create", "keep")
    cid = serve(daemon, "survivor", "-p", f"{port}:80", "--network", "keep")
    ok(daemon, "run", "-d", "--name", "peer", "--network", "keep", "busybox", "sleep", "60")
    ok(daemon, "run", "-d", "--name", "stopped", "busybox", "sleep", "60")
    ok(daemon, "stop", "-t", "0", "stopped")
    daemon.stop()
    daemon.start()
    assert http_get(f"http://127.0.0.1:{port}/") == f"hello from {cid[:12]}\n"
    with socket.socket() as s:
        with pytest.raises(OSError):
            s.bind(("0.0.0.0", port))  # still reserved by the daemon
    assert ok(daemon, "exec", "peer", "wget", "-qO-", "http://survivor/") == f"hello from {cid[:12]}\n"
    proc = daemon.docker("run", "-d", "-p", f"{port}:80", "busybox", "sleep", "60")
    assert "port is already allocated" in proc.stderr


def test_crash_leaves_nothing_behind(daemon: Dockyardd) -> None:
    kept, lost = free_port(), free_port()
    ok(daemon, "network", "create", "crashnet")
    cid = serve(daemon, "kept", "-p", f"{kept}:80")
    victim = ok(daemon, "run", "-d", "--name", "victim", "--network", "crashnet", "-p", f"{lost}:80", "busybox",
                "sleep", "600").strip()
    info = inspect(daemon, victim)
    sandbox, pid = info["NetworkSettings"]["SandboxKey"], info["State"]["Pid"]
    veths = ports_of("br-" + inspect(daemon, "crashnet", "network")["Id"][:12])
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    os.kill(pid, signal.SIGKILL)  # the container dies while no daemon watches
    daemon.start()
    assert inspect(daemon, victim)["State"]["Running"] is False
    assert not os.path.exists(sandbox)
    assert len(veths) == 1 and not veths & links()
    assert f"--dport {lost} " not in iptables_dump()
    with socket.socket() as s:
        s.bind(("0.0.0.0", lost))
    assert inspect(daemon, "crashnet", "network")["Containers"] == {}
    assert http_get(f"http://127.0.0.1:{kept}/") == f"hello from {cid[:12]}\n"


def test_test_daemon_cleanup_removes_what_a_dead_daemon_kept(daemon: Dockyardd) -> None:
    """A test daemon killed with a user network still there (its data root about to go) leaves
    no bridge nor chain once cleaned up."""
    other = Dockyardd().start()
    try:
        user_bridge = "br-" + json.loads(ok(other, "network", "inspect", ok(other, "network", "create", "gone")
                                            .strip()))[0]["Id"][:12]
        default_bridge = bridge_of(other)
        assert {user_bridge, default_bridge} <= links() and f"DYF-{default_bridge}" in iptables_dump()
        assert other.proc is not None
        os.kill(other.proc.pid, signal.SIGKILL)
        other.proc.wait()
        assert {user_bridge, default_bridge} <= links()  # what a dead daemon keeps
    finally:
        other.cleanup()
    assert not {user_bridge, default_bridge} & links()
    assert f"-{default_bridge}" not in iptables_dump()


def test_userland_proxy_without_iptables(archive: str, daemon: Dockyardd) -> None:
    port = free_port()
    with Dockyardd("--iptables=false") as other:
        try:
            ok(other, "load", "-i", archive)
            cid = serve(other, "proxied", "-p", f"{port}:80")
            assert http_get(f"http://127.0.0.1:{port}/") == f"hello from {cid[:12]}\n"
            assert http_get(f"http://{host_address()}:{port}/") == f"hello from {cid[:12]}\n"
            assert bridge_of(other) not in iptables_dump()
            proc = other.docker("run", "-d", "-p", f"{port}:80", "busybox", "sleep", "60")
            assert "port is already allocated" in proc.stderr
        finally:
            other.remove_containers()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the proxied connections left TIME_WAITs
        s.bind(("0.0.0.0", port))


def test_loopback_through_the_proxy_or_nat(archive: str, daemon: Dockyardd) -> None:
    """As Docker: with the userland proxy (the default) the host's connections to 127.0.0.1 reach a
    published port through the proxy (no DNAT of loopback, no route_localnet); with
    --userland-proxy=false through kernel NAT; a restart with the other setting leaves one jump."""
    def jumps(d: Dockyardd) -> list[str]:
        return [line for line in iptables_dump().splitlines()
                if line.startswith("-A OUTPUT") and f"DYN-{bridge_of(d)}" in line]

    def route_localnet(network: str, d: Dockyardd) -> str:
        name = inspect(d, network, "network")["Options"].get("com.docker.network.bridge.name") or \
            "br-" + inspect(d, network, "network")["Id"][:12]
        return open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet").read().strip()

    port = free_port()
    cid = serve(daemon, "viaproxy", "-p", f"{port}:80")
    try:
        assert jumps(daemon) == [f"-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DYN-{bridge_of(daemon)}"]
        assert route_localnet("bridge", daemon) == "0"
        # a host address is answered as is (through the container's gateway): no masquerade
        assert not [r for r in iptables_dump().splitlines() if r.startswith(f"-A DYS-{bridge_of(daemon)} ")
                    and "--src-type LOCAL" in r]
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello from {cid[:12]}\n"
    finally:
        ok(daemon, "rm", "-f", "viaproxy")
    other = Dockyardd("--userland-proxy=false")
    other.start()
    try:
        ok(other, "load", "-i", archive)
        cid = serve(other, "vianat", "-p", f"{port}:80")
        assert jumps(other) == [f"-A OUTPUT -m addrtype --dst-type LOCAL -j DYN-{bridge_of(other)}"]
        assert route_localnet("bridge", other) == "1"
        assert f"-A DYS-{bridge_of(other)} -o {bridge_of(other)} -m addrtype --src-type LOCAL -j MASQUERADE" \
            in iptables_dump()
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello from {cid[:12]}\n"
        ok(other, "rm", "-f", "vianat")
        other.stop()
        other.extra_args = []
        other.start()
        assert jumps(other) == [f"-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DYN-{bridge_of(other)}"]
        assert route_localnet("bridge", other) == "0"
    finally:
        other.remove_containers()
        other.cleanup()


def test_docker_py_ipam_links_and_ipv6_configs(daemon: Dockyardd) -> None:
    from docker.types import EndpointConfig, IPAMConfig, IPAMPool

    client = daemon.client()
    try:
        pool = IPAMPool(subnet="10.232.0.0/16", iprange="10.232.5.0/24", gateway="10.232.5.254",
                        aux_addresses={"a": "10.232.5.1"})
        net = client.api.create_network("ipamnet", ipam=IPAMConfig(driver="default", pool_configs=[pool]))
        doc = client.api.inspect_network(net["Id"])
        assert doc["IPAM"]["Options"] is None and doc["IPAM"]["Config"] == [{
            "Subnet": "10.232.0.0/16", "IPRange": "10.232.5.0/24", "Gateway": "10.232.5.254",
            "AuxiliaryAddresses": {"a": "10.232.5.1"}}]
        ct = client.containers.run("busybox", ["sleep", "60"], detach=True, network="ipamnet")
        assert ct.attrs["NetworkSettings"]["Networks"]["ipamnet"]["IPAddress"] == ""  # create's view
        ct.reload()
        assert ct.attrs["NetworkSettings"]["Networks"]["ipamnet"]["IPAddress"] == "10.232.5.2"  # aux skipped
        # --link on a user-defined network: an alias only the linking container resolves
        config = client.api.create_networking_config(
            {"ipamnet": client.api.create_endpoint_config(links=[("upstream", "bar")])})
        linker = client.api.create_container("busybox", ["sleep", "60"], networking_config=config,
                                             host_config=client.api.create_host_config(network_mode="ipamnet"))
        client.api.start(linker)
        assert client.api.inspect_container(linker)["NetworkSettings"]["Networks"]["ipamnet"]["Links"] == \
            ["upstream:bar"]
        client.containers.run("busybox", ["sleep", "60"], detach=True, network="ipamnet", name="upstream")
        assert ok(daemon, "exec", linker["Id"], "nslookup", "bar")
        assert daemon.docker("exec", ct.id, "nslookup", "bar").returncode != 0
        # a dual-stack network: the IPv6 config as given, the static IPv6 address on the container
        prefix = ula_prefix()
        v6 = client.networks.create("v6net", enable_ipv6=True, ipam=IPAMConfig(pool_configs=[
            IPAMPool(subnet=prefix + "/64", gateway=prefix + "ffff")]))
        assert v6.attrs["EnableIPv6"] is True
        ct6 = client.containers.create("busybox", ["sleep", "60"], network="v6net", networking_config={
            "v6net": EndpointConfig(client.api._version, ipv6_address=prefix + "f00d")})
        ct6.start()
        ct6.reload()
        endpoint = ct6.attrs["NetworkSettings"]["Networks"]["v6net"]
        assert endpoint["IPAMConfig"]["IPv6Address"] == endpoint["GlobalIPv6Address"] == prefix + "f00d"
        assert endpoint["IPv6Gateway"] == prefix + "ffff"
    finally:
        client.close()


def test_dockyard_cli(daemon: Dockyardd) -> None:
    def dockyard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([os.path.join(os.path.dirname(sys.executable), "dockyard"), *args],
                              capture_output=True, text=True, env={**daemon.env(), "DOCKYARD_HOST": daemon.host})

    net = dockyard("network", "create", "--subnet", "10.230.9.0/24", "--label", "a=b", "clinet")
    assert net.returncode == 0 and len(net.stdout.strip()) == 64
    assert dockyard("network", "create", "clinet").stderr.strip() == \
        "Error response from daemon: network with name clinet already exists"
    taken = dockyard("network", "create", "-o", "com.docker.network.bridge.name=lo", "onlo")
    assert taken.stderr.strip() == "Error response from daemon: bridge name lo is already in use"
    lines = dockyard("network", "ls", "--filter", "label=a=b").stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"] and lines[1].split()[1:] == \
        ["clinet", "bridge", "local"]
    assert dockyard("network", "inspect", "-f", "{{.Name}} {{.Driver}}", "clinet").stdout == "clinet bridge\n"
    port = free_port()
    run = dockyard("run", "-d", "--name", "cliweb", "--net", "clinet", "--ip", "10.230.9.9", "-p", f"{port}:80",
                   "busybox", "sh", "-c", SERVE)
    assert run.returncode == 0, run.stderr
    assert dockyard("port", "cliweb").stdout.startswith(f"80/tcp -> 0.0.0.0:{port}\n")
    assert http_get(f"http://127.0.0.1:{port}/").startswith("hello from")
    assert dockyard("network", "connect", "--alias", "x", "bridge", "cliweb").returncode != 0  # alias on bridge
    assert dockyard("network", "connect", "bridge", "cliweb").returncode == 0
    assert dockyard("inspect", "-f", "{{.Name}}", "clinet").stdout == "clinet\n"
    assert dockyard("network", "disconnect", "bridge", "cliweb").returncode == 0
    assert "has active endpoints" in dockyard("network", "rm", "clinet").stderr
    assert dockyard("rm", "-f", "cliweb").returncode == 0
    assert dockyard("network", "rm", "clinet").stdout == "clinet\n"
    # dual stack: each --gateway/--ip-range goes to the subnet holding it; --ip6 on run and connect
    prefix = ula_prefix()
    bad = dockyard("network", "create", "--subnet", "10.230.8.0/24", "--gateway", prefix + "1", "badgw")
    assert bad.returncode != 0 and f"no matching subnet for gateway {prefix}1" in bad.stderr
    made = dockyard("network", "create", "--ipv6", "--subnet", "10.230.8.0/24", "--subnet", prefix + "/64",
                    "--gateway", prefix + "fe", "--gateway", "10.230.8.254", "--ip-range", prefix + "80/124", "dualcli")
    assert made.returncode == 0, made.stderr
    configs = json.loads(dockyard("network", "inspect", "-f", "{{json .IPAM.Config}}", "dualcli").stdout)
    assert configs == [{"Subnet": "10.230.8.0/24", "Gateway": "10.230.8.254"},
                       {"Subnet": prefix + "/64", "IPRange": prefix + "80/124", "Gateway": prefix + "fe"}]
    assert dockyard("run", "-d", "--name", "cli6", "--net", "dualcli", "--ip6", prefix + "6", "busybox", "sleep",
                    "60").returncode == 0
    assert dockyard("run", "-d", "--name", "cli6b", "busybox", "sleep", "60").returncode == 0
    assert dockyard("network", "connect", "--ip6", prefix + "7", "dualcli", "cli6b").returncode == 0
    shown = [json.loads(line)["dualcli"]["GlobalIPv6Address"] for line in dockyard(
        "inspect", "-f", "{{json .NetworkSettings.Networks}}", "cli6", "cli6b").stdout.splitlines()]
    assert shown == [prefix + "6", prefix + "7"]
    assert dockyard("rm", "-f", "cli6", "cli6b").returncode == 0
    assert dockyard("network", "rm", "dualcli").returncode == 0


def test_daemon_address_flags(archive: str, daemon: Dockyardd) -> None:
    with Dockyardd("--bip", "10.229.3.1/24", "--default-address-pool", "base=10.228.0.0/16,size=24") as other:
        assert inspect(other, "bridge", "network")["IPAM"]["Config"] == [{"Subnet": "10.229.3.0/24",
                                                                         "Gateway": "10.229.3.1"}]
        try:
            ok(other, "network", "create", "pool1")
            ok(other, "network", "create", "pool2")
            subnets = [inspect(other, n, "network")["IPAM"]["Config"][0]["Subnet"] for n in ("pool1", "pool2")]
            assert subnets == ["10.228.0.0/24", "10.228.1.0/24"]
        finally:
            other.docker("network", "prune", "-f")
