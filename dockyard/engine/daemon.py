"""`dockyardd`: the engine daemon. It takes the data root's lock and the pidfile, opens the
engine's services, serves the Docker Engine API on every -H address and stops gracefully on
SIGTERM/SIGINT (listeners closed, socket and pidfile removed).

Data root layout::

    <data-root>/engine-id        the daemon's ID (GET /info "ID"), made on first start
    <data-root>/dockyardd.lock   flock held by the daemon using this root
    <data-root>/image-store/     ImageStore root (content/, image.db, snapshots/, locks/)
    <exec-root>/dockyardd.pid    default pidfile (flock held while running)
    <exec-root>/dockyard.sock    default API socket
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dockyard.engine.config import ConfigError, DaemonConfig, load
from dockyard.engine.events import EventBus
from dockyard.engine.images import ImageService
from dockyard.image.store import ImageStore

log = logging.getLogger("dockyardd")
WORKERS = 8


@dataclass
class Engine:
    """The daemon's services, as the API routes see them."""

    config: DaemonConfig
    id: str
    events: EventBus
    images: ImageService
    executor: ThreadPoolExecutor


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


def open_engine(config: DaemonConfig) -> Engine:
    """The engine's services over config's data root (crash repair done)."""
    executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="dockyardd")
    store = ImageStore(config.image_root)
    store.repair()
    events = EventBus()
    return Engine(config, engine_id(config.data_root), events, ImageService(store, events, executor), executor)


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


def main(argv: list[str] | None = None) -> int:
    """dockyardd's entry point."""
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
            engine.executor.shutdown(wait=True, cancel_futures=True)
            engine.images.store.close()
    except (ConfigError, OSError) as e:
        sys.stderr.write(f"dockyardd: {e}\n")
        return 1
    finally:
        for lock in reversed(locks):
            lock.release(remove=lock.path == config.pidfile)
    return 0
