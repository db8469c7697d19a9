"""IPv6 on bridge networks end to end, on a private daemon started with --ipv6 (its default
bridge dual stack too): real bridges, veths, namespaces and ip6tables; busybox httpd, ping6,
wget and nslookup in containers; the real docker CLI and a real HTTP client on the host. Every
prefix is a ULA made here for this run."""

from __future__ import annotations

import ipaddress
import os
import signal
import urllib.request
from collections.abc import Iterator

import pytest

from dockyard.network import firewall
from tests.daemon import Dockyardd, busybox_archive, ula_prefix
from tests.test_network import (  # noqa: F401 (no_leftover_children: the per-test cleanup fixture)
    dnat_gone,
    inspect,
    iptables_dump,
    links,
    no_leftover_children,
    ok,
    serve,
)

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not firewall.available(6), reason="needs ip6tables"),
              pytest.mark.skipif(not os.path.exists("/proc/net/if_inet6"), reason="needs IPv6")]
SERVE = "mkdir -p /w && echo hello from $(hostname) > /w/index.html && exec httpd -f -p 80 -h /w"
DEFAULT_V6 = ula_prefix()  # the default bridge's fixed-cidr-v6 (a /64 of it)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::", 0))
        return s.getsockname()[1]


def bridge_of(d: Dockyardd, network: str) -> str:
    return inspect(d, network, "network")["Options"].get("com.docker.network.bridge.name") or \
        "br-" + inspect(d, network, "network")["Id"][:12]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyardd]:
    archive = busybox_archive(tmp_path_factory.mktemp("busybox"))
    d = Dockyardd("--ipv6", "--fixed-cidr-v6", DEFAULT_V6 + "/64")
    try:
        d.start()
        ok(d, "load", "-i", str(archive))
        tag = bridge_of(d, "bridge")
        yield d
    finally:
        d.cleanup()
    # nothing left: no bridge, veth or ip6tables chain of this daemon
    assert not any(tag in name for name in links())
    assert f"-{tag}" not in iptables_dump("ip6tables")


def test_dual_stack_network_by_name(daemon: Dockyardd) -> None:
    ok(daemon, "network", "create", "--ipv6", "dual")
    net = inspect(daemon, "dual", "network")
    v4, v6 = net["IPAM"]["Config"]
    subnet6 = ipaddress.IPv6Network(v6["Subnet"])
    assert net["EnableIPv6"] is True and ":" not in v4["Subnet"] and subnet6.prefixlen == 64
    assert subnet6.subnet_of(ipaddress.IPv6Network("fd00::/8")) and v6["Gateway"] == str(subnet6[1])
    assert ok(daemon, "network", "ls", "--filter", "name=dual", "--format", "{{.Name}} {{.IPv6}}") == "dual true\n"
    cid = serve(daemon, "web", "--network", "dual", "--network-alias", "site")
    endpoint = inspect(daemon, cid)["NetworkSettings"]["Networks"]["dual"]
    address = endpoint["GlobalIPv6Address"]
    assert ipaddress.IPv6Address(address) in subnet6 and endpoint["GlobalIPv6PrefixLen"] == 64
    assert endpoint["IPv6Gateway"] == v6["Gateway"] and endpoint["IPAddress"]
    assert inspect(daemon, "dual", "network")["Containers"][cid]["IPv6Address"] == f"{address}/64"
    # by name and alias over IPv6: ping6, wget of the bracketed address, AAAA from the embedded DNS
    script = (f"ping6 -c1 -W2 web >/dev/null && echo ping-ok; wget -qO- 'http://[{address}]/'; "
              "nslookup -type=aaaa site 127.0.0.11; ip -6 route; ip -6 addr show eth0; cat /etc/hosts")
    out = ok(daemon, "run", "--rm", "--network", "dual", "--hostname", "client", "busybox", "sh", "-c", script)
    assert "ping-ok\n" in out and f"hello from {cid[:12]}\n" in out
    assert f"Address: {address}\n" in out
    assert "name = web.dual" in ok(daemon, "run", "--rm", "--network", "dual", "busybox", "nslookup", address,
                                   "127.0.0.11")  # PTR of the IPv6 address
    assert f"default via {v6['Gateway']} dev eth0" in out and "scope link" in out  # link-local too
    assert "::1\tlocalhost ip6-localhost ip6-loopback\n" in out and "ff02::2\tip6-allrouters\n" in out
    hosts = ok(daemon, "exec", "web", "cat", "/etc/hosts")
    assert f"{endpoint['IPAddress']}\t{cid[:12]}\n{address}\t{cid[:12]}\n" in hosts
    # a container without IPv6 is known by name but has no AAAA
    ok(daemon, "network", "create", "v4only")
    ok(daemon, "run", "-d", "--name", "old", "--network", "v4only", "busybox", "sleep", "60")
    asker = ok(daemon, "create", "--network", "v4only", "busybox", "sleep", "60").strip()
    ok(daemon, "network", "connect", "dual", asker)
    ok(daemon, "start", asker)
    old = inspect(daemon, "old")["NetworkSettings"]["Networks"]["v4only"]["IPAddress"]
    assert f"Address: {old}\n" in ok(daemon, "exec", asker, "nslookup", "-type=a", "old", "127.0.0.11")
    aaaa = daemon.docker("exec", asker, "nslookup", "-type=aaaa", "old", "127.0.0.11").stdout
    assert "Address: " not in aaaa and "Address:\t127.0.0.11" in aaaa  # answered (no forwarding), empty
    assert inspect(daemon, "old")["NetworkSettings"]["Networks"]["v4only"]["GlobalIPv6Address"] == ""
    assert "inet6" not in ok(daemon, "exec", "old", "ip", "addr", "show", "eth0")  # not even link-local
    assert "::1\tlocalhost" in ok(daemon, "exec", "old", "cat", "/etc/hosts")  # loopback keeps IPv6


