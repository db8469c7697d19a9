"""Volumes and mounts with the real docker CLI against a private dockyardd: named and anonymous
volumes, copy-up, binds, tmpfs, --volumes-from, local driver options, prune, system df, the
in-use conflict, and volumes kept across daemon restarts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.snapshot.mount import mounts_under
from dockyard.runtime.syscalls import MNT_DETACH, umount2

# fixtures: busybox as a save archive and a rootfs tar; the leftover-children check minus the daemon
from tests.daemon import (
    Dockyardd,
    daemon_children_only,  # noqa: F401 (fixture)
)
from tests.test_api_images import archives  # noqa: F401

VOLIMG = "volimg:1"


def image_tar(rootfs_tar: Path, out: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """busybox's rootfs tar plus extra members."""
    with tarfile.open(rootfs_tar) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for info, data in extra:
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def member(name: str, kind: bytes = tarfile.DIRTYPE, mode: int = 0o755, uid: int = 0, data: bytes | None = None,
           link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.linkname = kind, mode, uid, uid, link
    info.mtime = 1_700_000_000
    if data is not None:
        info.size = len(data)
    return info, data


@pytest.fixture(scope="module")
def daemon(archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyardd]:  # noqa: F811
    """A daemon with busybox and volimg:1 (VOLUME /data holding files owned by 1000 with their
    own modes, a symlink and a hard link)."""
    tmp = tmp_path_factory.mktemp("volimg")
    tar = image_tar(archives["rootfs"], tmp / "volimg.tar", [
        member("data", mode=0o750, uid=1000),
        member("data/file", tarfile.REGTYPE, 0o640, 1000, b"image-data\n"),
        member("data/sub", mode=0o700, uid=1001),
        member("data/link", tarfile.SYMTYPE, 0o777, link="/etc/passwd"),
        member("data/hard", tarfile.LNKTYPE, 0o640, 1000, link="data/file"),
    ])
    with volume_daemon(archives) as d:
        ok(d, "import", "--change", "VOLUME /data", "--change", 'CMD ["sh"]', str(tar), VOLIMG)
        yield d


@contextlib.contextmanager
def volume_daemon(archives: dict[str, Path]) -> Iterator[Dockyardd]:  # noqa: F811
    """A daemon with busybox; afterwards its containers and volumes are removed and no mount may
    remain under its directory (any left is detached, then reported)."""
    d = Dockyardd()
    try:
        d.start()
        ok(d, "load", "-i", str(archives["save"]))
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            leftover = d.docker("ps", "-aq").stdout.split()
            if leftover:
                d.docker("rm", "-fv", *leftover)
            names = d.docker("volume", "ls", "-q").stdout.split()
            if names:
                d.docker("volume", "rm", "-f", *names)
        d.cleanup()
        left = mounts_under(str(d.tmp))
        for path in reversed(left):
            umount2(path, MNT_DETACH)
        assert not left, f"mounts left behind: {left}"


@pytest.fixture
def host_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dyv-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def ok(d: Dockyardd, *args: str) -> str:
    proc = d.docker(*args)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def fails(d: Dockyardd, code: int, *args: str) -> str:
    proc = d.docker(*args)
    assert proc.returncode == code, f"docker {' '.join(args)}: {proc.returncode} {proc.stdout} {proc.stderr}"
    return proc.stderr


def name() -> str:
    return "v" + uuid.uuid4().hex[:10]


def inspect_volume(d: Dockyardd, vol: str) -> dict:
    return json.loads(ok(d, "volume", "inspect", vol))[0]


def mounts_of(d: Dockyardd, container: str) -> dict[str, dict]:
    return {m["Destination"]: m for m in json.loads(ok(d, "inspect", "-f", "{{json .Mounts}}", container))}


def volumes(d: Dockyardd) -> set[str]:
    return set(ok(d, "volume", "ls", "-q").split())


# -- named volumes ------------------------------------------------------------------------------------


def test_named_volume_shared_by_successive_containers(daemon: Dockyardd) -> None:
    vol = name()
    assert ok(daemon, "volume", "create", "--label", "team=a", vol).strip() == vol
    info = inspect_volume(daemon, vol)
    assert info["Name"] == vol and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Mountpoint"] == f"{daemon.data_root}/volumes/{vol}/_data" and info["Labels"] == {"team": "a"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", info["CreatedAt"])
    ok(daemon, "run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo written > /data/f")
    assert ok(daemon, "run", "--rm", "-v", f"{vol}:/other", "busybox", "cat", "/other/f") == "written\n"
    assert vol in volumes(daemon)
    assert ok(daemon, "volume", "rm", vol) == vol + "\n"
    assert vol not in volumes(daemon)


