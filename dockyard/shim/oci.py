"""Running an OCI runtime (runc, crun, dockyard-runtime) command line from the shim."""

from __future__ import annotations

import os
import signal

# Python ignores these; a child must not inherit that, so they are reset to default in it.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


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


class OciRuntime:
    """One runtime command line: argv0 plus global options (--root, extra args)."""

    def __init__(self, argv0: str, root: str | None, extra: list[str], scratch_dir: str) -> None:
        self.argv = [argv0] + (["--root", root] if root else []) + list(extra)
        self._scratch = os.path.join(scratch_dir, "runtime-stderr")

    def command(self, *args: str) -> list[str]:
        """The full argv for a runtime subcommand."""
        return [*self.argv, *args]

    def run(self, *args: str) -> None:
        """Run a subcommand to completion; raise RuntimeFailed with its stderr if it fails."""
        err = os.open(self._scratch, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.unlink(self._scratch)
            code = wait_status(spawn(self.command(*args), null, null, err))
            if code:
                os.lseek(err, 0, os.SEEK_SET)
                text = os.read(err, 65536).decode(errors="replace").strip()
                raise RuntimeFailed(text or f"{self.argv[0]} {args[0]} exited with status {code}")
        finally:
            os.close(err)
            os.close(null)