def test_static_addresses_connect_and_errors(daemon: Dockyardd) -> None:
    prefix = ula_prefix()
    ok(daemon, "network", "create", "--ipv6", "--subnet", prefix + "/64", "--gateway", prefix + "fe",
       "--ip-range", prefix + "100/120", "fixed")
    v6 = inspect(daemon, "fixed", "network")["IPAM"]["Config"][1]
    assert v6 == {"Subnet": prefix + "/64", "IPRange": prefix + "100/120", "Gateway": prefix + "fe"}
    first = ok(daemon, "run", "-d", "--network", "fixed", "busybox", "sleep", "60").strip()
    assert inspect(daemon, first)["NetworkSettings"]["Networks"]["fixed"]["GlobalIPv6Address"].startswith(
        prefix + "1")  # from the range
    ok(daemon, "run", "-d", "--name", "pinned", "--network", "fixed", "--ip6", prefix + "55", "busybox", "sleep", "60")
    assert f"inet6 {prefix}55/64" in ok(daemon, "exec", "pinned", "ip", "-6", "addr")
    proc = daemon.docker("run", "--rm", "--network", "fixed", "--ip6", "fd00:ffff::1", "busybox", "true")
    assert proc.returncode != 0 and "no configured subnet contains IP address fd00:ffff::1" in proc.stderr
    proc = daemon.docker("run", "--rm", "--network", "fixed", "--ip6", prefix + "55", "busybox", "true")
    assert proc.returncode != 0 and "Address already in use" in proc.stderr
    # network connect --ip6 on a running container: a second interface with that address
    ok(daemon, "run", "-d", "--name", "joiner", "busybox", "sleep", "60")
    ok(daemon, "network", "connect", "--ip6", prefix + "77", "fixed", "joiner")
    endpoint = inspect(daemon, "joiner")["NetworkSettings"]["Networks"]["fixed"]
    assert endpoint["GlobalIPv6Address"] == prefix + "77" and endpoint["IPAMConfig"]["IPv6Address"] == prefix + "77"
    assert ok(daemon, "exec", "joiner", "ping6", "-c1", "-W2", prefix + "55")
    assert f"{prefix}77\t" in ok(daemon, "exec", "joiner", "cat", "/etc/hosts")
    ok(daemon, "network", "disconnect", "fixed", "joiner")
    assert f"{prefix}77" not in ok(daemon, "exec", "joiner", "sh", "-c", "cat /etc/hosts; ip -6 addr")
    # an IPv6 subnet without --ipv6 is ignored, as Docker does; --ip6 on it has no subnet to go to
    ok(daemon, "network", "create", "--subnet", ula_prefix() + "/64", "nov6")
    net = inspect(daemon, "nov6", "network")
    assert net["EnableIPv6"] is False and [":" in c["Subnet"] for c in net["IPAM"]["Config"]] == [False]
    proc = daemon.docker("run", "--rm", "--network", "nov6", "--ip6", prefix + "9", "busybox", "true")
    assert proc.returncode != 0 and "no configured subnet contains IP address" in proc.stderr


