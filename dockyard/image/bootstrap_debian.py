"""A Debian base image built with mmdebstrap (variant minbase) from this host's Debian mirror,
shaped like Docker Hub's `debian` images: one layer, empty /dev, `Cmd ["bash"]`, the standard
PATH. Needs the network (the mirror) and the mmdebstrap package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any

from dockyard.image.bootstrap import image_from_rootfs, rfc3339, source_date_epoch
from dockyard.image.bootstrap_busybox import PATH_ENV, BootstrapError, host_platform

if TYPE_CHECKING:
    from dockyard.image.store import ImageStore

SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_ONE_LINE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", re.MULTILINE)
_DEB822 = re.compile(r"^URIs:\s*(\S+)", re.MULTILINE)


def host_mirror(sources: tuple[str, ...] = SOURCES) -> str:
    """The first Debian archive URI this host's apt sources use (security mirrors skipped)."""
    for path in sources:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for uri in _ONE_LINE.findall(text) + _DEB822.findall(text):
            if "security" not in uri:
                return uri
    return DEFAULT_MIRROR


def build_rootfs(dest: str, suite: str, mirror: str, epoch: int) -> None:
    """mmdebstrap --variant=minbase of suite into dest, then /dev emptied (as Docker's images)."""
    if shutil.which("mmdebstrap") is None:
        raise BootstrapError("mmdebstrap not found: install Debian's mmdebstrap")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    proc = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root", "--format=directory",
                           suite, dest, mirror], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise BootstrapError(f"mmdebstrap {suite} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    dev = os.path.join(dest, "dev")
    for entry in os.scandir(dev):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def image_config(diff_id: str, suite: str, created: str) -> dict[str, Any]:
    """The config of the Debian image whose single layer has diff_id."""
    arch, variant = host_platform()
    config: dict[str, Any] = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": created, "created_by": f"dockyard bootstrap debian: mmdebstrap --variant=minbase {suite}"},
            {"created": created, "created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True},
        ],
    }
    if variant:
        config["variant"] = variant
    return config


def bootstrap_debian(store: ImageStore, suite: str = "bookworm", tag: str | None = None,
                     mirror: str | None = None) -> str:
    """Build Debian `suite` with mmdebstrap and add it as an image tagged tag (default
    debian:<suite>); its ID."""
    epoch = source_date_epoch(time.time())
    mirror = mirror or host_mirror()
    return image_from_rootfs(store, lambda d: build_rootfs(d, suite, mirror, epoch),
                             lambda diff_id: image_config(diff_id, suite, rfc3339(epoch)), epoch,
                             tag or f"debian:{suite}")
