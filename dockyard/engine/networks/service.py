"""NetworkService: Docker's networks (the predefined bridge, host and none, and user-defined
bridge networks) over the network library: records in networks.db, one Linux bridge each, the
firewall chains rebuilt from the bridges and the published ports, host ports reserved here."""

from __future__ import annotations

import _thread
import concurrent.futures
import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dockyard.engine.networks import views
from dockyard.engine.networks.errors import Conflict, Forbidden, InvalidParameter, NotFound, no_such_network
from dockyard.engine.networks.store import NetworkStore, Record
from dockyard.network import bridge, firewall, ipam
from dockyard.network.firewall import BridgeRules, Firewall, PortRule
from dockyard.network.netlink import Netlink
from dockyard.network.ports import PortAllocator
from dockyard.shim.logs import rfc3339nano

log = logging.getLogger("dockyardd.networks")
HOST_LOCK = "/run/lock/dockyard-network.lock"  # host-wide: subnet choice + bridge creation, across daemons
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPT_HOST_IP = "com.docker.network.bridge.host_binding_ipv4"
OPT_MTU = "com.docker.network.driver.mtu"


@dataclass
class NetworkOptions:
    """The daemon's network settings (dockerd's --bridge, --bip, --default-address-pool, --iptables,
    --ipv6 and --fixed-cidr-v6 for the default bridge, --ip6tables, --userland-proxy)."""

    bridge: str = "dockyard0"
    bip: str = ""
    pools: tuple[ipam.Pool, ...] = field(default=ipam.DEFAULT_POOLS)
    iptables: bool = True
    ipv6: bool = False
    fixed_cidr_v6: str = ""
    ip6tables: bool = True
    userland_proxy: bool = True


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialise subnet choices with every dockyardd on this host (the kernel's routes are the truth)."""
    os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ip_config(record: Record, version: int = 4) -> dict[str, Any] | None:
    """The network's IPAM config entry of an IP version (None: it has none)."""
    for config in (record.get("IPAM") or {}).get("Config") or []:
        if config.get("Subnet") and (":" in config["Subnet"]) == (version == 6):
            return config
    return None


def subnet_of(record: Record, version: int = 4) -> ipam.Network | None:
    """The network's subnet of an IP version (None for host and none, or no such subnet)."""
    config = ip_config(record, version)
    return ipaddress.ip_network(config["Subnet"]) if config else None


def ipv4_config(record: Record) -> dict[str, Any] | None:
    """The network's IPv4 IPAM config entry (None: an IPv6-only network)."""
    return ip_config(record, 4) if record.get("EnableIPv4", True) else None


def default_bridge_v4(record: Record) -> dict[str, Any]:
    """The IPv4 IPAM entry of the default bridge (which always has one)."""
    config = ip_config(record, 4)
    assert config is not None, record["Name"]
    return config


def ipv6_config(record: Record) -> dict[str, Any] | None:
    """The IPAM config entry of a dual-stack network's IPv6 subnet (None: IPv4 only)."""
    return ip_config(record, 6) if record.get("EnableIPv6") else None


def _within(address: str, subnet: ipam.Network, what: str) -> bool:
    """Whether address is inside subnet; InvalidParameter ("invalid <what>") if it is no address."""
    try:
        return ipaddress.ip_address(address) in subnet
    except ValueError:
        raise InvalidParameter(f"invalid {what}") from None


def _option(record: Record, key: str) -> bool:
    """A boolean driver option (true unless set false)."""
    return record["Options"].get(key, "true").lower() in ("true", "1")


class NetworkService:
    """The networks of one daemon."""

    def __init__(self, data_root: str, options: NetworkOptions | None = None) -> None:
        self.options = options or NetworkOptions()
        self.store = NetworkStore(data_root)
        self.nl = Netlink()
        self.firewall = Firewall(self.options.bridge, proxied_loopback=self.options.userland_proxy) \
            if self.options.iptables and firewall.available() else None
        self.firewall6 = Firewall(self.options.bridge, 6) \
            if self.firewall and self.options.ip6tables and firewall.available(6) else None
        self.ports = PortAllocator()
        self._port_rules: dict[str, list[PortRule]] = {}
        self._stale: list[PortRule] = []  # rules of unpublished ports still loaded, deleted by a sweep
        self._stale_swept = threading.Event()  # no sweep pending
        self._stale_swept.set()
        self._lock = threading.RLock()
        self.on_event: Callable[[str, Record, dict[str, str]], None] | None = None

    def notify(self, action: str, record: Record, **extra: str) -> None:
        """Publish a network event (create, destroy, connect, disconnect)."""
        if self.on_event is not None:
            self.on_event(action, record, extra)

    # -- daemon start and stop ----------------------------------------------------------------------

    def startup(self) -> None:
        """The predefined networks, every bridge up, the firewall rebuilt (crash leftovers go)."""
        with contextlib.suppress(OSError):
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1")
        with host_lock():
            names = {r["Name"] for r in self.store.networks()}
            if "bridge" not in names:
                subnet = ipaddress.IPv4Interface(self.options.bip).network if self.options.bip \
                    else ipam.choose_subnet(self.options.pools, self._taken())
                gateway = ipaddress.IPv4Interface(self.options.bip).ip if self.options.bip else ipam.gateway_of(subnet)
                self._add(self._default_bridge(subnet, gateway))
            self._default_bridge_ipv6(self.resolve("bridge"))
            for name, driver in (("host", "host"), ("none", "null")):
                if name not in names:
                    self._add(self._record(name, driver, {"Driver": "default", "Options": None, "Config": None}))
            for record in self.store.networks():
                if record["Driver"] == "bridge":
                    self._ensure_bridge(record)
        self.apply_firewall()

    def shutdown(self, containers_running: bool) -> None:
        """Close; with no container left running, take the bridges and rules away (start puts them back)."""
        self._stale_swept.wait(60)
        try:
            if not containers_running:
                for record in self.store.networks():
                    if record["Driver"] == "bridge":
                        bridge.remove_bridge(self.nl, record["_Bridge"])
                for wall in (self.firewall, self.firewall6):
                    if wall is not None:
                        wall.remove()
        finally:
            self.nl.close()
            self.store.close()

    # -- records --------------------------------------------------------------------------------------

    def _record(self, name: str, driver: str, ipam_doc: dict[str, Any], **fields: Any) -> Record:
        return {"Name": name, "Id": secrets.token_hex(32), "Created": rfc3339nano(), "Scope": "local",
                "Driver": driver, "EnableIPv4": True, "EnableIPv6": False, "IPAM": ipam_doc, "Internal": False,
                "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
                "Options": {}, "Labels": {}, **fields}

    def _default_bridge(self, subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address) -> Record:
        options = {"com.docker.network.bridge.default_bridge": "true", OPT_ICC: "true", OPT_MASQUERADE: "true",
                   OPT_HOST_IP: "0.0.0.0", OPT_BRIDGE_NAME: self.options.bridge, OPT_MTU: "1500"}
        return self._record("bridge", "bridge", {"Driver": "default", "Options": None,
                                                 "Config": [{"Subnet": str(subnet), "Gateway": str(gateway)}]},
                            Options=options, _Bridge=self.options.bridge, _UserSubnet=False)

    def _default_bridge_ipv6(self, record: Record) -> None:
        """The default bridge's IPv6 as the daemon's ipv6 / fixed-cidr-v6 say at this start (a
        ULA /64 from the pools without fixed-cidr-v6, as Docker 28); recorded when it changed."""
        v4 = default_bridge_v4(record)
        current = ip_config(record, 6)
        if not self.options.ipv6:
            wanted = None
        elif self.options.fixed_cidr_v6:
            subnet = ipam.parse_subnet(self.options.fixed_cidr_v6)
            wanted = {"Subnet": str(subnet), "Gateway": str(ipam.gateway_of(subnet))}
        elif current is not None and record["EnableIPv6"]:
            wanted = current
        else:
            wanted = self._ip_config({}, 6)
        if (current, record["EnableIPv6"]) != (wanted, wanted is not None):
            record.update(EnableIPv6=wanted is not None)
            record["IPAM"]["Config"] = [v4, *([wanted] if wanted else [])]
            self.store.update(record)

    def _add(self, record: Record) -> None:
        with self.store.tx() as db:
            if not self.store.add(db, record):
                raise Conflict(f"network with name {record['Name']} already exists")

    def _taken(self, version: int = 4) -> list[ipam.Network]:
        """Subnets of an IP version in use: the host's routes and addresses, this daemon's networks."""
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        taken = self.nl.routes(family) + [iface.network for _, iface in self.nl.addresses(family)]
        return taken + [s for r in self.store.networks() if (s := subnet_of(r, version)) is not None]

    def _ensure_bridge(self, record: Record) -> None:
        gateways = []
        for config in filter(None, (ipv4_config(record), ipv6_config(record))):
            subnet = ipaddress.ip_network(config["Subnet"])
            gateways.append(ipaddress.ip_interface(f"{config.get('Gateway') or ipam.gateway_of(subnet)}/"
                                                   f"{subnet.prefixlen}"))
        if any(g.version == 6 for g in gateways):
            with contextlib.suppress(OSError):
                with open("/proc/sys/net/ipv6/conf/all/forwarding", "w") as f:
                    f.write("1")
        bridge.ensure_bridge(self.nl, record["_Bridge"], gateways, int(record["Options"].get(OPT_MTU) or 0),
                             loopback_nat=self.firewall is not None and not self.options.userland_proxy)

    def resolve(self, ref: str) -> Record:
        """A network by full ID, name, or unique ID prefix (Docker's order)."""
        records = self.store.networks()
        for match in (lambda r: r["Id"] == ref, lambda r: r["Name"] == ref):
            found = [r for r in records if match(r)]
            if found:
                return found[0]
        found = [r for r in records if ref and r["Id"].startswith(ref)]
        if len(found) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        if not found:
            raise no_such_network(ref)
        return found[0]

    # -- API --------------------------------------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> Record:
        """POST /networks/create: the new network's record."""
        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("network name cannot be empty")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if name in views.PREDEFINED:
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        ipam_in = body.get("IPAM") or {}
        configs = [dict(c) for c in ipam_in.get("Config") or []]
        v4 = [c for c in configs if ":" not in (c.get("Subnet") or "")]
        v6 = [c for c in configs if ":" in (c.get("Subnet") or "")]
        if len(v4) > 1 or len(v6) > 1:
            raise InvalidParameter(f"multiple IPv{4 if len(v4) > 1 else 6} subnets are not supported")
        enable_ipv6 = bool(body.get("EnableIPv6"))
        enable_ipv4 = body.get("EnableIPv4") is not False  # default true (API 1.48)
        if not (enable_ipv4 or enable_ipv6):
            raise InvalidParameter("IPv4 or IPv6 must be enabled")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        for key in (OPT_ICC, OPT_MASQUERADE):
            if options.get(key, "true").lower() not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid value for {key}: {options[key]}")
        if options.get(OPT_MTU) and not options[OPT_MTU].isdigit():
            raise InvalidParameter(f"invalid value for {OPT_MTU}: {options[OPT_MTU]}")
        with self._lock, host_lock():
            if any(r["Name"] == name for r in self.store.networks()):
                raise Conflict(f"network with name {name} already exists")
            # as Docker: the subnet of a family not enabled is neither checked nor used, nor shown
            config = [self._ip_config(v4[0] if v4 else {}, 4)] if enable_ipv4 else []
            config6 = [self._ip_config(v6[0] if v6 else {}, 6)] if enable_ipv6 else []
            record = self._record(name, "bridge", {"Driver": ipam_in.get("Driver") or "default",
                                                   "Options": ipam_in.get("Options"),
                                                   "Config": [*config, *config6]},
                                  EnableIPv4=enable_ipv4, EnableIPv6=enable_ipv6, Internal=bool(body.get("Internal")),
                                  Attachable=bool(body.get("Attachable")), Options=options,
                                  Labels=dict(body.get("Labels") or {}), _UserSubnet=bool(v4 and v4[0].get("Subnet")))
            record["_Bridge"] = options.get(OPT_BRIDGE_NAME) or f"br-{record['Id'][:12]}"
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", record["_Bridge"]):
                raise InvalidParameter(f"invalid bridge name {record['_Bridge']!r}: up to 15 letters, digits, "
                                       "'_', '.' or '-'")
            if self.nl.exists(record["_Bridge"]):
                raise Conflict(f"bridge name {record['_Bridge']} is already in use")
            self._add(record)  # first: after a crash, start recreates a recorded bridge, never leaks one
            try:
                self._ensure_bridge(record)
            except BaseException:
                bridge.remove_bridge(self.nl, record["_Bridge"])
                self.store.delete(record["Id"])
                raise
        self.apply_firewall()
        self.notify("create", record)
        return record

    def _ip_config(self, wanted: dict[str, Any], version: int) -> dict[str, Any]:
        """The IPAM entry of one IP version: the one asked for, checked (a gateway, range or
        auxiliary address outside its subnet is Docker's error), or a free subnet of the pools
        (for IPv6 a /64 of the engine's ULA /48 unless pools of IPv6 are configured)."""
        try:
            if not wanted.get("Subnet"):
                if wanted.get("Gateway") or wanted.get("IPRange"):
                    raise InvalidParameter("a subnet is needed with --gateway or --ip-range")
                subnet = ipam.choose_subnet(self.options.pools, self._taken(version), version)
                return {"Subnet": str(subnet), "Gateway": str(ipam.gateway_of(subnet))}
            subnet = ipam.parse_subnet(wanted["Subnet"])
        except ipam.IPAMError as e:
            raise InvalidParameter(str(e)) from None
        if any(s is not None and s.overlaps(subnet) for s in (subnet_of(r, version) for r in self.store.networks())):
            raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")
        out: dict[str, Any] = {"Subnet": str(subnet)}
        if wanted.get("IPRange"):
            try:
                ip_range = ipaddress.ip_network(wanted["IPRange"])
            except ValueError:
                raise InvalidParameter(f"invalid ip-range {wanted['IPRange']}") from None
            if ip_range.version != version or not ip_range.subnet_of(subnet):
                raise InvalidParameter(f"ip-range {ip_range} is not within subnet {subnet}")
            out["IPRange"] = str(ip_range)
        gateway = wanted.get("Gateway") or str(ipam.gateway_of(subnet))
        if not _within(gateway, subnet, f"gateway address {gateway}"):
            raise InvalidParameter(f"gateway {gateway} is not within subnet {subnet}")
        out["Gateway"] = gateway
        if not wanted.get("Gateway"):
            out["_ImpliedGateway"] = True  # shown only as dockerd does: not when a subnet came without one
        aux = dict(wanted.get("AuxiliaryAddresses") or {})
        for host, address in aux.items():
            if not _within(address, subnet, f"auxiliary address {host}={address}"):
                raise InvalidParameter(f"auxiliary address {host}={address} is not within subnet {subnet}")
        if aux:
            out["AuxiliaryAddresses"] = aux
        return out

    def list(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        """GET /networks."""
        used = {ep["NetworkID"] for ep in self.store.endpoints()}
        out = [views.network(r, None) for r in self.store.networks() if views.matches(r, filters, r["Id"] in used)]
        return sorted(out, key=lambda r: r["Name"])

    def inspect(self, ref: str) -> dict[str, Any]:
        """GET /networks/{id}."""
        record = self.resolve(ref)
        return views.network(record, self.store.endpoints(network_id=record["Id"]))

    def remove(self, ref: str) -> None:
        """DELETE /networks/{id}."""
        with self._lock:
            record = self.resolve(ref)
            if record["Name"] in views.PREDEFINED:
                raise Forbidden(f"{record['Name']} is a pre-defined network and cannot be removed")
            endpoints = self.store.endpoints(network_id=record["Id"])
            if endpoints:
                active = ", ".join(f'name:"{ep["Name"]}" id:"{ep["EndpointID"][:12]}"' for ep in endpoints)
                raise Forbidden(f"error while removing network: network {record['Name']} has active endpoints "
                                f"({active})")
            bridge.remove_bridge(self.nl, record["_Bridge"])
            self.store.delete(record["Id"])
        self.apply_firewall()
        self.notify("destroy", record)

    def prune(self, filters: dict[str, list[str]]) -> list[str]:
        """POST /networks/prune: every unused user-defined network passing the label/until filters."""
        from dockyard.engine.containers.logs import parse_time
        from dockyard.image import filters as flt

        until = flt.timestamp(filters["until"][0]) if filters.get("until") else None
        removed = []
        for record in self.store.networks():
            if record["Name"] in views.PREDEFINED or not flt.labels_pass(filters, record.get("Labels")):
                continue
            if until is not None and parse_time(record["Created"]) / 1e9 >= until:
                continue
            with contextlib.suppress(Forbidden, NotFound):
                self.remove(record["Id"])
                removed.append(record["Name"])
        return removed

    # -- published ports and the firewall ------------------------------------------------------------

    def port_rules(self, cid: str) -> list[PortRule]:
        """The port rules of one container."""
        with self._lock:
            return list(self._port_rules.get(cid, []))

    def set_ports(self, cid: str, rules: list[PortRule]) -> None:
        """The port rules of one container (none: forget it); the firewall follows. Rules that
        only go are deleted from the kernel after this returns (a delete makes the kernel wait
        ~12 ms, idle): until then they stay loaded unless a rule given here takes their host
        port, which deletes them in the same batch (traffic goes to the new rule's container)."""
        with self._lock:
            before = self._port_rules.pop(cid, [])
            if rules:
                self._port_rules[cid] = rules
                self.apply_firewall()
            elif before and self.firewall is not None:
                self._stale += before
                if self._stale_swept.is_set():
                    self._stale_swept.clear()
                    _thread.start_new_thread(self._sweep_stale, ())

    def _sweep_stale(self) -> None:
        """Delete the DNAT rules of ports no container publishes any more (a thread of its own)."""
        with self._lock:  # set under the lock: set_ports starts a sweep for whatever comes after this one
            try:
                self._stale = []
                self.apply_firewall()
            except Exception:  # the next change of the firewall retries
                log.exception("deleting the rules of unpublished ports")
            finally:
                self._stale_swept.set()

    def apply_firewall(self) -> None:
        """Rebuild the firewall chains from the bridges and every published port, keeping the
        rules waiting to be swept but those whose host port a published one now has."""
        if self.firewall is None:
            return
        with self._lock:
            networks = [r for r in self.store.networks() if r["Driver"] == "bridge"]
            ports = [p for rules in self._port_rules.values() for p in rules]
            published = {(p.proto, p.host_port) for p in ports}
            self._stale = [p for p in self._stale if (p.proto, p.host_port) not in published]
            ports += self._stale
            bridges = [self._bridge_rules(r, c) for r in networks if (c := ipv4_config(r))]
            if not all(b.icc for b in bridges) and not firewall.filter_bridged_traffic():
                log.warning("br_netfilter is not loaded: enable_icc=false cannot be enforced")
            rules4 = [p for p in ports if ":" not in p.host_ip and ":" not in p.container_ip]
            if self.firewall6 is None:
                self.firewall.apply(bridges, rules4)
                return
            bridges6 = [self._bridge_rules(r, c) for r in networks if (c := ipv6_config(r))]
            if not all(b.icc for b in bridges6):
                firewall.filter_bridged_traffic(6)
            # both families at once (an iptables-restore takes tens of ms); IPv6 bindings toward
            # a container without IPv6 stay with the proxy
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ip6tables") as pool:
                done6 = pool.submit(self.firewall6.apply, bridges6,
                                    [p for p in ports if ":" in p.host_ip and ":" in p.container_ip])
                self.firewall.apply(bridges, rules4)
                try:
                    done6.result()
                except firewall.FirewallError as e:  # e.g. a kernel without IPv6 NAT: the proxies still serve
                    log.warning("ip6tables refused our rules (no IPv6 isolation nor DNAT): %s", e)

    @staticmethod
    def _bridge_rules(record: Record, config: dict[str, Any]) -> BridgeRules:
        return BridgeRules(record["_Bridge"], config["Subnet"], bool(record["Internal"]), _option(record, OPT_ICC),
                           _option(record, OPT_MASQUERADE))
