"""Running an OCI runtime (runc, crun, dockyard-runtime) command line from the shim.

dockyard-runtime from the shim's own project can run in-process: a fork of the shim calls the
runtime's command line entry point, so each runtime command costs a fork instead of an interpreter
start and its imports (made once, in the shim). The forked child behaves as the exec'd command
would: its stdio are the given fds, descriptors marked close-on-exec are closed, signal handling is
reset, and it exits with the command's status."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

# Python ignores these; a child must not inherit that, so they are reset to default in it.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
# dockyard-runtime verbs that only act on an existing container (a signal, the exec fifo, its
# cgroup and state removed) and change nothing in the calling process: with the runtime
# in-process they are plain calls, not even a fork.
_IN_PLACE = frozenset(("start", "kill", "delete"))


class RuntimeFailed(Exception):
    """The runtime could not be run or exited non-zero; the message is its error text."""


def spawn(argv: list[str], stdin: int, stdout: int, stderr: int) -> int:
    """Start argv (searched on PATH) with the given fds as its stdio; return its pid."""
    actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
               (os.POSIX_SPAWN_DUP2, stderr, 2)]
    try:
        return os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions,
                               setsigdef=_DEFAULT_SIGNALS, setsigmask=())
    except OSError as exc:
        raise RuntimeFailed(f"cannot run {argv[0]}: {exc.strerror}") from None


def wait_status(pid: int) -> int:
    """Wait for a child and return its exit code (128+signal when killed)."""
    return exit_code(os.waitpid(pid, 0)[1])[0]


def exit_code(status: int) -> tuple[int, int | None]:
    """(exit code with Docker's 128+signal convention, signal or None) of a wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.WEXITSTATUS(status), None


def fork_main(argv: list[str], stdin: int, stdout: int, stderr: int,
              prepare: Callable[[], None] | None = None) -> int:
    """Run dockyard-runtime's command line (argv[1:]) in a forked child; return its pid. prepare
    runs first in the child (the fork server closes its own descriptors there)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        if prepare is not None:
            prepare()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, *_DEFAULT_SIGNALS):
            signal.signal(sig, signal.SIG_DFL)
        for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
            os.dup2(fd, target)
        _close_cloexec_fds()
        from dockyard.runtime.cli import main

        code = main(argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - the child must never return into the shim
        os.write(2, f"{argv[0]}: {exc!r}\n".encode())
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return 0  # not reached


def _close_cloexec_fds() -> None:
    """What exec would do: close every descriptor above stdio that is marked close-on-exec."""
    import fcntl

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                if fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                    os.close(fd)
            except OSError:
                pass  # the directory's own descriptor, already closed


class OciRuntime:
    """One runtime command line: argv0 plus global options (--root, extra args); in_process runs
    it through fork_main (argv0 must then be dockyard-runtime of this very project)."""

    def __init__(self, argv0: str, root: str | None, extra: list[str], scratch_dir: str,
                 in_process: bool = False) -> None:
        self.argv = [argv0] + (["--root", root] if root else []) + list(extra)
        self._scratch = os.path.join(scratch_dir, "runtime-stderr")
        self.in_process = in_process
        if in_process:
            self.preload()

    @staticmethod
    def preload() -> None:
        """Import dockyard-runtime's command line and what its verbs use once, so that forks
        running it import nothing."""
        import dockyard.runtime.cli  # noqa: F401
        from dockyard.runtime import commands

        commands.preload()

    def command(self, *args: str) -> list[str]:
        """The full argv for a runtime subcommand."""
        return [*self.argv, *args]

    def spawn(self, args: list[str], stdin: int, stdout: int, stderr: int) -> int:
        """Start a runtime subcommand with the given fds as its stdio; return its pid."""
        argv = self.command(*args)
        return fork_main(argv, stdin, stdout, stderr) if self.in_process else spawn(argv, stdin, stdout, stderr)

    def run(self, *args: str) -> None:
        """Run a subcommand to completion; raise RuntimeFailed with its stderr if it fails."""
        if self.in_process and args[0] in _IN_PLACE:
            self._call(args)
            return
        err = os.open(self._scratch, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.unlink(self._scratch)
            code = wait_status(self.spawn(list(args), null, null, err))
            if code:
                os.lseek(err, 0, os.SEEK_SET)
                text = os.read(err, 65536).decode(errors="replace").strip()
                raise RuntimeFailed(text or f"{self.argv[0]} {args[0]} exited with status {code}")
        finally:
            os.close(err)
            os.close(null)

    def _call(self, args: tuple[str, ...]) -> None:
        """A light verb of dockyard-runtime run in this process (see _IN_PLACE)."""
        from dockyard.runtime.cli import call

        try:
            code = call(self.command(*args)[1:])
        except Exception as exc:  # noqa: BLE001 - as a forked command's failure: the shim goes on
            raise RuntimeFailed(str(exc) or repr(exc)) from None
        if code:
            raise RuntimeFailed(f"{self.argv[0]} {args[0]} exited with status {code}")
