"""The network library on its own: IPAM and port rules (pure), and real kernel objects: a
namespace with a veth on a bridge, iptables chains (the userland proxy: test_network_proxy.py)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest

from dockyard.network import bridge, firewall, ipam, netns
from dockyard.network.netlink import Netlink
from dockyard.network.ports import PortAllocator, PortError, ipv6_available, port_range, wanted
from tests.daemon import ula_prefix

root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
N = ipaddress.IPv4Network


def test_subnets_avoid_what_is_taken() -> None:
    pools = (ipam.Pool(N("172.17.0.0/16"), 16), ipam.Pool(N("172.18.0.0/15"), 16), ipam.Pool(N("192.168.0.0/16"), 20))
    assert ipam.choose_subnet(pools, []) == N("172.17.0.0/16")
    assert ipam.choose_subnet(pools, [N("172.17.5.0/24"), N("172.18.0.0/16")]) == N("172.19.0.0/16")
    assert ipam.choose_subnet(pools, [N("172.16.0.0/12"), N("192.168.0.0/20")]) == N("192.168.16.0/20")
    with pytest.raises(ipam.IPAMError, match="fully subnetted"):
        ipam.choose_subnet(pools[:1], [N("172.17.0.0/16")])
    assert ipam.parse_pool("base=10.10.0.0/16,size=24") == ipam.Pool(N("10.10.0.0/16"), 24)


def test_addresses() -> None:
    subnet = N("10.0.0.0/29")
    gateway = ipam.gateway_of(subnet)
    assert str(gateway) == "10.0.0.1"
    used = {gateway}
    got = []
    for _ in range(5):
        got.append(ipam.first_free(subnet, used))
        used.add(got[-1])
    assert [str(a) for a in got] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(ipam.IPAMError, match="no available IPv4 addresses"):
        ipam.first_free(subnet, used)
    assert str(ipam.first_free(N("10.1.0.0/24"), set(), N("10.1.0.128/25"))) == "10.1.0.129"
    with pytest.raises(ipam.IPAMError, match="Address already in use"):
        ipam.check_static("10.0.0.2", subnet, used)
    with pytest.raises(ipam.IPAMError, match="out of the network's subnet"):
        ipam.check_static("10.9.0.2", subnet, used)
    assert ipam.mac_for(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
    with pytest.raises(ipam.IPAMError, match="it should be 10.0.0.0/24"):
        ipam.parse_subnet("10.0.0.7/24")


def test_ipv6_subnets_and_addresses() -> None:
    pool = ipam.ula_pool("engine-id")
    assert pool == ipam.ula_pool("engine-id") != ipam.ula_pool("another")  # stable per engine
    assert pool.base.prefixlen == 48 and pool.size == 64 and pool.base.subnet_of(ipaddress.IPv6Network("fd00::/8"))
    pools = (*ipam.DEFAULT_POOLS, pool)
    first = next(iter(pool.subnets()))
    assert ipam.choose_subnet(pools, [N("172.17.0.0/16")], 6) == first  # IPv4 takes nothing from IPv6
    assert ipam.choose_subnet(pools, [first], 6) == ipaddress.IPv6Network((first.network_address + (1 << 64), 64))
    with pytest.raises(ipam.IPAMError, match="non-overlapping IPv6 address pool"):
        ipam.choose_subnet(ipam.DEFAULT_POOLS, [], 6)
    subnet = ipam.parse_subnet("fd12:0034::/64")  # any spelling of the prefix, shown canonical
    assert str(subnet) == "fd12:34::/64" and str(ipam.gateway_of(subnet)) == "fd12:34::1"
    with pytest.raises(ipam.IPAMError, match="it should be fd12:34::/64"):
        ipam.parse_subnet("fd12:34::5/64")
    used: set[ipam.Address] = {ipam.gateway_of(subnet)}
    assert str(ipam.first_free(subnet, used)) == "fd12:34::2"
    assert str(ipam.first_free(subnet, used, ipaddress.IPv6Network("fd12:34::100/120"))) == "fd12:34::101"
    assert str(ipam.check_static("fd12:34::0:55", subnet, used)) == "fd12:34::55"
    with pytest.raises(ipam.IPAMError, match="invalid IPv6 address: 10.0.0.2"):
        ipam.check_static("10.0.0.2", subnet, used)
    assert ipam.parse_pool("base=fd99::/56,size=64") == ipam.Pool(ipaddress.IPv6Network("fd99::/56"), 64)


def test_port_requests() -> None:
    config = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "9000": {}}}
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}
    assert wanted(config, hc) == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": None, "9000/tcp": None}
    assert wanted(config, {**hc, "PublishAllPorts": True})["53/udp"] == [{"HostIp": "", "HostPort": ""}]
    assert port_range("8000-8010") == (8000, 8010) and port_range("") == (0, 0)
    with pytest.raises(PortError):
        port_range("9-1")


def test_port_allocator() -> None:
    ports = PortAllocator()
    ip, port, _ = ports.reserve("tcp", "127.0.0.1", "")
    assert ip == "127.0.0.1" and port > 1024
    with pytest.raises(PortError, match=f"Bind for 0.0.0.0:{port} failed: port is already allocated"):
        ports.reserve("tcp", "0.0.0.0", str(port))
    _, udp_port, _ = ports.reserve("udp", "127.0.0.1", str(port))  # another protocol: no conflict
    assert udp_port == port
    if ipv6_available():  # another family: no conflict; within it, [::] conflicts with every address
        assert ports.reserve("tcp", "::", str(port))[:2] == ("::", port)
        with pytest.raises(PortError, match="already allocated"):
            ports.reserve("tcp", "::1", str(port))
        ports.release("tcp", "::", port)
    _, second, _ = ports.reserve("tcp", "127.0.0.1", f"{port}-{port + 50}")
    assert port < second <= port + 50
    with socket.socket() as other:  # a port some other process holds
        other.bind(("127.0.0.1", 0))
        with pytest.raises(PortError, match="address already in use"):
            ports.reserve("tcp", "127.0.0.1", str(other.getsockname()[1]))
    for proto, p in (("tcp", port), ("udp", port), ("tcp", second)):
        ports.release(proto, "127.0.0.1", p)
    with socket.socket() as again:  # released: listening there works (connections of earlier tests
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # may linger in TIME_WAIT on it)
        again.bind(("127.0.0.1", port))
        again.listen()


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    """Unique kernel names; whatever exists of them at the end is removed and fails the test."""
    tag = uuid.uuid4().hex[:6]
    made = {"bridge": f"dytl{tag}", "veth": f"vdyt{tag}", "ns": f"/tmp/dytl-{tag}/ns", "fw": f"dytl{tag}"}
    yield made
    left = []
    with Netlink() as nl:
        for key in ("bridge", "veth"):
            if nl.delete(made[key]):
                left.append(made[key])
    if os.path.exists(made["ns"]):
        netns.remove(made["ns"])
        left.append(made["ns"])
    if os.path.isdir(os.path.dirname(made["ns"])):
        os.rmdir(os.path.dirname(made["ns"]))
    for version in (4, 6):
        rules = subprocess.run([f"ip{'6' if version == 6 else ''}tables-save"], capture_output=True, text=True).stdout
        if made["fw"] in rules:
            firewall.Firewall(made["fw"], version).remove()
            left.append(f"IPv{version} firewall chains")
    assert not left, f"left behind: {left}"


def _own_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@root
def test_namespace_work_stays_on_the_calling_thread(names: dict[str, str]) -> None:
    home = _own_netns()
    netns.create(names["ns"], lambda nl: nl.set_up(nl.index("lo")))
    assert _own_netns() == home  # joined back
    inside = os.stat(names["ns"]).st_ino
    assert inside != home
    assert netns.run_in(names["ns"], lambda: (_own_netns(), threading.get_ident())) == (inside, threading.get_ident())
    assert _own_netns() == home
    with pytest.raises(ZeroDivisionError):  # a failure inside still joins back
        netns.run_in(names["ns"], lambda: 1 // 0)
    assert _own_netns() == home
    netns.remove(names["ns"])


@root
def test_sandbox_on_a_bridge(names: dict[str, str]) -> None:
    """A dual-stack bridge and endpoint: both addresses (IPv6 usable at once: no DAD), both
    default routes, and servers inside reachable from the host over IPv4 and IPv6."""
    prefix = ula_prefix()
    gateways = [ipaddress.ip_interface("10.233.71.1/24"), ipaddress.ip_interface(f"{prefix}1/64")]
    with Netlink() as nl:
        bridge.ensure_bridge(nl, names["bridge"], gateways)
        bridge.ensure_bridge(nl, names["bridge"], gateways)  # idempotent
        bridge.create_sandbox(names["ns"])
        addresses = (ipaddress.ip_interface("10.233.71.2/24"), ipaddress.ip_interface(f"{prefix}2/64"))
        ep = bridge.Endpoint(names["bridge"], names["veth"], "eth0", addresses, "02:42:0a:e9:47:02",
                             tuple(g.ip for g in gateways))
        bridge.attach(nl, names["ns"], ep)
        assert bridge.interface_names(names["ns"]) == {"lo", "eth0"}
        out = subprocess.run(["nsenter", f"--net={names['ns']}", "ip", "route", "show", "default"],
                             capture_output=True, text=True).stdout
        out += subprocess.run(["nsenter", f"--net={names['ns']}", "ip", "-6", "route", "show", "default"],
                              capture_output=True, text=True).stdout
        assert "default via 10.233.71.1 dev eth0" in out and f"default via {prefix}1 dev eth0" in out
        # servers inside the namespace answer the host
        for address in ("10.233.71.2", f"{prefix}2"):
            server = netns.run_in(names["ns"], lambda a=address: socket.create_server((a, 0), family=(
                socket.AF_INET6 if ":" in a else socket.AF_INET)))
            with server, socket.create_connection(server.getsockname()[:2], timeout=5) as client:
                conn, _ = server.accept()
                conn.sendall(b"hi")
                assert client.recv(2) == b"hi"
                conn.close()
        assert nl.delete(names["veth"]) and not nl.exists(names["veth"])
        netns.remove(names["ns"])
        assert nl.delete(names["bridge"])


@root
@pytest.mark.skipif(not firewall.available(), reason="no iptables")
def test_firewall_chains(names: dict[str, str]) -> None:
    fw = firewall.Firewall(names["fw"])
    rules = firewall.BridgeRules(names["bridge"], "10.233.72.0/24", internal=False)
    port = firewall.PortRule("tcp", "0.0.0.0", 18123, "10.233.72.2", 80, names["bridge"])
    fw.apply([rules], [port])
    fw.apply([rules], [port])  # rebuilt, not doubled
    dump = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert dump.count("--to-destination 10.233.72.2:80") == 1
    assert dump.count(f"-j DYF-{names['fw']}") == 1 and f"-s 10.233.72.0/24 ! -o {names['bridge']} -j MASQUERADE" in dump
    assert f"-A DYF-{names['fw']} -o {names['bridge']} -m conntrack --ctstate DNAT -j ACCEPT" in dump
    moved = firewall.PortRule("tcp", "127.0.0.1", 18124, "10.233.72.3", 80, names["bridge"])
    fw.apply([rules], [moved])  # ports alone: the DNAT rules swapped, nothing else
    dump = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert "--dport 18123 " not in dump and f"-A DYN-{names['fw']} -d 127.0.0.1/32 -p tcp -m tcp --dport 18124 " \
        "-j DNAT --to-destination 10.233.72.3:80" in dump
    subprocess.run(["iptables", "-t", "nat", "-F", f"DYN-{names['fw']}"], check=True)  # changed behind our back
    fw.apply([rules], [port])  # the delete fails: the chains are rebuilt
    dump = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert dump.count("--to-destination 10.233.72.2:80") == 1 and "--dport 18124 " not in dump
    fw.apply([firewall.BridgeRules(names["bridge"], "10.233.72.0/24", masquerade=False)], [])
    assert "MASQUERADE" in (dump := subprocess.run(["iptables-save"], capture_output=True, text=True).stdout)
    assert f"-s 10.233.72.0/24 ! -o {names['bridge']} -j MASQUERADE" not in dump
    fw.apply([firewall.BridgeRules(names["bridge"], "10.233.72.0/24", internal=True)], [])
    dump = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert "10.233.72.2" not in dump and f"-A DYF-{names['fw']} -i {names['bridge']} -j DROP" in dump
    fw.remove()
    assert names["fw"] not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


@root
@pytest.mark.skipif(not firewall.available(6), reason="no ip6tables")
def test_ip6tables_chains_and_isolation_order(names: dict[str, str]) -> None:
    fw = firewall.Firewall(names["fw"], 6)
    other = names["bridge"][:-1] + "x"
    bridges = [firewall.BridgeRules(names["bridge"], "fd12:34::/64"), firewall.BridgeRules(other, "fd12:35::/64")]
    port = firewall.PortRule("tcp", "::", 18123, "fd12:34::2", 80, names["bridge"])
    fw.apply(bridges, [port])
    dump = subprocess.run(["ip6tables-save"], capture_output=True, text=True).stdout
    assert "-j DNAT --to-destination [fd12:34::2]:80" in dump
    assert f"-o {names['bridge']} -m conntrack --ctstate DNAT -j ACCEPT" in dump
    assert f"-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DYN-{names['fw']}" in dump
    assert f"-s fd12:34::/64 ! -o {names['bridge']} -j MASQUERADE" in dump
    forward = [line for line in dump.splitlines() if line.startswith(f"-A DYF-{names['fw']}")]
    drops = [i for i, line in enumerate(forward) if line.endswith("-j DROP")]
    accepts = [i for i, line in enumerate(forward) if " -i " in line and " -o " not in line]
    assert len(drops) == 2 and len(accepts) == 2 and max(drops) < min(accepts)  # no network reaches another
    fw.remove()
    assert names["fw"] not in subprocess.run(["ip6tables-save"], capture_output=True, text=True).stdout


def test_name_table() -> None:
    from dockyard.engine.networks.names import Member, NameTable

    table = NameTable()
    table.add("n1", "front", "c1", Member(["Web", "www", "c1short"], "10.0.0.2", "web"), [])
    table.add("n1", "front", "c2", Member(["web2", "www"], "10.0.0.3", "web2"), ["web:db"])
    table.add("n2", "back", "c3", Member(["db"], "10.1.0.2", "db"), [])
    table.add("n2", "back", "c2", Member(["web2"], "10.1.0.3", "web2"), [])
    assert table.resolve("c1", "WEB.") == ["10.0.0.2"] and table.resolve("c1", "web.front") == ["10.0.0.2"]
    assert table.resolve("c1", "www") == ["10.0.0.2", "10.0.0.3"]  # one alias, two containers
    assert table.resolve("c1", "db") is None  # not on c1's network: forwarded upstream
    assert table.resolve("c2", "db") == ["10.0.0.2", "10.1.0.2"]  # c2's link alias on front, the name on back
    assert table.reverse("c1", "10.0.0.3") == "web2.front" and table.reverse("c1", "10.1.0.2") is None
    table.remove("n1", "c2")
    assert table.resolve("c1", "www") == ["10.0.0.2"] and table.resolve("c2", "web") is None