def test_run_creates_a_missing_named_volume(daemon: Dockyardd) -> None:
    vol = name()
    cid = ok(daemon, "create", "-v", f"{vol}:/data:ro", "busybox", "true").strip()
    try:
        point = mounts_of(daemon, cid)["/data"]
        assert point == {"Type": "volume", "Name": vol, "Source": f"{daemon.data_root}/volumes/{vol}/_data",
                         "Destination": "/data", "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""}
        assert inspect_volume(daemon, vol)["Labels"] is None
        assert "z" == mounts_of(daemon, ok(daemon, "create", "-v", f"{vol}:/x", "busybox").strip())["/x"]["Mode"]
    finally:
        daemon.docker("rm", "-f", *ok(daemon, "ps", "-aq", "--filter", f"volume={vol}").split())
        daemon.docker("volume", "rm", vol)


def test_volume_events(daemon: Dockyardd) -> None:
    vol = name()
    since = str(int(time.time()) - 1)
    cid = ok(daemon, "run", "-d", "-v", f"{vol}:/data:ro", "busybox", "true").strip()
    ok(daemon, "wait", cid)
    ok(daemon, "rm", cid)
    ok(daemon, "volume", "rm", vol)
    out = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "type=volume",
             "--filter", f"volume={vol}", "--format", "{{.Action}} {{.Actor.Attributes}}")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["create", "mount", "unmount", "destroy"], out
    assert f"container:{cid}" in lines[1] and "destination:/data" in lines[1] and "read/write:false" in lines[1]


def test_volume_in_use_cannot_be_removed(daemon: Dockyardd) -> None:
    vol = name()
    cid = ok(daemon, "create", "-v", f"{vol}:/data", "busybox", "true").strip()
    error = fails(daemon, 1, "volume", "rm", vol)
    assert f"Error response from daemon: remove {vol}: volume is in use - [{cid}]" in error
    status, _, body = daemon.request("DELETE", f"/v1.45/volumes/{vol}")
    assert status == 409 and json.loads(body)["message"] == f"remove {vol}: volume is in use - [{cid}]"
    assert ok(daemon, "ps", "-aq", "--no-trunc", "--filter", f"volume={vol}").split() == [cid]
    ok(daemon, "rm", "-v", cid)  # named volumes survive rm -v
    assert vol in volumes(daemon)
    ok(daemon, "volume", "rm", vol)
    assert "get nosuch: no such volume" in fails(daemon, 1, "volume", "inspect", "nosuch")
    assert "no such volume" in fails(daemon, 1, "volume", "rm", "nosuch")
    ok(daemon, "volume", "rm", "-f", "nosuch")


def test_volume_names_and_driver_options_are_checked(daemon: Dockyardd) -> None:
    assert 'create a@b: "a@b" includes invalid characters for a local volume name' in \
        fails(daemon, 1, "volume", "create", "a@b")
    assert 'invalid option: "bogus"' in fails(daemon, 1, "volume", "create", "-o", "bogus=1", name())
    assert 'missing required option: "device"' in fails(daemon, 1, "volume", "create", "-o", "type=tmpfs", name())
    status, _, body = daemon.request("POST", "/v1.45/volumes/create", json.dumps({"Name": "x1", "Driver": "nope"}).encode(),
                                     {"Content-Type": "application/json"})
    assert status == 404 and "plugin \"nope\" not found" in json.loads(body)["message"]
    generated = ok(daemon, "volume", "create").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", generated)
    assert inspect_volume(daemon, generated)["Labels"] == {"com.docker.volume.anonymous": ""}
    ok(daemon, "volume", "rm", generated)


# -- anonymous volumes ----------------------------------------------------------------------------------