def test_default_bridge_from_fixed_cidr_v6(daemon: Dockyardd) -> None:
    net = inspect(daemon, "bridge", "network")
    assert net["EnableIPv6"] is True and net["IPAM"]["Config"][1]["Subnet"] == DEFAULT_V6 + "/64"
    cid = ok(daemon, "run", "-d", "busybox", "sleep", "60").strip()
    settings = inspect(daemon, cid)["NetworkSettings"]
    assert settings["GlobalIPv6Address"] == settings["Networks"]["bridge"]["GlobalIPv6Address"] == DEFAULT_V6 + "2"
    assert settings["GlobalIPv6PrefixLen"] == 64 and settings["IPv6Gateway"] == DEFAULT_V6 + "1"
    # a legacy link names the child at both its addresses, and follows it when it restarts
    ok(daemon, "run", "-d", "--name", "parent6", "--link", f"{cid}:kid", "busybox", "sleep", "60")
    names = f"kid {cid[:12]} {inspect(daemon, cid)['Name'][1:]}"
    hosts = ok(daemon, "exec", "parent6", "cat", "/etc/hosts")
    assert f"{settings['IPAddress']}\t{names}\n{DEFAULT_V6}2\t{names}\n" in hosts
    ok(daemon, "stop", "-t", "0", cid)
    ok(daemon, "run", "-d", "busybox", "sleep", "60")  # takes the child's addresses while it is stopped
    ok(daemon, "start", cid)
    moved = inspect(daemon, cid)["NetworkSettings"]
    assert moved["GlobalIPv6Address"] != DEFAULT_V6 + "2"
    hosts = ok(daemon, "exec", "parent6", "cat", "/etc/hosts")
    assert f"{moved['IPAddress']}\t{names}\n{moved['GlobalIPv6Address']}\t{names}\n" in hosts
    assert hosts.count(f"\t{names}\n") == 2


def test_published_port_on_ipv6_loopback_and_host_address(daemon: Dockyardd) -> None:
    ok(daemon, "network", "create", "--ipv6", "pubnet")
    port = free_port()
    cid = serve(daemon, "pub", "--network", "pubnet", "-p", f"{port}:80")
    address = inspect(daemon, cid)["NetworkSettings"]["Networks"]["pubnet"]["GlobalIPv6Address"]
    assert f"80/tcp -> [::]:{port}" in ok(daemon, "port", "pub")
    assert http_get(f"http://[::1]:{port}/") == f"hello from {cid[:12]}\n"  # the proxy: NAT cannot reach ::1
    assert http_get(f"http://127.0.0.1:{port}/") == f"hello from {cid[:12]}\n"
    assert f"--dport {port} -j DNAT --to-destination [{address}]:80" in iptables_dump("ip6tables")
    gateway = inspect(daemon, "bridge", "network")["IPAM"]["Config"][1]["Gateway"]
    assert http_get(f"http://[{gateway}]:{port}/") == f"hello from {cid[:12]}\n"  # a host address: DNAT
    # from containers through the host: another network's (its gateway), and the same one's (hairpin)
    for net in ("bridge", "pubnet"):
        gateway6 = inspect(daemon, net, "network")["IPAM"]["Config"][1]["Gateway"]
        out = ok(daemon, "run", "--rm", "--network", net, "busybox", "wget", "-qO-", f"http://[{gateway6}]:{port}/")
        assert out == f"hello from {cid[:12]}\n", net
    ok(daemon, "rm", "-f", "pub")
    assert dnat_gone(port, "ip6tables")
    with pytest.raises(OSError):
        http_get(f"http://[::1]:{port}/")


