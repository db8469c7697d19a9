"""The shim's control-socket protocol: one JSON object per line, and attach stream framing.

Requests are {"op": NAME, ...args}; every reply is {"ok": true, ...} or {"ok": false, "error": TEXT}.

  state                                  -> id, pid, shim_pid, status (created|running|stopped),
                                            tty, started_at, exit (null or the exit record)
  start                                  -> started_at                  (runs `runtime start ID`)
  signal  {signal: int|str, all: bool}   -> {}                          (runs `runtime kill ID SIG [--all]`)
  resize  {width: int, height: int}      -> {}                          (TIOCSWINSZ; tty only)
  wait                                   -> the exit record, once the container has exited
  close_stdin                            -> {}                          (tty: sends EOT instead)
  attach  {stdin, stdout, stderr: bool, stdin_once: bool[, start: true]}
                                         -> tty, stdin[, started_at]; then the connection is a stream
                                            (with start, the created container is started too)

The exit record (also <state-dir>/exit.json) is {"exit_code": N, "exited_at": RFC3339Nano[, "signal": S]}, plus,
from a shim that deletes the container at its exit (before the record is written), "deleted": true once
`runtime delete` succeeded and "oom_killed": true when the OOM killer fired in its memory cgroup.
After a successful attach the shim sends output frames (see frame()) or, with a tty, raw bytes; bytes
from the client go to the container's stdin, and with stdin_once the client's EOF closes that stdin.
"""

from __future__ import annotations

import json
import os

SOCKET_NAME = "shim.sock"
EXIT_FILE = "exit.json"
STDOUT, STDERR = 1, 2
STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}
MAX_LINE = 64 * 1024
MAX_SUN_PATH = 107  # bytes of a unix socket path (sun_path less its NUL)
Message = dict[str, object]  # a decoded JSON object (typing.Any is not imported: it costs resident memory)


class ProtocolError(Exception):
    """A malformed request or reply."""


def encode(msg: Message) -> bytes:
    """Serialize one message as a JSON line."""
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Message:
    """Parse one JSON line into a dict."""
    try:
        msg = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a message must be a JSON object")
    return msg


def frame(stream: int, payload: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream,0,0,0] + big-endian uint32 length + payload."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


def error(text: str) -> Message:
    """A failure reply."""
    return {"ok": False, "error": text}


def short_name(path: str, pid: int | None = None) -> tuple[str, int]:
    """(name, fd): a name of at most MAX_SUN_PATH bytes for the unix socket at path, as bind and
    connect need: path itself (fd -1), or /proc/<pid|self>/fd/<fd>/<basename> through fd, an O_PATH
    descriptor of the socket's directory that the caller closes once the name has been used."""
    if len(path.encode()) <= MAX_SUN_PATH:
        return path, -1
    fd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/{pid or 'self'}/fd/{fd}/{os.path.basename(path)}", fd