def test_anonymous_volumes_go_with_rm_v_and_auto_remove(daemon: Dockyardd) -> None:
    named = name()
    cid = ok(daemon, "create", "-v", "/anon", "-v", f"{named}:/named", "busybox", "true").strip()
    anon = mounts_of(daemon, cid)["/anon"]
    assert re.fullmatch(r"[0-9a-f]{64}", anon["Name"]) and anon["Type"] == "volume" and anon["Mode"] == ""
    assert inspect_volume(daemon, anon["Name"])["Labels"] == {"com.docker.volume.anonymous": ""}
    ok(daemon, "rm", cid)
    assert {anon["Name"], named} <= volumes(daemon)  # plain rm keeps both
    ok(daemon, "volume", "rm", anon["Name"])
    cid = ok(daemon, "create", "-v", "/anon", "-v", f"{named}:/named", "busybox", "true").strip()
    anon = mounts_of(daemon, cid)["/anon"]
    ok(daemon, "rm", "-v", cid)
    assert anon["Name"] not in volumes(daemon) and named in volumes(daemon)
    before = volumes(daemon)
    ok(daemon, "run", "--rm", "-v", "/scratch", "--mount", "type=volume,dst=/scratch2", "busybox", "true")
    assert volumes(daemon) == before
    ok(daemon, "volume", "rm", named)


def test_image_volume_is_copied_up_with_ownership_and_modes(daemon: Dockyardd) -> None:
    out = ok(daemon, "run", "--rm", VOLIMG, "sh", "-c",
             "stat -c '%n %u %g %a' /data /data/file /data/sub; readlink /data/link; cat /data/file; "
             "stat -c %i /data/file /data/hard")
    lines = out.splitlines()
    assert lines[:5] == ["/data 1000 1000 750", "/data/file 1000 1000 640", "/data/sub 1001 1001 700", "/etc/passwd",
                         "image-data"]
    assert lines[5] == lines[6]  # the hard link stayed one
    vol = name()
    ok(daemon, "run", "--rm", "-v", f"{vol}:/data", VOLIMG, "sh", "-c", "echo mine > /data/file")
    assert ok(daemon, "run", "--rm", "-v", f"{vol}:/data", VOLIMG, "cat", "/data/file") == "mine\n"  # not empty: kept
    empty = name()
    assert ok(daemon, "run", "--rm", "-v", f"{empty}:/data:nocopy", VOLIMG, "ls", "-A", "/data") == ""
    assert ok(daemon, "run", "--rm", "--mount", f"type=volume,src={name()},dst=/data,volume-nocopy", VOLIMG,
              "ls", "-A", "/data") == ""
    assert ok(daemon, "run", "--rm", "--mount", f"type=volume,src={name()},dst=/etc", "busybox",
              "grep", "-c", "root", "/etc/passwd").strip() != "0"
    ok(daemon, "volume", "prune", "-af")


# -- binds and tmpfs -----------------------------------------------------------------------------------


def test_bind_mounts_live_readonly_and_created(daemon: Dockyardd, host_dir: Path) -> None:
    (host_dir / "a.txt").write_text("one\n")
    cid = ok(daemon, "run", "-d", "-v", f"{host_dir}:/h", "-v", f"{host_dir}:/r:ro,rslave", "busybox",
             "sleep", "60").strip()
    try:
        assert ok(daemon, "exec", cid, "cat", "/h/a.txt") == "one\n"
        (host_dir / "a.txt").write_text("two\n")
        assert ok(daemon, "exec", cid, "cat", "/h/a.txt") == "two\n"
        ok(daemon, "exec", cid, "sh", "-c", "echo back > /h/b.txt")
        assert (host_dir / "b.txt").read_text() == "back\n"
        assert "Read-only file system" in fails(daemon, 1, "exec", cid, "touch", "/r/x")
        points = mounts_of(daemon, cid)
        assert points["/h"] == {"Type": "bind", "Source": str(host_dir), "Destination": "/h", "Mode": "", "RW": True,
                                "Propagation": "rprivate"}
        assert points["/r"]["Mode"] == "ro,rslave" and points["/r"]["RW"] is False
        assert points["/r"]["Propagation"] == "rslave"
    finally:
        daemon.docker("rm", "-f", cid)
    missing = host_dir / "made" / "here"
    ok(daemon, "run", "--rm", "-v", f"{missing}:/m", "busybox", "true")
    assert missing.is_dir()
    error = fails(daemon, 125, "run", "--rm", "--mount", f"type=bind,src={host_dir}/nope,dst=/m", "busybox", "true")
    assert f'invalid mount config for type "bind": bind source path does not exist: {host_dir}/nope' in error
    ok(daemon, "run", "--rm", "--mount", f"type=bind,src={host_dir},dst=/m,readonly,bind-propagation=rprivate",
       "busybox", "test", "-f", "/m/a.txt")
    assert "Read-only file system" in fails(daemon, 1, "run", "--rm", "--mount",
                                            f"type=bind,source={host_dir},target=/m,ro", "busybox", "touch", "/m/z")


