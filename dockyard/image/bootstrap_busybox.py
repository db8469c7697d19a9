"""A busybox root filesystem and image config built from Debian's busybox-static, offline.

Shaped like Docker Hub's `busybox` image: one static binary, a hard link per applet in /bin,
the usual /etc/passwd and /etc/group, `Cmd ["sh"]` and the standard PATH."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

BUSYBOX = "/bin/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
users:x:100:
staff:x:50:
nogroup:x:65534:
"""
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "lib": 0o755, "proc": 0o755,
        "root": 0o700, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/sbin": 0o755, "var": 0o755,
        "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755}


class BootstrapError(RuntimeError):
    """The host lacks what the bootstrap needs (the message says what to install)."""


def applets(busybox: str = BUSYBOX) -> list[str]:
    """The applet names this busybox binary provides."""
    if not os.access(busybox, os.X_OK):
        raise BootstrapError(f"{busybox} not found: install Debian's busybox-static")
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(set(out.split()) - {"busybox"})


def build_rootfs(dest: str, busybox: str = BUSYBOX) -> str:
    """Create the busybox root filesystem in dest (which must be empty or absent)."""
    os.makedirs(dest, exist_ok=True)
    if os.listdir(dest):
        raise BootstrapError(f"{dest} is not empty")
    for rel, mode in DIRS.items():
        path = os.path.join(dest, rel)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    binary = os.path.join(dest, "bin", "busybox")
    shutil.copyfile(busybox, binary)
    os.chmod(binary, 0o755)
    for name in applets(busybox):
        os.link(binary, os.path.join(dest, "bin", name))
    for rel, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
        with open(os.path.join(dest, rel), "w") as f:
            f.write(text)
    return dest


def host_platform() -> tuple[str, str]:
    """(architecture, variant) of this host in OCI terms."""
    machine = platform.machine()
    return {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"),
            "i686": ("386", ""), "ppc64le": ("ppc64le", ""), "s390x": ("s390x", "")}.get(machine, (machine, ""))


def image_config(diff_id: str, created: str) -> dict:
    """The image config of the busybox image whose single layer has diff_id."""
    arch, variant = host_platform()
    config: dict = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": created, "created_by": "dockyard bootstrap busybox: ADD busybox-static / "},
            {"created": created, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
        ],
    }
    if variant:
        config["variant"] = variant
    return config
