"""dockyardd's configuration: dockerd's flags and daemon.json keys, merged as dockerd merges
them (a key set both ways is an error, unknown keys are an error, the file names the problem)."""

from __future__ import annotations

import argparse
import importlib.metadata
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any


def _engine_version() -> str:
    try:
        return importlib.metadata.version("dockyard")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0-dev"


ENGINE_VERSION = _engine_version()
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_CONFIG_FILE = "/etc/dockyard/daemon.json"
DEFAULT_RUNTIME = "dockyard-runtime"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
TCP_PORT, TLS_PORT = 2375, 2376

# daemon.json key → expected JSON type; the flag spelling is the key (hosts is -H/--host).
FILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "data-root": str, "exec-root": str, "hosts": list, "pidfile": str, "debug": bool, "log-level": str,
    "log-driver": str, "log-opts": dict, "default-runtime": str, "runtimes": dict, "live-restore": bool,
    "insecure-registries": list, "default-ulimits": dict,
    "bridge": str, "bip": str, "default-address-pools": list, "iptables": bool, "ip6tables": bool, "ipv6": bool,
    "fixed-cidr-v6": str, "userland-proxy": bool, "experimental": bool,
    "tlsverify": bool, "tlscacert": str, "tlscert": str, "tlskey": str,
}
FLAG_KEYS = ("hosts", "data-root", "exec-root", "pidfile", "debug", "log-level",
             "tlsverify", "tlscacert", "tlscert", "tlskey", "bridge", "bip", "default-address-pools", "iptables",
             "ip6tables", "ipv6", "fixed-cidr-v6", "userland-proxy", "experimental")


class ConfigError(Exception):
    """A configuration dockyardd refuses to start with; the message says why."""


@dataclass(frozen=True)
class Listener:
    """One -H address: unix (path) or tcp (host, port)."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.scheme == "unix" else f"tcp://{self.host}:{self.port}"


@dataclass
class DaemonConfig:
    """Everything dockyardd runs with."""

    hosts: list[Listener]
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    pidfile: str = ""
    config_file: str = ""
    debug: bool = False
    log_level: str = "info"
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    default_runtime: str = DEFAULT_RUNTIME
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    live_restore: bool = True
    insecure_registries: list[str] = field(default_factory=list)
    default_ulimits: dict[str, Any] = field(default_factory=dict)
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    bridge: str = ""  # "": dockyard0 for the default data root, dy<hash of the data root> for any other
    bip: str = ""
    default_address_pools: list[Any] = field(default_factory=list)
    iptables: bool = True
    ip6tables: bool = True  # the IPv6 half of the firewall (with iptables only)
    ipv6: bool = False  # the default bridge dual stack
    fixed_cidr_v6: str = ""  # its IPv6 subnet ("": a ULA /64 of the pools)
    userland_proxy: bool = True  # 127.0.0.1 reaches published ports through the proxy (else NAT)
    experimental: bool = False  # only reported (IPv6 daemon.json files from before Docker 27 set it)

    @property
    def image_root(self) -> str:
        """The ImageStore root inside the data root."""
        return os.path.join(self.data_root, "image-store")


def arg_parser() -> argparse.ArgumentParser:
    """dockerd's flags that dockyardd has."""
    p = argparse.ArgumentParser(prog="dockyardd", description="The dockyard engine daemon (Docker Engine API).")
    p.add_argument("-H", "--host", dest="hosts", action="append", metavar="ADDR",
                   help=f"address to listen on (repeatable; default {DEFAULT_HOST})")
    p.add_argument("--data-root", help=f"root of persisted state (default {DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", help=f"root of execution state (default {DEFAULT_EXEC_ROOT})")
    p.add_argument("-p", "--pidfile", help="path of the pid file (default <exec-root>/dockyardd.pid)")
    p.add_argument("--config-file", help=f"daemon configuration file (default {DEFAULT_CONFIG_FILE})")
    p.add_argument("-l", "--log-level", choices=LOG_LEVELS, help="logging level (default info)")
    p.add_argument("-D", "--debug", action="store_true", default=None, help="enable debug mode")
    p.add_argument("--tlsverify", action="store_true", default=None, help="use TLS and verify the remote")
    p.add_argument("--tlscacert", help="trust certs signed only by this CA")
    p.add_argument("--tlscert", help="path to TLS certificate file")
    p.add_argument("--tlskey", help="path to TLS key file")
    p.add_argument("-b", "--bridge", help="name of the default network's bridge (default dockyard0; "
                   "dy<hash of the data root> for another data root, so that daemons side by side differ)")
    p.add_argument("--bip", help="the default bridge's address and subnet (CIDR)")
    p.add_argument("--default-address-pool", dest="default_address_pools", action="append",
                   metavar="base=CIDR,size=N", help="default address pools for networks (repeatable)")
    p.add_argument("--iptables", nargs="?", const=True, type=_flag_bool, default=None,
                   help="program NAT and filtering with iptables (default true; false: userland proxy)")
    p.add_argument("--ip6tables", nargs="?", const=True, type=_flag_bool, default=None,
                   help="program IPv6 NAT and filtering with ip6tables (default true)")
    p.add_argument("--userland-proxy", nargs="?", const=True, type=_flag_bool, default=None,
                   help="serve published ports on 127.0.0.1 with the userland proxy (default true; "
                   "false: kernel NAT with route_localnet)")
    p.add_argument("--ipv6", nargs="?", const=True, type=_flag_bool, default=None,
                   help="enable IPv6 on the default bridge network (default false)")
    p.add_argument("--experimental", action="store_true", default=None, help="report experimental features as on")
    p.add_argument("--fixed-cidr-v6", help="the default bridge's IPv6 subnet (default: a ULA /64)")
    p.add_argument("-v", "--version", action="version", version=f"Dockyard version {ENGINE_VERSION}, build dockyardd")
    return p