def test_file_binds_workdir_in_a_volume_and_create_mountpoint(daemon: Dockyardd, host_dir: Path) -> None:
    (host_dir / "f.txt").write_text("file\n")
    assert ok(daemon, "run", "--rm", "-v", f"{host_dir}/f.txt:/etc/f.txt:ro", "busybox", "cat", "/etc/f.txt") == "file\n"
    assert ok(daemon, "run", "--rm", "-v", f"{name()}:/app", "-w", "/app/sub", "busybox", "pwd") == "/app/sub\n"
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [  # compose's create_host_path
        {"Type": "bind", "Source": str(host_dir / "new"), "Target": "/n", "BindOptions": {"CreateMountpoint": True}}]}}
    status, _, out = daemon.request("POST", "/v1.45/containers/create", json.dumps(body).encode(),
                                    {"Content-Type": "application/json"})
    assert status == 201, out
    cid = json.loads(out)["Id"]
    ok(daemon, "start", "-a", cid)
    assert (host_dir / "new").is_dir()
    ok(daemon, "rm", cid)


def test_mount_specs_refused_with_docker_texts(daemon: Dockyardd, host_dir: Path) -> None:
    assert "invalid specification: destination can't be '/'" in \
        fails(daemon, 125, "run", "--rm", "-v", f"{name()}:/a/../..", "busybox", "true")
    assert "invalid mode: bogus" in fails(daemon, 125, "run", "--rm", "-v", f"{host_dir}:/x:bogus", "busybox", "true")
    assert "mount path must be absolute" in fails(daemon, 125, "run", "--rm", "-v", f"{host_dir}:rel", "busybox", "true")
    assert "Duplicate mount point: /x" in \
        fails(daemon, 125, "run", "--rm", "-v", f"{host_dir}:/x", "--tmpfs", "/x", "busybox", "true")
    assert "subpath must be a relative path within the volume" in \
        fails(daemon, 125, "run", "--rm", "--mount", "type=volume,src=sp,dst=/x,volume-subpath=../a", "busybox", "true")
    assert "Duplicate mount point: /x" in fails(daemon, 125, "run", "--rm", "-v", f"{host_dir}:/x", "--mount",
                                                f"type=bind,src={host_dir},dst=/x", "busybox", "true")
    # `..` is cleaned as Docker cleans it: it cannot climb above the container's root
    assert ok(daemon, "run", "--rm", "-v", f"{host_dir}:/a/../../../b", "busybox", "ls", "-d", "/b") == "/b\n"


def test_tmpfs_size_and_mode_enforced(daemon: Dockyardd) -> None:
    script = "stat -c %a /t; dd if=/dev/zero of=/t/x bs=1k count=2048 2>&1 | grep -c 'No space left'"
    assert ok(daemon, "run", "--rm", "--tmpfs", "/t:size=1m,mode=1777", "busybox", "sh", "-c", script) == "1777\n1\n"
    assert ok(daemon, "run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox",
              "sh", "-c", script) == "1770\n1\n"


def test_volumes_from_with_read_only(daemon: Dockyardd) -> None:
    vol = name()
    source = ok(daemon, "create", "-v", f"{vol}:/data", "-v", "/anon", "busybox", "true").strip()
    try:
        ok(daemon, "run", "--rm", "--volumes-from", source, "busybox", "sh", "-c", "echo shared > /data/f; touch /anon/g")
        assert ok(daemon, "run", "--rm", "--volumes-from", f"{source}:ro", "busybox", "cat", "/data/f") == "shared\n"
        assert "Read-only file system" in fails(daemon, 1, "run", "--rm", "--volumes-from", f"{source}:ro",
                                                "busybox", "touch", "/anon/x")
        user = ok(daemon, "create", "--volumes-from", source, "busybox", "true").strip()
        assert mounts_of(daemon, user)["/anon"]["Name"] == mounts_of(daemon, source)["/anon"]["Name"]
        ok(daemon, "rm", "-v", source)  # its anonymous volume is still used by `user`: kept
        assert mounts_of(daemon, user)["/anon"]["Name"] in volumes(daemon)
        ok(daemon, "rm", "-v", user)
        assert "No such container: nosuch" in fails(daemon, 125, "run", "--rm", "--volumes-from", "nosuch", "busybox")
    finally:
        daemon.docker("rm", "-fv", source)
        daemon.docker("volume", "rm", vol)


# -- driver options, prune, df --------------------------------------------------------------------------


