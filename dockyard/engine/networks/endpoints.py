"""ContainerNetworking: what the container service asks of the networks at each point of a
container's life (create → prepare, start → setup, exit → teardown, rm → forget), connect and
disconnect of running containers, the embedded DNS's view of names, and reconcile at daemon start.

A running container on bridge networks has a sandbox (<exec-root>/netns/<short id>, a bind-mounted
network namespace the runtime joins), one veth per network (eth0, eth1...), an endpoint row per
network (its address), its published ports held by the NetworkService, and, when it is on a
user-defined network, its own 127.0.0.11 on the embedded DNS."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from typing import Any

from dockyard.engine.containers import etcfiles
from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.networks import views
from dockyard.engine.networks.errors import ContainerError, Forbidden, InvalidParameter, NotFound
from dockyard.engine.networks.service import OPT_HOST_IP, OPT_MTU, NetworkService, ipv4_config
from dockyard.network import bridge, ipam, netns
from dockyard.network.dns import EmbeddedDNS
from dockyard.network.firewall import PortRule
from dockyard.network.ports import PortError, ipv6_available, split_key, wanted
from dockyard.network.proxy import Proxy

log = logging.getLogger("dockyardd.networks")
Record = dict[str, Any]
INTERNAL_RESOLVER = "127.0.0.11"
NONE_ALONE = "container cannot be connected to multiple networks with one of the networks in private (none) mode"


class ContainerNetworking:
    """The network side of the container lifecycle."""

    def __init__(self, networks: NetworkService, containers: ContainerStore, exec_root: str) -> None:
        self.networks = networks
        self.containers = containers
        self.sandbox_dir = os.path.join(exec_root, "netns")
        self.dns = EmbeddedDNS(self._resolve, self._reverse)
        self._proxies: dict[tuple[str, str, int], Proxy] = {}
        self._names: dict[str, dict[str, tuple[list[str], str, str]]] = {}  # network -> cid -> (names, ip, name)
        self._links: dict[tuple[str, str], dict[str, str]] = {}  # (cid, network) -> {alias: container name}
        self._lock = threading.RLock()

    def close(self) -> None:
        """Stop the DNS server and the proxies (the daemon is going away)."""
        self.dns.close()
        for proxy in self._proxies.values():
            proxy.close()

    # -- create ---------------------------------------------------------------------------------------

    def prepare(self, config: dict[str, Any], hc: dict[str, Any], networking: dict[str, Any] | None) -> Record:
        """Check the container's network mode and endpoint configs; its initial NetworkSettings."""
        mode = hc.get("NetworkMode") or "default"
        hc["NetworkMode"] = mode = "bridge" if mode == "default" else mode
        configs = dict((networking or {}).get("EndpointsConfig") or {})
        if mode.startswith("container:"):
            target = self.containers.get(self.containers.resolve(mode.partition(":")[2]))
            if hc.get("PortBindings") or hc.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the container type network mode")
            if config.get("Hostname"):
                raise InvalidParameter("conflicting options: hostname and the network mode")
            config["Hostname"] = target["Config"].get("Hostname") or ""  # it shares that container's names
            return views.network_settings({})
        if mode == "host" and not config.get("Hostname"):
            config["Hostname"] = socket.gethostname()  # as Docker: the host's name on the host's network
        networks: dict[str, Record] = {}
        for ref in [mode, *(k for k in configs if k not in (mode, "default"))]:
            cfg = configs.get(ref) or (configs.get("default") if ref == mode else None)
            try:
                record = self.networks.resolve(ref)
            except NotFound:  # as Docker: a missing network is an error of start, not of create
                networks[ref] = views.endpoint_settings("", cfg)
                continue
            cfg = cfg or configs.get(record["Name"])
            self._check_endpoint(record, cfg)
            networks[record["Name"]] = views.endpoint_settings(record["Id"], cfg)
        if len(networks) > 1 and "none" in networks:
            raise InvalidParameter(NONE_ALONE)
        if len(networks) > 1 and "host" in networks:
            raise InvalidParameter("container cannot be disconnected from host network or connected to host network")
        return views.network_settings(networks)

    @staticmethod
    def _check_endpoint(network: Record, cfg: dict[str, Any] | None) -> None:
        cfg = cfg or {}
        ip = (cfg.get("IPAMConfig") or {}).get("IPv4Address")
        if network["Name"] in views.PREDEFINED:
            if ip:
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            if cfg.get("Aliases"):
                raise InvalidParameter("network-scoped alias is supported only for containers in user defined "
                                       "networks")
        elif ip and not network.get("_UserSubnet"):
            raise InvalidParameter("user specified IP address is supported only when connecting to networks with "
                                   "user configured subnets")

    # -- start and exit -------------------------------------------------------------------------------

    def setup(self, record: Record) -> str | None:
        """Before the runtime creates the container: its sandbox with every endpoint, its ports,
        /etc/hosts and /etc/resolv.conf; the network namespace path to join (None: the host's)."""
        hc, settings = record["HostConfig"], self._settings(record)
        mode = hc["NetworkMode"]
        if mode == "host":
            self._write_host_files(record)
            return None
        if mode.startswith("container:"):
            return self._join(record, mode.partition(":")[2])
        started = time.perf_counter()
        path = os.path.join(self.sandbox_dir, record["ID"][:12])
        netns.remove(path)
        bridge.create_sandbox(path)
        settings.update(SandboxID=secrets.token_hex(32), SandboxKey=path)
        try:
            names = [n for n in settings["Networks"] if n != "none"]
            gateway = self._gateway_network(settings["Networks"])
            for index, name in enumerate(names):
                self._attach(record, name, f"eth{index}", default_route=name == gateway)
            self._publish(record)
            self._write_files(record)
            if self._user_networks(record):
                self.dns.attach(record["ID"], path, upstreams=self._upstreams(record))
        except BaseException:
            self.teardown(record)
            raise
        views.refresh_top_level(settings)
        log.debug("network setup of %s: %.1f ms", record["ID"][:12], (time.perf_counter() - started) * 1000)
        return path

    def _settings(self, record: Record) -> Record:
        """The container's NetworkSettings (made now for a container created without them)."""
        if "NetworkSettings" not in record:
            record["NetworkSettings"] = self.prepare(record["Config"], record["HostConfig"], None)
        return record["NetworkSettings"]

    def _join(self, record: Record, ref: str) -> str:
        """container:<ref>: that container's namespace and name-resolution files."""
        target = self.containers.get(self.containers.resolve(ref))
        if not target["State"]["Running"]:
            raise ContainerError(f"cannot join network namespace of a non running container: {target['ID']}")
        for key in ("HostsPath", "ResolvConfPath"):
            with open(target[key]) as f:
                etcfiles.write_atomic(record[key], f.read())
        return target["NetworkSettings"].get("SandboxKey") or f"/proc/{target['State']['Pid']}/ns/net"

    def teardown(self, record: Record) -> None:
        """After the container stopped (or failed to start): everything setup made, undone."""
        cid, settings = record["ID"], record.get("NetworkSettings")
        if not settings:
            return
        self.dns.detach(cid)
        self._unpublish(cid)
        for ep in self.networks.store.endpoints(container_id=cid):
            self._detach(ep)
        if settings.get("SandboxKey", "").startswith(self.sandbox_dir + os.sep):
            netns.remove(settings["SandboxKey"])
        for ep_settings in settings["Networks"].values():
            views.clear_endpoint(ep_settings)
        settings.update(SandboxID="", SandboxKey="", Ports={})
        views.refresh_top_level(settings)

    def forget(self, cid: str) -> None:
        """The container is gone: drop whatever may remain of it."""
        self.dns.detach(cid)
        self._unpublish(cid)
        for ep in self.networks.store.endpoints(container_id=cid):
            self._detach(ep)
        netns.remove(os.path.join(self.sandbox_dir, cid[:12]))

    # -- endpoints ------------------------------------------------------------------------------------

    def _gateway_network(self, networks: dict[str, Record]) -> str | None:
        """The network whose gateway is the default route, as Docker orders endpoints: highest
        GwPriority, then not internal, then by name."""
        def key(name: str) -> tuple[int, bool, str]:
            try:
                internal = bool(self.networks.resolve(networks[name].get("NetworkID") or name)["Internal"])
            except NotFound:
                internal = True
            return -int(networks[name].get("GwPriority") or 0), internal, name
        return min((n for n in networks if n != "none"), key=key, default=None)

    def _attach(self, record: Record, name: str, ifname: str, default_route: bool) -> None:
        """One endpoint: an address, a veth into the sandbox (with the default route if asked and
        the network is not internal), the DNS names."""
        cid, settings = record["ID"], record["NetworkSettings"]
        ep_settings = settings["Networks"][name]
        network = self.networks.resolve(ep_settings.get("NetworkID") or name)
        config = ipv4_config(network)
        subnet = ipaddress.IPv4Network(config["Subnet"])
        gateway = ipaddress.IPv4Address(config["Gateway"])
        user_defined = network["Name"] not in views.PREDEFINED
        # Docker's DNSNames: name, aliases, short ID, hostname (first occurrences)
        names = list(dict.fromkeys([record["Name"].lstrip("/"), *(ep_settings.get("Aliases") or []), cid[:12],
                                    *([record["Config"]["Hostname"]] if record["Config"].get("Hostname") else [])]))
        names = names if user_defined else []
        requested = (ep_settings.get("IPAMConfig") or {}).get("IPv4Address")
        ip_range = ipaddress.IPv4Network(config["IPRange"]) if config.get("IPRange") else None
        try:
            with self.networks.store.tx() as db:
                used = {ipaddress.IPv4Address(ip) for ip in self.networks.store.used_ips(db, network["Id"])}
                used |= {gateway, *map(ipaddress.IPv4Address, (config.get("AuxiliaryAddresses") or {}).values())}
                ip = ipam.check_static(requested, subnet, used) if requested else ipam.first_free(subnet, used, ip_range)
                ep = {"EndpointID": secrets.token_hex(32), "Name": record["Name"].lstrip("/"), "IPAddress": str(ip),
                      "IPPrefixLen": subnet.prefixlen, "MacAddress": ep_settings.get("_Mac") or ipam.mac_for(ip),
                      "HostIfname": "veth" + secrets.token_hex(4)[:7], "IfName": ifname, "DNSNames": names}
                self.networks.store.add_endpoint(db, network["Id"], cid, ep)
        except ipam.IPAMError as e:
            raise Forbidden(str(e)) from None
        except sqlite3.IntegrityError:
            raise Forbidden(f"endpoint with name {ep['Name']} already exists in network {network['Name']}") from None
        routed = default_route and not network["Internal"]
        try:
            bridge.attach(self.networks.nl, settings["SandboxKey"], bridge.Endpoint(
                network["_Bridge"], ep["HostIfname"], ifname, ipaddress.IPv4Interface(f"{ip}/{subnet.prefixlen}"),
                ep["MacAddress"], gateway if routed else None, int(network["Options"].get(OPT_MTU) or 0)))
        except BaseException:
            self.networks.store.delete_endpoint(network["Id"], cid)
            raise
        if user_defined:
            with self._lock:
                self._names.setdefault(network["Id"], {})[cid] = ([n.lower() for n in names], str(ip), ep["Name"])
                # a --link given at create (HostConfig.Links) acts on the container's own network
                primary = record["HostConfig"]["NetworkMode"] in (network["Name"], network["Id"])
                links = [*(ep_settings.get("Links") or []), *((record["HostConfig"].get("Links") or []) if primary else [])]
                self._links[(cid, network["Id"])] = links_of({"Links": links})
        ep_settings.update(NetworkID=network["Id"], EndpointID=ep["EndpointID"], Gateway=str(gateway),
                           IPAddress=str(ip), IPPrefixLen=subnet.prefixlen, MacAddress=ep["MacAddress"],
                           DNSNames=names or None)
        self.networks.notify("connect", network, container=cid)

    def _detach(self, ep: Record) -> None:
        """Remove one endpoint (its veth, its row, its names)."""
        self.networks.nl.delete(ep["HostIfname"])
        self.networks.store.delete_endpoint(ep["NetworkID"], ep["ContainerID"])
        network = self.networks.store.get(ep["NetworkID"])
        if network is not None:
            self.networks.notify("disconnect", network, container=ep["ContainerID"])
        with self._lock:
            self._names.get(ep["NetworkID"], {}).pop(ep["ContainerID"], None)
            self._links.pop((ep["ContainerID"], ep["NetworkID"]), None)

    def _upstreams(self, record: Record) -> list[str] | None:
        """Where the embedded DNS forwards this container's other names: its --dns servers, the
        host's (None), or nowhere when it is on internal networks only (as Docker)."""
        internal = []
        for ep_settings in record["NetworkSettings"]["Networks"].values():
            with contextlib.suppress(NotFound):
                internal.append(bool(self.networks.resolve(ep_settings["NetworkID"])["Internal"]))
        if internal and all(internal):
            return []
        return record["HostConfig"].get("Dns") or None

    def _user_networks(self, record: Record) -> bool:
        return any(name not in views.PREDEFINED for name in record["NetworkSettings"]["Networks"])

    # -- published ports ------------------------------------------------------------------------------

    def _publish(self, record: Record) -> None:
        """Reserve the host ports of the gateway endpoint, program NAT (or start proxies);
        NetworkSettings.Ports. An
        unspecified host IP binds 0.0.0.0 and, on an IPv6 host, [::] too (through the proxy, to the
        container's IPv4 address), as Docker does."""
        settings = record["NetworkSettings"]
        ports = wanted(record["Config"], record["HostConfig"])
        gateway = self._gateway_network(settings["Networks"])
        primary = settings["Networks"][gateway] if gateway else None
        if not ports or primary is None or not primary.get("IPAddress"):
            return
        network = self.networks.resolve(primary["NetworkID"])
        if network["Internal"]:
            return  # as Docker: ports are published through the gateway endpoint, none on internal networks
        default_ip = network["Options"].get(OPT_HOST_IP) or "0.0.0.0"
        result: dict[str, list[dict[str, str]] | None] = {}
        rules: list[PortRule] = []
        try:
            for key, bindings in ports.items():
                result[key] = None if bindings is None else []
                port, proto = split_key(key)
                for b in bindings or []:
                    target = (primary["IPAddress"], port, network["_Bridge"])
                    rules.append(self._hold(proto, b.get("HostIp") or default_ip, b.get("HostPort") or "", *target))
                    if not b.get("HostIp") and default_ip == "0.0.0.0" and ipv6_available():
                        with contextlib.suppress(PortError):
                            rules.append(self._hold(proto, "::", str(rules[-1].host_port), *target))
                    result[key] = [{"HostIp": r.host_ip, "HostPort": str(r.host_port)} for r in rules
                                   if (r.container_port, r.proto) == (port, proto)]
        except PortError as e:
            self._release(rules)
            raise ContainerError(f"driver failed programming external connectivity on endpoint "
                                 f"{record['Name'].lstrip('/')} ({primary['EndpointID']}): {e}") from None
        settings["Ports"] = result
        self.networks.set_ports(record["ID"], rules)

    def _hold(self, proto: str, host_ip: str, host_port: str, ip: str, port: int, bridge_name: str) -> PortRule:
        """Reserve one host port for ip:port; a proxy serves it where NAT does not (IPv6, no iptables)."""
        host_ip, number, sock = self.networks.ports.reserve(proto, host_ip, host_port)
        if self.networks.firewall is None or ":" in host_ip:
            self._proxies[(proto, host_ip, number)] = Proxy(sock, proto, (ip, port))
        return PortRule(proto, host_ip, number, ip, port, bridge_name)

    def _unpublish(self, cid: str) -> None:
        """Give back the container's host ports and drop its rules."""
        self._release(self.networks.port_rules(cid))
        self.networks.set_ports(cid, [])

    def _release(self, rules: list[PortRule]) -> None:
        for rule in rules:
            where = (rule.proto, rule.host_ip, rule.host_port)
            proxy = self._proxies.pop(where, None)
            if proxy is not None:
                proxy.close()
            self.networks.ports.release(*where)

    # -- /etc/hosts and /etc/resolv.conf --------------------------------------------------------------

    def _write_files(self, record: Record) -> None:
        config, hc = record["Config"], record["HostConfig"]
        primary = next((ep["IPAddress"] for ep in record["NetworkSettings"]["Networks"].values()
                        if ep.get("IPAddress")), None)
        gateway = ipv4_config(self.networks.resolve("bridge"))["Gateway"]
        extra = [*(hc.get("ExtraHosts") or []), *self._legacy_links(record)]
        etcfiles.write_atomic(record["HostsPath"], etcfiles.hosts_file(
            config.get("Hostname") or record["ID"][:12], config.get("Domainname") or "", extra,
            primary or "127.0.0.1", host_gateway=gateway))
        if self._user_networks(record):
            etcfiles.write_atomic(record["ResolvConfPath"], internal_resolv_conf(hc))

    def _legacy_links(self, record: Record) -> list[str]:
        """--link name:alias on the default bridge: "alias id12 name:ip" entries for /etc/hosts (the
        linked container must run there)."""
        if "bridge" not in record["NetworkSettings"]["Networks"]:
            return []
        entries = []
        for link in record["HostConfig"].get("Links") or []:
            name, _, alias = link.lstrip("/").partition(":")
            try:
                target = self.containers.get(self.containers.resolve(name))
            except NotFound:
                raise InvalidParameter(f"could not get container for {name}") from None
            address = ((target.get("NetworkSettings") or {}).get("Networks", {}).get("bridge") or {}).get("IPAddress")
            if not target["State"]["Running"] or not address:
                raise ContainerError(f"Cannot link to a non running container: {target['Name']} AS "
                                     f"{record['Name']}/{alias.rpartition('/')[2] or name}")
            names = dict.fromkeys([alias.rpartition("/")[2] or name, target["ID"][:12], target["Name"].lstrip("/")])
            entries.append(f"{' '.join(names)}:{address}")
        return entries

    def _use_internal_resolver(self, record: Record) -> None:
        """A running container's resolv.conf pointed at the embedded DNS (rewritten in place: the
        file is bind-mounted, a rename would not reach the container)."""
        text = internal_resolv_conf(record["HostConfig"])
        with open(record["ResolvConfPath"], "r+") as f:
            if f.read() != text:
                f.seek(0)
                f.write(text)
                f.truncate()

    def _write_host_files(self, record: Record) -> None:
        """On the host's network: the host's /etc/hosts (plus --add-host) and resolv.conf (its
        loopback resolvers work here), unless --dns* override it."""
        hc = record["HostConfig"]
        gateway = ipv4_config(self.networks.resolve("bridge"))["Gateway"]
        extra = "".join(line + "\n" for line in etcfiles.extra_host_lines(hc.get("ExtraHosts"), gateway))
        etcfiles.write_atomic(record["HostsPath"], _read("/etc/hosts") + extra)
        if not (hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions")):
            etcfiles.write_atomic(record["ResolvConfPath"], _read(etcfiles.HOST_RESOLV_CONF))

    # -- running containers ---------------------------------------------------------------------------

    def connect(self, net_ref: str, container_ref: str, cfg: dict[str, Any] | None) -> None:
        """POST /networks/{id}/connect: a stopped container gets it at its next start."""
        network = self.networks.resolve(net_ref)
        record = self.containers.get(self.containers.resolve(container_ref))
        mode, settings = record["HostConfig"]["NetworkMode"], self._settings(record)
        if mode == "host" or network["Name"] == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if mode.startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network")
        if mode == "none" or network["Name"] == "none":
            raise Forbidden(NONE_ALONE)
        if network["Name"] in settings["Networks"]:
            raise Forbidden(f"endpoint with name {record['Name'].lstrip('/')} already exists in network "
                            f"{network['Name']}")
        self._check_endpoint(network, cfg)
        settings["Networks"][network["Name"]] = views.endpoint_settings(network["Id"], cfg)
        state = record["State"]
        if state["Running"] and settings.get("SandboxKey"):
            try:
                taken = bridge.interface_names(settings["SandboxKey"])
                ifname = next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)
                self._attach(record, network["Name"], ifname, default_route=False)
            except BaseException:
                del settings["Networks"][network["Name"]]
                raise
            if self._user_networks(record):
                self.dns.attach(record["ID"], settings["SandboxKey"], upstreams=self._upstreams(record))
                self._use_internal_resolver(record)
        self.containers.save(record)

    def disconnect(self, net_ref: str, container_ref: str, force: bool = False) -> None:
        """POST /networks/{id}/disconnect (with force, also the stale endpoint of a container gone)."""
        network = self.networks.resolve(net_ref)
        try:
            record = self.containers.get(self.containers.resolve(container_ref))
        except NotFound:
            stale = [ep for ep in self.networks.store.endpoints(network_id=network["Id"])
                     if container_ref in (ep["ContainerID"], ep["Name"])]
            if not force or not stale:
                raise
            for ep in stale:
                self._detach(ep)
            return
        settings = self._settings(record)
        if network["Name"] not in settings["Networks"]:
            raise Forbidden(f"container {record['ID']} is not connected to network {network['Name']}")
        if network["Name"] == "host" or record["HostConfig"]["NetworkMode"] == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        for ep in self.networks.store.endpoints(network_id=network["Id"], container_id=record["ID"]):
            if any(p.bridge == network["_Bridge"] for p in self.networks.port_rules(record["ID"])):
                self._unpublish(record["ID"])
                settings["Ports"] = {}
            self._detach(ep)
        del settings["Networks"][network["Name"]]
        if not self._user_networks(record):
            self.dns.detach(record["ID"])
        views.refresh_top_level(settings)
        self.containers.save(record)

    # -- daemon start ---------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """After the container service reconciled: endpoints, sandboxes and names of containers
        that no longer run go; running ones get their ports, rules and resolver back."""
        running = {r["ID"]: r for r in self.containers.all() if r["State"]["Running"] and r.get("NetworkSettings")}
        for ep in self.networks.store.endpoints():
            if ep["ContainerID"] not in running:
                self._detach(ep)
            elif ep["DNSNames"]:
                self._names.setdefault(ep["NetworkID"], {})[ep["ContainerID"]] = (
                    [n.lower() for n in ep["DNSNames"]], ep["IPAddress"], ep["Name"])
                settings = running[ep["ContainerID"]]["NetworkSettings"]["Networks"]
                for ep_settings in settings.values():
                    if ep_settings.get("NetworkID") == ep["NetworkID"]:
                        self._links[(ep["ContainerID"], ep["NetworkID"])] = links_of(ep_settings)
        if os.path.isdir(self.sandbox_dir):
            keep = {cid[:12] for cid in running}
            for entry in os.listdir(self.sandbox_dir):
                if entry not in keep:
                    netns.remove(os.path.join(self.sandbox_dir, entry))
        for record in running.values():
            settings = record["NetworkSettings"]
            try:
                self._restore_ports(record)
                if self._user_networks(record) and settings.get("SandboxKey"):
                    self.dns.attach(record["ID"], settings["SandboxKey"], upstreams=self._upstreams(record))
            except (ContainerError, OSError):
                continue  # its exit will be noticed and clean up
        self.networks.apply_firewall()

    def _restore_ports(self, record: Record) -> None:
        ports, settings = record["NetworkSettings"].get("Ports") or {}, record["NetworkSettings"]
        gateway = self._gateway_network(settings["Networks"])
        primary = settings["Networks"][gateway] if gateway else None
        if primary is None or not primary.get("IPAddress"):
            return
        bridge_name = self.networks.resolve(primary["NetworkID"])["_Bridge"]
        rules = []
        for key, bindings in ports.items():
            port, proto = split_key(key)
            rules += [self._hold(proto, b["HostIp"], b["HostPort"], primary["IPAddress"], port, bridge_name)
                      for b in bindings or []]
        self.networks.set_ports(record["ID"], rules)

    # -- the embedded DNS's callbacks (its thread; no blocking) ---------------------------------------

    def _peers(self, key: str) -> list[tuple[str, dict[str, tuple[list[str], str, str]], dict[str, str]]]:
        """(network name, names on it, key's links there) for each user-defined network of key."""
        with self._lock:
            out = []
            for network_id, members in self._names.items():
                if key in members:
                    with contextlib.suppress(NotFound):
                        out.append((self.networks.resolve(network_id)["Name"], dict(members),
                                    self._links.get((key, network_id), {})))
            return out

    def _resolve(self, key: str, name: str) -> list[str] | None:
        name = name.rstrip(".").lower()
        found: list[str] = []
        for network_name, members, links in self._peers(key):
            suffix = "." + network_name.lower()
            target = name[:-len(suffix)] if name.endswith(suffix) else name
            target = links.get(target, target)
            found += [ip for names, ip, _ in members.values() if target in names and ip not in found]
        return found or None

    def _reverse(self, key: str, ip: str) -> str | None:
        for network_name, members, _ in self._peers(key):
            for _, address, container in members.values():
                if address == ip:
                    return f"{container}.{network_name}"
        return None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def links_of(ep_settings: dict[str, Any]) -> dict[str, str]:
    """An endpoint's --link entries ("name:alias", or "name") as {alias: container name}, lower-cased."""
    out = {}
    for link in ep_settings.get("Links") or []:
        name, _, alias = link.partition(":")
        out[(alias or name).lower()] = name.lstrip("/").lower()
    return out


def internal_resolv_conf(hc: dict[str, Any]) -> str:
    """resolv.conf for a user-defined network: the embedded resolver, the host's (or the
    container's) search domains and options, ndots:0 unless an ndots is given (as Docker)."""
    text = etcfiles.resolv_conf(_read(etcfiles.HOST_RESOLV_CONF), [INTERNAL_RESOLVER], hc.get("DnsSearch"), hc.get("DnsOptions"))
    if "ndots:" in text:
        return text
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("options "):
            lines[i] = line + " ndots:0"
            return "\n".join(lines) + "\n"
    return text + "options ndots:0\n"