def _flag_bool(text: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def load(argv: list[str] | None = None) -> DaemonConfig:
    """Parse flags and the config file; ConfigError for anything dockerd would refuse."""
    args = arg_parser().parse_args(argv)
    flags = {key: getattr(args, key.replace("-", "_")) for key in FLAG_KEYS}
    flags = {key: value for key, value in flags.items() if value is not None}
    path = args.config_file or DEFAULT_CONFIG_FILE
    from_file = read_file(path) if args.config_file or os.path.exists(path) else {}
    conflicts = [f"{key}: (from flag: {_show(flags[key])}, from file: {_show(from_file[key])})"
                 for key in FLAG_KEYS if key in flags and key in from_file]
    if conflicts:
        raise ConfigError(f"unable to configure the dockyard daemon with file {path}: the following directives "
                          f"are specified both as a flag and in the configuration file: {', '.join(conflicts)}")
    merged = {**from_file, **flags}
    config = DaemonConfig(hosts=[parse_host(h) for h in merged.pop("hosts", None) or [DEFAULT_HOST]],
                          config_file=path if from_file else "",
                          **{key.replace("-", "_"): value for key, value in merged.items()})
    return validate(config)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + " ".join(map(str, value)) + "]"
    return str(value)


def read_file(path: str) -> dict[str, Any]:
    """daemon.json as a dict, with every key known and of the right type."""
    prefix = f"unable to configure the dockyard daemon with file {path}"
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise ConfigError(f"{prefix}: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError(f"{prefix}: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{prefix}: the file must hold a JSON object")
    unknown = sorted(set(doc) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"{prefix}: the following directives don't match any configuration option: "
                          f"{', '.join(unknown)}")
    for key, value in doc.items():
        if not isinstance(value, FILE_KEYS[key]):
            raise ConfigError(f"{prefix}: invalid value for {key}: {json.dumps(value)}")
    return doc


def parse_host(addr: str) -> Listener:
    """A -H address: unix:///path, unix:// (the default socket) or tcp://host[:port]."""
    if addr.startswith("unix://"):
        return Listener("unix", path=addr[len("unix://"):] or DEFAULT_HOST[len("unix://"):])
    if addr.startswith("tcp://"):
        hostport = addr[len("tcp://"):].rstrip("/")
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            host, port = hostport, ""
        host = host.strip("[]") or "127.0.0.1"
        return Listener("tcp", host=host, port=int(port) if port else 0)
    if addr.startswith("/"):
        return Listener("unix", path=addr)
    raise ConfigError(f"invalid -H address {addr!r}: only unix:// and tcp:// are supported")


def is_loopback(host: str) -> bool:
    """Whether a tcp listener's host only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(config: DaemonConfig) -> DaemonConfig:
    """Check what the parser could not: log level, TLS files, non-loopback tcp without TLS."""
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(f"unable to parse logging level: {config.log_level}")
    if config.log_driver != "json-file":
        raise ConfigError(f"logging driver {config.log_driver!r} is not supported (json-file is)")
    if config.bridge and not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", config.bridge):
        raise ConfigError(f"invalid bridge name {config.bridge!r}: up to 15 letters, digits, '_', '.' or '-'")
    if config.bip:
        try:
            ipaddress.IPv4Interface(config.bip)
        except ValueError:
            raise ConfigError(f"invalid --bip {config.bip!r}: an IPv4 address with its prefix is expected") from None
    if config.fixed_cidr_v6:
        try:
            ipaddress.IPv6Network(config.fixed_cidr_v6)
        except ValueError:
            raise ConfigError(f"invalid fixed-cidr-v6 {config.fixed_cidr_v6!r}: an IPv6 subnet is expected") from None
    tls_files = {"--tlscacert": config.tlscacert, "--tlscert": config.tlscert, "--tlskey": config.tlskey}
    if config.tlsverify:
        missing = [flag for flag, value in tls_files.items() if not value]
        if missing:
            raise ConfigError(f"--tlsverify needs {', '.join(missing)}")
    for i, listener in enumerate(config.hosts):
        if listener.scheme != "tcp":
            continue
        if not listener.port:
            config.hosts[i] = listener = Listener("tcp", host=listener.host,
                                                  port=TLS_PORT if config.tlsverify else TCP_PORT)
        if not config.tlsverify and not is_loopback(listener.host):
            raise ConfigError(f"refusing to listen on {listener} without TLS: anyone who can reach it gets root "
                              "on this host; use --tlsverify with --tlscacert, --tlscert and --tlskey, "
                              "or a loopback address")
    config.data_root = os.path.abspath(config.data_root)
    config.exec_root = os.path.abspath(config.exec_root)
    config.pidfile = os.path.abspath(config.pidfile or os.path.join(config.exec_root, "dockyardd.pid"))
    if config.debug:
        config.log_level = "debug"
    return config
