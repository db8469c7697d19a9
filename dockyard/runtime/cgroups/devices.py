"""OCI device rules reduced to the state the v1 devices controller would end up in.

The v1 controller is a default policy (allow or deny everything) plus exceptions. An "a" rule resets the
default and clears the exceptions; any other rule adds an exception when it goes against the default, or
withdraws access from a matching exception when it agrees with it. Both back ends use this state: v1 to
skip rewriting an unchanged devices cgroup, v2 to compile the eBPF program, so both behave identically.
"""

from __future__ import annotations

from dockyard.runtime.cgroups.base import CgroupError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

WILDCARD = -1


class DeviceException:
    """A device exception: type "c" or "b", major/minor (WILDCARD for "*") and access letters.

    A plain class, not a namedtuple: `collections` costs ~2 ms to import on every container start."""

    __slots__ = ("type", "major", "minor", "access")

    def __init__(self, type_: str, major: int, minor: int, access: str) -> None:
        self.type = type_
        self.major = major
        self.minor = minor
        self.access = access

    def same_device(self, type_: str, major: int, minor: int) -> bool:
        return self.type == type_ and self.major == major and self.minor == minor

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DeviceException) and other.same_device(self.type, self.major, self.minor)
                and other.access == self.access)

    def __repr__(self) -> str:
        return f"DeviceException({self.type!r}, {self.major}, {self.minor}, {self.access!r})"

    def __str__(self) -> str:
        def num(n: int) -> str:
            return "*" if n == WILDCARD else str(n)

        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"


class DeviceState:
    """Default policy plus ordered exceptions (same semantics as devices.list)."""

    def __init__(self, default_allow: bool = False, exceptions: list[DeviceException] | None = None) -> None:
        self.default_allow = default_allow
        self.exceptions = exceptions or []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceState) and (self.default_allow, self.exceptions) == (
            other.default_allow, other.exceptions)

    def __repr__(self) -> str:
        return f"DeviceState(default_allow={self.default_allow}, exceptions={self.exceptions})"

    def apply(self, allow: bool, type_: str, major: int, minor: int, access: str) -> None:
        """Apply one rule as the kernel would for a write to devices.allow / devices.deny."""
        if type_ == "a":
            self.default_allow = allow
            self.exceptions = []
            return
        if allow != self.default_allow:
            self._add(DeviceException(type_, major, minor, access))
        else:
            self._remove(type_, major, minor, access)

    def _add(self, new: DeviceException) -> None:
        for ex in self.exceptions:
            if ex.same_device(new.type, new.major, new.minor):
                ex.access = _merge(ex.access, new.access)
                return
        self.exceptions.append(new)

    def _remove(self, type_: str, major: int, minor: int, access: str) -> None:
        kept = []
        for ex in self.exceptions:
            if ex.same_device(type_, major, minor):
                left = "".join(c for c in ex.access if c not in access)
                if not left:
                    continue
                ex.access = left
            kept.append(ex)
        self.exceptions = kept


def _merge(a: str, b: str) -> str:
    return "".join(c for c in "rwm" if c in a or c in b)


def _number(value: Any) -> int:
    return WILDCARD if value is None or value == -1 else int(value)


def _access(value: Any) -> str:
    access = value or "rwm"
    if set(access) - set("rwm"):
        raise CgroupError(f"invalid device access {access!r} (letters r, w, m)")
    return _merge(access, "")


def state_from_rules(rules: list[dict[str, Any]]) -> DeviceState:
    """The final device state for OCI linux.resources.devices, starting from deny-all."""
    state = DeviceState()
    for rule in rules:
        type_ = rule.get("type") or "a"
        if type_ not in ("a", "b", "c"):
            raise CgroupError(f"invalid device rule type {type_!r} in {rule}")
        state.apply(bool(rule.get("allow")), type_, _number(rule.get("major")), _number(rule.get("minor")),
                    _access(rule.get("access")))
    return state


def state_from_list(text: str) -> DeviceState:
    """Parse v1 devices.list. (The kernel lists only "a *:* rwm" for default-allow cgroups.)"""
    lines = text.split()
    if lines[:1] == ["a"]:
        return DeviceState(default_allow=True)
    state = DeviceState()
    for type_, numbers, access in zip(lines[0::3], lines[1::3], lines[2::3], strict=True):
        major, _, minor = numbers.partition(":")
        state.exceptions.append(DeviceException(type_, _number(None if major == "*" else major),
                                           _number(None if minor == "*" else minor), access))
    return state
