"""`docker import`: a root filesystem tarball (plain or compressed) becomes a one-layer image.

The tarball is applied into a temporary directory (safely: layer_apply refuses escaping
paths) and written back through ImageStore.write_layer, as a commit is: a normalised,
gzip-compressed layer (sorted, numeric owners, whole-second mtimes). Docker instead keeps the incoming tar as the layer; the
image config follows Docker's: architecture/os/variant, created, the message (default
"Imported from <source>") as comment and as the single history entry, --change applied.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any, BinaryIO

from dockyard.image.archive.changes import apply_changes
from dockyard.image.layer_apply import apply_layer
from dockyard.image.manifest import Platform, host_platform, parse_platform
from dockyard.image.metadata import now_rfc3339


def import_config(diff_id: str, changes: list[str] | tuple[str, ...] = (), message: str | None = None,
                  platform: Platform | str | None = None, source: str = "-",
                  created: str | None = None) -> bytes:
    """The image config `docker import` writes for a layer (canonical JSON)."""
    target = parse_platform(platform) if isinstance(platform, str) else (platform or host_platform())
    target = target.normalized()
    created = created or now_rfc3339()
    comment = message or f"Imported from {source}"
    config: dict[str, Any] = {
        "architecture": target.architecture,
        "os": target.os,
        "created": created,
        "comment": comment,
        "config": apply_changes({}, list(changes)),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "comment": comment}],
    }
    if target.variant:
        config["variant"] = target.variant
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def import_tarball(store: Any, stream: BinaryIO, ref: str | None = None, changes: list[str] | tuple[str, ...] = (),
                   message: str | None = None, platform: Platform | str | None = None, source: str = "-") -> str:
    """Import a rootfs tarball as an image (tagged ref when given); its image ID."""
    apply_changes({}, list(changes))  # refuse bad changes before reading the tarball
    with tempfile.TemporaryDirectory(prefix="dockyard-import-") as tmp:
        apply_layer(stream, tmp, whiteouts="naive")
        layer = store.write_layer(tmp, mode="compare")
    config = import_config(layer.diff_id, changes, message, platform, source)
    return store.add_image(config, [layer], tags=[ref] if ref else [])
