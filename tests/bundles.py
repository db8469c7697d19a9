"""Test support: busybox root filesystems and OCI bundles built from Debian's busybox-static."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.runtime.spec_template import default_spec

BUSYBOX = "/bin/busybox"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "tester:x:1000:1000:tester:/home/tester:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\ntester:x:1000:\nextra:x:1001:tester\nnogroup:x:65534:\n"


def make_busybox_rootfs(dest: Path) -> Path:
    """Create a minimal busybox root filesystem at dest (bin/ with every applet, etc/, tmp/)."""
    if not os.path.exists(BUSYBOX):
        raise RuntimeError("busybox-static is not installed (make setup installs it)")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root",
              "home/tester", "var"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "etc/passwd").write_text(PASSWD)
    (dest / "etc/group").write_text(GROUP)
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
