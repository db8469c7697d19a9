"""VolumeService: Docker's volumes over VolumeStore and the local driver: the /volumes API
(create, inspect, list, remove, prune, disk usage) and the container lifecycle's hooks: attach
(create or reference the volumes a container's MountPoints name), populate (copy-up), activate /
deactivate (refcounted mounts of driver-option volumes) and release. Blocking methods."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from dockyard.engine.containers.errors import Conflict, InvalidParameter, NotFound
from dockyard.engine.volumes import local
from dockyard.engine.volumes.copyup import populate
from dockyard.engine.volumes.store import Volume, VolumeStore
from dockyard.image import filters as flt

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LIST_FILTERS = frozenset({"dangling", "name", "driver", "label"})
PRUNE_FILTERS = frozenset({"label", "label!", "all"})
Point = dict[str, Any]


def _rfc3339(epoch: float) -> str:
    """Go's time.RFC3339 in local time ("Z" for UTC), as Docker shows CreatedAt."""
    text = datetime.fromtimestamp(int(epoch)).astimezone().isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class VolumeService:
    """The volumes of one daemon, under <data-root>/volumes."""

    def __init__(self, data_root: str) -> None:
        self.store = VolumeStore(os.path.join(data_root, "volumes"))
        self.on_event: Callable[[str, str, dict[str, str]], None] | None = None  # (action, name, attributes)
        self._pruning = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        self.store.close()

    def _notify(self, action: str, name: str, **attributes: str) -> None:
        if self.on_event is not None:  # a prune (no volume named) has no driver, as dockerd
            self.on_event(action, name, {"driver": local.DRIVER, **attributes} if name else dict(attributes))

    def view(self, v: Volume) -> dict[str, Any]:
        """A volume as the API shows it (GET /volumes/{name})."""
        return {"CreatedAt": _rfc3339(v["created"]), "Driver": v["driver"], "Labels": v["labels"],
                "Mountpoint": self.store.path(v["name"]), "Name": v["name"], "Options": v["options"],
                "Scope": "local"}

    # -- the /volumes API -------------------------------------------------------------------------

    def _create(self, name: str, labels: dict[str, str] | None, options: dict[str, str] | None,
                ref: str | None = None) -> Volume:
        """The named volume (created if missing; a new name is a 64-hex anonymous one)."""
        if not name:
            name, labels = secrets.token_hex(32), {**(labels or {}), ANONYMOUS_LABEL: ""}
        try:
            local.check_name(name)
            local.check_options(options)
        except InvalidParameter as e:
            raise InvalidParameter(f"create {name}: {e}") from None
        volume, created = self.store.create(name, labels, options, ref)
        if created:
            self._notify("create", name)
        return volume

    def create(self, name: str = "", driver: str = "", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> dict[str, Any]:
        """POST /volumes/create."""
        if driver and driver != local.DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        return self.view(self._create(name or "", labels, options))

    def inspect(self, name: str) -> dict[str, Any]:
        """GET /volumes/{name}."""
        return self.view(self.store.get(name))

    def list(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """GET /volumes (filters dangling, name, driver, label)."""
        wanted = flt.normalize(filters, LIST_FILTERS)
        dangling = flt.get_bool(wanted, "dangling", False) if wanted.get("dangling") else None
        counts = self.store.ref_counts()
        out = []
        for v in self.store.all():
            if dangling is not None and (v["name"] in counts) == dangling:
                continue
            if wanted.get("driver") and v["driver"] not in wanted["driver"]:
                continue
            if wanted.get("name") and not any(n == v["name"] or _search(n, v["name"]) for n in wanted["name"]):
                continue
            if not flt.labels_pass(wanted, v["labels"]):
                continue
            out.append(self.view(v))
        return out

    def remove(self, name: str, force: bool = False) -> None:
        """DELETE /volumes/{name}: 409 while containers reference it; with force a missing
        volume is no error."""
        try:
            self._remove(name)
        except NotFound:
            if not force:
                raise

    def _remove(self, name: str) -> None:
        options = self.store.get(name)["options"]
        if local.needs_mount(options):
            local.unmount(self.store.path(name))
        self.store.remove(name)
        self._notify("destroy", name)

    def prune(self, filters: dict[str, Any] | None = None) -> tuple[list[str], int]:
        """POST /volumes/prune: unreferenced local volumes without driver options, only the
        anonymous ones unless the `all` filter is true; (names removed, bytes reclaimed)."""
        if not self._pruning.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            return self._prune(flt.normalize(filters, PRUNE_FILTERS))
        finally:
            self._pruning.release()

    def _prune(self, wanted: dict[str, list[str]]) -> tuple[list[str], int]:
        if len(wanted.get("all", [])) > 1:
            raise InvalidParameter(f"invalid filter 'all={','.join(wanted['all'])}': only one value is expected")
        if not flt.get_bool(wanted, "all", False):
            wanted.setdefault("label", []).append(ANONYMOUS_LABEL)
        counts = self.store.ref_counts()
        deleted, reclaimed = [], 0
        for v in self.store.all():
            if v["name"] in counts or v["options"] or not flt.labels_pass(wanted, v["labels"]):
                continue
            size = local.disk_usage(self.store.path(v["name"]))
            try:
                self._remove(v["name"])
            except (Conflict, NotFound):
                continue
            deleted.append(v["name"])
            reclaimed += max(size, 0)
        self._notify("prune", "", reclaimed=str(reclaimed))
        return deleted, reclaimed

    def disk_usage(self) -> list[dict[str, Any]]:
        """Local volumes without driver options, with UsageData {Size, RefCount} (system df)."""
        counts = self.store.ref_counts()
        return [{**self.view(v), "UsageData": {"Size": local.disk_usage(self.store.path(v["name"])),
                                               "RefCount": counts.get(v["name"], 0)}}
                for v in self.store.all() if not v["options"]]

    # -- container hooks --------------------------------------------------------------------------

    def attach(self, cid: str, points: list[Point]) -> list[Point]:
        """Create or reference the volumes of a container's planned MountPoints (each reference
        recorded in the transaction that finds or creates the volume, so a removal cannot slip in
        between); the points with their Name and Source filled in."""
        out = []
        for p in points:
            if p["Type"] == "volume":
                if p.get("Driver", "local") != local.DRIVER:
                    raise NotFound(f'error looking up volume plugin {p["Driver"]}: plugin "{p["Driver"]}" not found')
                volume = self._create(p.get("Name") or "", p.get("_labels"), p.get("_options"), ref=cid)
                p = {**p, "Name": volume["name"], "Source": self.store.path(volume["name"]), "Driver": local.DRIVER}
            out.append(p)
        return out

    def populate(self, cid: str, rootfs: str, points: list[Point]) -> None:
        """Docker's copy-up for the volume points that ask for it (not nocopy, not --volumes-from):
        the image's content at the destination goes into each empty volume."""
        for p in points:
            if p["Type"] == "volume" and p.get("_copy"):
                with self._mounted(p["Name"], f"populate-{cid}"):
                    populate(rootfs, p["Destination"], self.store.path(p["Name"]))

    @staticmethod
    def wants_population(points: list[Point]) -> bool:
        """Whether populate has anything to do (the rootfs need not be mounted otherwise)."""
        return any(p["Type"] == "volume" and p.get("_copy") for p in points)

    @contextlib.contextmanager
    def _mounted(self, name: str, holder: str) -> Iterator[None]:
        self._activate(name, holder)
        try:
            yield
        finally:
            self.deactivate(holder)

    def activate(self, holder: str, points: list[Point], announce: bool = False) -> None:
        """Before a start (holder: the container) or a look at its files: mount the
        driver-option volumes among points (refcounted by holder); announce publishes Docker's
        volume mount events."""
        try:
            for p in points:
                if p["Type"] == "volume":
                    self._activate(p["Name"], holder)
                    if announce:
                        self._notify("mount", p["Name"], container=holder, destination=p["Destination"],
                                     propagation=p.get("Propagation") or "", **{"read/write": str(p["RW"]).lower()})
        except BaseException:
            self.deactivate(holder)
            raise

    def _activate(self, name: str, holder: str) -> None:
        options = self.store.get(name)["options"]
        path = self.store.path(name)
        with self.store.tx() as db:
            db.execute("INSERT OR IGNORE INTO active VALUES (?, ?)", (name, holder))
            if local.needs_mount(options) and not local.is_mounted(path):
                local.mount(options, path)

    def deactivate(self, holder: str, announce: bool = False) -> None:
        """After an exit (or a look): unmount the driver-option volumes no other holder uses;
        announce publishes the unmount events."""
        with self.store.tx() as db:
            names = [r[0] for r in db.execute("SELECT volume FROM active WHERE holder = ?", (holder,))]
            db.execute("DELETE FROM active WHERE holder = ?", (holder,))
            for name in names:
                row = db.execute("SELECT options FROM volumes WHERE name = ?", (name,)).fetchone()
                if row and local.needs_mount(json.loads(row[0])) and not self.store.holders(db, name):
                    local.unmount(self.store.path(name))
        if announce:
            for name in names:
                self._notify("unmount", name, container=holder)

    def release(self, cid: str, remove_anonymous: bool) -> None:
        """The container is gone: drop its references (and mounts); with remove_anonymous
        (`rm -v`, `--rm`) its anonymous volumes go too, unless another container uses them."""
        self.deactivate(cid)
        for name in self.store.release(cid):
            with contextlib.suppress(Conflict, NotFound):
                if remove_anonymous and ANONYMOUS_LABEL in (self.store.get(name)["labels"] or {}):
                    self._remove(name)

    def repair(self, containers: set[str], running: set[str]) -> None:
        """At start: settle the store after a crash, forget references of containers that no
        longer exist and mounts held by containers that no longer run, and unmount what no
        holder uses."""
        self.store.repair(containers)
        with self.store.tx() as db:
            for (holder,) in db.execute("SELECT DISTINCT holder FROM active").fetchall():
                if holder not in running:
                    db.execute("DELETE FROM active WHERE holder = ?", (holder,))
        for v in self.store.all():
            path = self.store.path(v["name"])
            with self.store.tx() as db:
                if local.needs_mount(v["options"]) and not self.store.holders(db, v["name"]) and local.is_mounted(path):
                    local.unmount(path)


def _search(pattern: str, text: str) -> bool:
    """Go's regexp.MatchString (a search); an invalid pattern matches nothing."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False
