"""ContainerService: Docker's container lifecycle over the image store, dockyard-shim and an OCI
runtime. Blocking methods; the API server calls them from worker threads."""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dockyard.engine import runtimes as runtimes_mod
from dockyard.engine.containers import mounts, policy, repair, resources, security, spec, subpaths, views
from dockyard.engine.containers.errors import (
    Conflict,
    ContainerError,
    InvalidParameter,
    NotFound,
    NotImplementedByDriver,
    NotModified,
)
from dockyard.engine.containers.etcfiles import write_atomic, write_etc_files
from dockyard.engine.containers.logs import LogOptions, parse_time, read_logs
from dockyard.engine.containers.names import new_id
from dockyard.engine.containers.store import ContainerStore, Record
from dockyard.engine.runtimes import Runtime
from dockyard.engine.volumes import VolumeService
from dockyard.image.errors import NoSuchImage
from dockyard.image.snapshot import Mount, mount_all, unmount
from dockyard.image.snapshot.base import NotFound as SnapshotNotFound
from dockyard.image.snapshot.base import SnapshotError
from dockyard.image.snapshot.mount import mounts_under, volatile
from dockyard.network.ports import PortError, port_range
from dockyard.shim.client import ShimClient, ShimError, is_own_runtime, launch_shim, read_exit
from dockyard.shim.forkserver import ForkServer, ForkServerUnavailable
from dockyard.shim.logs import rfc3339nano
from dockyard.shim.oom import oom_killed

DEFAULT_STOP_TIMEOUT = 10
LOG_DRIVERS = ("json-file", "none")
DEFAULT_LOG_ROTATION = (10 * 1024 * 1024, 3)  # json-file max-size, max-file when none is configured
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


class PendingAttach:
    """An attach registered with the service: wait() gives (record, shim stream socket) once the
    container runs; cancel() drops it when its client went away first."""

    def __init__(self, service: ContainerService, record: Record,
                 slot: queue.Queue[socket.socket | Exception]) -> None:
        self.service, self.record, self.slot = service, record, slot

    def wait(self) -> tuple[Record, socket.socket]:
        found = self.slot.get()
        if isinstance(found, Exception):
            raise found
        return self.record, found

    def cancel(self) -> None:
        self.service._drop_attach_waiter(self.record["ID"], self.slot)
        try:
            found = self.slot.get_nowait()
        except queue.Empty:  # release a wait() still blocked (harmless after a completed one)
            self.slot.put_nowait(ContainerError("the attach was cancelled"))
            return
        if isinstance(found, socket.socket):
            found.close()


def _size(text: str) -> int:
    """"10m" -> bytes."""
    text = text.strip().lower()
    text = text[:-1] if len(text) > 1 and text.endswith("b") and not text[-2].isdigit() else text
    unit = text[-1] if text and text[-1] in _UNITS else ""
    try:
        return int(float(text[:-1] if unit else text) * _UNITS[unit])
    except ValueError:
        raise InvalidParameter(f"invalid size: {text!r}") from None


def _check_port_bindings(bindings: dict[str, Any]) -> None:
    """dockerd's check of PortBindings: a container port is one number, a host port a number or
    a range ("" for any), each at most 65535."""
    for key, values in bindings.items():
        port = key.partition("/")[0]
        if not (port.isdigit() and int(port) <= 65535):
            raise InvalidParameter(f'invalid port specification: "{port}"')
        for binding in values or []:
            host_port = (binding or {}).get("HostPort") or ""
            try:
                port_range(host_port)
            except PortError:
                raise InvalidParameter(f'invalid port specification: "{host_port}"') from None