def test_tmpfs_volume_mounted_while_used(daemon: Dockyardd) -> None:
    vol = name()
    ok(daemon, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", vol)
    path = f"{daemon.data_root}/volumes/{vol}/_data"
    first = ok(daemon, "run", "-d", "-v", f"{vol}:/v", "busybox", "sleep", "60").strip()
    second = ok(daemon, "run", "-d", "-v", f"{vol}:/w", "busybox", "sleep", "60").strip()
    try:
        ok(daemon, "exec", first, "sh", "-c", "echo x > /v/f")
        assert ok(daemon, "exec", second, "cat", "/w/f") == "x\n"
        assert "1" in ok(daemon, "exec", first, "sh", "-c",
                         "dd if=/dev/zero of=/v/big bs=1k count=2048 2>&1 | grep -c 'No space left'")
        assert findmnt(path)
        ok(daemon, "rm", "-f", first)
        assert findmnt(path)  # still used by the second
        ok(daemon, "rm", "-f", second)
        assert not findmnt(path)
    finally:
        daemon.docker("rm", "-f", first, second)
        daemon.docker("volume", "rm", vol)


def test_bind_volume_driver_option(daemon: Dockyardd, host_dir: Path) -> None:
    vol = name()
    ok(daemon, "volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={host_dir}", vol)
    ok(daemon, "run", "--rm", "-v", f"{vol}:/v", "busybox", "sh", "-c", "echo via-volume > /v/f")
    assert (host_dir / "f").read_text() == "via-volume\n"
    assert not findmnt(f"{daemon.data_root}/volumes/{vol}/_data")
    ok(daemon, "volume", "rm", vol)
    assert (host_dir / "f").exists()  # removing the volume leaves the device's data alone


def findmnt(path: str) -> bool:
    return subprocess.run(["findmnt", "-M", path], capture_output=True).returncode == 0


def test_prune_and_list_filters(daemon: Dockyardd) -> None:
    ok(daemon, "volume", "prune", "-af")
    named, used, labelled = name(), name(), name()
    ok(daemon, "volume", "create", named)
    ok(daemon, "volume", "create", "--label", "keep=yes", labelled)
    anon = ok(daemon, "volume", "create").strip()
    cid = ok(daemon, "create", "-v", f"{used}:/u", "busybox", "true").strip()
    try:
        assert set(ok(daemon, "volume", "ls", "-q", "-f", "dangling=true").split()) == {named, labelled, anon}
        assert ok(daemon, "volume", "ls", "-q", "-f", "dangling=false").split() == [used]
        assert ok(daemon, "volume", "ls", "-q", "-f", "label=keep=yes").split() == [labelled]
        assert ok(daemon, "volume", "ls", "-q", "-f", f"name={named[:6]}", "-f", "dangling=true").split() == [named]
        assert "invalid filter 'nope'" in fails(daemon, 1, "volume", "ls", "-f", "nope=1")
        out = ok(daemon, "volume", "prune", "-f")
        assert out == f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 0B\n"
        ok(daemon, "volume", "prune", "-af", "--filter", "label!=keep")
        assert volumes(daemon) == {used, labelled}
        ok(daemon, "volume", "prune", "-af")
        assert volumes(daemon) == {used}
        status, _, body = daemon.request("POST", "/v1.41/volumes/prune")  # before 1.42: every unused one
        assert status == 200 and json.loads(body) == {"VolumesDeleted": [], "SpaceReclaimed": 0}
    finally:
        daemon.docker("rm", "-f", cid)
        daemon.docker("volume", "rm", used)


def test_system_df_volume_sizes(daemon: Dockyardd) -> None:
    vol = name()
    ok(daemon, "run", "--rm", "-v", f"{vol}:/v", "busybox", "sh", "-c", "head -c 3000 /dev/zero > /v/f")
    try:
        status, _, body = daemon.request("GET", "/v1.45/system/df")
        entry = next(v for v in json.loads(body)["Volumes"] if v["Name"] == vol)
        assert status == 200 and entry["UsageData"] == {"Size": 3000, "RefCount": 0}
        assert re.search(rf"^{vol}\s+0\s+3kB$", ok(daemon, "system", "df", "-v"), re.M)
    finally:
        ok(daemon, "volume", "rm", vol)


def test_concurrent_creates_and_removals_stay_consistent(daemon: Dockyardd) -> None:
    """A volume removal racing container creates: every surviving container's volume exists."""
    vol = name()
    created: list[str] = []

    def creates() -> None:
        for _ in range(4):
            proc = daemon.docker("create", "-v", f"{vol}:/d", "busybox", "true")
            if proc.returncode == 0:
                created.append(proc.stdout.strip())

    def removes() -> None:
        for _ in range(8):
            daemon.docker("volume", "rm", vol)

    threads = [threading.Thread(target=creates), threading.Thread(target=removes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if created:
            assert vol in volumes(daemon)
            ok(daemon, "start", "-a", created[-1])
    finally:
        if created:
            daemon.docker("rm", "-f", *created)
        daemon.docker("volume", "rm", "-f", vol)


# -- persistence ----------------------------------------------------------------------------------------


def test_volumes_survive_restarts_and_repair(archives: dict[str, Path]) -> None:  # noqa: F811
    with volume_daemon(archives) as d:
        ok(d, "run", "--rm", "-v", "keep:/k", "busybox", "sh", "-c", "echo kept > /k/f")
        ok(d, "volume", "create", "tmp1")
        cid = ok(d, "create", "-v", "used:/u", "busybox", "true").strip()
        d.proc.kill()  # type: ignore[union-attr]  # kill -9: no clean shutdown
        d.proc.wait()  # type: ignore[union-attr]
        root = d.data_root / "volumes"
        (root / "half" / "_data").mkdir(parents=True)  # created, never committed
        (root / "orphan" / "_data").mkdir(parents=True)
        (root / "orphan" / "_data" / "x").write_text("data")
        os.rename(root / "tmp1", root / ".removing-tmp1")  # removal parked, record still there
        shutil.rmtree(root / "keep" / "_data")
        (root / "keep" / "_data").mkdir()
        (root / "keep" / "_data" / "f").write_text("kept\n")
        d.pidfile.unlink()
        d.socket.unlink()
        d.start()
        assert volumes(d) == {"keep", "tmp1", "used", "orphan"}
        assert not (root / "half").exists() and (root / "tmp1" / "_data").is_dir()
        assert ok(d, "run", "--rm", "-v", "keep:/k", "busybox", "cat", "/k/f") == "kept\n"
        assert "volume is in use" in fails(d, 1, "volume", "rm", "used")
        ok(d, "rm", cid)
        ok(d, "volume", "rm", "used", "tmp1", "orphan", "keep")


# -- the dockyard CLI, compared with docker's --------------------------------------------------------


def test_dockyard_volume_commands_match_docker(daemon: Dockyardd, host_dir: Path) -> None:
    from tests.test_cli import dy, same

    vol = name()
    assert dy(daemon, "volume", "create", "--label", "k=v", vol).stdout == vol + "\n"
    assert same(daemon, "volume", "create", vol).stdout == vol + "\n"
    same(daemon, "volume", "ls")
    same(daemon, "volume", "ls", "-q", "--filter", "label=k=v")
    same(daemon, "volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
    same(daemon, "volume", "inspect", vol)
    same(daemon, "volume", "inspect", "-f", "{{.Name}} {{.Mountpoint}}", vol)
    same(daemon, "volume", "inspect", "nosuch", stderr=True)
    same(daemon, "inspect", "-f", "{{.Name}} {{.Scope}}", vol)
    same(daemon, "volume", "rm", "nosuch", stderr=True)
    same(daemon, "volume", "create", "-o", "bogus=1", "x1", stderr=True)
    (host_dir / "in").write_text("host\n")
    out = dy(daemon, "run", "--rm", "-v", f"{vol}:/d", "-v", f"{host_dir}:/h:ro", "--mount",
             "type=tmpfs,dst=/t,tmpfs-mode=1770", "busybox", "sh", "-c", "cp /h/in /d/f; stat -c %a /t")
    assert out.returncode == 0 and out.stdout == "1770\n", out.stderr
    holder = dy(daemon, "create", "-v", "/anon", "-v", f"{vol}:/d", "busybox", "true").stdout.strip()
    assert dy(daemon, "run", "--rm", "--volumes-from", f"{holder}:ro", "busybox", "cat", "/d/f").stdout == "host\n"
    anon = mounts_of(daemon, holder)["/anon"]["Name"]
    same(daemon, "system", "df", "-v")
    same(daemon, "system", "df")
    assert dy(daemon, "rm", "-v", holder).returncode == 0 and anon not in volumes(daemon)
    same(daemon, "volume", "prune", "-f")
    assert dy(daemon, "volume", "prune", "-af").stdout.startswith("Deleted Volumes:\n")
    assert vol not in volumes(daemon)
