"""`build --output type=local|tar`: an image archive (`docker save` format) flattened into the
filesystem its layers make."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from typing import IO

from dockyard.build.context import extract


def flatten(archive: IO[bytes], dest: str, as_tar: bool = False) -> None:
    """Apply the image's layers in order into directory dest (or a tar file dest)."""
    with tempfile.TemporaryDirectory() as tmp:
        extract(archive, tmp)
        with open(os.path.join(tmp, "manifest.json")) as f:
            layers = json.load(f)[0]["Layers"]
        root = os.path.join(tmp, "rootfs") if as_tar else dest
        os.makedirs(root, exist_ok=True)
        for layer in layers:
            with open(os.path.join(tmp, layer), "rb") as f:
                extract(f, root, whiteouts=True)
        if as_tar:
            with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
                for name in sorted(os.listdir(root)):
                    out.add(os.path.join(root, name), arcname=name)
            shutil.rmtree(root, ignore_errors=True)
