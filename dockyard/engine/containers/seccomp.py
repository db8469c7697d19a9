"""Docker seccomp profiles → the OCI config's linux.seccomp, for one container's capabilities,
architecture and kernel (includes/excludes resolved the way dockerd resolves them)."""

from __future__ import annotations

import os
import platform
from typing import Any

from dockyard.engine.containers.errors import InvalidParameter

# uname machine -> Go's GOARCH (the names profiles use in includes/excludes)
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "i386": "x86", "armv7l": "arm",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64"}
# GOARCH -> the seccomp native architecture
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "x86": "SCMP_ARCH_X86",
              "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
              "riscv64": "SCMP_ARCH_RISCV64", "mips64": "SCMP_ARCH_MIPS64"}


def host_arch() -> str:
    """This machine's architecture under Go's name."""
    machine = platform.machine()
    return _GOARCH.get(machine, machine)


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise InvalidParameter(f"seccomp profile: invalid minKernel {text!r}") from None


def _applies(rule: dict[str, Any], caps: set[str], arch: str, kernel: tuple[int, int]) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel") and kernel < _version(inc["minKernel"]):
        return False
    if arch in (exc.get("arches") or []):
        return False
    return not set(exc.get("caps") or []) & caps


def _architectures(profile: dict[str, Any], arch: str) -> list[str]:
    if profile.get("architectures"):
        return list(profile["architectures"])
    native = _SCMP_ARCH.get(arch)
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            return [native, *entry.get("subArchitectures", [])]
    return [native] if native else []


def to_oci(profile: dict[str, Any], caps: set[str], arch: str | None = None,
           kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI linux.seccomp object for a container with capabilities caps."""
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise InvalidParameter("seccomp profile must be a JSON object with a defaultAction")
    arch = arch or host_arch()
    kernel = kernel or kernel_version()
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"],
                           "architectures": _architectures(profile, arch), "syscalls": []}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, caps, arch, kernel):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        entry: dict[str, Any] = {"names": list(names), "action": rule["action"]}
        if rule.get("args"):
            entry["args"] = [dict(a) for a in rule["args"]]
        if "errnoRet" in rule:
            entry["errnoRet"] = rule["errnoRet"]
        out["syscalls"].append(entry)
    return out


def allowed(oci: dict[str, Any]) -> dict[str, list]:
    """syscall name -> argument conditions under which it is allowed ([] = always); for comparing
    two compiled profiles."""
    result: dict[str, list] = {}
    for rule in oci["syscalls"]:
        if rule["action"] != "SCMP_ACT_ALLOW":
            continue
        for name in rule["names"]:
            result.setdefault(name, []).append(sorted(
                (a["index"], a["value"], a.get("valueTwo", 0), a["op"]) for a in rule.get("args", [])))
    return {name: sorted(conds) for name, conds in result.items()}
