"""Docker's image deletion (`docker rmi`, DELETE /images/{name}) and pruning (POST /images/prune):
which references go, which conflicts stop it, and the response items, as dockerd does them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.image import digest as digests
from dockyard.image import filters as flt
from dockyard.image import reference
from dockyard.image.errors import ImageConflict, NoSuchImage, ReferenceConflict
from dockyard.image.gc import DEFAULT_GRACE
from dockyard.image.inspect import unix_seconds
from dockyard.image.names import stored_name

if TYPE_CHECKING:
    from dockyard.image.store import ImageStore

CHILD, RUNNING, ACTIVE_REFERENCE, STOPPED = 1, 2, 4, 8
HARD = CHILD | RUNNING
SOFT = ACTIVE_REFERENCE | STOPPED


@dataclass(frozen=True)
class UsedBy:
    """A container using an image, as the engine's `in_use(image_id)` callable reports it
    (a running one preferably, so that the hard conflict is found)."""

    container_id: str
    running: bool = False


InUse = Callable[[str], "UsedBy | bool | None"]


def _used(in_use: InUse | None, image_id: str) -> UsedBy | None:
    found = in_use(image_id) if in_use else None
    if found is True:
        return UsedBy("")
    return found or None


def _container(used: UsedBy) -> str:
    return f" {used.container_id[:12]}" if used.container_id else ""


def is_id_prefix(image_id: str, given: str) -> bool:
    """Whether given is a prefix of the image ID, with or without its algorithm."""
    return image_id.startswith(given) or image_id.partition(":")[2].startswith(given)


def is_single_reference(refs: list[reference.Reference]) -> bool:
    """At most one tag, and every repo digest in that tag's repository (Docker's rule for
    removing all names along with the image)."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None]
    if len(tags) > 1:
        return False
    canonical = {r.name for r in refs if r.digest is not None}
    single = tags[0] if tags else refs[0]
    return len(canonical) == 1 and single.name in canonical


def conflict(store: ImageStore, image_id: str, mask: int, in_use: InUse | None) -> ImageConflict | None:
    """The first conflict among those in mask that deleting the image would meet."""
    if mask & CHILD and store.children(image_id):
        return ImageConflict(image_id, "image has dependent child images", hard=True)
    used = _used(in_use, image_id) if mask & (RUNNING | STOPPED) else None
    if mask & RUNNING and used and used.running:
        return ImageConflict(image_id, f"image is being used by running container{_container(used)}",
                             hard=True, used=True)
    if mask & ACTIVE_REFERENCE and store.references(image_id):
        return ImageConflict(image_id, "image is referenced in multiple repositories")
    if mask & STOPPED and used and not used.running:
        return ImageConflict(image_id, f"image is being used by stopped container{_container(used)}", used=True)
    return None


def _untag(store: ImageStore, ref: reference.Reference, records: list[dict[str, str]]) -> None:
    if store.meta.remove_tag(str(ref)) is None:
        raise NoSuchImage(ref)
    records.append({"Untagged": ref.familiar()})


def delete(store: ImageStore, given: str, force: bool = False, prune: bool = True,
           in_use: InUse | None = None) -> list[dict[str, str]]:
    """docker rmi of one reference or ID: [{"Untagged": ...}, {"Deleted": ...}, ...]."""
    image_id = store.resolve(given)
    records: list[dict[str, str]] = []
    refs = store.references(image_id)
    by_name = not is_id_prefix(image_id, given)
    if by_name:
        used = None if force or not is_single_reference(refs) else _used(in_use, image_id)
        if used:
            raise ReferenceConflict(
                f"conflict: unable to remove repository reference \"{given}\" (must force) - container"
                f"{_container(used)} is using its referenced image {digests.short_id(image_id)}")
        named = stored_name(reference.parse_normalized(given))
        _untag(store, named, records)
        refs = store.references(image_id)
        if named.digest is None and not any(r.digest is None and r.name == named.name for r in refs):
            for ref in [r for r in refs if r.digest is not None and r.name == named.name]:
                _untag(store, ref, records)
            refs = store.references(image_id)
        if refs:
            return records
    elif is_single_reference(refs):
        found = conflict(store, image_id, HARD if force else HARD | STOPPED, in_use)
        if found:
            raise found
        for ref in refs:
            _untag(store, ref, records)
    _delete_image(store, image_id, records, force, prune, by_name, in_use)
    return records


def _dangling(store: ImageStore, image_id: str) -> bool:
    return not store.references(image_id) and not store.children(image_id)


def _delete_image(store: ImageStore, image_id: str, records: list[dict[str, str]], force: bool, prune: bool,
                  quiet: bool, in_use: InUse | None) -> None:
    found = conflict(store, image_id, HARD if force else HARD | SOFT, in_use)
    if found:
        if quiet and (not _dangling(store, image_id) or found.used):
            return
        raise found
    parent = store.parent(image_id)
    for ref in store.references(image_id):
        _untag(store, ref, records)
    chains = store.chain_ids(image_id)
    store.meta.delete_image(image_id)
    records.append({"Deleted": image_id})
    records += [{"Deleted": chain} for chain in store.release_chains(chains)]
    if prune and parent:
        _delete_image(store, parent, records, False, True, True, in_use)


_IGNORED = (ImageConflict, ReferenceConflict, NoSuchImage)


def prune(store: ImageStore, dangling_only: bool = True, filters: dict[str, Any] | None = None,
          in_use: InUse | None = None, grace: float = DEFAULT_GRACE) -> dict[str, Any]:
    """docker image prune: untagged images (all unused ones when not dangling_only) that no
    container uses, then garbage collection (blobs after `grace` seconds, see gc.py)."""
    wanted = flt.normalize(filters, flt.PRUNE_FILTERS)
    dangling = flt.get_bool(wanted, "dangling", dangling_only)
    until = flt.timestamp(wanted["until"][0]) if wanted.get("until") else None
    layer_sizes: dict[str, int] = {}
    chosen = []
    for rec in store.meta.list_images():
        sizes = (layer.size or 0 for layer in store.layers(rec.id))
        layer_sizes.update(zip(store.chain_ids(rec.id), sizes, strict=True))
        has_children = bool(store.children(rec.id))
        refs = store.references(rec.id)
        if (dangling or not refs) and has_children:
            continue
        config = store.config(rec.id)
        if until is not None and unix_seconds(config.get("created")) > until:
            continue
        if not flt.labels_pass(wanted, (config.get("config") or {}).get("Labels")):
            continue
        chosen.append((rec.id, refs))
    deleted: list[dict[str, str]] = []
    for image_id, refs in chosen:
        if not refs:
            targets = [digests.split(image_id)[1]]
        elif not dangling or all(r.digest is not None for r in refs):
            targets = [str(r) for r in refs]
        else:
            continue
        for target in targets:
            try:
                deleted += delete(store, target, False, True, in_use)
            except _IGNORED:
                continue
    store.gc(grace)
    space = sum(layer_sizes.get(item.get("Deleted", ""), 0) for item in deleted)
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": space}
