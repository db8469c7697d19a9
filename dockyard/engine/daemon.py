"""`dockyardd`: the engine daemon. It takes the data root's lock and the pidfile, opens the
engine's services, serves the Docker Engine API on every -H address and stops gracefully on
SIGTERM/SIGINT (listeners closed, socket and pidfile removed).

Data root layout::

    <data-root>/engine-id        the daemon's ID (GET /info "ID"), made on first start
    <data-root>/dockyardd.lock   flock held by the daemon using this root
    <data-root>/image-store/     ImageStore root (content/, image.db, snapshots/, locks/)
    <data-root>/containers.db    container records; <data-root>/containers/<id>/ their files
    <data-root>/volumes/         metadata.db (volumes, references, active mounts); <name>/_data each
    <data-root>/networks.db      networks and endpoints (addresses in use)
    <exec-root>/netns/<short id> a running container's network namespace (bind mount)
    <exec-root>/<id>/            a running container's shim state; <exec-root>/runtime/ the runtime's
    <exec-root>/dockyardd.pid    default pidfile (flock held while running)
    <exec-root>/dockyard.sock    default API socket
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from dockyard.engine import runtimes
from dockyard.engine.builds import BuildService
from dockyard.engine.config import DEFAULT_DATA_ROOT, ConfigError, DaemonConfig, load
from dockyard.engine.containers import ContainerService
from dockyard.engine.containers.execs import ExecService
from dockyard.engine.containers.health import HealthMonitor
from dockyard.engine.containers.store import Record
from dockyard.engine.events import EventBus
from dockyard.engine.images import ImageService
from dockyard.engine.networks.endpoints import ContainerNetworking
from dockyard.engine.networks.service import NetworkOptions, NetworkService
from dockyard.engine.volumes import VolumeService
from dockyard.image.store import ImageStore, UsedBy
from dockyard.network import ipam
from dockyard.registry.client.endpoint import RegistryConfig
from dockyard.shim.forkserver import ForkServer

log = logging.getLogger("dockyardd")
WORKERS = 16
T = TypeVar("T")


@dataclass
class Engine:
    """The daemon's services, as the API routes see them."""

    config: DaemonConfig
    id: str
    events: EventBus
    images: ImageService
    executor: ThreadPoolExecutor
    containers: ContainerService
    execs: ExecService
    volumes: VolumeService
    networks: NetworkService
    health: HealthMonitor | None = None
    builds: BuildService | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the thread pool (blocking engine work off the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run_detached(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a daemon thread of its own: for calls that may block until a container
        exits or starts (wait, attach), which must neither starve the pool nor delay shutdown."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: T, error: BaseException | None) -> None:
            if future.done():
                return  # the awaiting request was cancelled
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as e:  # handed to the awaiting coroutine
                error = e
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (daemon stopping)
                loop.call_soon_threadsafe(settle, result, error)

        # _thread: threading.Thread.start() would hold the event loop until the thread runs
        _thread.start_new_thread(work, ())
        return await future

    def container_event(self, record: Record, action: str, extra: dict[str, str] | None = None) -> None:
        """Publish a container event: attributes are the labels, image and name, then extra."""
        labels = record["Config"].get("Labels") or {}
        attributes = {**labels, "image": record["Config"].get("Image") or record["Image"],
                      "name": record["Name"].lstrip("/"), **(extra or {})}
        self.events.publish("container", action, record["ID"], attributes)

    def network_event(self, action: str, record: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        """Publish a network event: name and type, then extra (the container for connect/disconnect)."""
        self.events.publish("network", action, record["Id"],
                            {"name": record["Name"], "type": record["Driver"], **(extra or {})})

    def close(self) -> None:
        """Release the services (containers keep running; with none running, bridges and rules go)."""
        running = any(r["State"]["Running"] for r in self.containers.store.all())
        self.containers.close()
        if self.containers.forkserver is not None:
            self.containers.forkserver.close()
        self.containers.network.close()
        self.networks.shutdown(running)

    def image_in_use(self, image_id: str) -> UsedBy | None:
        """The container using image_id, a running one first (rmi's conflicts)."""
        users = [r for r in self.containers.store.all() if r["Image"] == image_id]
        users.sort(key=lambda r: not r["State"]["Running"])
        return UsedBy(users[0]["ID"], bool(users[0]["State"]["Running"])) if users else None


class LockedFile:
    """A file held under an exclusive flock for the daemon's lifetime, holding its PID."""

    def __init__(self, path: str, busy: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise ConfigError(busy.format(path=path, pid=owner or "?")) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self, remove: bool) -> None:
        """Unlock (and delete the file first when remove)."""
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)


def engine_id(data_root: str) -> str:
    """The daemon's persistent ID, created on first start."""
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        with open(path + ".tmp", "w", encoding="ascii") as f:
            f.write(value + "\n")
        os.replace(path + ".tmp", path)
        return value


def default_ulimits(config: DaemonConfig) -> list[dict[str, Any]]:
    """daemon.json default-ulimits ({"nofile": {"Name", "Soft", "Hard"}}) as HostConfig.Ulimits entries."""
    out = []
    for name, entry in config.default_ulimits.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("Soft"), int) or not isinstance(entry.get("Hard"), int):
            raise ConfigError(f"default-ulimits: {name} needs integer Soft and Hard values")
        out.append({"Name": entry.get("Name") or name, "Soft": entry["Soft"], "Hard": entry["Hard"]})
    return out


def open_engine(config: DaemonConfig) -> Engine:
    """The engine's services over config's data root (crash repair done). The settings that can
    still be refused are checked first, before anything is set up on the host."""
    offered = runtimes.registry(config)
    ulimits = default_ulimits(config)
    executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="dockyardd")
    store = ImageStore(config.image_root)
    store.repair()
    events = EventBus()
    volumes = VolumeService(config.data_root)
    networks = NetworkService(config.data_root, network_options(config))
    networks.startup()
    containers = ContainerService(config.data_root, store, config.exec_root, volumes=volumes,
                                  runtimes=offered, default_runtime=config.default_runtime,
                                  log_config={"Type": config.log_driver, "Config": dict(config.log_opts)},
                                  default_ulimits=ulimits)
    containers.network = ContainerNetworking(networks, containers.store, config.exec_root)
    containers.forkserver = ForkServer(config.exec_root).start()
    images = ImageService(store, events, executor, registry=RegistryConfig(tuple(config.insecure_registries)))
    engine = Engine(config, engine_id(config.data_root), events, images, executor,
                    containers, ExecService(containers), volumes, networks)
    engine.images.in_use = engine.image_in_use
    engine.builds = BuildService(config.data_root, store, runtimes.own_runtime(), config.exec_root,
                                 registry=images.registry)
    engine.builds.executor.forkserver = containers.forkserver
    engine.builds.executor.sandboxes = containers.build_sandbox
    containers.on_event = engine.container_event
    networks.on_event = engine.network_event
    volumes.on_event = lambda action, name, attributes: events.publish("volume", action, name, attributes)
    engine.health = HealthMonitor(containers, engine.execs, engine.container_event)
    containers.on_running = engine.health.update
    containers.reconcile()
    containers.network.reconcile()
    records = containers.store.all()
    volumes.repair({r["ID"] for r in records}, {r["ID"] for r in records if r["State"]["Running"]})
    return engine


