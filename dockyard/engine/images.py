"""The engine's image service: Docker's image operations over ImageStore, run in a thread pool
so the event loop never blocks, each publishing Docker's image events."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

from dockyard.engine.events import EventBus
from dockyard.engine.registry import RegistryService
from dockyard.image.archive import docker_archive, importer
from dockyard.image.archive.oci_layout import gather
from dockyard.image.names import normalize_tag
from dockyard.image.store import ImageStore, InUse
from dockyard.registry.client.endpoint import RegistryConfig

T = TypeVar("T")


class ImageService:
    """Image operations for the API; `in_use` (set by the container engine) tells rmi/prune
    which images containers use."""

    def __init__(self, store: ImageStore, events: EventBus, executor: ThreadPoolExecutor,
                 in_use: InUse | None = None, registry: RegistryConfig | None = None) -> None:
        self.store = store
        self.events = events
        self.executor = executor
        self.in_use = in_use
        self._write_lock = threading.Lock()  # one writer at a time on the SQLite metadata
        self.registry = RegistryService(store, events, registry or RegistryConfig(), self._write_lock)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _labels(self, image_id: str) -> dict[str, str]:
        """The image's labels ({} once it is gone)."""
        if self.store.meta.get_image(image_id) is None:
            return {}
        return (self.store.config(image_id).get("config") or {}).get("Labels") or {}

    def _event(self, action: str, image_id: str, name: str | None = None) -> None:
        """Publish an image event; its attributes are the image's labels and its name."""
        self.events.publish("image", action, image_id, {**self._labels(image_id), "name": name or image_id})

    def tagged(self, image_id: str, name: str) -> None:
        """Publish the tag event of an image named as it was made (docker commit with a repo);
        the name as dockerd gives it, familiar and with its tag ("repo:latest")."""
        self._event("tag", image_id, normalize_tag(name).familiar())

    # -- reads -------------------------------------------------------------------------------

    async def list(self, all: bool = False, filters: dict[str, Any] | None = None,
                   shared_size: bool = False) -> list[dict[str, Any]]:
        """GET /images/json (with shared_size, each image's SharedSize among those listed)."""
        return await self.run(self._list, all, filters, shared_size)

    def _list(self, all: bool, filters: dict[str, Any] | None, shared_size: bool) -> list[dict[str, Any]]:
        images = self.store.list(all, filters)
        if shared_size:
            self._share(images)
        return images

    async def inspect(self, name: str) -> dict[str, Any]:
        """GET /images/{name}/json."""
        return await self.run(self.store.inspect, name)

    async def history(self, name: str) -> list[dict[str, Any]]:
        """GET /images/{name}/history."""
        return await self.run(self.store.history, name)

    async def count(self) -> int:
        """How many images there are (/info Images)."""
        return await self.run(lambda: len(self.store.meta.list_images()))

    async def disk_usage(self) -> dict[str, Any]:
        """The images part of GET /system/df: LayersSize and summaries with SharedSize."""
        return await self.run(self._disk_usage)

    def _disk_usage(self) -> dict[str, Any]:
        """As dockerd: the images /images/json lists (no intermediate build images) with their
        SharedSize among those; LayersSize over every layer of every image."""
        images = self.store.list(all=False)
        chains = self._share(images)
        for summary in images:
            summary["Containers"] = 0
        sizes = {chain: size for rec in self.store.meta.list_images()
                 for chain, size in chains.get(rec.id) or self._layer_sizes(rec.id)}
        return {"LayersSize": sum(sizes.values()), "Images": images}

    def _share(self, images: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
        """Set each image summary's SharedSize, dockerd's way: the sizes of its layers that
        another of these images has too; the layers of each image, by ID."""
        chains = {s["Id"]: self._layer_sizes(s["Id"]) for s in images}
        users = Counter(chain for layers in chains.values() for chain, _ in layers)
        for summary in images:
            summary["SharedSize"] = sum(size for chain, size in chains[summary["Id"]] if users[chain] > 1)
        return chains

    def _layer_sizes(self, image_id: str) -> list[tuple[str, int]]:
        """(chain ID, size) of each layer of the image, bottom first."""
        return list(zip(self.store.chain_ids(image_id), (layer.size or 0 for layer in self.store.layers(image_id, measure_pulled=True)),
                        strict=True))

    # -- names and removal -------------------------------------------------------------------

    async def tag(self, name: str, target: str) -> None:
        """POST /images/{name}/tag."""
        await self.run(self._tag, name, target)

    def _tag(self, name: str, target: str) -> None:
        with self._write_lock:
            image_id = self.store.tag(name, target)
        self.tagged(image_id, target)

    async def remove(self, name: str, force: bool, prune: bool) -> list[dict[str, str]]:
        """DELETE /images/{name}."""
        return await self.run(self._remove, name, force, prune)

    def _remove(self, name: str, force: bool, prune: bool) -> list[dict[str, str]]:
        with self._write_lock:
            image_id = self.store.resolve(name)
            before = {rec.id: {} for rec in self.store.meta.list_images()}
            before[image_id] = self._labels(image_id)
            records = self.store.remove(name, force, prune, self.in_use)
        self._removal_events(records, before, image_id)
        return records

    async def prune(self, filters: dict[str, Any] | None) -> dict[str, Any]:
        """POST /images/prune."""
        return await self.run(self._prune, filters)

    def _prune(self, filters: dict[str, Any] | None) -> dict[str, Any]:
        with self._write_lock:
            before = {rec.id: self._labels(rec.id) for rec in self.store.meta.list_images()}
            report = self.store.prune(True, filters, self.in_use)
        self._removal_events(report["ImagesDeleted"] or [], before, None)
        self.events.publish("image", "prune", "", {"reclaimed": str(report["SpaceReclaimed"])})
        return report

    def _removal_events(self, records: list[dict[str, str]], images: dict[str, dict[str, str]],
                        image_id: str | None) -> None:
        """untag/delete events for rmi/prune records (layer IDs in Deleted are not images); an
        untag has the labels its image (ID → labels, read before the removal) had. An untag names the image
        it came from: the next deleted image, else image_id."""
        pending: list[str] = []
        for record in records:
            if "Untagged" in record:
                pending.append(record["Untagged"])
            elif record.get("Deleted") in images:
                deleted = record["Deleted"]
                for _ in pending:
                    self.events.publish("image", "untag", deleted, {**images[deleted], "name": deleted})
                pending = []
                self.events.publish("image", "delete", deleted, {"name": deleted})  # gone: no labels
        for _ in pending:
            if image_id:
                self.events.publish("image", "untag", image_id, {**images.get(image_id, {}), "name": image_id})

    # -- archives ------------------------------------------------------------------------------

    async def to_save(self, names: list[str]) -> list[str]:
        """The IDs of the images `docker save names` writes (NoSuchImage for the first unknown
        name; a repository name stands for all its tags)."""
        return await self.run(lambda: [image_id for image_id, _ in gather(self.store, names)])

    def save(self, names: list[str], out: BinaryIO) -> None:
        """docker save into out (blocking: call through run)."""
        for image_id in docker_archive.save(self.store, names, out):
            self._event("save", image_id)

    def load(self, stream: BinaryIO) -> list[str]:
        """docker load from stream (blocking); the lines docker prints."""
        with self._write_lock:
            lines = docker_archive.load(self.store, stream)
        for line in lines:
            loaded = _loaded_name(line)
            if loaded:
                self._event("load", self.store.resolve(loaded))
        return lines

    def import_tarball(self, stream: BinaryIO, ref: str | None, changes: list[str], message: str | None,
                       platform: str | None, source: str) -> str:
        """docker import from stream (blocking); the new image ID."""
        with self._write_lock:
            image_id = importer.import_tarball(self.store, stream, ref, changes, message, platform or None, source)
        self._event("import", image_id)
        return image_id


def _loaded_name(line: str) -> str | None:
    """The image a `docker load` output line reports."""
    for prefix in ("Loaded image ID: ", "Loaded image: "):
        if line.startswith(prefix):
            return line[len(prefix):]
    return None