class ContainerService:
    """Containers of one daemon: records in <data_root>, shims and runtime state in <exec_root>."""

    def __init__(self, data_root: str, image_store: Any, exec_root: str, volumes: VolumeService | None = None,
                 runtimes: dict[str, Runtime] | None = None, default_runtime: str = runtimes_mod.DEFAULT,
                 log_config: dict[str, Any] | None = None, default_ulimits: list[dict[str, Any]] | None = None,
                 network: Any = None) -> None:
        self.images = image_store
        self.volumes = volumes or VolumeService(data_root)
        self.network = network  # engine.networks.endpoints.ContainerNetworking; None: loopback only
        self.forkserver: ForkServer | None = None  # forks shims and runtime commands; None: new interpreters
        self.store = ContainerStore(data_root)
        self.exec_root = exec_root
        self.runtimes = runtimes or {runtimes_mod.DEFAULT: Runtime(runtimes_mod.DEFAULT, runtimes_mod.own_runtime())}
        self.default_runtime = default_runtime
        self.log_config = log_config or {"Type": "json-file", "Config": {}}  # daemon.json log-driver, log-opts
        self.default_ulimits = default_ulimits or []  # daemon.json default-ulimits
        for rt in self.runtimes.values():
            os.makedirs(rt.root(exec_root), mode=0o700, exist_ok=True)
        # Each container's lifecycle (start, exit, stop, rm, pause, update, attach, connect...)
        # runs under that container's own lock, so one container's slow start holds up no other.
        # Lock order: a container's lock, then _net_lock (its network work: the network code is
        # not thread-safe), then _lock, held only briefly (the maps below, waits' condition).
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._net_lock = threading.RLock()
        self._container_locks: dict[str, threading.RLock] = {}
        self._busy = 0  # operations holding a container's lock (close waits for them)
        self._exits: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (exit count, wait result)
        self._removing: set[str] = set()  # removal begun: its exit is not handled any more
        self._removed: set[str] = set()  # removal done (a subset of _removing)
        self._graph_data_of: dict[str, dict[str, str] | None] = {}  # inspect's GraphDriver.Data, fixed per container
        self._closed = False
        self._shutting_down = False  # the daemon stops its containers: no restart policy applies
        self.on_event: Callable[[Record, str, dict[str, str]], None] | None = None  # die, destroy
        self.on_running: Callable[[str, bool], None] | None = None  # a container runs (True) or stopped
        self._attach_waiters: dict[str, list[tuple[tuple[bool, bool, bool, bool], queue.Queue]]] = {}

    @contextlib.contextmanager
    def locked(self, cid: str) -> Iterator[None]:
        """Hold container cid's lock (reentrant): its state changes happen one at a time. (A
        removed container's late callers, e.g. its exit watcher, get a lock of their own.)"""
        with self._lock:
            lock = self._container_locks.get(cid)
            if lock is None:
                lock = threading.RLock()
                if cid not in self._removed:
                    self._container_locks[cid] = lock
            self._busy += 1
        try:
            with lock:
                yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def _notify(self, record: Record, action: str, **extra: str) -> None:
        if self.on_event is not None:
            self.on_event(record, action, extra)

    # -- helpers ----------------------------------------------------------------------------------

    def _record(self, ref: str) -> Record:
        return self.store.get(self.store.resolve(ref))

    def _shim_dir(self, cid: str) -> str:
        return os.path.join(self.exec_root, cid)

    def _subpath_dir(self, cid: str) -> str:
        return os.path.join(self.exec_root, "subpaths", cid)

    def _rootfs(self, cid: str) -> str:
        return os.path.join(self.store.directory(cid), "rootfs")

    def oci_runtime(self, cid: str) -> Runtime:
        """The OCI runtime a container runs with (HostConfig.Runtime; the default for a record
        that is gone)."""
        try:
            name = self.store.get(cid)["HostConfig"].get("Runtime") or self.default_runtime
        except NotFound:
            name = self.default_runtime
        return self.runtimes.get(name) or self.runtimes[self.default_runtime]

    def runtime_in_process(self, cid: str) -> bool:
        """Whether cid's runtime is this project's dockyard-runtime (the fork server then runs its
        commands in forks of its own interpreter)."""
        return is_own_runtime(self.oci_runtime(cid).path, sys.executable)

    def runtime_argv(self, cid: str, *args: str) -> list[str]:
        """The command line of a runtime subcommand for a container: path, runtimeArgs, --root."""
        rt = self.oci_runtime(cid)
        return [rt.path, *rt.args, "--root", rt.root(self.exec_root), *args]

    def _runtime(self, cid: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`RUNTIME args... ID` for container cid (forked by the fork server when there is one)."""
        argv = self.runtime_argv(cid, *args, cid)
        proc = None
        if self.forkserver is not None:
            with contextlib.suppress(ForkServerUnavailable):
                proc = self.forkserver.run(argv, self.runtime_in_process(cid), timeout=60)
        if proc is None:
            proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        if check and proc.returncode:
            raise ContainerError(proc.stderr.strip() or f"{argv[0]} {args[0]} failed")
        return proc

    def _delete_runtime_state(self, cid: str) -> None:
        """`runtime delete --force` of a container the runtime still knows (runc, crun and
        dockyard-runtime all keep <root>/<id>); no runtime process when there is nothing to delete."""
        if os.path.lexists(os.path.join(self.oci_runtime(cid).root(self.exec_root), cid)):
            self._runtime(cid, "delete", "--force", check=False)

    def _save(self, record: Record) -> None:
        with self._changed:
            self.store.save(record)
            self._changed.notify_all()

    def stop_all(self) -> None:
        """Daemon shutdown without live restore: stop every running container (in parallel; no
        restart policy applies, and restart policies still count them as not stopped by hand)."""
        self._shutting_down = True
        running = [r["ID"] for r in self.store.all() if r["State"]["Running"]]
        threads = [threading.Thread(target=self._stop_for_shutdown, args=(cid,)) for cid in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _stop_for_shutdown(self, cid: str) -> None:
        try:
            self.stop(cid, by_user=False)
        except (ContainerError, NotFound, NotModified):
            pass

    def close(self) -> None:
        """Stop acting on exits (the daemon is going away; containers keep running), once the
        operations under way are done."""
        with self._changed:
            while self._busy:
                self._changed.wait()
            self._closed = True
            self.store.close()
            self.volumes.close()

    # -- create -----------------------------------------------------------------------------------

    def create(self, body: dict[str, Any], name: str | None = None) -> str:
        """POST /containers/create: record the container, prepare its rootfs; returns the ID."""
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig", "Runtime")}
        hc = dict(body.get("HostConfig") or {})
        # docker-py's create_container(runtime=) sends it beside the Config's fields (dockerd drops
        # it, which shows only while its default runtime is the one asked for): taken as HostConfig's
        legacy = body.get("Runtime") if isinstance(body.get("Runtime"), str) else None
        hc["Runtime"] = hc.get("Runtime") or legacy or self.default_runtime
        if not config.get("Image"):
            raise InvalidParameter("Config cannot be empty in order to create a container")
        try:
            image_id = self.images.resolve(config["Image"])
        except NoSuchImage:
            raise NotFound(f"No such image: {config['Image']}") from None
        merged = spec.merge_config(config, self.images.config(image_id).get("config") or {})
        if not (hc.get("LogConfig") or {}).get("Type"):  # the daemon's driver, and its options if none given
            given = (hc.get("LogConfig") or {}).get("Config")
            hc["LogConfig"] = {"Type": self.log_config["Type"], "Config": dict(given or self.log_config["Config"])}
        self._validate_host_config(hc)
        if hc["Runtime"] not in self.runtimes:
            raise InvalidParameter(f"unknown or invalid runtime name: {hc['Runtime']}")
        if self.network is not None:
            network_settings = self.network.prepare(merged, hc, body.get("NetworkingConfig"))
        elif hc["NetworkMode"] not in ("default", "bridge", "none", "host"):
            raise InvalidParameter(f"network {hc['NetworkMode']} not found")
        planned = mounts.plan(merged, hc, lambda ref: self._record(ref)["Mounts"] or [])
        cid = new_id()
        merged["Hostname"] = merged.get("Hostname") or cid[:12]
        directory = self.store.directory(cid)
        path, args = spec.path_and_args(merged)
        record: Record = {
            "ID": cid, "Created": rfc3339nano(), "Path": path, "Args": args, "Config": merged, "HostConfig": hc,
            "Image": image_id, "State": views.initial_state(), "RestartCount": 0, "Mounts": [],
            "LogPath": "" if hc["LogConfig"].get("Type") == "none" else os.path.join(directory, f"{cid}-json.log"),
            "ResolvConfPath": os.path.join(directory, "resolv.conf"),
            "HostnamePath": os.path.join(directory, "hostname"), "HostsPath": os.path.join(directory, "hosts"),
            "HasBeenStartedBefore": False, "HasBeenManuallyStopped": False,
        }
        if self.network is not None:
            record["NetworkSettings"] = network_settings
            record["LegacyLinks"] = self.network.links.register(hc)
        os.makedirs(os.path.join(directory, "rootfs"), mode=0o700)
        try:
            points = self.volumes.attach(cid, planned)
            record["Mounts"] = mounts.public(points)
            self.store.add(record, name)
            self.images.prepare_rootfs(cid, image_id)
            self._populate_volumes(cid, points)
            write_etc_files(directory, merged["Hostname"], merged, hc)
        except BaseException:
            self._destroy(cid, volumes=True)
            raise
        return cid

    def _populate_volumes(self, cid: str, points: list[dict[str, Any]]) -> None:
        """Docker's copy-up at create: the image's content goes into the empty volumes."""
        if self.volumes.wants_population(points):  # the image's files are only read: volatile
            mount_all(volatile(self.images.snapshots.mounts(cid)), self._rootfs(cid))
            try:
                self.volumes.populate(cid, self._rootfs(cid), points)
            finally:
                unmount(self._rootfs(cid))

    @staticmethod
    def _validate_host_config(hc: dict[str, Any]) -> None:
        resources.validate(hc)
        policy.validate_restart_policy(hc)
        security.capabilities(hc)
        security.parse_security_opts(hc.get("SecurityOpt"))
        if labels := security.label_opts(hc):
            hc["SecurityOpt"] = [*(hc.get("SecurityOpt") or []), *labels]
        _check_port_bindings(hc.get("PortBindings") or {})
        log = hc.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        if (log.get("Type") or "json-file") not in LOG_DRIVERS:
            # dockerd's text at create: an unknown driver is looked up as a logging plugin
            raise InvalidParameter(f'error looking up logging plugin {log["Type"]}: plugin "{log["Type"]}" not found')
        hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        hc["ShmSize"] = hc.get("ShmSize") or mounts.DEFAULT_SHM_SIZE
        hc["NetworkMode"] = hc.get("NetworkMode") or "default"

    # -- start ------------------------------------------------------------------------------------

    def start(self, ref: str) -> None:
        """POST /containers/{id}/start."""
        cid = self.store.resolve(ref)
        with self.locked(cid):
            record = self.store.get(cid)
            state = record["State"]
            if state["Paused"]:
                raise Conflict("cannot start a paused container, try unpause instead")
            if state["Running"] and not state["Restarting"]:
                raise NotModified("container already started")
            record["HasBeenManuallyStopped"] = False
            self._start(record)

    def _start(self, record: Record) -> None:
        cid = record["ID"]
        rootfs = self._rootfs(cid)
        shim_dir = self._shim_dir(cid)
        try:
            if not mounts_under(rootfs):
                mount_all(self._rootfs_mounts(record), rootfs)
            etc = {f"/etc/{n}": os.path.join(self.store.directory(cid), n) for n in ("hostname", "hosts", "resolv.conf")}
            mounts.make_bind_sources(record["HostConfig"])
            self.volumes.activate(cid, record["Mounts"], announce=True)
            netns, link_env = None, []
            if self.network is not None:
                with self._net_lock:
                    netns, link_env = self.network.setup(record), self.network.link_env(record)
            subpaths.release(self._subpath_dir(cid))  # a killed daemon's leftovers
            points = subpaths.stage(record["Mounts"], record["HostConfig"], self._subpath_dir(cid))
            oci = spec.build_spec(cid, record["Config"], self._with_default_ulimits(record["HostConfig"]), rootfs,
                                  etc, points, netns, link_env)
            bundle = os.path.join(self.store.directory(cid), "bundle")
            os.makedirs(bundle, exist_ok=True)
            write_atomic(os.path.join(bundle, "config.json"), json.dumps(oci), 0o600)
            self._delete_runtime_state(cid)
            shutil.rmtree(shim_dir, ignore_errors=True)
            size, files = self._log_rotation(record["HostConfig"])
            rt = self.oci_runtime(cid)
            info = launch_shim(cid, bundle, shim_dir, rt.path, record["LogPath"] or os.devnull,
                               runtime_root=rt.root(self.exec_root),
                               runtime_args=rt.args, stdin=bool(record["Config"].get("OpenStdin")),
                               tty=bool(record["Config"].get("Tty")), log_max_size=size, log_max_file=files,
                               delete_on_exit=True, start=not self._attach_waiters.get(cid),
                               forkserver=self.forkserver)
            subpaths.release(self._subpath_dir(cid))  # created: the container holds its own mounts
            if info.started_at is None:  # attach requests wait: connected while it is created, then started
                info.started_at = (self._serve_attach_waiters(cid, start=True)
                                   or ShimClient(shim_dir).start()["started_at"])
        except BaseException as e:
            subpaths.release(self._subpath_dir(cid))
            self._serve_attach_waiters(cid, ContainerError(str(e)))
            self._delete_runtime_state(cid)
            if self.network is not None:
                with self._net_lock:
                    self.network.teardown(record)
            unmount(rootfs)
            self.volumes.deactivate(cid, announce=True)
            record["State"].update(Status="created" if not record["HasBeenStartedBefore"] else "exited",
                                   Running=False, Restarting=False, Pid=0, ExitCode=128, Error=str(e))
            self._save(record)
            if record["HostConfig"].get("AutoRemove"):
                # As Docker: a --rm container that cannot start is removed (its `wait removed` returns).
                self._count_exit(cid, 128)
                self._remove(cid, volumes=True)
            raise ContainerError(str(e)) from None if isinstance(e, ShimError) else e
        record["State"].update(Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False,
                               Dead=False, Pid=info.pid, ExitCode=0, Error="",
                               StartedAt=info.started_at)
        record["HasBeenStartedBefore"] = True
        self._save(record)
        self._notify(record, "start")  # before the watcher can report the exit
        self._watch(cid, shim_dir)

    def _rootfs_mounts(self, record: Record) -> list[Mount]:
        """The container's root filesystem mounts; volatile for a --rm container (as Podman
        does): its writable layer is thrown away at exit, so no unmount waits for a sync."""
        found = self.images.snapshots.mounts(record["ID"])
        return volatile(found) if record["HostConfig"].get("AutoRemove") else found

    def _with_default_ulimits(self, hc: dict[str, Any]) -> dict[str, Any]:
        """hc with the daemon's default ulimits for the names the container does not set."""
        own = {u.get("Name") for u in hc.get("Ulimits") or []}
        extra = [u for u in self.default_ulimits if u.get("Name") not in own]
        return {**hc, "Ulimits": [*(hc.get("Ulimits") or []), *extra]} if extra else hc

    @staticmethod
    def _log_rotation(hc: dict[str, Any]) -> tuple[int, int]:
        opts = (hc.get("LogConfig") or {}).get("Config") or {}
        if (hc.get("LogConfig") or {}).get("Type") == "none":
            return -1, 1
        if not opts:
            return DEFAULT_LOG_ROTATION
        size = _size(opts["max-size"]) if opts.get("max-size") else -1
        return size, int(opts.get("max-file") or 1)

    # -- exits ------------------------------------------------------------------------------------

    def _watch(self, cid: str, shim_dir: str) -> None:
        if self.on_running is not None:
            self.on_running(cid, True)

        def run() -> None:
            try:
                result = ShimClient(shim_dir, timeout=None).wait()
            except (ShimError, OSError):
                result = read_exit(shim_dir) or {"exit_code": 255}
            self._on_exit(cid, shim_dir, result)

        # _thread: threading.Thread.start() would wait until the new thread runs (a scheduler
        # hand-off on every container start; milliseconds on a loaded host)
        _thread.start_new_thread(run, ())

    def _on_exit(self, cid: str, shim_dir: str, result: dict[str, Any]) -> None:
        """Record an exit; then remove (AutoRemove) or restart (policy) the container."""
        with self.locked(cid):
            record = self._live_record(cid)
            if record is None:
                return
            if record["State"]["Pid"] == 0 or self._shim_dir(cid) != shim_dir:
                return  # this exit was handled already (by reconcile or a restart)
            if self.on_running is not None:
                self.on_running(cid, False)
            hc = record["HostConfig"]
            code = int(result.get("exit_code", 255))
            deleting = None
            if result.get("deleted"):  # the shim deleted it, its cgroup with it (the OOM count noted first)
                oom = bool(result.get("oom_killed"))
            else:
                oom = oom_killed(spec.cgroups_path(cid, hc))
                # the runtime's delete (a forked command) overlaps the unmount, whose sync of the
                # host's filesystem can take tens of milliseconds on a busy host
                deleting = threading.Thread(target=self._delete_runtime_state, args=(cid,),
                                            name=f"delete-{cid[:12]}")
                deleting.start()
            try:
                if self.network is not None:
                    with self._net_lock:
                        self.network.teardown(record)
                unmount(self._rootfs(cid))
                self.volumes.deactivate(cid, announce=True)
            finally:
                if deleting is not None:
                    deleting.join()
            state = record["State"]
            finished = result.get("exited_at") or rfc3339nano()
            ran_for = max(0.0, time.time() - _parse_epoch(state["StartedAt"]))
            state.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0, ExitCode=code,
                         OOMKilled=oom, FinishedAt=finished)
            self._count_exit(cid, code)
            self._notify(record, "die", exitCode=str(code))
            restart = not self._shutting_down and policy.should_restart(
                hc, code, record.get("RestartCount", 0), record["HasBeenManuallyStopped"])
            if restart:
                state.update(Status="restarting", Restarting=True, Running=True)
                record["RestartCount"] = record.get("RestartCount", 0) + 1
                record["Backoff"] = policy.next_backoff(record.get("Backoff", 0.0), ran_for)
            self._save(record)
            if hc.get("AutoRemove"):
                self._remove(cid, volumes=True)
                return
        if restart:
            threading.Timer(record["Backoff"], self._restart_after_backoff, (cid,)).start()

    def _count_exit(self, cid: str, code: int) -> None:
        """One more exit of cid, with code, for its waits (notified by the record's next save)."""
        with self._lock:
            count = self._exits.get(cid, (0, {}))[0] + 1
            self._exits[cid] = (count, {"StatusCode": code, "Error": None})

    def _live_record(self, cid: str) -> Record | None:
        """The container's record, or None once the service closed or the container's removal began."""
        if self._closed or cid in self._removing:
            return None
        try:
            return self.store.get(cid)
        except NotFound:
            return None

    def _restart_after_backoff(self, cid: str) -> None:
        with self.locked(cid):
            record = self._live_record(cid)
            if record is None:
                return
            if record["State"]["Restarting"] and not record["HasBeenManuallyStopped"]:
                try:
                    self._start(record)
                except ContainerError:
                    pass  # recorded in State.Error

    # -- wait, stop, kill, restart, pause -----------------------------------------------------------

    def wait(self, ref: str, condition: str = "not-running", timeout: float | None = None,
             seen: int | None = None) -> dict[str, Any]:
        """POST /containers/{id}/wait: {"StatusCode", "Error"} once the condition holds. seen is
        exit_count() when the wait was registered (default: now); a later exit ends a next-exit wait."""
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            cid = self.wait_target(ref)
            if seen is None:
                seen = self.exit_count(cid)
            while True:
                done = self._wait_result(cid, condition, seen)
                if done is not None:
                    return done
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"container {cid[:12]} did not reach {condition!r}")
                self._changed.wait(remaining)

    def exit_count(self, cid: str) -> int:
        """How many exits of cid this daemon has recorded (what a wait registered now starts from)."""
        return self._exits.get(cid, (0, {}))[0]

    def wait_target(self, ref: str) -> str:
        """The ID a wait is for: a container's, or the full ID of one removed since the daemon
        started (a `run --rm` client may ask after its container is gone, e.g. under load)."""
        try:
            return self.store.resolve(ref)
        except NotFound:
            if ref in self._removing:
                return ref
            raise

    def _wait_result(self, cid: str, condition: str, seen: int) -> dict[str, Any] | None:
        count, last = self._exits.get(cid, (0, {}))
        if cid in self._removed:
            return last or {"StatusCode": 0, "Error": None} if condition == "removed" or count > seen else \
                {"StatusCode": -1, "Error": {"Message": "container removed"}}
        if condition == "removed":
            return None
        if count > seen:  # an exit since the call, even if a restart policy runs it again (as dockerd)
            return last
        if condition == "next-exit":
            return None
        try:
            state = self.store.get(cid)["State"]
        except NotFound:  # being removed: the removal's end answers
            return None
        if state["Running"]:
            return None
        return {"StatusCode": state["ExitCode"], "Error": None}

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None, by_user: bool = True) -> None:
        """POST /containers/{id}/stop: StopSignal, then SIGKILL after timeout seconds (by_user:
        restart policies then leave it stopped; a daemon shutdown's stop is not one)."""
        cid = self.store.resolve(ref)
        with self.locked(cid):
            record = self.store.get(cid)
            if not record["State"]["Running"]:
                raise NotModified("container already stopped")
            record["HasBeenManuallyStopped"] = by_user
            self._save(record)
            if record["State"]["Restarting"]:
                record["State"].update(Status="exited", Running=False, Restarting=False)
                self._save(record)
                return
        if timeout is None:
            timeout = record["Config"].get("StopTimeout")
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        sig = policy.parse_signal(signal or record["Config"].get("StopSignal"))
        self._signal(record, sig)
        try:
            self.wait(cid, "not-running", timeout=timeout if timeout >= 0 else None)
        except TimeoutError:
            self._signal(record, 9)
            self.wait(cid, "not-running")

    def _signal(self, record: Record, sig: int) -> None:
        if record["State"]["Paused"] and sig == 9:
            self._runtime(record["ID"], "resume", check=False)
        shim_dir = self._shim_dir(record["ID"])
        try:
            ShimClient(shim_dir).signal(sig)
        except (ShimError, OSError) as e:
            # the container may have exited meanwhile (its shim then refuses or is gone) before
            # the exit was recorded here: that is no failure to kill it
            if read_exit(shim_dir) is not None or self._stops_soon(record["ID"]):
                return
            raise ContainerError(f"Cannot kill container: {record['ID']}: {e}") from None

    def _stops_soon(self, cid: str, timeout: float = 2) -> bool:
        """Whether the container is recorded as not running (or is gone) within timeout seconds."""
        try:
            self.wait(cid, "not-running", timeout=timeout)
        except TimeoutError:
            return False
        except NotFound:
            pass
        return True

    def kill(self, ref: str, signal: str | int = "SIGKILL") -> None:
        """POST /containers/{id}/kill. As dockerd, a SIGKILL returns once the container has
        stopped (waiting up to 2 s); other signals return once sent."""
        sig = policy.parse_signal(signal, 9)
        cid = self.store.resolve(ref)
        with self.locked(cid):
            record = self.store.get(cid)
            if not record["State"]["Running"] or record["State"]["Restarting"]:
                raise Conflict(f"Container {record['ID']} is not running")
            record["HasBeenManuallyStopped"] = True
            self._save(record)
        self._signal(record, sig)
        if sig == 9:
            try:
                self.wait(record["ID"], "not-running", timeout=2)
            except (TimeoutError, NotFound):
                pass

    def restart(self, ref: str, timeout: int | None = None) -> None:
        """POST /containers/{id}/restart."""
        cid = self.store.resolve(ref)
        try:
            self.stop(cid, timeout)
        except NotModified:
            pass
        self.start(cid)

    def pause(self, ref: str) -> None:
        """POST /containers/{id}/pause (freezer)."""
        self._set_paused(ref, True)

    def unpause(self, ref: str) -> None:
        """POST /containers/{id}/unpause."""
        self._set_paused(ref, False)

    def _set_paused(self, ref: str, paused: bool) -> None:
        cid = self.store.resolve(ref)
        with self.locked(cid):
            record = self.store.get(cid)
            state = record["State"]
            if not state["Running"] or state["Restarting"]:
                raise Conflict(f"Container {cid} is not running")
            if state["Paused"] == paused:
                raise Conflict(f"Container {cid} is {'already' if paused else 'not'} paused")
            try:
                self._runtime(cid, "pause" if paused else "resume")
            except ContainerError as e:  # it exited (its shim may have deleted it), not recorded yet
                gone = not state.get("Pid") or not os.path.exists(f"/proc/{state['Pid']}")
                if gone or "not running" in str(e) or "does not exist" in str(e):
                    raise Conflict(f"Container {cid} is not running") from None
                raise
            state.update(Paused=paused, Status="paused" if paused else "running")
            self._save(record)

    def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        """POST /containers/{id}/update: new resource limits (applied at once to a running
        container through `runtime update`) and restart policy; Docker's warnings."""
        cid = self.store.resolve(ref)
        with self.locked(cid):
            record = self.store.get(cid)
            hc = resources.updated(record["HostConfig"], body)
            policy.validate_restart_policy(hc)
            if record["State"]["Running"] and not record["State"]["Restarting"]:
                path = os.path.join(self.store.directory(cid), "update.json")
                write_atomic(path, json.dumps(resources.linux_resources(hc)), 0o600)
                try:
                    self._runtime(cid, "update", "--resources", path)
                except ContainerError as e:
                    raise ContainerError(f"Cannot update container {cid}: {e}") from None
                finally:
                    os.unlink(path)
            record["HostConfig"] = hc
            self._save(record)
        return []

    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> tuple[Record, socket.socket]:
        """POST /containers/{id}/attach: (record, stream socket to the shim). A container that is not
        running is attached to at its next start, before its process runs (docker run attaches
        first). Stdin is closed on the client's EOF when the container has StdinOnce."""
        return self.prepare_attach(ref, stdin, stdout, stderr).wait()

    def prepare_attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> PendingAttach:
        """attach, registered now: a start that comes before PendingAttach.wait() is not missed
        (the API registers before its 101 answer lets the client start the container)."""
        cid = self.store.resolve(ref)
        with self.locked(cid):
            record = self.store.get(cid)
            config = record["Config"]
            # as dockerd: the client's EOF closes stdin only without a tty (a tty session can be detached and resumed)
            args = (stdin and bool(config.get("OpenStdin")), stdout, stderr,
                    bool(config.get("StdinOnce")) and not config.get("Tty"))
            slot: queue.Queue[socket.socket | Exception] = queue.Queue(1)
            if record["State"]["Running"] and not record["State"]["Restarting"]:
                slot.put(ShimClient(self._shim_dir(cid)).attach(*args))
            else:
                with self._lock:
                    self._attach_waiters.setdefault(cid, []).append((args, slot))
        return PendingAttach(self, record, slot)

    def _drop_attach_waiter(self, cid: str, slot: queue.Queue[socket.socket | Exception]) -> None:
        with self._lock:
            waiters = self._attach_waiters.get(cid, [])
            waiters[:] = [w for w in waiters if w[1] is not slot]

    def _serve_attach_waiters(self, cid: str, error: Exception | None = None, start: bool = False) -> str | None:
        """Connect the attach requests waiting for cid's start (or fail them with error). With start
        the last one's request starts the created container too: its start time (None when it could
        not attach; a failed start raises ShimError)."""
        with self._lock:
            waiters = self._attach_waiters.pop(cid, [])
        client = ShimClient(self._shim_dir(cid))
        for n, (args, slot) in enumerate(waiters, 1):
            if error is not None:
                slot.put(error)
                continue
            try:
                if start and n == len(waiters):
                    sock, started_at = client.attach_and_start(*args)
                    slot.put(sock)
                    return started_at
                slot.put(client.attach(*args))
            except (ShimError, OSError) as e:
                slot.put(ContainerError(f"cannot attach: {e}"))
                if start and n == len(waiters) and isinstance(e, ShimError):
                    raise  # the start failed
        return None

    def resize(self, ref: str, height: int, width: int) -> None:
        """POST /containers/{id}/resize."""
        record = self._record(ref)
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['ID']} is not running")
        try:
            ShimClient(self._shim_dir(record["ID"])).resize(width, height)
        except OSError:  # the shim is gone: the container just exited
            raise Conflict(f"Container {record['ID']} is not running") from None
        except ShimError as e:
            raise ContainerError(f"Cannot resize container {record['ID']}: {e}") from None

    # -- networks ---------------------------------------------------------------------------------

    def connect_network(self, net_ref: str, ref: str, cfg: dict[str, Any] | None) -> None:
        """POST /networks/{id}/connect, serialised with the container's start, exit and removal
        (they change the same record and endpoints; the lock order is always this service's
        locks, then the network service's)."""
        with self.locked(self.store.resolve(ref)), self._net_lock:
            self.network.connect(net_ref, ref, cfg)

    def disconnect_network(self, net_ref: str, ref: str, force: bool = False) -> None:
        """POST /networks/{id}/disconnect, serialised as connect_network."""
        with self.locked(self.store.resolve(ref)), self._net_lock:
            self.network.disconnect(net_ref, ref, force)

    @contextlib.contextmanager
    def build_sandbox(self, network: str, step_id: str, hostname: str, files_dir: str,
                      extra_hosts: list[str]) -> Iterator[tuple[str, str, str]]:
        """A build step's sandbox on a user-defined network (ContainerNetworking.step_record),
        set up and torn down under this service's network lock as a container's start and exit are;
        yields (network namespace path, /etc/hosts path, resolv.conf path)."""
        if self.network is None:
            raise InvalidParameter(f"network {network} not found")
        record = self.network.step_record(network, step_id, hostname, files_dir, extra_hosts)
        with self._net_lock:
            path = self.network.setup(record)
        try:
            yield path, record["HostsPath"], record["ResolvConfPath"]
        finally:
            with self._net_lock:
                self.network.teardown(record)
                self.network.forget(step_id)

    # -- remove, rename ---------------------------------------------------------------------------

    def remove(self, ref: str, force: bool = False, volumes: bool = False, link: bool = False) -> None:
        """DELETE /containers/{id}; volumes (`rm -v`) removes its anonymous volumes too; link
        removes the legacy link named ref ("parent/alias") instead."""
        if link and self.network is not None:
            self._unlink(ref)
            return
        cid = self.store.resolve(ref)
        with self.locked(cid):
            record = self.store.get(cid)
            state = record["State"]
            if state["Running"] and not force:
                what = "paused" if state["Paused"] else "restarting" if state["Restarting"] else "running"
                raise Conflict(f"You cannot remove a {what} container {cid}. Stop the container before "
                               "attempting removal or force remove")
            if state["Running"] and not state["Restarting"]:
                self._signal(record, 9)
            self._remove(cid, volumes)

    def _unlink(self, ref: str) -> None:
        """Drop the legacy link "parent/alias" from the parent's record, under the parent's lock."""
        try:
            parent = self.store.resolve(ref.lstrip("/").rpartition("/")[0])
        except NotFound:  # the network code gives Docker's texts for what is not there
            parent = None
        with self.locked(parent) if parent else contextlib.nullcontext(), self._net_lock:
            self.network.unlink(ref)

    def _remove(self, cid: str, volumes: bool = False) -> None:
        """Remove a container whose lock the caller holds; its waits end once it is gone."""
        with self._lock:
            self._removing.add(cid)
        client = ShimClient(self._shim_dir(cid), timeout=10)
        try:
            client.wait(timeout=10)
        except (ShimError, OSError):
            pass
        record = self.store.get(cid)
        self._serve_attach_waiters(cid, Conflict(f"container {cid} was removed"))
        self._destroy(cid, volumes)
        self._notify(record, "destroy")
        with self._changed:
            self._removed.add(cid)
            self._container_locks.pop(cid, None)
            self._changed.notify_all()

    def _destroy(self, cid: str, volumes: bool = False) -> None:
        """Delete every trace of a container: runtime state, mounts, snapshot, files, record,
        network endpoints, volume references (and its anonymous volumes when volumes)."""
        self._delete_runtime_state(cid)
        if self.network is not None:
            with self._net_lock:
                self.network.forget(cid)
        subpaths.release(self._subpath_dir(cid))
        unmount(self._rootfs(cid))
        self.images.remove_rootfs(cid)
        shutil.rmtree(self._shim_dir(cid), ignore_errors=True)
        shutil.rmtree(self.store.directory(cid), ignore_errors=True)
        self.store.delete(cid)
        self._graph_data_of.pop(cid, None)
        self.volumes.release(cid, volumes)

    def rename(self, ref: str, new_name: str) -> None:
        """POST /containers/{id}/rename."""
        cid = self.store.resolve(ref)
        with self.locked(cid):
            self.store.rename(cid, new_name)

    # -- logs, inspect, list ----------------------------------------------------------------------

    def logs(self, ref: str, stdout: bool = True, stderr: bool = True, since: float = 0, until: float = 0,
             tail: int | str | None = None, timestamps: bool = False, follow: bool = False
             ) -> Iterator[tuple[str, bytes]]:
        """GET /containers/{id}/logs: (stream, bytes) entries from the json-file log."""
        record = self._record(ref)
        if not record["LogPath"]:
            raise NotImplementedByDriver("configured logging driver does not support reading")
        if tail in (None, "", "all") or not str(tail).lstrip("-").isdigit() or int(tail) < 0:
            tail = None  # dockerd reads anything but a count as "all"
        opts = LogOptions(stdout, stderr, since, until, None if tail is None else int(tail), timestamps, follow)

        def running() -> bool:
            try:
                return bool(self.store.get(record["ID"])["State"]["Running"])
            except NotFound:
                return False

        return read_logs(record["LogPath"], opts, running)

    def inspect(self, ref: str) -> dict[str, Any]:
        """GET /containers/{id}/json."""
        record = self._record(ref)
        out = views.inspect(record, self.images.snapshots.driver, self._graph_data(record["ID"]))
        if self.network is not None:
            out["HostConfig"]["Links"] = self.network.links.host_config_links(record)
        return out

    def _graph_data(self, cid: str) -> dict[str, str] | None:
        """Inspect's GraphDriver.Data: the overlay's directories (None for other snapshotters);
        read once per container (a snapshot lookup costs ~0.1 ms)."""
        if cid in self._graph_data_of:
            cached = self._graph_data_of[cid]
            return dict(cached) if cached else None
        try:
            found = self.images.snapshots.mounts(cid)
        except SnapshotError:
            return None
        data = None
        for mount in found:
            if mount.type == "overlay":
                opts = dict(o.split("=", 1) for o in mount.options if "=" in o)
                data = {"LowerDir": opts.get("lowerdir", ""), "MergedDir": self._rootfs(cid),
                        "UpperDir": opts.get("upperdir", ""), "WorkDir": opts.get("workdir", "")}
        self._graph_data_of[cid] = data
        return dict(data) if data else None

    def list(self, all: bool = False, filters: dict[str, list[str]] | None = None,
             size: bool = False) -> list[dict[str, Any]]:
        """GET /containers/json."""
        filters = filters or {}
        views.check_filters(filters)
        ancestors = {}
        for ref in filters.get("ancestor", []):
            try:
                ancestors[ref] = self.images.resolve(ref)
            except NoSuchImage:
                pass
        # since/before: created after / before the named containers (which must exist)
        bounds = {key: [views.created_key(self._record(ref)["Created"]) for ref in filters.get(key, [])]
                  for key in ("since", "before")}
        out = []
        image_sizes: dict[str, int] = {}
        records = self.store.all()
        for record in records:
            if not all and not record["State"]["Running"] and "status" not in filters:
                continue
            if not views.matches(record, filters, ancestors):
                continue
            created = views.created_key(record["Created"])
            if any(created <= b for b in bounds["since"]) or any(created >= b for b in bounds["before"]):
                continue
            sizes = None
            if size:  # SizeRootFs: the writable layer and the image's layers, as dockerd
                rw = self.layer_size(record["ID"])
                if record["Image"] not in image_sizes:
                    image_sizes[record["Image"]] = self._image_size(record["Image"])
                sizes = (rw, rw + image_sizes[record["Image"]])
            out.append(views.summary(record, record["Config"].get("Image") or record["Image"], sizes))
            if self.network is not None:
                out[-1]["Names"] += self.network.links.names_of(record["ID"], records)
        return out

    def _image_size(self, image_id: str) -> int:
        """The image's size (0 once it is gone: a forced removal can leave containers of it)."""
        try:
            return self.images.size(image_id)
        except NoSuchImage:
            return 0

    def layer_size(self, cid: str) -> int:
        """Bytes of the files in the container's writable layer (Docker's SizeRw measure: what
        removing it reclaims; 0 without one)."""
        try:
            return self.images.rootfs_size(cid)
        except SnapshotNotFound:
            return 0

    # -- daemon start -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Reconnect to live shims; record exits of containers whose shim or init died while no
        daemon watched (their restart policy then applies); repair what a killed daemon left
        half-done (see _remove_orphans); remove stopped --rm containers and start the stopped ones
        their restart policy brings back, as dockerd does at start."""
        records = self.store.all()
        self._remove_orphans({r["ID"] for r in records})
        boot: list[Record] = []
        for record in records:
            cid, state = record["ID"], record["State"]
            shim_dir = self._shim_dir(cid)
            if not self._has_rootfs(cid):  # killed during create: the client never got this ID
                self._destroy(cid, volumes=True)
                continue
            if not state["Running"] or state["Restarting"]:
                if state["Restarting"]:
                    state.update(Status="exited", Running=False, Restarting=False)
                    self._save(record)
                repair.stop_shim(shim_dir)  # killed during start: a created container nobody will start
                self._delete_runtime_state(cid)
                unmount(self._rootfs(cid))
                if record["HostConfig"].get("AutoRemove"):
                    self._destroy(cid, volumes=True)
                elif policy.start_at_daemon_start(record):
                    boot.append(record)
                continue
            try:
                shim_state = ShimClient(shim_dir, timeout=5).state()
            except (ShimError, OSError):
                shim_state = None
            if shim_state is not None and shim_state.get("status") != "stopped":
                self._watch(cid, shim_dir)
                continue
            result = read_exit(shim_dir) or (shim_state or {}).get("exit") or {"exit_code": 255}
            self._on_exit(cid, shim_dir, result)
        self._start_by_policy(boot)

    def _start_by_policy(self, records: list[Record]) -> None:
        """Start containers whose restart policy says so at daemon start (failures are recorded)."""
        for record in records:
            with self.locked(record["ID"]):
                record["HasBeenManuallyStopped"] = False
                try:
                    self._start(record)  # publishes "start"
                except ContainerError:
                    continue

    def _has_rootfs(self, cid: str) -> bool:
        try:
            self.images.snapshots.stat(cid)
        except SnapshotNotFound:
            return False
        return True

    def _remove_orphans(self, known: set[str]) -> None:
        """Shims, runtime state, mounts, directories and snapshots of containers without a record."""
        for cid in repair.orphan_ids(self.exec_root, known):
            repair.stop_shim(self._shim_dir(cid))
            shutil.rmtree(self._shim_dir(cid), ignore_errors=True)
        for rt in self.runtimes.values():
            for cid in repair.orphan_ids(rt.root(self.exec_root), known):
                subprocess.run([rt.path, *rt.args, "--root", rt.root(self.exec_root), "delete", "--force", cid],
                               capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
        for cid in repair.orphan_ids(self.store.containers_dir, known):
            unmount(self._rootfs(cid))
            shutil.rmtree(self.store.directory(cid), ignore_errors=True)
        for info in list(self.images.snapshots.walk()):
            if info.kind == "active" and repair.is_container_id(info.key) and info.key not in known:
                self.images.remove_rootfs(info.key)


def _parse_epoch(stamp: str) -> float:
    try:
        return parse_time(stamp) / 1e9
    except ValueError:
        return 0.0
