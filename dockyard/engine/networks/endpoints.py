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
import time
from typing import Any

from dockyard.engine.containers.store import ContainerStore
from dockyard.engine.networks import links, resolvfiles, views
from dockyard.engine.networks.errors import ContainerError, Forbidden, InvalidParameter, NotFound
from dockyard.engine.networks.links import LegacyLinks
from dockyard.engine.networks.names import Member, NameTable
from dockyard.engine.networks.publish import Publisher, publish_error
from dockyard.engine.networks.service import (
    OPT_MTU,
    NetworkService,
    default_bridge_v4,
    ipv4_config,
    ipv6_config,
)
from dockyard.network import bridge, ipam, netns
from dockyard.network.dns import EmbeddedDNS
from dockyard.network.ports import PortError, check_bindings, wanted

log = logging.getLogger("dockyardd.networks")
Record = dict[str, Any]
NONE_ALONE = "container cannot be connected to multiple networks with one of the networks in private (none) mode"


class ContainerNetworking:
    """The network side of the container lifecycle."""

    def __init__(self, networks: NetworkService, containers: ContainerStore, exec_root: str) -> None:
        self.networks = networks
        self.containers = containers
        self.sandbox_dir = os.path.join(exec_root, "netns")
        self.names = NameTable()
        self.dns = EmbeddedDNS(self.names.resolve, self.names.reverse)
        self.ports = Publisher(networks)
        self.links = LegacyLinks(containers)

    def close(self) -> None:
        """Stop the DNS server and the proxies (the daemon is going away)."""
        self.dns.close()
        self.ports.close()

    # -- create ---------------------------------------------------------------------------------------

    def prepare(self, config: dict[str, Any], hc: dict[str, Any], networking: dict[str, Any] | None) -> Record:
        """Check the container's network mode and endpoint configs; its initial NetworkSettings."""
        try:
            check_bindings(hc.get("PortBindings"))
        except PortError as e:
            raise InvalidParameter(str(e)) from None
        mode = hc.get("NetworkMode") or "default"
        hc["NetworkMode"] = mode = "bridge" if mode == "default" else mode
        configs = dict((networking or {}).get("EndpointsConfig") or {})
        links.check_mode(hc)
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
            if ref == mode and config.get("MacAddress"):
                cfg = _main_mac(cfg, config["MacAddress"])
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
        ip6 = (cfg.get("IPAMConfig") or {}).get("IPv6Address")
        if network["Name"] in views.PREDEFINED:
            if ip or ip6:
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            if cfg.get("Aliases"):
                raise InvalidParameter("network-scoped alias is supported only for containers in user defined "
                                       "networks")
        elif ip and not network.get("_UserSubnet"):
            raise InvalidParameter("user specified IP address is supported only when connecting to networks with "
                                   "user configured subnets")
        elif ip6:
            _check_ipv6(ip6, network)

    # -- start and exit -------------------------------------------------------------------------------

    def setup(self, record: Record) -> str | None:
        """Before the runtime creates the container: its sandbox with every endpoint, its ports,
        /etc/hosts and /etc/resolv.conf; the network namespace path to join (None: the host's)."""
        hc, settings = record["HostConfig"], self._settings(record)
        mode = hc["NetworkMode"]
        if mode == "host":
            resolvfiles.write_host_mode(record, self._host_gateway())
            return None
        if mode.startswith("container:"):
            return self._join(record, mode.partition(":")[2])
        children = self.links.check_start(record)
        started = time.perf_counter()
        path = os.path.join(self.sandbox_dir, record["ID"][:12])
        netns.remove(path)
        bridge.create_sandbox(path)
        settings.update(SandboxID=secrets.token_hex(32), SandboxKey=path)
        try:
            names = [n for n in settings["Networks"] if n != "none"]
            route4, route6 = self._route_networks(settings["Networks"])
            for index, name in enumerate(names):
                self._attach(record, name, f"eth{index}", routes=(name == route4, name == route6))
            self._publish(record)
            self._write_files(record, self.links.hosts_entries(children))
            self._readdress_parents(record)
            if self._user_networks(record):
                self.dns.attach(record["ID"], path, upstreams=self._upstreams(record))
        except BaseException:
            self.teardown(record)
            raise
        views.refresh_top_level(settings)
        log.debug("network setup of %s: %.1f ms", record["ID"][:12], (time.perf_counter() - started) * 1000)
        return path

    def step_record(self, network: str, step_id: str, hostname: str, files_dir: str,
                    extra_hosts: list[str]) -> Record:
        """What setup needs to give a build step (a process, not a container) its sandbox on a
        user-defined network, as dockerd's classic builder runs each step in a container there:
        an address, its names on the network's DNS, /etc/hosts and resolv.conf in files_dir."""
        record: Record = {"ID": step_id, "Name": "/" + step_id, "Config": {"Hostname": hostname},
                          "HostConfig": {"NetworkMode": network, "ExtraHosts": extra_hosts},
                          "HostsPath": os.path.join(files_dir, "hosts"),
                          "ResolvConfPath": os.path.join(files_dir, "resolv.conf")}
        record["NetworkSettings"] = self.prepare(record["Config"], record["HostConfig"], None)
        return record

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
        resolvfiles.copy_from(record, target)
        return target["NetworkSettings"].get("SandboxKey") or f"/proc/{target['State']['Pid']}/ns/net"

    def teardown(self, record: Record) -> None:
        """After the container stopped (or failed to start): everything setup made, undone."""
        cid, settings = record["ID"], record.get("NetworkSettings")
        if not settings:
            return
        self.dns.detach(cid)
        self.ports.unpublish(cid)
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
        self.ports.unpublish(cid)
        for ep in self.networks.store.endpoints(container_id=cid):
            self._detach(ep)
        netns.remove(os.path.join(self.sandbox_dir, cid[:12]))

    # -- endpoints ------------------------------------------------------------------------------------

    def _endpoint_order(self, networks: dict[str, Record]) -> list[tuple[str, Record | None]]:
        """A container's networks (with their records; None: gone) in Docker's endpoint order:
        highest GwPriority, then not internal, then dual stack, then by name."""
        def record(name: str) -> Record | None:
            try:
                return self.networks.resolve(networks[name].get("NetworkID") or name)
            except NotFound:
                return None

        def key(item: tuple[str, Record | None]) -> tuple[int, bool, bool, str]:
            name, network = item
            internal = network is None or bool(network["Internal"])
            dual = network is not None and ipv4_config(network) is not None and ipv6_config(network) is not None
            return -int(networks[name].get("GwPriority") or 0), internal, not dual, name
        return sorted(((n, record(n)) for n in networks if n != "none"), key=key)

    def _gateway_network(self, networks: dict[str, Record]) -> str | None:
        """The first network in Docker's endpoint order (where ports are published)."""
        order = self._endpoint_order(networks)
        return order[0][0] if order else None

    def _route_networks(self, networks: dict[str, Record]) -> tuple[str | None, str | None]:
        """The networks whose gateways are the IPv4 and the IPv6 default routes: in endpoint order,
        the first not internal one of each family (as Docker 28: they may differ)."""
        usable = [(n, net) for n, net in self._endpoint_order(networks) if net is not None and not net["Internal"]]
        return (next((n for n, net in usable if ipv4_config(net) is not None), None),
                next((n for n, net in usable if ipv6_config(net) is not None), None))

    def _attach(self, record: Record, name: str, ifname: str, routes: tuple[bool, bool] = (False, False)) -> None:
        """One endpoint: its addresses, a veth into the sandbox (with the IPv4 / IPv6 default
        routes asked for), the DNS names."""
        cid, settings = record["ID"], record["NetworkSettings"]
        ep_settings = settings["Networks"][name]
        network = self.networks.resolve(ep_settings.get("NetworkID") or name)
        config, config6 = ipv4_config(network), ipv6_config(network)
        user_defined = network["Name"] not in views.PREDEFINED
        # Docker's DNSNames: name, aliases, short ID, hostname (first occurrences)
        names = list(dict.fromkeys([record["Name"].lstrip("/"), *(ep_settings.get("Aliases") or []), cid[:12],
                                    *([record["Config"]["Hostname"]] if record["Config"].get("Hostname") else [])]))
        names = names if user_defined else []
        requested = ep_settings.get("IPAMConfig") or {}
        try:
            with self.networks.store.tx() as db:
                used = set(map(ipaddress.ip_address, self.networks.store.used_ips(db, network["Id"])))
                ip = _allocate(config, requested.get("IPv4Address"), used) if config else None
                ip6 = _allocate(config6, requested.get("IPv6Address"), used) if config6 else None
                mac = ep_settings.get("_Mac") or (ipam.mac_for(ip) if ip else "02:42:" + ":".join(
                    f"{b:02x}" for b in secrets.token_bytes(4)))  # IPv6 only: random, locally administered
                ep = {"EndpointID": secrets.token_hex(32), "Name": record["Name"].lstrip("/"), "IPAddress": str(ip or ""),
                      "IPPrefixLen": _prefixlen(config), "MacAddress": mac,
                      "HostIfname": "veth" + secrets.token_hex(4)[:7], "IfName": ifname, "DNSNames": names,
                      "GlobalIPv6Address": str(ip6 or ""), "GlobalIPv6PrefixLen": _prefixlen(config6)}
                self.networks.store.add_endpoint(db, network["Id"], cid, ep)
        except ipam.IPAMError as e:
            raise Forbidden(str(e)) from None
        except sqlite3.IntegrityError:
            raise Forbidden(f"endpoint with name {ep['Name']} already exists in network {network['Name']}") from None
        addresses: list[bridge.Interface] = []
        gateways: list[ipam.Address] = []
        for address, entry, route in ((ip, config, routes[0]), (ip6, config6, routes[1])):
            if address is not None and entry is not None:
                addresses.append(ipaddress.ip_interface(f"{address}/{_prefixlen(entry)}"))
                gateways += [ipaddress.ip_address(entry["Gateway"])] if route else []
        try:
            bridge.attach(self.networks.nl, settings["SandboxKey"], bridge.Endpoint(
                network["_Bridge"], ep["HostIfname"], ifname, tuple(addresses), ep["MacAddress"],
                tuple(gateways), int(network["Options"].get(OPT_MTU) or 0)))
        except BaseException:
            self.networks.store.delete_endpoint(network["Id"], cid)
            raise
        if user_defined:
            self.names.add(network["Id"], network["Name"], cid, _member(ep), _links(record, ep_settings, network))
        ep_settings.update(NetworkID=network["Id"], EndpointID=ep["EndpointID"], Gateway=config["Gateway"] if config else "",
                           IPAddress=ep["IPAddress"], IPPrefixLen=ep["IPPrefixLen"], MacAddress=ep["MacAddress"],
                           DNSNames=names or None, GlobalIPv6Address=ep["GlobalIPv6Address"],
                           GlobalIPv6PrefixLen=ep["GlobalIPv6PrefixLen"],
                           IPv6Gateway=config6["Gateway"] if config6 and ip6 else "")
        self.networks.notify("connect", network, container=cid)

    def _detach(self, ep: Record) -> None:
        """Remove one endpoint (its veth, its row, its names)."""
        self.networks.nl.delete(ep["HostIfname"])
        self.networks.store.delete_endpoint(ep["NetworkID"], ep["ContainerID"])
        network = self.networks.store.get(ep["NetworkID"])
        if network is not None:
            self.networks.notify("disconnect", network, container=ep["ContainerID"])
        self.names.remove(ep["NetworkID"], ep["ContainerID"])

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

    def _gateway_endpoint(self, record: Record) -> tuple[Record, Record] | None:
        """(endpoint settings, network) of the gateway endpoint when it has an address and its
        network is not internal: where ports are published (as Docker)."""
        networks = record["NetworkSettings"]["Networks"]
        gateway = self._gateway_network(networks)
        if gateway is None or not _addresses(networks[gateway]):
            return None
        network = self.networks.resolve(networks[gateway]["NetworkID"])
        return None if network["Internal"] else (networks[gateway], network)

    def _publish(self, record: Record) -> None:
        """NetworkSettings.Ports: the host ports held toward the gateway endpoint."""
        ports, gateway = wanted(record["Config"], record["HostConfig"]), self._gateway_endpoint(record)
        if not ports or gateway is None:
            return
        try:
            record["NetworkSettings"]["Ports"] = self.ports.publish(record["ID"], ports, *gateway)
        except PortError as e:
            raise publish_error(record["Name"].lstrip("/"), gateway[0]["EndpointID"], e) from None

    # -- /etc/hosts and /etc/resolv.conf --------------------------------------------------------------

    def _host_gateway(self) -> str:
        """What --add-host's "host-gateway" stands for: the default bridge's gateway address."""
        return default_bridge_v4(self.networks.resolve("bridge"))["Gateway"]

    def _write_files(self, record: Record, link_entries: list[str]) -> None:
        addresses = [a for ep in record["NetworkSettings"]["Networks"].values() for a in _addresses(ep)]
        resolvfiles.write(record, addresses, self._host_gateway(), link_entries, self._user_networks(record))

    # -- legacy links ---------------------------------------------------------------------------------

    def link_env(self, record: Record) -> list[str]:
        """After setup: the environment variables of the container's legacy links."""
        return self.links.env(record, self.links.check_start(record))

    def _readdress_parents(self, record: Record) -> None:
        """Running containers linked to this one see its new default-bridge addresses in /etc/hosts."""
        addresses = links.bridge_addresses(record)
        if not addresses:
            return
        for alias, parent in self.links.parents(record["ID"]):
            if parent["State"]["Running"] and os.path.exists(parent.get("HostsPath") or ""):
                resolvfiles.readdress(parent, alias, addresses)

    def unlink(self, name: str) -> None:
        """DELETE /containers/{parent/alias}?link=1 (a running parent's /etc/hosts loses the alias)."""
        alias = name.rpartition("/")[2]
        parent = self.links.unlink(name)
        if parent["State"]["Running"] and parent.get("HostsPath"):
            resolvfiles.drop_name(parent, alias)
        self.containers.save(parent)

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
                # the first dual-stack network of a container gives it its IPv6 default route
                dual = [n for n, net in self._endpoint_order(settings["Networks"])
                        if net is not None and not net["Internal"] and ipv6_config(net) is not None]
                self._attach(record, network["Name"], ifname, routes=(False, dual == [network["Name"]]))
            except BaseException:
                del settings["Networks"][network["Name"]]
                raise
            resolvfiles.update_address(record, added=_addresses(settings["Networks"][network["Name"]]))
            if self._user_networks(record):
                self.dns.attach(record["ID"], settings["SandboxKey"], upstreams=self._upstreams(record))
                resolvfiles.use_internal_resolver(record)
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
                self.ports.unpublish(record["ID"])
                settings["Ports"] = {}
            self._detach(ep)
            resolvfiles.update_address(record, removed=_addresses(ep))
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
            network = self.networks.store.get(ep["NetworkID"])
            if ep["ContainerID"] not in running or network is None:
                self._detach(ep)
            elif ep["DNSNames"]:
                record = running[ep["ContainerID"]]
                ep_settings = record["NetworkSettings"]["Networks"].get(network["Name"]) or {}
                self.names.add(network["Id"], network["Name"], ep["ContainerID"], _member(ep),
                               _links(record, ep_settings, network))
        if os.path.isdir(self.sandbox_dir):
            keep = {cid[:12] for cid in running}
            for entry in os.listdir(self.sandbox_dir):
                if entry not in keep:
                    netns.remove(os.path.join(self.sandbox_dir, entry))
        for record in running.values():
            settings = record["NetworkSettings"]
            try:
                gateway = self._gateway_endpoint(record)
                if gateway is not None:
                    self.ports.restore(record["ID"], settings.get("Ports") or {}, *gateway)
                if self._user_networks(record) and settings.get("SandboxKey"):
                    self.dns.attach(record["ID"], settings["SandboxKey"], upstreams=self._upstreams(record))
            except (ContainerError, OSError, PortError) as e:
                log.warning("restoring the network of %s: %s", record["ID"][:12], e)
        self.networks.apply_firewall()


