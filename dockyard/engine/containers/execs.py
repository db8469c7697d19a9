"""docker exec: processes started in a running container with `RUNTIME exec` (foreground, so
its exit status is the process's), their stdio piped or, with a tty, a pty master received on a
console socket. Exec instances live in memory, as in dockerd.

The process follows Docker's rules: the container's process settings (env, user, capabilities,
no-new-privileges, rlimits) with the exec's Cmd, its Env merged over the container's, its User
and WorkingDir when given, a tty when asked, every capability when Privileged."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import termios
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.engine.containers import detach
from dockyard.engine.containers.errors import Conflict, ContainerError, InvalidParameter, NotFound
from dockyard.engine.containers.etcfiles import write_atomic
from dockyard.engine.containers.names import new_id
from dockyard.engine.containers.security import all_caps
from dockyard.engine.containers.service import ContainerService
from dockyard.engine.containers.spec import merge_env
from dockyard.engine.containers.users import resolve_user
from dockyard.shim.forkserver import ForkServerError, ForkServerUnavailable, Spawned
from dockyard.shim.protocol import STDERR, STDOUT, frame

CHUNK = 32 * 1024
CONSOLE_TIMEOUT = 30


@dataclass
class Exec:
    """One exec instance (GET /exec/{id}/json)."""

    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    started: bool = False
    master: int | None = None  # the pty master while a tty exec runs

    def inspect(self) -> dict[str, Any]:
        cmd = self.config["Cmd"]
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code, "CanRemove": False,
            "ContainerID": self.container_id, "DetachKeys": self.config.get("DetachKeys") or "",
            "OpenStdin": bool(self.config.get("AttachStdin")), "OpenStdout": bool(self.config.get("AttachStdout")),
            "OpenStderr": bool(self.config.get("AttachStderr")), "Pid": self.pid,
            "ProcessConfig": {"tty": bool(self.config.get("Tty")), "entrypoint": cmd[0], "arguments": cmd[1:],
                              "privileged": bool(self.config.get("Privileged")),
                              **({"user": self.config["User"]} if self.config.get("User") else {})},
        }


class ExecService:
    """Exec instances of a daemon's containers."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._execs: dict[str, Exec] = {}

    def _running_container(self, ref: str) -> dict[str, Any]:
        record = self.containers.store.get(self.containers.store.resolve(ref))
        state = record["State"]
        if state["Restarting"]:
            raise Conflict(f"Container {record['ID']} is restarting, wait until the container is running")
        if not state["Running"]:
            raise Conflict(f"container {record['ID']} is not running")  # dockerd's texts, cases included
        if state["Paused"]:
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")
        return record

    def get(self, exec_id: str) -> Exec:
        """The exec instance exec_id (404 with Docker's text)."""
        found = self._execs.get(exec_id)
        if found is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return found

    def create(self, ref: str, body: dict[str, Any]) -> str:
        """POST /containers/{id}/exec: the new exec's ID."""
        record = self._running_container(ref)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidParameter("No exec command specified")
        try:
            detach.parse_keys(body.get("DetachKeys") or detach.DEFAULT_KEYS)
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        exec_id = new_id()
        self._execs[exec_id] = Exec(exec_id, record["ID"], {**body, "Cmd": list(cmd)})
        return exec_id

    def ids_of(self, container_id: str) -> list[str]:
        """The IDs of a container's exec instances (inspect's ExecIDs)."""
        return [ex.id for ex in list(self._execs.values()) if ex.container_id == container_id]

    def inspect(self, exec_id: str) -> dict[str, Any]:
        """GET /exec/{id}/json."""
        return self.get(exec_id).inspect()

    def _process(self, ex: Exec) -> dict[str, Any]:
        """The OCI process for ex: the container's, with the exec's settings applied."""
        directory = self.containers.store.directory(ex.container_id)
        with open(os.path.join(directory, "bundle", "config.json")) as f:
            proc = json.load(f)["process"]
        cfg = ex.config
        proc.pop("consoleSize", None)
        if cfg.get("Tty") and any(cfg.get("ConsoleSize") or ()):
            proc["consoleSize"] = {"height": cfg["ConsoleSize"][0], "width": cfg["ConsoleSize"][1]}
        proc["args"] = cfg["Cmd"]
        proc["terminal"] = bool(cfg.get("Tty"))
        proc["env"] = merge_env(proc.get("env") or [], list(cfg.get("Env") or []))
        if cfg.get("User"):
            proc["user"] = resolve_user(os.path.join(directory, "rootfs"), cfg["User"])
        if cfg.get("WorkingDir"):
            proc["cwd"] = cfg["WorkingDir"]
        if cfg.get("Privileged"):
            caps = all_caps()
            proc["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
        return proc

    def startable(self, exec_id: str) -> Exec:
        """The exec, if it can start now: not run yet, its container running (404 / 409 otherwise)."""
        ex = self.get(exec_id)
        if ex.started:
            raise Conflict(f"Exec {exec_id} has already run")
        self._running_container(ex.container_id)
        return ex

    def _prepare(self, exec_id: str) -> tuple[Exec, str]:
        ex = self.startable(exec_id)
        try:
            process = self._process(ex)
        except ContainerError:
            ex.exit_code = 126
            raise
        workdir = os.path.join(self.containers.exec_root, "execs", exec_id[:12])
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        write_atomic(os.path.join(workdir, "process.json"), json.dumps(process), 0o600)
        ex.started = True
        return ex, workdir

    async def start(self, exec_id: str, stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
                    raw: bool | None = None) -> None:
        """POST /exec/{id}/start: run the process; pipe its stdio through stream (None: detached,
        output dropped), raw or in 8-byte frames as the start request's Tty says (as dockerd; the
        exec's own Tty when None). Returns once it exited and its output was sent. A process that
        cannot be set up (unknown user, say) leaves ExitCode 126, as dockerd."""
        ex, workdir = self._prepare(exec_id)
        tty = bool(ex.config.get("Tty"))
        raw = tty if raw is None else raw
        argv = self._argv(ex.container_id, workdir)
        console = os.path.join(workdir, "console.sock") if tty else None
        if console:
            argv += ["--console-socket", console]
        want_stdin = stream is not None and bool(ex.config.get("AttachStdin"))
        ex.running = True
        try:
            if console:
                await self._run_tty(ex, workdir, [*argv, ex.container_id], console, stream, want_stdin, raw)
            else:
                await self._run_pipes(ex, workdir, [*argv, ex.container_id], stream, want_stdin, raw)
        finally:
            ex.running = False
            ex.master = None
            shutil.rmtree(workdir, ignore_errors=True)

    def _argv(self, cid: str, workdir: str) -> list[str]:
        """`RUNTIME exec` of the process prepared in workdir (the container ID still to append)."""
        return self.containers.runtime_argv(cid, "exec", "--process", os.path.join(workdir, "process.json"),
                                            "--pid-file", os.path.join(workdir, "pid"))

    def run(self, ref: str, cmd: list[str], timeout: float, limit: int = 4096) -> tuple[int, bytes] | None:
        """Run cmd in the running container ref (blocking): (exit code, the first limit bytes of
        stdout+stderr); exit code -1 when it ran out of time (the process is then killed); None when
        the container is not running or is paused. Health probes use this."""
        try:
            exec_id = self.create(ref, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
            ex, workdir = self._prepare(exec_id)
        except (Conflict, NotFound):
            return None
        ex.running = True
        argv = [*self._argv(ex.container_id, workdir), ex.container_id]
        forkserver = self.containers.forkserver
        try:
            if forkserver is not None:
                with contextlib.suppress(ForkServerUnavailable):
                    ex.exit_code, out = self._run_forked(ex, workdir, argv, timeout, limit)
                    return ex.exit_code, out
            return self._run_subprocess(ex, workdir, argv, timeout, limit)
        finally:
            ex.running = False
            self._execs.pop(exec_id, None)
            shutil.rmtree(workdir, ignore_errors=True)

    def _run_forked(self, ex: Exec, workdir: str, argv: list[str], timeout: float, limit: int) -> tuple[int, bytes]:
        """run() through the fork server; the output goes to a memory file."""
        assert self.containers.forkserver is not None
        out = os.memfd_create("exec-output", os.MFD_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            spawned = self.containers.forkserver.spawn(argv, null, out, out,
                                                       self.containers.runtime_in_process(ex.container_id))
            try:
                code = spawned.wait(timeout)
            except TimeoutError:
                self._kill_process(workdir)  # see _run_subprocess
                try:
                    spawned.wait(5)
                except TimeoutError:
                    spawned.kill()
                    spawned.wait()
                code = -1
            return code, os.pread(out, limit, 0)
        finally:
            os.close(out)
            os.close(null)

    def _kill_process(self, workdir: str) -> None:
        """SIGKILL the exec'd process (its runtime, the parent, then reaps it and exits)."""
        with contextlib.suppress(OSError):
            if pid := self._read_pid(workdir):
                os.kill(pid, 9)

    def _run_subprocess(self, ex: Exec, workdir: str, argv: list[str], timeout: float,
                        limit: int) -> tuple[int, bytes]:
        """run() as a new process (no fork server)."""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = proc.communicate(timeout=timeout)
            ex.exit_code = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
            return ex.exit_code, out[:limit]
        except subprocess.TimeoutExpired:
            # SIGKILL the process; the runtime (its parent) then reaps it and exits. Killing the
            # runtime instead would orphan it, and a pid namespace's init cannot finish exiting
            # before every process of the namespace has been reaped.
            self._kill_process(workdir)
            try:
                out, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            return -1, out[:limit]

    def _read_pid(self, workdir: str) -> int:
        with contextlib.suppress(OSError, ValueError), open(os.path.join(workdir, "pid")) as f:
            return int(f.read().strip())
        return 0

    async def _run_pipes(self, ex: Exec, workdir: str, argv: list[str],
                         stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, want_stdin: bool,
                         raw: bool) -> None:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        theirs, ours = [null], []
        try:
            stdin_r = stdout_w = stderr_w = null
            if want_stdin:
                stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
                theirs.append(stdin_r)
                ours.append(stdin_w)
            if stream is not None:
                out_r, stdout_w = os.pipe2(os.O_CLOEXEC)
                err_r, stderr_w = os.pipe2(os.O_CLOEXEC)
                theirs += [stdout_w, stderr_w]
                ours += [out_r, err_r]
            proc = await self._spawn(ex.container_id, argv, stdin_r, stdout_w, stderr_w)
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        pumps, feeder = [], None
        if stream is not None:
            reader, writer = stream
            pumps = [asyncio.create_task(_copy(await _pipe_reader(out_r), writer, None if raw else STDOUT)),
                     asyncio.create_task(_copy(await _pipe_reader(err_r), writer, None if raw else STDERR))]
            feeder = asyncio.create_task(_feed_pipe(reader, await _pipe_writer(stdin_w))) if want_stdin else None
        await self._settle(ex, workdir, proc, pumps, feeder)

    async def _spawn(self, cid: str, argv: list[str], stdin: int, stdout: int, stderr: int) -> Process:
        """Start a runtime command through the daemon's fork server (a fork of a pre-imported
        interpreter), or as a new process when there is none."""
        forkserver = self.containers.forkserver
        if forkserver is not None:
            in_process = self.containers.runtime_in_process(cid)
            try:
                return ForkedProcess(await forkserver.spawn_async(argv, stdin, stdout, stderr, in_process))
            except ForkServerUnavailable:
                pass
            except ForkServerError as e:
                raise ContainerError(f"exec failed: {e}") from None
        return await asyncio.create_subprocess_exec(*argv, stdin=stdin, stdout=stdout, stderr=stderr)

    async def _settle(self, ex: Exec, workdir: str, proc: Process,
                      pumps: list[asyncio.Task[None]], feeder: asyncio.Task[None] | None) -> None:
        """Wait for the process and its output; record the exit code. The process's pid (exec
        inspect) is read from the runtime's pid file while it starts, without delaying the end."""
        ended = asyncio.ensure_future(proc.wait())
        try:
            delay = 0.001
            for _ in range(200):
                ex.pid = self._read_pid(workdir)
                if ex.pid or ended.done():
                    break
                await asyncio.wait([ended], timeout=delay)
                delay = min(delay * 2, 0.02)
            code = await ended
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            if not ended.done():
                ended.cancel()
            if feeder is not None:
                feeder.cancel()
        ex.exit_code = 128 - code if code < 0 else code

    async def _run_tty(self, ex: Exec, workdir: str, argv: list[str], console: str,
                       stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, want_stdin: bool,
                       raw: bool) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(console)
        listener.listen(1)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            proc = await self._spawn(ex.container_id, argv, null, null, null)
        except BaseException:
            listener.close()
            raise
        finally:
            os.close(null)
        try:
            master = await asyncio.wait_for(asyncio.to_thread(_receive_master, listener), CONSOLE_TIMEOUT)
        except (OSError, TimeoutError) as e:
            proc.kill()
            await proc.wait()
            raise ContainerError(f"exec failed: no terminal from the runtime: {e}") from None
        finally:
            listener.close()
        ex.master = master
        try:
            loop = asyncio.get_running_loop()
            pty_out = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(pty_out),
                                         os.fdopen(os.dup(master), "rb", buffering=0))
            pumps, feeder = [], None
            if stream is not None:
                reader, writer = stream
                pumps = [asyncio.create_task(_copy(pty_out, writer, None if raw else STDOUT))]
                watcher = detach.DetachWatcher(detach.parse_keys(ex.config.get("DetachKeys") or detach.DEFAULT_KEYS))
                feeder = asyncio.create_task(_feed_fd(reader, master, watcher, writer)) if want_stdin else None
            await self._settle(ex, workdir, proc, pumps, feeder)
        finally:
            os.close(master)

    def resize(self, exec_id: str, height: int, width: int) -> None:
        """POST /exec/{id}/resize (tty execs while they run)."""
        ex = self.get(exec_id)
        if ex.master is None:
            raise ContainerError(f"exec {exec_id} is not running with a tty")
        fcntl.ioctl(ex.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class Process(Protocol):
    """A started runtime command: an asyncio subprocess, or a ForkedProcess."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


class ForkedProcess:
    """A runtime command forked by the fork server, as the exec code uses a process."""

    def __init__(self, spawned: Spawned) -> None:
        self._spawned = spawned
        self.pid = spawned.pid

    @property
    def returncode(self) -> int | None:
        return self._spawned.returncode

    async def wait(self) -> int:
        return await self._spawned.wait_async()

    def kill(self) -> None:
        self._spawned.kill()


async def _pipe_reader(fd: int) -> asyncio.StreamReader:
    """An asyncio reader of our end of a pipe (the descriptor is taken over)."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                       os.fdopen(fd, "rb", buffering=0))
    return reader


async def _pipe_writer(fd: int) -> asyncio.StreamWriter:
    """An asyncio writer to our end of a pipe (the descriptor is taken over)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(fd, "wb", buffering=0))
    return asyncio.StreamWriter(transport, protocol, None, loop)


def _receive_master(listener: socket.socket) -> int:
    """Accept the runtime's connection and take the pty master it sends."""
    listener.settimeout(CONSOLE_TIMEOUT)
    conn, _ = listener.accept()
    with conn:
        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    if not fds:
        raise OSError("no pty master received")
    return fds[0]


async def _copy(source: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: int | None) -> None:
    """source to the client, raw (stream None) or in frames of that stream number; once the client
    detached or went away, source is still drained (the process must not block on its output)."""
    with contextlib.suppress(OSError):  # EIO: the pty's last slave closed
        while data := await source.read(CHUNK):
            if writer.is_closing():
                continue
            writer.write(data if stream is None else frame(stream, data))
            with contextlib.suppress(ConnectionError):
                await writer.drain()


async def _feed_pipe(reader: asyncio.StreamReader, pipe: asyncio.StreamWriter | None) -> None:
    assert pipe is not None
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(CHUNK):
            pipe.write(data)
            await pipe.drain()
        pipe.close()


async def _feed_fd(reader: asyncio.StreamReader, fd: int, watcher: detach.DetachWatcher,
                   writer: asyncio.StreamWriter) -> None:
    """Client input to the pty until EOF or the detach keys (which close the client's connection;
    the process keeps running)."""
    while data := await reader.read(CHUNK):
        data, detached = watcher.feed(data)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                await asyncio.sleep(0.005)
        if detached:
            writer.close()
            return
