"""Loading and validating a bundle's config.json (OCI runtime-spec 1.x).

Validation happens before anything is created, so a malformed bundle fails with a message that
names the offending field and leaves nothing behind.
"""

from __future__ import annotations

from dockyard.runtime import jsonfast
from dockyard.runtime import oslite as os
from dockyard.runtime.errors import RuntimeFailure

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_ID_EXTRA_CHARS = frozenset("+-._")


def check_id(container_id: str) -> None:
    """Refuse ids runc refuses (they become file names in the state root)."""
    if (not container_id or container_id in (".", "..")
            or not all(c.isalnum() or c in _ID_EXTRA_CHARS for c in container_id)):
        raise RuntimeFailure(f"invalid container id format: {container_id!r}")


def _fail(field: str, problem: str) -> RuntimeFailure:
    return RuntimeFailure(f"config.json: {field} {problem}")


def _expect(value: Any, kind: type | tuple[type, ...], field: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _fail(field, f"must be {_KIND_NAMES.get(names, names)}, not {type(value).__name__}")


_KIND_NAMES = {"dict": "an object", "list": "an array", "str": "a string", "int": "an integer",
               "bool": "a boolean"}


def _str_list(value: Any, field: str, allow_empty: bool = True) -> None:
    _expect(value, list, field)
    for i, item in enumerate(value):
        _expect(item, str, f"{field}[{i}]")
    if not allow_empty and not value:
        raise _fail(field, "must not be empty")


def validate_process(proc: Any, field: str = "process") -> None:
    """Validate a process object (also used for `exec --process`)."""
    _expect(proc, dict, field)
    args = proc.get("args")
    if args is None:
        raise _fail(f"{field}.args", "is missing")
    _str_list(args, f"{field}.args", allow_empty=False)
    _str_list(proc.get("env", []), f"{field}.env")
    cwd = proc.get("cwd", "/")
    _expect(cwd, str, f"{field}.cwd")
    if not cwd.startswith("/"):
        raise _fail(f"{field}.cwd", f"must be an absolute path, got {cwd!r}")
    user = proc.get("user", {})
    _expect(user, dict, f"{field}.user")
    for key in ("uid", "gid", "umask"):
        if key in user:
            _expect(user[key], int, f"{field}.user.{key}")
            if user[key] < 0:
                raise _fail(f"{field}.user.{key}", "must not be negative")
    for i, g in enumerate(user.get("additionalGids") or []):
        _expect(g, int, f"{field}.user.additionalGids[{i}]")
    _expect(proc.get("terminal", False), bool, f"{field}.terminal")
    size = proc.get("consoleSize")
    if size is not None:
        _expect(size, dict, f"{field}.consoleSize")
        for key in ("height", "width"):
            _expect(size.get(key, 0), int, f"{field}.consoleSize.{key}")
    caps = proc.get("capabilities")
    if caps is not None:
        _expect(caps, dict, f"{field}.capabilities")
        for key, names in caps.items():
            _str_list(names or [], f"{field}.capabilities.{key}")
    for i, rl in enumerate(proc.get("rlimits") or []):
        _expect(rl, dict, f"{field}.rlimits[{i}]")
        _expect(rl.get("type"), str, f"{field}.rlimits[{i}].type")
        for key in ("soft", "hard"):
            _expect(rl.get(key), int, f"{field}.rlimits[{i}].{key}")
    if "noNewPrivileges" in proc:
        _expect(proc["noNewPrivileges"], bool, f"{field}.noNewPrivileges")
    if "oomScoreAdj" in proc:
        _expect(proc["oomScoreAdj"], int, f"{field}.oomScoreAdj")


def _validate_mounts(mounts: Any) -> None:
    _expect(mounts, list, "mounts")
    for i, m in enumerate(mounts):
        f = f"mounts[{i}]"
        _expect(m, dict, f)
        dest = m.get("destination")
        if dest is None:
            raise _fail(f"{f}.destination", "is missing")
        _expect(dest, str, f"{f}.destination")
        if not dest.startswith("/"):
            raise _fail(f"{f}.destination", f"must be an absolute path, got {dest!r}")
        for key in ("type", "source"):
            if key in m:
                _expect(m[key], str, f"{f}.{key}")
        _str_list(m.get("options") or [], f"{f}.options")


def _validate_linux(linux: Any) -> None:
    _expect(linux, dict, "linux")
    seen = set()
    for i, ns in enumerate(linux.get("namespaces") or []):
        f = f"linux.namespaces[{i}]"
        _expect(ns, dict, f)
        kind = ns.get("type")
        if kind not in NAMESPACE_TYPES:
            raise _fail(f"{f}.type", f"is not a known namespace type: {kind!r}")
        if kind in seen:
            raise _fail(f"{f}.type", f"duplicates namespace {kind!r}")
        seen.add(kind)
        if "path" in ns:
            _expect(ns["path"], str, f"{f}.path")
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(linux.get(key) or []):
            _expect(m, dict, f"linux.{key}[{i}]")
            for k in ("containerID", "hostID", "size"):
                _expect(m.get(k), int, f"linux.{key}[{i}].{k}")
    for key in ("maskedPaths", "readonlyPaths"):
        _str_list(linux.get(key) or [], f"linux.{key}")
    sysctl = linux.get("sysctl") or {}
    _expect(sysctl, dict, "linux.sysctl")
    for k, v in sysctl.items():
        _expect(v, str, f"linux.sysctl[{k!r}]")
    for i, dev in enumerate(linux.get("devices") or []):
        f = f"linux.devices[{i}]"
        _expect(dev, dict, f)
        _expect(dev.get("path"), str, f"{f}.path")
        if dev.get("type") not in ("c", "b", "u", "p"):
            raise _fail(f"{f}.type", f"must be one of c, b, u, p, got {dev.get('type')!r}")
    if "cgroupsPath" in linux:
        _expect(linux["cgroupsPath"], str, "linux.cgroupsPath")
    if "resources" in linux:
        _expect(linux["resources"], dict, "linux.resources")
    if "seccomp" in linux:
        _expect(linux["seccomp"], dict, "linux.seccomp")
    prop = linux.get("rootfsPropagation")
    if prop is not None and prop not in ("shared", "slave", "private", "unbindable", "rshared",
                                         "rslave", "rprivate", "runbindable"):
        raise _fail("linux.rootfsPropagation", f"is not a propagation mode: {prop!r}")


def _validate_hooks(hooks: Any) -> None:
    _expect(hooks, dict, "hooks")
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise _fail("hooks", f"has an unknown hook kind {kind!r}")
        _expect(entries, list, f"hooks.{kind}")
        for i, h in enumerate(entries):
            f = f"hooks.{kind}[{i}]"
            _expect(h, dict, f)
            path = h.get("path")
            _expect(path, str, f"{f}.path")
            if not path.startswith("/"):
                raise _fail(f"{f}.path", f"must be absolute, got {path!r}")
            _str_list(h.get("args") or [], f"{f}.args")
            _str_list(h.get("env") or [], f"{f}.env")
            if "timeout" in h:
                _expect(h["timeout"], int, f"{f}.timeout")
                if h["timeout"] <= 0:
                    raise _fail(f"{f}.timeout", "must be positive")


def validate(config: Any) -> None:
    """Check the structure of a whole config, raising RuntimeFailure that names the field."""
    _expect(config, dict, "the document")
    if "ociVersion" not in config:
        raise _fail("ociVersion", "is missing")
    _expect(config["ociVersion"], str, "ociVersion")
    if not config["ociVersion"].startswith("1."):
        raise _fail("ociVersion", f"{config['ociVersion']!r} is not a supported version (1.x)")
    root = config.get("root")
    if root is None:
        raise _fail("root", "is missing")
    _expect(root, dict, "root")
    _expect(root.get("path"), str, "root.path")
    if "process" not in config:
        raise _fail("process", "is missing")
    validate_process(config["process"])
    for key in ("hostname", "domainname"):
        if key in config:
            _expect(config[key], str, key)
    _validate_mounts(config.get("mounts") or [])
    _validate_linux(config.get("linux") or {})
    _validate_hooks(config.get("hooks") or {})
    ns_types = {ns["type"] for ns in (config.get("linux") or {}).get("namespaces") or []}
    if "mount" not in ns_types:
        raise _fail("linux.namespaces", "must include a mount namespace")
    if config.get("hostname") and "uts" not in ns_types:
        raise _fail("hostname", "requires a new uts namespace")
    if config.get("domainname") and "uts" not in ns_types:
        raise _fail("domainname", "requires a new uts namespace")
    _validate_sysctl_namespaces(config.get("linux") or {}, ns_types)


_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _validate_sysctl_namespaces(linux: dict[str, Any], ns_types: set[str]) -> None:
    """A sysctl must belong to a namespace the container does not share with the host (as runc):
    anything else would change the host's setting."""
    sysctl = linux.get("sysctl")
    if not sysctl:
        return
    paths = {ns["type"]: ns.get("path") for ns in linux.get("namespaces") or []}
    for key in sysctl:
        name = key.replace("/", ".")
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            need = "ipc"
        elif name.startswith("net."):
            need = "network"
        elif name in ("kernel.hostname", "kernel.domainname"):
            need = "uts"
        else:
            raise _fail(f"linux.sysctl[{key!r}]", "is not in a separate kernel namespace")
        if need not in ns_types:
            raise _fail(f"linux.sysctl[{key!r}]", f"requires a {need} namespace")
        path = paths.get(need)
        if need == "network" and path and _same_file(path, "/proc/self/ns/net"):
            raise _fail(f"linux.sysctl[{key!r}]", "is not allowed in the host's network namespace")


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def load_bundle(bundle: str) -> tuple[dict, str]:
    """Read and validate <bundle>/config.json; return (config, absolute rootfs path)."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            config = jsonfast.loads(f.read())
    except FileNotFoundError:
        raise RuntimeFailure(f"bundle {bundle}: config.json not found") from None
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"bundle {bundle}: cannot parse config.json: {e}") from None
    validate(config)
    rootfs = os.path.join(bundle, config["root"]["path"])
    if not os.path.isdir(rootfs):
        raise RuntimeFailure(f"rootfs {rootfs} does not exist or is not a directory")
    return config, os.path.realpath(rootfs)
