"""Image inspect, history and list (GET /images/{name}/json, /history, /images/json) as dockerd's
image service computes them from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard.image import filters as flt
from dockyard.image.inspect import image_history, image_inspect, image_summary, rfc3339nano, unix_seconds

if TYPE_CHECKING:
    from dockyard.image.store import ImageStore


def names(store: ImageStore, image_id: str) -> tuple[list[str], list[str]]:
    """(RepoTags, RepoDigests) in Docker's familiar form."""
    refs = store.references(image_id)
    return ([r.familiar() for r in refs if r.digest is None], [r.familiar() for r in refs if r.digest is not None])


def inspect(store: ImageStore, ref: str) -> dict[str, Any]:
    """GET /images/{name}/json."""
    image_id = store.resolve(ref)
    config = {**store.config(image_id), "parent": store.parent(image_id) or ""}
    tags, repo_digests = names(store, image_id)
    last_tag = store.record(image_id).last_tag_time
    return image_inspect(image_id, config, tags, repo_digests, store.size(image_id), store.graph_driver(image_id),
                         rfc3339nano(last_tag) if last_tag else None)


def history(store: ImageStore, ref: str) -> list[dict[str, Any]]:
    """GET /images/{name}/history: newest first; entries take the IDs and tags of the image and
    then of its parents in turn (as dockerd fills them), the rest stay "<missing>"."""
    image_id = store.resolve(ref)
    sizes = [layer.size or 0 for layer in store.layers(image_id, measure_pulled=True)]
    entries = image_history(store.config(image_id), sizes, image_id, [])
    current: str | None = image_id
    for entry in entries:
        if current is None:
            break
        entry["Id"] = current
        entry["Tags"] = names(store, current)[0] or None
        current = store.parent(current)
    return entries


def list_images(store: ImageStore, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """GET /images/json: newest first; untagged images with children only with all."""
    wanted = flt.normalize(filters, flt.LIST_FILTERS)
    dangling = flt.get_bool(wanted, "dangling", False) if "dangling" in wanted else None
    bounds = {name: unix_seconds(store.config(store.resolve(wanted[name][0])).get("created"))
              for name in ("before", "since") if wanted.get(name)}
    until = flt.timestamp(wanted["until"][0]) if wanted.get("until") else None
    out = []
    for rec in store.meta.list_images():
        config = store.config(rec.id)
        created = unix_seconds(config.get("created"))
        if ("before" in bounds and created >= bounds["before"]) or ("since" in bounds and created <= bounds["since"]):
            continue
        if until is not None and created > until:
            continue
        if "label" in wanted and not flt.labels_match(wanted["label"], (config.get("config") or {}).get("Labels")):
            continue
        has_children = bool(store.children(rec.id))
        if dangling and has_children:
            continue
        tags, repo_digests = _filtered_names(store, rec.id, wanted.get("reference"))
        if not tags and not repo_digests:
            if not (all or not has_children) or dangling is False or "reference" in wanted:
                continue
        elif dangling and tags:
            continue
        out.append(image_summary(rec.id, config, tags, repo_digests, store.size(rec.id)))
    out.sort(key=lambda s: s["Created"], reverse=True)
    return out


def _filtered_names(store: ImageStore, image_id: str, patterns: list[str] | None) -> tuple[list[str], list[str]]:
    tags, repo_digests = [], []
    for ref in store.references(image_id):
        if patterns and not any(flt.reference_matches(p, ref.familiar(), ref.familiar_name()) for p in patterns):
            continue
        (tags if ref.digest is None else repo_digests).append(ref.familiar())
    return tags, repo_digests
