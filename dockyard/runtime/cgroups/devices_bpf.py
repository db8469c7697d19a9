"""cgroup v2 device access control: a hand-assembled BPF_PROG_TYPE_CGROUP_DEVICE program, via bpf(2).

The program reads struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;} where
access_type = (access << 16) | device type, checks each exception of the device state in turn and
returns the exception's verdict on the first match, else the default verdict (1 allows, 0 denies).
"""

from __future__ import annotations

import ctypes
import os
import struct

from dockyard.runtime.cgroups.base import CgroupError
from dockyard.runtime.cgroups.devices import WILDCARD, DeviceState

_BPF_NR = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351, "i686": 357,
           "armv7l": 386}

# bpf(2) commands, program/attach types and flags (include/uapi/linux/bpf.h)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
_ATTR_SIZE = 128

# opcodes
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X
_EXIT = 0x95  # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> tuple[int, int, int, int, int]:
    return (code, dst, src, off, imm)


def assemble(state: DeviceState) -> bytes:
    """The program's instructions (8 bytes each) for a device state."""
    prog = [
        _insn(_LDX_W, dst=2, src=1, off=0),  # r2 = type
        _insn(_AND32_K, dst=2, imm=0xFFFF),
        _insn(_LDX_W, dst=3, src=1, off=0),  # r3 = requested access
        _insn(_RSH32_K, dst=3, imm=16),
        _insn(_LDX_W, dst=4, src=1, off=4),  # r4 = major
        _insn(_LDX_W, dst=5, src=1, off=8),  # r5 = minor
    ]
    verdict = 0 if state.default_allow else 1
    for ex in state.exceptions:
        # Each check ends in a jump, taken when the exception does not match.
        checks: list[list[tuple[int, int, int, int, int]]] = [[_insn(_JNE_K, dst=2, imm=_DEV_TYPE[ex.type])]]
        mask = sum(_ACCESS[c] for c in ex.access)
        if mask != 7:
            # Like the v1 controller: an allow exception must cover all the requested access,
            # a deny exception applies as soon as it covers part of it.
            test = _insn(_JEQ_K, dst=1, imm=0) if state.default_allow else _insn(_JNE_X, dst=1, src=3)
            checks.append([_insn(_MOV32_X, dst=1, src=3), _insn(_AND32_K, dst=1, imm=mask), test])
        if ex.major != WILDCARD:
            checks.append([_insn(_JNE_K, dst=4, imm=ex.major)])
        if ex.minor != WILDCARD:
            checks.append([_insn(_JNE_K, dst=5, imm=ex.minor)])
        block = [insn for check in checks for insn in check]
        block += [_insn(_MOV64_K, dst=0, imm=verdict), _insn(_EXIT)]
        for i, insn in enumerate(block):  # every jump in the block goes to the end of the block
            if insn[0] in (_JEQ_K, _JNE_K, _JNE_X):
                block[i] = insn[:3] + (len(block) - i - 1,) + insn[4:]
        prog += block
    prog += [_insn(_MOV64_K, dst=0, imm=1 if state.default_allow else 0), _insn(_EXIT)]
    return b"".join(struct.pack("<BBhi", code, (src << 4) | dst, off, imm) for code, dst, src, off, imm in prog)


_libc: ctypes.CDLL | None = None


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    nr = _BPF_NR.get(os.uname().machine)
    if nr is None:
        raise CgroupError(f"bpf(2) syscall number unknown for {os.uname().machine}")
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), attr, ctypes.c_ulong(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _attr(*fields: tuple[int, str, int]) -> ctypes.Array:
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    for offset, fmt, value in fields:
        struct.pack_into(fmt, buf, offset, value)
    return buf


def load(state: DeviceState) -> int:
    """Load the device program for state; returns its fd."""
    code = ctypes.create_string_buffer(assemble(state))
    license_ = ctypes.create_string_buffer(b"Apache")
    fields = [(0, "<I", BPF_PROG_TYPE_CGROUP_DEVICE), (4, "<I", len(code.raw) // 8),
              (8, "<Q", ctypes.addressof(code)), (16, "<Q", ctypes.addressof(license_))]
    attr = _attr(*fields)
    attr[48:48 + 12] = b"dockyard_dev"
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        log = ctypes.create_string_buffer(65536)
        attr = _attr(*fields, (24, "<I", 1), (28, "<I", len(log)), (32, "<Q", ctypes.addressof(log)))
        try:
            os.close(_bpf(BPF_PROG_LOAD, attr))
        except OSError:
            pass
        detail = log.value.decode(errors="replace").strip()
        raise CgroupError(f"cannot load the device eBPF program: {e.strerror}{': ' + detail if detail else ''}") from e


def attached(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached directly to the cgroup."""
    ids = (ctypes.c_uint32 * 64)()
    attr = _attr((0, "<I", cgroup_fd), (4, "<I", BPF_CGROUP_DEVICE), (16, "<Q", ctypes.addressof(ids)),
                 (24, "<I", len(ids)))
    _bpf(BPF_PROG_QUERY, attr)
    (count,) = struct.unpack_from("<I", attr, 24)
    return list(ids[:count])


def apply_state(cgroup_dir: str, state: DeviceState) -> None:
    """Attach a program enforcing state to cgroup_dir, then detach the programs it replaces."""
    try:
        cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open cgroup {cgroup_dir}: {e.strerror}") from e
    try:
        old = attached(cgroup_fd)
        prog_fd = load(state)
        try:
            _bpf(BPF_PROG_ATTACH, _attr((0, "<I", cgroup_fd), (4, "<I", prog_fd), (8, "<I", BPF_CGROUP_DEVICE),
                                        (12, "<I", BPF_F_ALLOW_MULTI)))
        finally:
            os.close(prog_fd)
        for prog_id in old:
            _detach(cgroup_fd, prog_id)
    except OSError as e:
        raise CgroupError(f"cannot attach the device eBPF program to {cgroup_dir}: {e.strerror}") from e
    finally:
        os.close(cgroup_fd)


def _detach(cgroup_fd: int, prog_id: int) -> None:
    try:
        prog_fd = _bpf(BPF_PROG_GET_FD_BY_ID, _attr((0, "<I", prog_id)))
    except FileNotFoundError:
        return  # already gone
    try:
        _bpf(BPF_PROG_DETACH, _attr((0, "<I", cgroup_fd), (4, "<I", prog_fd), (8, "<I", BPF_CGROUP_DEVICE)))
    finally:
        os.close(prog_fd)