def _allocate(config: Record, requested: str | None, used: set[ipam.Address]) -> ipam.Address:
    """An address of one IPAM config entry: the one requested, or the first free (gateway and
    auxiliary addresses are never given)."""
    subnet = ipaddress.ip_network(config["Subnet"])
    used = used | {ipaddress.ip_address(config["Gateway"]),
                   *map(ipaddress.ip_address, (config.get("AuxiliaryAddresses") or {}).values())}
    if requested:
        return ipam.check_static(requested, subnet, used)
    return ipam.first_free(subnet, used, ipaddress.ip_network(config["IPRange"]) if config.get("IPRange") else None)


def _check_ipv6(address: str, network: Record) -> None:
    """A requested --ip6: an IPv6 address inside the network's IPv6 subnet (Docker's texts)."""
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        raise InvalidParameter(f"invalid endpoint settings:\ninvalid IPv6 address: {address}") from None
    config = ipv6_config(network)
    if config is None or ip not in ipaddress.ip_network(config["Subnet"]):
        raise InvalidParameter(f"invalid endpoint settings:\nno configured subnet contains IP address {address}")


def _addresses(ep: Record) -> list[str]:
    """An endpoint's addresses (its settings or its row): IPv4, then IPv6 if it has one."""
    return [a for a in (ep.get("IPAddress"), ep.get("GlobalIPv6Address")) if a]


def _prefixlen(config: Record | None) -> int:
    return ipaddress.ip_network(config["Subnet"]).prefixlen if config else 0


def _member(ep: Record) -> Member:
    """The DNS's view of an endpoint row."""
    return Member(ep["DNSNames"], ep["IPAddress"], ep["Name"], ep.get("GlobalIPv6Address") or "")


def _main_mac(cfg: dict[str, Any] | None, mac: str) -> dict[str, Any]:
    """The main network's endpoint config with the deprecated container-wide Config.MacAddress
    (docker-py still sends it) moved into it, as dockerd does."""
    if (cfg or {}).get("MacAddress") not in (None, "", mac):
        raise InvalidParameter("the container-wide MAC address must match the endpoint-specific MAC address "
                               "for the main network, or be left empty")
    return {**(cfg or {}), "MacAddress": mac}


def _links(record: Record, ep_settings: Record, network: Record) -> list[str]:
    """The --link entries of an endpoint; those given at create (HostConfig.Links) act on the
    container's own network."""
    own = record["HostConfig"]["NetworkMode"] in (network["Name"], network["Id"])
    return [*(ep_settings.get("Links") or []), *((record["HostConfig"].get("Links") or []) if own else [])]
