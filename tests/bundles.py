"""Test support: busybox root filesystems and OCI bundles built from Debian's busybox-static."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.image.bootstrap_busybox import build_rootfs
from dockyard.runtime.spec_template import default_spec

# Test users on top of the image's: a regular user with a supplementary group.
TEST_PASSWD = "tester:x:1000:1000:tester:/home/tester:/bin/sh\n"
TEST_GROUP = "tester:x:1000:\nextra:x:1001:tester\n"


def make_busybox_rootfs(dest: Path) -> Path:
    """The bootstrap busybox root filesystem plus a test user (uid 1000, groups 1000 and 1001)."""
    build_rootfs(str(dest))
    with open(dest / "etc/passwd", "a") as f:
        f.write(TEST_PASSWD)
    with open(dest / "etc/group", "a") as f:
        f.write(TEST_GROUP)
    (dest / "home/tester").mkdir(parents=True, exist_ok=True)
    os.chown(dest / "home/tester", 1000, 1000)
    return dest


@dataclass
class Bundle:
    """An OCI bundle directory whose config can be edited before `write()`."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def rootfs(self) -> Path:
        return self.path / self.config["root"]["path"]

    def write(self) -> Bundle:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))
        return self


def make_bundle(dest: Path, template: Path, args: list[str], terminal: bool = False) -> Bundle:
    """A bundle at dest with a private copy of the template rootfs and runc's default config."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(template), str(dest / "rootfs")], check=True)
    config = default_spec(args=args, terminal=terminal)
    config["root"]["readonly"] = False
    return Bundle(dest, config).write()
