"""Capabilities, devices, masked paths, no-new-privileges and seccomp for a container."""

from __future__ import annotations

import json
from typing import Any

from dockyard.engine.containers import devices, seccomp
from dockyard.engine.containers.errors import InvalidParameter
from dockyard.engine.containers.seccomp_default import default_profile
from dockyard.runtime import caps as runtime_caps
from dockyard.runtime.spec_template import MASKED_PATHS, READONLY_PATHS

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
DOCKER_MASKED_PATHS = [*MASKED_PATHS, "/sys/devices/virtual/powercap"]


def _own_bounding_set() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << 64) - 1


def all_caps() -> list[str]:
    """Every capability this kernel knows and the daemon itself holds (a container cannot be
    given more than its creator's bounding set)."""
    own = _own_bounding_set()
    return [c for i, c in enumerate(runtime_caps.CAPABILITIES[:runtime_caps.last_cap() + 1]) if own >> i & 1]


def _normalise(names: list[str] | None, field: str) -> list[str]:
    out = []
    known = set(all_caps())
    for name in names or []:
        cap = "ALL" if name.strip().upper() in ("ALL", "CAP_ALL") else runtime_caps.normalise(name)
        if cap != "ALL" and cap not in known:
            raise InvalidParameter(f'invalid {field}: unknown capability: "{cap}"')
        out.append(cap)
    return out


def capabilities(host_config: dict[str, Any]) -> list[str]:
    """Docker's capability set: the defaults, CapDrop removed and CapAdd added ("ALL" either side)."""
    if host_config.get("Privileged"):
        return all_caps()
    add, drop = _normalise(host_config.get("CapAdd"), "CapAdd"), _normalise(host_config.get("CapDrop"), "CapDrop")
    if "ALL" in add:
        return [c for c in all_caps() if c not in drop]
    if "ALL" in drop:
        return [c for c in all_caps() if c in add]
    return [c for c in DEFAULT_CAPS if c not in drop] + [c for c in all_caps() if c in add and c not in DEFAULT_CAPS]


def parse_security_opts(opts: list[str] | None) -> tuple[bool, str | None]:
    """SecurityOpt -> (no_new_privileges, seccomp: None (default) | "unconfined" | profile JSON)."""
    nnp, profile = False, None
    for opt in opts or []:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            nnp = value != "false"
        elif key == "seccomp":
            profile = value
        elif key not in ("apparmor", "label", "systempaths", "writable-cgroups"):
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
    return nnp, profile


def label_opts(host_config: dict[str, Any]) -> list[str]:
    """The SecurityOpt dockerd adds at create: label=disable for a privileged container or one
    sharing the host's IPC or PID namespace, unless a label option was given."""
    opts = host_config.get("SecurityOpt") or []
    if any(o.partition("=")[0] == "label" for o in opts):
        return []
    shares_host = "host" in (host_config.get("IpcMode"), host_config.get("PidMode"))
    return ["label=disable"] if host_config.get("Privileged") or shares_host else []


def seccomp_config(profile_opt: str | None, caps: list[str], privileged: bool) -> dict[str, Any] | None:
    """The OCI seccomp object, or None when unconfined (or privileged with the default profile)."""
    if profile_opt == "unconfined" or (privileged and profile_opt is None):
        return None
    if profile_opt is None or profile_opt == "builtin":
        profile = default_profile()
    else:
        try:
            profile = json.loads(profile_opt)
        except ValueError as e:
            raise InvalidParameter(f"decoding seccomp profile failed: {e}") from None
    return seccomp.to_oci(profile, set(caps))


def apply(spec: dict[str, Any], host_config: dict[str, Any]) -> None:
    """Set capabilities, devices, masked paths, no-new-privileges and seccomp on spec."""
    privileged = bool(host_config.get("Privileged"))
    caps = capabilities(host_config)
    spec["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    nnp, profile = parse_security_opts(host_config.get("SecurityOpt"))
    spec["process"]["noNewPrivileges"] = nnp
    linux = spec["linux"]
    devices.apply(linux, host_config)
    if not privileged:
        linux["maskedPaths"] = list(DOCKER_MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    sec = seccomp_config(profile, caps, privileged)
    if sec is not None:
        linux["seccomp"] = sec
