"""Seccomp for dockyard-runtime: OCI `linux.seccomp` to a libseccomp filter, runc's semantics.

`compile_filter` validates the profile and builds the filter at `create` time; the container's
init then only calls `SeccompFilter.load` right before execve(2). libseccomp is reached through
ctypes, imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

from dockyard.runtime import oslite as os
from dockyard.runtime.seccomp_spec import (
    ACTIONS,
    ARCHES,
    FLAG_MIN_API,
    FLAG_SPEC_ALLOW,
    FLAGS,
    OPERATORS,
    Profile,
    SeccompError,
    parse_profile,
)

TYPE_CHECKING = False  # typing is not imported at run time: this is on every container's start path
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from dockyard.runtime.seccomp_lib import Context

__all__ = ["SeccompError", "SeccompFilter", "compile_cached", "compile_filter", "features"]

_OPTIMIZE_ABOVE = 32  # rules; like runc, use libseccomp's binary tree for long profiles
_library: tuple[str, int] | None = None  # libseccomp's (version, API level), asked once per process


class SeccompFilter:
    """A compiled filter. A disabled one (profile without defaultAction and syscalls) loads nothing."""

    def __init__(self, context: Context | None) -> None:
        self._context = context
        self.enabled = context is not None

    def load(self) -> None:
        """Install the filter in the calling process (seccomp_load, nothing else).

        Like runc, the filter does not set no_new_privs itself: the caller must either have set
        it (process.noNewPrivileges) or still hold CAP_SYS_ADMIN.
        """
        context = self._context
        if context is None:
            if self.enabled:
                raise SeccompError("seccomp: filter was released")
            return
        try:
            context.load()
        except OSError as e:
            raise SeccompError(f"seccomp: loading the filter failed: {e.strerror}") from None

    def release(self) -> None:
        """Free the libseccomp context; the filter cannot be loaded afterwards."""
        if self._context is not None:
            self._context.release()
            self._context = None


def _lib() -> ModuleType:
    from dockyard.runtime import seccomp_lib

    try:
        seccomp_lib.library()
    except OSError as e:
        raise SeccompError(f"seccomp: {seccomp_lib.LIBRARY} is not available: {e}") from None
    return seccomp_lib


def _arch_name(arch: str) -> str:
    return arch.removeprefix("SCMP_ARCH_").lower()


def _set_attr(context: Context, attr: int, value: int, what: str) -> None:
    try:
        context.set_attr(attr, value)
    except OSError as e:
        raise SeccompError(f"seccomp: cannot set {what}: {e.strerror}") from None


def _build(lib: ModuleType, profile: Profile, context: Context) -> None:
    _set_attr(context, lib.ATTR_API_SYSRAWRC, 1, "raw return codes")  # real errno from seccomp_load
    _set_attr(context, lib.ATTR_CTL_NNP, 0, "no_new_privs")  # the runtime's business, as in runc
    for arch in profile.architectures:
        token = lib.arch_token(_arch_name(arch))
        if not token:
            raise SeccompError(f"seccomp: architecture {arch} is not supported by libseccomp {lib.version()}")
        try:
            context.add_arch(token)
        except OSError as e:
            raise SeccompError(f"seccomp: cannot add architecture {arch}: {e.strerror}") from None
    api = lib.api_level()
    flags = profile.flags
    if flags is None:  # runc's default when the spec has no "flags" at all
        flags = (FLAG_SPEC_ALLOW,) if api >= FLAG_MIN_API[FLAG_SPEC_ALLOW] else ()
    for flag in flags:
        attr = lib.FLAG_ATTRS[flag]
        if api < FLAG_MIN_API[flag]:
            raise SeccompError(f"seccomp: flag {flag} is not supported by this kernel and libseccomp")
        _set_attr(context, attr, 1, f"flag {flag}")
    if len(profile.rules) > _OPTIMIZE_ABOVE:
        _set_attr(context, lib.ATTR_CTL_OPTIMIZE, 2, "binary tree optimization")
    for rule in profile.rules:
        number = lib.syscall_number(rule.name)
        if number == lib.NR_SCMP_ERROR:
            continue  # unknown to libseccomp: skipped, like runc
        try:
            context.add_rule(rule.action, number, rule.conditions)
        except OSError as e:
            raise SeccompError(
                f'seccomp: cannot add rule for syscall "{rule.name}" in {rule.where}: {e.strerror}'
            ) from None


def compile_filter(spec: dict[str, Any]) -> SeccompFilter:
    """Validate an OCI `linux.seccomp` object and build its filter; SeccompError names what is wrong."""
    profile = parse_profile(spec)
    if profile is None:
        return SeccompFilter(None)
    lib = _lib()
    try:
        context = lib.Context(profile.default_action)
    except OSError as e:
        raise SeccompError(f"seccomp: {e.strerror} in defaultAction") from None
    try:
        _build(lib, profile, context)
    except BaseException:
        context.release()
        raise
    return SeccompFilter(context)


def library_info() -> tuple[str, int]:
    """libseccomp's version and API level, asked once per process (the API level probes the
    kernel with several seccomp(2) calls): a long-lived process that forks runtime commands (the
    fork server, a shim) asks before it forks, and a compiled-program cache hit then needs neither
    ctypes nor the library binding."""
    global _library
    if _library is None:
        from dockyard.runtime import syscalls

        _library = syscalls.libseccomp_info()
        if _library is None:
            lib = _lib()
            _library = lib.version(), lib.api_level()
    return _library


def compile_cached(spec: dict[str, Any], root: str) -> Any:
    """compile_filter through the program cache under root (see seccomp_bpf): a profile seen
    before on this machine costs a file read; a new one is compiled, exported and stored."""
    from dockyard.runtime import seccomp_bpf as bpf
    from dockyard.runtime import syscalls

    if not syscalls.SECCOMP_FILTER:  # a machine whose seccomp(2) number the ctypes back end does not know
        return compile_filter(spec)
    version, api = library_info()
    path = os.path.join(root, bpf.CACHE_DIR, bpf.cache_key(spec, version, api) + ".bpf")
    flags = bpf.kernel_flags(spec.get("flags"), api >= FLAG_MIN_API[FLAG_SPEC_ALLOW])
    cached = bpf.load_cached(path, flags)
    if cached is not None:
        return cached
    compiled = compile_filter(spec)
    if compiled._context is None:
        return compiled
    try:
        program = bpf.export_program(compiled._context)
    finally:
        compiled.release()
    bpf.store(path, program)
    return bpf.BpfFilter(program, flags)


def features() -> dict[str, Any]:
    """The `seccomp` object of `dockyard-runtime features`, in runc's shape."""
    try:
        lib = _lib()
    except SeccompError:
        return {"enabled": False}
    api = lib.api_level()
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(a for a in ARCHES if lib.arch_token(_arch_name(a))),
        "knownFlags": list(FLAGS),
        "supportedFlags": [f for f in FLAGS if api >= FLAG_MIN_API[f]],
    }