def test_isolation_and_internal(daemon: Dockyardd) -> None:
    ok(daemon, "network", "create", "--ipv6", "side-a")
    ok(daemon, "network", "create", "--ipv6", "side-b")
    ok(daemon, "network", "create", "--ipv6", "--internal", "closed")
    targets = {}
    for net in ("side-a", "side-b"):
        cid = ok(daemon, "run", "-d", "--network", net, "busybox", "sleep", "60").strip()
        targets[net] = inspect(daemon, cid)["NetworkSettings"]["Networks"][net]["GlobalIPv6Address"]
    for source, target in (("side-a", "side-b"), ("side-b", "side-a"), ("closed", "side-a")):
        proc = daemon.docker("run", "--rm", "--network", source, "busybox", "ping6", "-c1", "-W1", targets[target])
        # dropped by the firewall (no reply), or from the internal network no route at all
        assert proc.returncode == 1 and ("0 packets received" in proc.stdout or "unreachable" in proc.stderr), \
            (source, target)
    assert ok(daemon, "run", "--rm", "--network", "side-a", "busybox", "ping6", "-c1", "-W2", targets["side-a"])
    route = ok(daemon, "run", "--rm", "--network", "closed", "busybox", "ip", "-6", "route")
    assert "default" not in route and "/64 dev eth0" in route
    # enable_icc=false holds for IPv6 too (where br_netfilter lets ip6tables see bridged traffic)
    if os.path.exists(firewall.BRIDGE_NF_CALL_IPTABLES):
        ok(daemon, "network", "create", "--ipv6", "-o", "com.docker.network.bridge.enable_icc=false", "noicc6")
        cid = ok(daemon, "run", "-d", "--network", "noicc6", "busybox", "sleep", "60").strip()
        lonely = inspect(daemon, cid)["NetworkSettings"]["Networks"]["noicc6"]["GlobalIPv6Address"]
        proc = daemon.docker("run", "--rm", "--network", "noicc6", "busybox", "ping6", "-c1", "-W1", lonely)
        assert proc.returncode == 1 and "0 packets received" in proc.stdout


def test_crash_and_restart_keep_ipam_and_release_the_dead(daemon: Dockyardd) -> None:
    ok(daemon, "network", "create", "--ipv6", "keep6")
    before = inspect(daemon, "keep6", "network")["IPAM"]
    port, lost = free_port(), free_port()
    cid = serve(daemon, "survivor", "--network", "keep6", "-p", f"{port}:80")
    victim = ok(daemon, "run", "-d", "--network", "keep6", "-p", f"{lost}:80", "busybox", "sleep", "600").strip()
    pid = inspect(daemon, victim)["State"]["Pid"]
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    os.kill(pid, signal.SIGKILL)  # the container dies while no daemon watches
    daemon.start()
    assert inspect(daemon, "keep6", "network")["IPAM"] == before
    assert http_get(f"http://[::1]:{port}/") == f"hello from {cid[:12]}\n"
    dump = iptables_dump("ip6tables")
    assert f"--dport {port} " in dump and f"--dport {lost} " not in dump
    survivor = inspect(daemon, "survivor")["NetworkSettings"]["Networks"]["keep6"]["GlobalIPv6Address"]
    out = ok(daemon, "run", "--rm", "--network", "keep6", "busybox", "nslookup", "-type=aaaa", "survivor", "127.0.0.11")
    assert f"Address: {survivor}\n" in out



def test_default_routes_per_family(daemon: Dockyardd) -> None:
    """As Docker 28: endpoint order is GwPriority, not internal, dual stack, name; the IPv4 and
    the IPv6 default routes go through the first network of each family, which may differ."""
    ok(daemon, "network", "create", "a-v4")
    ok(daemon, "network", "create", "--ipv6", "b-dual")
    v4_gateways = [inspect(daemon, n, "network")["IPAM"]["Config"][0]["Gateway"] for n in ("a-v4", "b-dual")]
    v6_gateway = inspect(daemon, "b-dual", "network")["IPAM"]["Config"][1]["Gateway"]
    script = "ip route show default; ip -6 route show default"
    out = ok(daemon, "run", "--rm", "--network", "a-v4", "--network", "b-dual", "busybox", "sh", "-c", script)
    assert f"default via {v4_gateways[1]} dev eth1" in out and f"default via {v6_gateway} dev eth1" in out
    out = ok(daemon, "run", "--rm", "--network", "name=a-v4,gw-priority=1", "--network", "b-dual", "busybox", "sh",
             "-c", script)
    assert f"default via {v4_gateways[0]} dev eth0" in out and f"default via {v6_gateway} dev eth1" in out
    assert out.count("default") == 2
    # connected while running, the first dual-stack network brings the IPv6 default route
    ok(daemon, "run", "-d", "--name", "late", "--network", "a-v4", "busybox", "sleep", "60")
    assert "default" not in ok(daemon, "exec", "late", "ip", "-6", "route")
    ok(daemon, "network", "connect", "b-dual", "late")
    assert f"default via {v6_gateway} dev eth1" in ok(daemon, "exec", "late", "ip", "-6", "route")