def network_options(config: DaemonConfig) -> NetworkOptions:
    """The network service's settings from the daemon's."""
    try:
        pools = tuple(ipam.parse_pool(p) if isinstance(p, str) else ipam.parse_pool(f"base={p['base']},size={p['size']}")
                      for p in config.default_address_pools) or ipam.DEFAULT_POOLS
    except (ipam.IPAMError, KeyError, TypeError) as e:
        raise ConfigError(f"invalid default-address-pools: {e}") from None
    if not any(p.base.version == 6 for p in pools):  # as Docker 27+: the engine's own ULA /48 for IPv6
        pools += (ipam.ula_pool(engine_id(config.data_root)),)
    bridge = config.bridge or ("dockyard0" if config.data_root == DEFAULT_DATA_ROOT
                               else "dy" + hashlib.sha256(config.data_root.encode()).hexdigest()[:8])
    return NetworkOptions(bridge, config.bip, pools, config.iptables, config.ipv6, config.fixed_cidr_v6,
                          config.ip6tables, config.userland_proxy)


async def serve(engine: Engine) -> None:
    """Serve the API until SIGTERM/SIGINT."""
    from dockyard.api.server import start_listeners
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    listeners = await start_listeners(engine)
    log.info("API listening on %s", ", ".join(map(str, engine.config.hosts)))
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        engine.events.close()
        await listeners.close()


M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def limit_malloc_arenas() -> None:
    """One malloc arena for every thread. glibc gives each new thread its own arena (up to 8 per
    core), and the pages they keep cost the idle daemon ~5 MB; its threads mostly wait, or run
    under the GIL, so they gain nothing from separate arenas."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)


def main(argv: list[str] | None = None) -> int:
    """dockyardd's entry point."""
    limit_malloc_arenas()
    try:
        config = load(argv)
    except ConfigError as e:
        sys.stderr.write(f"dockyardd: {e}\n")
        return 1
    logging.basicConfig(level=config.log_level.upper().replace("FATAL", "CRITICAL").replace("WARN", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    locks: list[LockedFile] = []
    try:
        os.makedirs(config.data_root, mode=0o711, exist_ok=True)
        locks.append(LockedFile(os.path.join(config.data_root, "dockyardd.lock"),
                                "data root {path} is in use by another dockyardd (pid {pid})"))
        locks.append(LockedFile(config.pidfile, "pid file found, ensure dockyardd is not running or delete {path}"))
        engine = open_engine(config)
        try:
            asyncio.run(serve(engine))
        finally:
            if engine.health is not None:
                engine.health.close()
            if not config.live_restore:
                engine.containers.stop_all()
            engine.close()
            if engine.builds is not None:
                engine.builds.close()
            engine.executor.shutdown(wait=True, cancel_futures=True)
            engine.images.store.close()
    except (ConfigError, OSError) as e:
        sys.stderr.write(f"dockyardd: {e}\n")
        return 1
    finally:
        for lock in reversed(locks):
            lock.release(remove=lock.path == config.pidfile)
    return 0
