"""Kernel NAT and filtering with iptables, in chains of our own (named after a daemon tag so that
several daemons share a host). The chains are rebuilt whole and atomically by one
`iptables-restore --noflush` from the current bridges and published ports; the built-in chains
only get one jump each. A change of published ports alone (a container's start or exit) only
deletes and appends its DNAT rules, in one batch that flushes nothing: removing rules makes the
kernel wait (measured 10-30 ms for a flush, ~12 ms for one delete, spent in the close of
iptables' netlink socket, with no CPU used), an append costs ~2 ms.

filter FORWARD → DYF-<tag>: per bridge, what was DNATed into it (published ports, whichever host
port), icc, isolation (nothing else enters a bridge from elsewhere but replies), --internal
drops, the rest outbound accepted.
nat PREROUTING/OUTPUT (destination local) → DYN-<tag>: DNAT of published ports; from the host
itself, 127.0.0.0/8 excluded while the userland proxy serves loopback (Docker's default), else
included (bridges then get route_localnet). nat POSTROUTING → DYS-<tag>: masquerade of outbound
traffic, of host-local sources when loopback is DNATed (127.0.0.1 reaching a container), and of
hairpin traffic (a container reaching a published port of its own bridge).

The same model runs once per IP family: iptables for IPv4, ip6tables for the IPv6 subnets of
dual-stack networks (IPv6 has no route_localnet: [::1] is never DNATed, the userland proxy
listening on [::] answers it)."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass


class FirewallError(Exception):
    """iptables refused our rules."""


@dataclass(frozen=True)
class BridgeRules:
    """What the firewall needs to know of one network's bridge."""

    bridge: str
    subnet: str
    internal: bool = False
    icc: bool = True
    masquerade: bool = True


