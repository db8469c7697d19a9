"""`docker run --device`, `--device-cgroup-rule` and `--privileged` against a private dockyardd:
the nodes the container gets (numbers, mode, owner as on the host) and what its device cgroup lets
it open."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.daemon import Dockyardd, busybox_daemon, containers_removed  # noqa: F401  (fixtures)

# loop-control's numbers: outside Docker's default device rules; a write to it only gets EINVAL
LOOP_CONTROL = (10, 237)
OPEN_REFUSED = "Operation not permitted"


@pytest.fixture
def nodes(tmp_path: Path) -> Path:
    """A directory of device nodes: a (zero, 0640, 1234:5678), sub/b (null, 0604), lc
    (loop-control's numbers, 0600) and a symlink to a."""
    root = tmp_path / "nodes"
    (root / "sub").mkdir(parents=True)
    os.mknod(root / "a", stat.S_IFCHR | 0o640, os.makedev(1, 5))
    os.chown(root / "a", 1234, 5678)
    os.mknod(root / "sub" / "b", stat.S_IFCHR | 0o604, os.makedev(1, 3))
    os.mknod(root / "lc", stat.S_IFCHR | 0o600, os.makedev(*LOOP_CONTROL))
    (root / "link").symlink_to("a")
    os.chmod(root / "a", 0o640)  # mknod's mode is subject to the umask
    os.chmod(root / "sub" / "b", 0o604)
    return root


def sh(daemon: Dockyardd, *args: str) -> tuple[int, str]:
    """`docker run --rm ARGS...` (the last one a shell script): (exit code, stdout + stderr)."""
    *opts, script = args
    proc = daemon.docker("run", "--rm", *opts, "busybox", "sh", "-c", script)
    return proc.returncode, proc.stdout + proc.stderr


def test_mapped_device_is_the_hosts_node(daemon: Dockyardd) -> None:
    host = os.stat("/dev/zero")
    code, out = sh(daemon, "--device", "/dev/zero:/dev/myzero",
                   "head -c4 /dev/myzero | od -An -tx1; stat -c '%t %T %a %u %g %F' /dev/myzero")
    assert code == 0, out
    zeros, details = out.strip().splitlines()
    assert zeros.split() == ["00"] * 4
    assert details == (f"1 5 {stat.S_IMODE(host.st_mode):o} {host.st_uid} {host.st_gid} character special file")


def test_inspect_shows_the_mapping(daemon: Dockyardd) -> None:
    proc = daemon.docker("create", "--device", "/dev/zero:/dev/myzero:r", "--device-cgroup-rule", "c 1:3 r",
                         "busybox")
    assert proc.returncode == 0, proc.stderr
    hc = json.loads(daemon.docker("inspect", proc.stdout.strip()).stdout)[0]["HostConfig"]
    assert hc["Devices"] == [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/myzero", "CgroupPermissions": "r"}]
    assert hc["DeviceCgroupRules"] == ["c 1:3 r"]


def test_cgroup_permissions(daemon: Dockyardd, nodes: Path) -> None:
    """`:r` lets the container open the node for reading only; `:rw` for writing too."""
    script = "(exec 3</dev/lc) && echo read-ok; (exec 4>/dev/lc) && echo write-ok; true"
    code, out = sh(daemon, "--device", f"{nodes}/lc:/dev/lc:r", script)
    assert code == 0 and "read-ok" in out and "write-ok" not in out and OPEN_REFUSED in out, out
    code, out = sh(daemon, "--device", f"{nodes}/lc:/dev/lc:rw", script)
    assert code == 0 and "read-ok" in out and "write-ok" in out, out


def test_directory_adds_every_node_under_it(daemon: Dockyardd, nodes: Path) -> None:
    code, out = sh(daemon, "--device", f"{nodes}:/dev/mine",
                   "cd /dev/mine && for f in a sub/b lc; do stat -c '%n %t %T %a %u %g' $f; done; ls")
    assert code == 0, out
    lines = out.split("\n")
    assert lines[:3] == ["a 1 5 640 1234 5678", "sub/b 1 3 604 0 0", "lc a ed 600 0 0"], out
    assert "link" not in out  # a symlink under the directory is no device


def test_symlink_given_is_followed(daemon: Dockyardd, nodes: Path) -> None:
    code, out = sh(daemon, "--device", f"{nodes}/link:/dev/l", "stat -c '%F %t %T %a' /dev/l")
    assert (code, out.strip()) == (0, "character special file 1 5 640")


def test_device_cgroup_rule(daemon: Dockyardd) -> None:
    """A rule allows a node the container makes itself, with the rule's access only."""
    script = "mknod /lc c 10 237 && { (exec 3</lc) && echo read-ok; (exec 4>/lc) && echo write-ok; true; }"
    code, out = sh(daemon, script)
    assert code == 0 and "read-ok" not in out and OPEN_REFUSED in out, out
    code, out = sh(daemon, "--device-cgroup-rule", "c 10:237 r", script)
    assert code == 0 and "read-ok" in out and "write-ok" not in out and OPEN_REFUSED in out, out
    code, out = sh(daemon, "--device-cgroup-rule", "c 10:* rw", script)
    assert code == 0 and "read-ok" in out and "write-ok" in out, out


def test_privileged_sees_host_devices(daemon: Dockyardd, nodes: Path) -> None:
    modes = {name: os.lstat(f"/dev/{name}").st_mode for name in os.listdir("/dev")}
    host = {name for name, mode in modes.items() if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)} - {"console"}
    code, out = sh(daemon, "--privileged", "--device", f"{nodes}/lc:/dev/extra",
                   "cd /dev && for f in *; do [ -c $f -o -b $f ] && echo $f; done; (exec 4>/dev/extra) && echo write-ok")
    assert code == 0, out
    seen = out.split()
    assert host <= set(seen) and "extra" in seen and "write-ok" in seen, out


def test_errors(daemon: Dockyardd, tmp_path: Path) -> None:
    proc = daemon.docker("run", "--rm", "--device", "/dev/no-such-device", "busybox", "true")
    assert proc.returncode == 127
    assert ('error gathering device information while adding custom device "/dev/no-such-device": '
            "no such file or directory") in proc.stderr
    proc = daemon.docker("run", "--rm", "--device", f"{tmp_path}:/dev/empty", "busybox", "true")
    assert proc.returncode == 125 and "not a device node" in proc.stderr, proc.stderr
    body = {"Image": "busybox", "HostConfig": {"DeviceCgroupRules": ["x 1:3 r"]}}
    status, _, answer = daemon.request("POST", "/v1.45/containers/create", json.dumps(body).encode(),
                                       {"Content-Type": "application/json"})
    assert (status, json.loads(answer)) == (400, {"message": "invalid device cgroup format 'x 1:3 r'"})
    body = {"Image": "busybox", "HostConfig": {"Devices": [{"PathOnHost": "/dev/zero", "CgroupPermissions": "rx"}]}}
    status, _, answer = daemon.request("POST", "/v1.45/containers/create", json.dumps(body).encode(),
                                       {"Content-Type": "application/json"})
    assert (status, json.loads(answer)) == (400, {"message": "bad mode specified: rx"})
