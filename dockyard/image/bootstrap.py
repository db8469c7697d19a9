"""Offline base images: a root filesystem directory becomes a one-layer image in the store.

`bootstrap_busybox` builds Docker Hub's busybox shape from Debian's busybox-static; the image is
reproducible: all times are clamped to SOURCE_DATE_EPOCH (default: the busybox binary's mtime),
so building twice gives the same image ID. Debian images are in bootstrap_debian.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dockyard.image import bootstrap_busybox as busybox
from dockyard.image.commit import encode_config

if TYPE_CHECKING:
    from dockyard.image.store import ImageStore


def source_date_epoch(default: float) -> int:
    """SOURCE_DATE_EPOCH from the environment, else default (whole seconds)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.strip().isdigit() else int(default)


def rfc3339(epoch: int) -> str:
    """Seconds since the epoch as an RFC 3339 UTC time."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_from_rootfs(store: ImageStore, build: Callable[[str], object], config: Callable[[str], dict[str, Any]],
                      epoch: int, tag: str | None) -> str:
    """Run build(dir) to fill a fresh directory, store it as one gzip layer with times clamped to
    epoch, and add the image whose config is config(diff_id); its ID."""
    work = tempfile.mkdtemp(prefix="bootstrap-", dir=store.root)
    try:
        rootfs = os.path.join(work, "rootfs")
        build(rootfs)
        layer = store.write_layer(rootfs, mode="compare", source_date_epoch=epoch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return store.add_image(encode_config(config(layer.diff_id)), [layer], tags=[tag] if tag else [])


def bootstrap_busybox(store: ImageStore, tag: str | None = "busybox:latest", binary: str = busybox.BUSYBOX) -> str:
    """The busybox image from the host's busybox-static, tagged; its ID (same input, same ID)."""
    if not os.access(binary, os.X_OK):
        raise busybox.BootstrapError(f"{binary} not found: install Debian's busybox-static")
    epoch = source_date_epoch(os.stat(binary).st_mtime)
    return image_from_rootfs(store, lambda d: busybox.build_rootfs(d, binary),
                             lambda diff_id: busybox.image_config(diff_id, rfc3339(epoch)), epoch, tag)