@dataclass(frozen=True)
class PortRule:
    """One published port: host (ip, port) → container (ip, port) on bridge."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


BRIDGE_NF_CALL_IPTABLES = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def filter_bridged_traffic(version: int = 4) -> bool:
    """Have iptables (ip6tables for version 6) see traffic between ports of one bridge (what
    enable_icc=false needs); False when the br_netfilter module is not loaded."""
    path = BRIDGE_NF_CALL_IPTABLES.replace("iptables", "ip6tables") if version == 6 else BRIDGE_NF_CALL_IPTABLES
    try:
        with open(path, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
        return True
    except FileNotFoundError:
        return False


def _command(version: int) -> str:
    return "iptables" if version == 4 else "ip6tables"


def available(version: int = 4) -> bool:
    """Whether iptables (ip6tables for version 6) can be used here."""
    command = _command(version)
    return shutil.which(f"{command}-restore") is not None and shutil.which(command) is not None


class Firewall:
    """The chains of one daemon for one IP family."""

    def __init__(self, tag: str, version: int = 4, proxied_loopback: bool = True) -> None:
        """proxied_loopback: the host's own connections to 127.0.0.0/8 are left to the userland
        proxy (IPv6's [::1] always is); otherwise they are DNATed, and masqueraded on their way
        into a bridge (a container cannot answer 127.0.0.1). Other host-local sources need no
        masquerade: the container answers them through its gateway."""
        self.forward, self.dnat, self.snat = f"DYF-{tag}", f"DYN-{tag}", f"DYS-{tag}"
        self.command, self._host_bits = _command(version), 32 if version == 4 else 128
        loopback = ["!", "-d", "127.0.0.0/8"] if version == 4 else ["!", "-d", "::1/128"]
        local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat]
        output = [*loopback, *local] if proxied_loopback or version == 6 else local
        self._jumps = (("filter", "FORWARD", ["-j", self.forward]), ("nat", "PREROUTING", local),
                       ("nat", "OUTPUT", output), ("nat", "POSTROUTING", ["-j", self.snat]))
        # the OUTPUT jump of the other --userland-proxy setting, left by an earlier run
        self._stale = [] if version == 6 else [("nat", "OUTPUT", local if output != local else [*loopback, *local])]
        self._masquerade_local = version == 4 and not proxied_loopback
        self._bridges: list[BridgeRules] | None = None  # those loaded last (None: the jumps are unchecked)
        self._dnat: list[str] = []  # the DNAT rules loaded

    def apply(self, bridges: Iterable[BridgeRules], ports: Iterable[PortRule]) -> None:
        """Bring our chains to bridges and ports, adding the jumps if missing on the first call:
        when only the ports changed, their DNAT rules are deleted and appended; otherwise the
        chains are rebuilt in one atomic batch. Each iptables process costs a few ms, so a change
        of one family leaves the other's tables alone."""
        bridges, dnat = list(bridges), sorted(map(self._dnat_rule, ports))
        if bridges == self._bridges:
            gone, new = [r for r in self._dnat if r not in dnat], [r for r in dnat if r not in self._dnat]
            if not gone and not new:
                return
            try:
                _run([f"{self.command}-restore", "-w", "--noflush"], "\n".join(
                    ["*nat", *(f"-D {self.dnat} {r}" for r in gone), *(f"-A {self.dnat} {r}" for r in new),
                     "COMMIT", ""]))
                self._dnat = dnat
                return
            except FirewallError:  # our chain was changed behind our back: rebuilt below
                pass
        _run([f"{self.command}-restore", "-w", "--noflush"], self._batch(bridges, dnat))
        if self._bridges is None:
            self._delete_jumps(self._stale)
            for table, chain, rule in self._jumps:
                if self._iptables(table, "-C", chain, *rule, check=False).returncode != 0:
                    self._iptables(table, "-I", chain, "1", *rule)
        self._bridges, self._dnat = bridges, dnat

    def _dnat_rule(self, p: PortRule) -> str:
        """The DNAT rule (in our nat chain) of one published port."""
        bits = self._host_bits
        match_ip = "" if ipaddress.ip_address(p.host_ip).is_unspecified else f"-d {p.host_ip}/{bits} "
        target = p.container_ip if bits == 32 else f"[{p.container_ip}]"
        return (f"{match_ip}-p {p.proto} -m {p.proto} --dport {p.host_port} "
                f"-j DNAT --to-destination {target}:{p.container_port}")

    def _batch(self, bridges: list[BridgeRules], dnat: list[str]) -> str:
        """The batch that rebuilds our chains."""
        forward, snat = [], []
        # every bridge's drops come before any bridge's outbound accept, or a network listed
        # early would reach the bridges of those listed after it
        outbound = []
        for b in bridges:
            forward += [f"-o {b.bridge} -m conntrack --ctstate DNAT -j ACCEPT",
                        f"-i {b.bridge} -o {b.bridge} -j {'ACCEPT' if b.icc else 'DROP'}"]
            if b.internal:
                forward += [f"-i {b.bridge} -j DROP", f"-o {b.bridge} -j DROP"]
            else:
                forward += [f"-o {b.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                            f"-o {b.bridge} -j DROP"]
                outbound.append(f"-i {b.bridge} -j ACCEPT")
                if b.masquerade:
                    snat.append(f"-s {b.subnet} ! -o {b.bridge} -j MASQUERADE")
            if self._masquerade_local:
                snat.append(f"-o {b.bridge} -m addrtype --src-type LOCAL -j MASQUERADE")
            snat.append(f"-o {b.bridge} -s {b.subnet} -m conntrack --ctstate DNAT -j MASQUERADE")
        forward += outbound
        script = ["*filter", f":{self.forward} - [0:0]", *(f"-A {self.forward} {r}" for r in forward), "COMMIT",
                  "*nat", f":{self.dnat} - [0:0]", f":{self.snat} - [0:0]",
                  *(f"-A {self.dnat} {r}" for r in dnat), *(f"-A {self.snat} {r}" for r in snat), "COMMIT", ""]
        return "\n".join(script)

    def remove(self) -> None:
        """Delete the jumps and our chains (nothing if absent)."""
        self._bridges, self._dnat = None, []
        self._delete_jumps([*self._jumps, *self._stale])
        for table, chain in (("filter", self.forward), ("nat", self.dnat), ("nat", self.snat)):
            if self._iptables(table, "-F", chain, check=False).returncode == 0:
                self._iptables(table, "-X", chain, check=False)

    def _delete_jumps(self, jumps: Iterable[tuple[str, str, list[str]]]) -> None:
        for table, chain, rule in jumps:
            while self._iptables(table, "-D", chain, *rule, check=False).returncode == 0:
                pass

    def _iptables(self, table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([self.command, "-w", "-t", table, *args], None, check)


def _run(argv: list[str], stdin: str | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    if check and proc.returncode:
        raise FirewallError(f"{' '.join(argv[:3])}: {proc.stderr.strip()}")
    return proc
