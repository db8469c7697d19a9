"""docker commit's core: a container's snapshot changes become a new layer on its image."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dockyard.image.bootstrap_busybox import host_platform
from dockyard.image.manifest import parse_config
from dockyard.image.metadata import now_rfc3339

if TYPE_CHECKING:
    from dockyard.image.store import ImageStore

EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
_PLATFORM_KEYS = ("architecture", "variant", "os", "os.version", "os.features")


def encode_config(doc: dict[str, Any]) -> bytes:
    """An image config document validated and serialised canonically (stable image IDs)."""
    return parse_config(json.dumps(doc)).to_bytes()


def _base_config(store: ImageStore, image_id: str | None) -> dict[str, Any]:
    if image_id is not None:
        return store.config(image_id)
    arch, variant = host_platform()
    return {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}


def commit_container(store: ImageStore, container_key: str, config_changes: dict[str, Any] | None = None, *,
                     image_id: str | None = None, author: str = "", comment: str = "", created_by: str = "",
                     container_id: str = "", container_config: dict[str, Any] | None = None,
                     created: str | None = None, tags: tuple[str, ...] = ()) -> str:
    """Commit the active snapshot container_key (a container of image_id, None for scratch):
    its changes as a gzip layer (none when empty, like Docker), a config whose run config is the
    image's with config_changes applied key by key (the engine passes the container's config
    and --change results here), a history entry, and the image recorded with image_id as its
    parent (container_id and container_config recorded as dockerd does); the new image ID."""
    base = _base_config(store, image_id)
    snapshots = store.snapshots
    mode = snapshots.diff_mode()
    layer = store.write_layer(snapshots.layer_dir(container_key), mode=mode,
                              parent=snapshots.parent_dir(container_key) if mode == "compare" else None)
    created = created or now_rfc3339()
    empty = layer.diff_id == EMPTY_LAYER_DIFF_ID
    layers = store.layers(image_id) if image_id else []
    if not empty:
        layers.append(layer)
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    entry.update({k: v for k, v in (("author", author), ("comment", comment)) if v})
    if empty:
        entry["empty_layer"] = True
    run_config = {**(base.get("config") or {}), **(config_changes or {})}
    config: dict[str, Any] = {k: base[k] for k in _PLATFORM_KEYS if k in base}
    config.update({
        "config": {k: v for k, v in run_config.items() if v is not None},
        "created": created,
        "history": [*(base.get("history") or []), entry],
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    })
    if author:
        config["author"] = author
    if container_id:
        config["container"] = container_id
    if container_config:
        config["container_config"] = {k: v for k, v in container_config.items() if v is not None}
    return store.add_image(encode_config(config), layers, parent=image_id, tags=tags)
