"""Early writeback: ask the kernel to start writing a file range to disk now (sync_file_range(2)
with SYNC_FILE_RANGE_WRITE, which does not wait), so that a later fsync of a large file that
was written bit by bit finds little left to flush."""

from __future__ import annotations

import ctypes

_SYNC_FILE_RANGE_WRITE = 2
_call = None


def start(fd: int, offset: int, length: int) -> None:
    """Start writing back fd's bytes [offset, offset + length); a hint, errors are ignored."""
    global _call
    if _call is None:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
        function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        _call = function
    _call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
