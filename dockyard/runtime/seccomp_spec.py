"""Validation of an OCI `linux.seccomp` object into a flat list of libseccomp rules (pure Python)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: this is on every container's start path
if TYPE_CHECKING:
    from typing import Any

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

# Supported action names; SCMP_ACT_KILL is KILL_THREAD, as in libseccomp and runc.
ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
}
ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # the only actions that carry errnoRet
NOTIFY_ACTION = "SCMP_ACT_NOTIFY"
EPERM = 1

# Values of libseccomp's enum scmp_compare.
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# Architectures named by the runtime-spec; libseccomp's name is the lower-cased suffix.
ARCHES = (
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
)

FLAG_TSYNC = "SECCOMP_FILTER_FLAG_TSYNC"
FLAG_LOG = "SECCOMP_FILTER_FLAG_LOG"
FLAG_SPEC_ALLOW = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
FLAGS = (FLAG_TSYNC, FLAG_SPEC_ALLOW, FLAG_LOG)
FLAG_MIN_API = {FLAG_TSYNC: 2, FLAG_LOG: 3, FLAG_SPEC_ALLOW: 4}  # lowest seccomp_api_get() level supporting each

MAX_ARGS = 6  # a Linux system call has at most six arguments
MAX_ERRNO_RET = 0xFFFF  # the 16-bit SECCOMP_RET_DATA field
MAX_U64 = (1 << 64) - 1

Condition = tuple[int, int, int, int]  # (arg index, operator, datum_a, datum_b) as in struct scmp_arg_cmp


class SeccompError(Exception):
    """An invalid or unsupported seccomp profile, or a failure of libseccomp."""


class Rule:
    """One libseccomp rule: `action` on syscall `name` when all `conditions` hold.

    `where` locates its entry in the profile, for error messages.
    """

    __slots__ = ("name", "action", "conditions", "where")

    def __init__(self, name: str, action: int, conditions: tuple[Condition, ...], where: str) -> None:
        self.name = name
        self.action = action
        self.conditions = conditions
        self.where = where


class Profile:
    """A validated profile; `flags` is None when the spec left them out."""

    __slots__ = ("default_action", "architectures", "flags", "rules")

    def __init__(
        self,
        default_action: int,
        architectures: tuple[str, ...],
        flags: tuple[str, ...] | None,
        rules: tuple[Rule, ...],
    ) -> None:
        self.default_action = default_action
        self.architectures = architectures
        self.flags = flags
        self.rules = rules


def _fail(problem: str, where: str) -> SeccompError:
    return SeccompError(f"seccomp: {problem} in {where}")


def _uint(obj: dict[str, Any], key: str, where: str, maximum: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _fail(f"{key} must be an integer from 0 to {maximum}, not {value!r}", where)
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(f"expected a list of non-empty strings, not {value!r}", where)
    return value


def _action(obj: dict[str, Any], key: str, errno_key: str, where: str) -> int:
    name = obj.get(key)
    if name is None:
        raise _fail(f"{key} is required", f"{where}{key}")
    if name == NOTIFY_ACTION:
        raise _fail(f"{NOTIFY_ACTION} is not supported", f"{where}{key}")
    if not isinstance(name, str) or name not in ACTIONS:
        raise _fail(f"unknown action {_quote(name)}", f"{where}{key}")
    errno_ret = _uint(obj, errno_key, f"{where}{errno_key}", MAX_ERRNO_RET)
    if errno_ret is not None and name not in ERRNO_ACTIONS:
        raise _fail(f"{errno_key} is not allowed with action {name}", f"{where}{errno_key}")
    if name in ERRNO_ACTIONS:
        return ACTIONS[name] | (EPERM if errno_ret is None else errno_ret)
    return ACTIONS[name]


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _condition(arg: Any, where: str) -> Condition:
    if not isinstance(arg, dict):
        raise _fail(f"expected an object, not {arg!r}", where)
    index = arg.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MAX_ARGS:
        raise _fail(f"index must be an integer from 0 to {MAX_ARGS - 1}, not {index!r}", f"{where}.index")
    op = arg.get("op")
    if not isinstance(op, str) or op not in OPERATORS:
        raise _fail(f"unknown operator {_quote(op)}", f"{where}.op")
    value = _uint(arg, "value", f"{where}.value", MAX_U64)
    if value is None:
        raise _fail("value is required", where)
    value_two = _uint(arg, "valueTwo", f"{where}.valueTwo", MAX_U64) or 0
    return (index, OPERATORS[op], value, value_two)


def _rules(call: Any, where: str, default_action: int) -> list[Rule]:
    if not isinstance(call, dict):
        raise _fail(f"expected an object, not {call!r}", where)
    names = _strings(call.get("names"), f"{where}.names")
    action = _action(call, "action", "errnoRet", f"{where}.")
    args = call.get("args") or []
    if not isinstance(args, list):
        raise _fail(f"expected a list, not {args!r}", f"{where}.args")
    conditions = [_condition(arg, f"{where}.args[{i}]") for i, arg in enumerate(args)]
    if action == default_action:
        return []  # redundant, and libseccomp refuses it
    indexes = [c[0] for c in conditions]
    if len(set(indexes)) < len(indexes):
        # Like runc: conditions on a repeated argument are ORed, one rule each.
        groups = [(c,) for c in conditions]
    else:
        groups = [tuple(conditions)]
    return [Rule(name, action, group, where) for name in names for group in groups]


def parse_profile(spec: Any) -> Profile | None:
    """Validate `linux.seccomp`; return None when it disables seccomp (no defaultAction, no syscalls)."""
    if not isinstance(spec, dict):
        raise SeccompError(f"seccomp: linux.seccomp must be an object, not {spec!r}")
    syscalls = spec.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _fail(f"expected a list, not {syscalls!r}", "syscalls")
    if not spec.get("defaultAction") and not syscalls:
        return None
    if spec.get("listenerPath"):
        raise _fail("listenerPath (seccomp user notification) is not supported", "listenerPath")
    default_action = _action(spec, "defaultAction", "defaultErrnoRet", "")
    arches = _strings(spec.get("architectures") or [], "architectures")
    for arch in arches:
        if arch not in ARCHES:
            raise _fail(f"unknown architecture {_quote(arch)}", "architectures")
    flags = spec.get("flags")
    if flags is not None:
        for flag in _strings(flags, "flags"):
            if flag not in FLAGS:
                raise _fail(f"unknown flag {_quote(flag)}", "flags")
        flags = tuple(flags)
    rules = [
        rule for i, call in enumerate(syscalls) for rule in _rules(call, f"syscalls[{i}]", default_action)
    ]
    return Profile(default_action, tuple(arches), flags, tuple(rules))