def test_daemon_json_ipv6_for_the_default_bridge(tmp_path_factory: pytest.TempPathFactory,
                                                  daemon: Dockyardd) -> None:
    """daemon.json "ipv6" without "fixed-cidr-v6": a /64 of the engine's ULA /48 (kept across
    restarts); "ipv6": false at the next start takes it away. "ip6tables" and "experimental"
    (which older IPv6 setups needed) are accepted."""
    config = tmp_path_factory.mktemp("config") / "daemon.json"
    config.write_text('{"ipv6": true, "ip6tables": true, "experimental": true}')  # as Docker's IPv6 guides wrote
    other = Dockyardd("--config-file", str(config))
    try:
        other.start()
        assert ok(other, "version", "--format", "{{.Server.Experimental}}") == "true\n"
        first = inspect(other, "bridge", "network")
        subnet = ipaddress.IPv6Network(first["IPAM"]["Config"][1]["Subnet"])
        assert first["EnableIPv6"] is True and subnet.prefixlen == 64 and subnet.subnet_of(
            ipaddress.IPv6Network("fd00::/8"))
        other.stop()
        other.start()
        assert inspect(other, "bridge", "network")["IPAM"] == first["IPAM"]
        other.stop()
        config.write_text('{"ipv6": false}')
        other.start()
        again = inspect(other, "bridge", "network")
        assert again["EnableIPv6"] is False and len(again["IPAM"]["Config"]) == 1
    finally:
        other.cleanup()


def test_without_ip6tables_the_proxy_serves_ipv6(tmp_path_factory: pytest.TempPathFactory,
                                                 daemon: Dockyardd) -> None:
    """--ip6tables=false: no IPv6 chains; the userland proxy on [::] reaches the container's
    IPv6 address from every host address."""
    archive = busybox_archive(tmp_path_factory.mktemp("busybox6"))
    other = Dockyardd("--ip6tables=false")
    try:
        other.start()
        ok(other, "load", "-i", str(archive))
        ok(other, "network", "create", "--ipv6", "proxied6")
        port = free_port()
        cid = serve(other, "web6", "--network", "proxied6", "-p", f"{port}:80")
        gateway6 = inspect(other, "proxied6", "network")["IPAM"]["Config"][1]["Gateway"]
        for host in ("[::1]", f"[{gateway6}]", "127.0.0.1"):
            assert http_get(f"http://{host}:{port}/") == f"hello from {cid[:12]}\n", host
        assert bridge_of(other, "bridge") not in iptables_dump("ip6tables")
    finally:
        if other.proc is not None and other.proc.poll() is None:
            other.remove_containers()
            other.docker("network", "prune", "-f")
        other.cleanup()


def test_ipv6_only_network(daemon: Dockyardd) -> None:
    """Docker 28's --ipv4=false: no IPv4 subnet, address or route; names, AAAA and published
    ports over IPv6 (an IPv4 host address proxied to the container's IPv6 one)."""
    proc = daemon.docker("network", "create", "--ipv4=false", "none-at-all")
    assert proc.returncode != 0 and "IPv4 or IPv6 must be enabled" in proc.stderr
    ok(daemon, "network", "create", "--ipv4=false", "--ipv6", "only6")
    net = inspect(daemon, "only6", "network")
    assert net["EnableIPv4"] is False and [":" in c["Subnet"] for c in net["IPAM"]["Config"]] == [True]
    port = free_port()
    cid = serve(daemon, "web6only", "--network", "only6", "-p", f"{port}:80")
    endpoint = inspect(daemon, cid)["NetworkSettings"]["Networks"]["only6"]
    assert endpoint["IPAddress"] == "" and endpoint["Gateway"] == "" and endpoint["GlobalIPv6Address"]
    assert inspect(daemon, "only6", "network")["Containers"][cid]["IPv4Address"] == ""
    out = ok(daemon, "run", "--rm", "--network", "only6", "busybox", "sh", "-c",
             "ip -4 addr show eth0; ip -4 route; wget -qO- http://web6only/; nslookup -type=aaaa web6only 127.0.0.11")
    assert "inet " not in out and f"hello from {cid[:12]}\n" in out
    assert f"Address: {endpoint['GlobalIPv6Address']}\n" in out
    for host in ("[::1]", "127.0.0.1"):
        assert http_get(f"http://{host}:{port}/") == f"hello from {cid[:12]}\n", host
