"""Snapshotter conformance suite (in the spirit of containerd's snapshots/testsuite), run against
the overlay and vfs snapshotters on the real kernel, plus tests of each one's own behaviour.

Layer content is written straight into layer_dir(key), as the layer-apply code does. Every
test gets its own scratch directory; the fixture unmounts and deletes everything in it and fails
the test if anything was still mounted there."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dockyard.image.snapshot import (
    DRIVERS,
    AlreadyExists,
    Mount,
    NotFound,
    OverlaySnapshotter,
    SnapshotError,
    Snapshotter,
    VfsSnapshotter,
    mount_all,
    newmount,
    open_snapshotter,
    overlay_supported,
    unmount,
)
from dockyard.image.snapshot.mount import PAGE_SIZE, mounts_under
from tests.conftest import mount_checked_dir

REPO = Path(__file__).resolve().parent.parent


# -- fixtures and helpers -----------------------------------------------------------------

@pytest.fixture
def scratch() -> Iterator[Path]:
    with mount_checked_dir("dockyard-snap-") as path:
        yield path


@pytest.fixture(params=sorted(DRIVERS))
def sn(request: pytest.FixtureRequest, scratch: Path) -> Snapshotter:
    return DRIVERS[request.param](str(scratch / "root"))


@contextlib.contextmanager
def mounted(mounts: list[Mount], target: Path) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    mount_all(mounts, str(target))
    try:
        yield target
    finally:
        unmount(str(target))


def put(sn: Snapshotter, key: str, rel: str, data: str = "x") -> None:
    path = Path(sn.layer_dir(key)) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)


def delete(sn: Snapshotter, key: str, rel: str) -> None:
    """Delete rel in key's layer the way a layer apply does for this snapshotter."""
    path = Path(sn.layer_dir(key)) / rel
    if sn.diff_mode() == "overlay":
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def make_opaque(sn: Snapshotter, key: str, rel: str) -> None:
    """Replace directory rel by an empty one in key's layer."""
    path = Path(sn.layer_dir(key)) / rel
    if sn.diff_mode() == "overlay":
        path.mkdir(parents=True, exist_ok=True)
        os.setxattr(path, "trusted.overlay.opaque", b"y")
    else:
        shutil.rmtree(path)
        path.mkdir()


def layer(sn: Snapshotter, name: str, parent: str | None, files: dict[str, str]) -> str:
    """Commit a layer holding files on top of parent."""
    sn.prepare(name + "-active", parent)
    for rel, data in files.items():
        put(sn, name + "-active", rel, data)
    sn.commit(name, name + "-active")
    return name


def chain(sn: Snapshotter, n: int) -> str:
    """n committed layers l0..l{n-1}, layer i adding file layer{i}; the top one's name."""
    parent = None
    for i in range(n):
        parent = layer(sn, f"l{i}", parent, {f"layer{i}": str(i)})
    return parent


def assert_consistent(sn: Snapshotter) -> None:
    """Every snapshot has its directory, every directory a snapshot, nothing half-done in tmp."""
    infos = list(sn.walk())
    assert len(os.listdir(os.path.join(sn.root, "snapshots"))) == len(infos)
    for info in infos:
        if info.kind != "view":
            assert os.path.isdir(sn.layer_dir(info.key)), info
    assert os.listdir(os.path.join(sn.root, "tmp")) == []


# -- the conformance suite ------------------------------------------------------------------

def test_prepare_commit_chain(sn: Snapshotter, scratch: Path) -> None:
    layer(sn, "a", None, {"etc/os": "base", "bin/sh": "sh"})
    layer(sn, "b", "a", {"etc/os": "b", "new": "new"})
    mounts = sn.prepare("c", "b")
    with mounted(mounts, scratch / "rootfs") as root:
        assert (root / "etc/os").read_text() == "b"
        assert (root / "bin/sh").read_text() == "sh"
        assert (root / "new").read_text() == "new"
        (root / "written").write_text("w")
        (root / "etc/os").write_text("changed")
    assert (Path(sn.layer_dir("c")) / "written").read_text() == "w"
    for committed in ("a", "b"):
        assert not (Path(sn.layer_dir(committed)) / "written").exists()
    assert (Path(sn.layer_dir("b")) / "etc/os").read_text() == "b"
    assert sn.mounts("c") == mounts
    c, b, a = sn.stat("c"), sn.stat("b"), sn.stat("a")
    assert (c.kind, c.parent) == ("active", "b")
    assert (b.kind, b.parent) == ("committed", "a")
    assert (a.kind, a.parent) == ("committed", None)
    with pytest.raises(NotFound):
        sn.stat("b-active")


def test_prepare_without_parent_is_writable(sn: Snapshotter, scratch: Path) -> None:
    with mounted(sn.prepare("empty"), scratch / "rootfs") as root:
        assert list(root.iterdir()) == []
        (root / "f").write_text("f")
    assert (Path(sn.layer_dir("empty")) / "f").read_text() == "f"


def test_views_are_read_only(sn: Snapshotter, scratch: Path) -> None:
    layer(sn, "a", None, {"a": "a"})
    layer(sn, "b", "a", {"b": "b"})
    for key, parent, expected in (("v0", None, set()), ("v1", "a", {"a"}), ("v2", "b", {"a", "b"})):
        with mounted(sn.view(key, parent), scratch / key) as root:
            assert {p.name for p in root.iterdir()} == expected
            with pytest.raises(OSError) as err:
                (root / "new").write_text("x")
            assert err.value.errno == errno.EROFS
        assert sn.stat(key).kind == "view"
        with pytest.raises(SnapshotError):
            sn.layer_dir(key)
        with pytest.raises(SnapshotError):
            sn.commit(key + "-c", key)
    assert (Path(sn.layer_dir("b")) / "b").read_text() == "b"


def test_deleted_file_is_invisible(sn: Snapshotter, scratch: Path) -> None:
    layer(sn, "a", None, {"gone": "1", "kept": "2", "dir/inner": "3"})
    sn.prepare("b-active", "a")
    delete(sn, "b-active", "gone")
    delete(sn, "b-active", "dir")
    sn.commit("b", "b-active")
    for mounts, target in ((sn.prepare("c", "b"), "c"), (sn.view("v", "b"), "v")):
        with mounted(mounts, scratch / target) as root:
            assert sorted(p.name for p in root.iterdir()) == ["kept"]


def test_opaque_directory_hides_lower_content(sn: Snapshotter, scratch: Path) -> None:
    layer(sn, "a", None, {"dir/x": "x", "dir/y": "y", "other": "o"})
    sn.prepare("b-active", "a")
    make_opaque(sn, "b-active", "dir")
    put(sn, "b-active", "dir/z", "z")
    sn.commit("b", "b-active")
    with mounted(sn.prepare("c", "b"), scratch / "rootfs") as root:
        assert sorted(p.name for p in (root / "dir").iterdir()) == ["z"]
        assert (root / "other").read_text() == "o"


def test_stat_walk_and_labels(sn: Snapshotter) -> None:
    sn.prepare("a-active", labels={"stage": "active"})
    assert sn.stat("a-active").labels == {"stage": "active"}
    sn.commit("a", "a-active", labels={"containerd.io/uncompressed": "sha256:00"})
    assert sn.stat("a").labels == {"containerd.io/uncompressed": "sha256:00"}  # replaced, not merged
    sn.prepare("b", "a")
    sn.view("v", "a", labels={"k": "v"})
    walked = [(i.key, i.kind, i.parent, i.labels) for i in sn.walk()]
    assert walked == [("a", "committed", None, {"containerd.io/uncompressed": "sha256:00"}),
                      ("b", "active", "a", {}), ("v", "view", "a", {"k": "v"})]
    assert all(i.created > 0 for i in sn.walk())
    with pytest.raises(SnapshotError):
        sn.prepare("bad", labels={"k": 1})


def test_usage(sn: Snapshotter) -> None:
    sn.prepare("a-active")
    put(sn, "a-active", "big", "z" * 65536)
    size, inodes = sn.usage("a-active")
    assert size >= 65536 and inodes == 2  # the layer's root and the file
    sn.commit("a", "a-active")
    assert sn.usage("a") == (size, inodes)
    sn.prepare("b", "a")
    put(sn, "b", "small", "s")
    b_size, b_inodes = sn.usage("b")
    assert b_inodes == (3 if sn.diff_mode() == "compare" else 2)  # vfs: a full copy
    assert b_size >= (65536 if sn.diff_mode() == "compare" else 1)
    sn.view("v", "a")
    assert sn.usage("v")[1] == 1


def test_remove_rules(sn: Snapshotter) -> None:
    layer(sn, "a", None, {"a": "a"})
    layer(sn, "b", "a", {"b": "b"})
    sn.prepare("c", "b")
    sn.view("v", "b")
    with pytest.raises(SnapshotError, match="'a'.*parent of b"):
        sn.remove("a")
    with pytest.raises(SnapshotError, match="parent of c, v"):
        sn.remove("b")
    for key in ("c", "v", "b", "a"):
        sn.remove(key)
        with pytest.raises(NotFound):
            sn.stat(key)
    sn.remove("a")  # idempotent
    assert list(sn.walk()) == []
    assert_consistent(sn)


def test_errors(sn: Snapshotter) -> None:
    layer(sn, "a", None, {})
    sn.prepare("act", "a")
    with pytest.raises(AlreadyExists):
        sn.prepare("act", "a")
    with pytest.raises(AlreadyExists):
        sn.view("a")
    with pytest.raises(NotFound):
        sn.prepare("x", "missing")
    with pytest.raises(SnapshotError, match="not committed") as err:
        sn.prepare("x", "act")
    assert not isinstance(err.value, NotFound)
    with pytest.raises(AlreadyExists):
        sn.commit("a", "act")
    with pytest.raises(NotFound):
        sn.commit("new", "missing")
    with pytest.raises(SnapshotError, match="committed"):
        sn.mounts("a")
    with pytest.raises(NotFound):
        sn.mounts("missing")
    with pytest.raises(NotFound):
        sn.usage("missing")
    with pytest.raises(SnapshotError):
        sn.commit("a2", "a")  # committed, not active
    assert_consistent(sn)


def _check_130_layers(sn: Snapshotter, scratch: Path) -> None:
    top = chain(sn, 130)
    mounts = sn.prepare("top", top)
    with mounted(mounts, scratch / "rootfs") as root:
        assert (root / "layer0").read_text() == "0"
        assert (root / "layer129").read_text() == "129"
        assert len(list(root.iterdir())) == 130
        (root / "written").write_text("w")
    assert (Path(sn.layer_dir("top")) / "written").read_text() == "w"
    with mounted(sn.view("top-view", top), scratch / "view") as root:
        assert (root / "layer0").read_text() == "0"
        assert not (root / "written").exists()


def test_130_layers(sn: Snapshotter, scratch: Path) -> None:
    _check_130_layers(sn, scratch)


@pytest.mark.parametrize("new_api", [True, False], ids=["lowerdir+", "relative-from-helper"])
def test_130_overlay_layers_exceed_a_page(scratch: Path, monkeypatch: pytest.MonkeyPatch, new_api: bool) -> None:
    """Both ways of mounting an option string longer than mount(2) takes."""
    if new_api and not newmount.lowerdir_append_supported():
        pytest.skip("kernel has no overlayfs lowerdir+ (Linux < 6.8)")
    calls: list[int] = []
    real = newmount.mount_overlay

    def spy(source: str, params: list[str], lowers: list[str], flags: int, target: str) -> None:
        calls.append(len(lowers))
        real(source, params, lowers, flags, target)
    monkeypatch.setattr(newmount, "mount_overlay", spy)
    if not new_api:
        monkeypatch.setattr(newmount, "lowerdir_append_supported", lambda: False)
    sn = OverlaySnapshotter(str(scratch / "root"))
    _check_130_layers(sn, scratch)
    assert len(",".join(sn.mounts("top")[0].options)) > PAGE_SIZE
    assert calls == ([130, 130] if new_api else [])


def test_concurrent_operations_from_threads(sn: Snapshotter) -> None:
    """The daemon runs snapshot work in a thread pool: each operation is its own transaction."""
    layer(sn, "base", None, {"f": "f"})

    def work(n: int) -> None:
        for i in range(10):
            key = f"t{n}-{i}"
            sn.prepare(key + "-a", "base")
            put(sn, key + "-a", "mine", key)
            sn.commit(key, key + "-a")
            if i % 2:
                sn.remove(key)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(work, range(6)))
    assert len(list(sn.walk())) == 1 + 6 * 5
    assert_consistent(sn)


# -- crash repair ---------------------------------------------------------------------------

_CRASH_CHILD = """
import os, shutil, sys
from dockyard.image.snapshot import DRIVERS

driver, root, point = sys.argv[1:4]
sn = DRIVERS[driver](root)

def die(*args, **kwargs):
    os.kill(os.getpid(), 9)

def after(real):
    def wrapper(*args, **kwargs):
        real(*args, **kwargs)
        die()
    return wrapper

if point == "while-building":
    os.mkdir = after(os.mkdir)
    sn.prepare("crash", "base")
elif point == "after-publishing-directory":
    os.rename = after(os.rename)
    sn.prepare("crash", "base")
elif point == "remove-after-metadata":
    os.rename = die
    sn.remove("victim")
elif point == "remove-while-deleting":
    shutil.rmtree = die
    sn.remove("victim")
elif point == "loop":
    print("ready", flush=True)
    i = 0
    while True:
        k = f"p{os.getpid()}-{i}"
        sn.prepare(k + "-a", "base")
        with open(os.path.join(sn.layer_dir(k + "-a"), "f"), "w") as f:
            f.write(k)
        sn.commit(k, k + "-a")
        sn.view(k + "-v", k)
        sn.remove(k + "-v")
        if i % 2:
            sn.remove(k)
        i += 1
"""


def _start_child(sn: Snapshotter, point: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, sn.driver, sn.root, point],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


@pytest.mark.parametrize("point", ["while-building", "after-publishing-directory",
                                   "remove-after-metadata", "remove-while-deleting"])
def test_crash_is_repaired(sn: Snapshotter, point: str) -> None:
    layer(sn, "base", None, {f"f{i}": str(i) for i in range(20)})
    sn.prepare("victim", "base")
    proc = _start_child(sn, point)
    try:
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        _stop(proc)
    if point.startswith("remove"):
        with pytest.raises(NotFound):
            sn.stat("victim")
    else:
        assert sn.stat("victim").kind == "active"
    with pytest.raises(NotFound):
        sn.stat("crash")
    sn.prepare("before-repair", "base")  # usable before the repair, too
    sn.cleanup()
    assert_consistent(sn)
    sn.prepare("crash", "base")
    sn.remove("crash")
    assert_consistent(sn)


def test_kill_at_random_instants_is_repaired(sn: Snapshotter) -> None:
    layer(sn, "base", None, {f"d{i // 50}/f{i}": str(i) for i in range(300)})
    rng = random.Random(1234)
    for _ in range(6):
        proc = _start_child(sn, "loop")
        try:
            assert proc.stdout.readline() == "ready\n"
            proc_wait = rng.uniform(0.01, 0.4)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=proc_wait)
            assert proc.poll() is None, "the child stopped by itself"
        finally:
            _stop(proc)
        sn.cleanup()
        assert_consistent(sn)
        for info in sn.walk():
            if info.kind == "committed" and info.key != "base":
                assert (Path(sn.layer_dir(info.key)) / "f").read_text() == info.key
    sn.prepare("after", "base")
    assert_consistent(sn)


def test_cleanup_removes_orphans_only(sn: Snapshotter, scratch: Path) -> None:
    layer(sn, "a", None, {"a": "a"})
    sn.prepare("b", "a")
    snapshots, tmp = Path(sn.root, "snapshots"), Path(sn.root, "tmp")
    (snapshots / "999" / "fs").mkdir(parents=True)
    (snapshots / "junk").write_text("")
    (tmp / "new-half" / "mnt").mkdir(parents=True)
    precious = scratch / "precious"
    precious.mkdir()
    (precious / "keep").write_text("keep")
    # e.g. an overlay probe interrupted while mounted: unmounted, not emptied through the mount
    Mount("bind", str(precious), ["rbind"]).mount(str(tmp / "new-half" / "mnt"))
    sn.cleanup()
    assert not (snapshots / "999").exists() and not (snapshots / "junk").exists()
    assert_consistent(sn)
    assert mounts_under(sn.root) == []
    assert (precious / "keep").read_text() == "keep"
    assert (Path(sn.layer_dir("a")) / "a").read_text() == "a"


# -- mounts -----------------------------------------------------------------------------------

def test_unmount_is_idempotent_stacked_and_lazy_when_busy(scratch: Path) -> None:
    src, target = scratch / "src", scratch / "target"
    src.mkdir()
    target.mkdir()
    (src / "f").write_text("f")
    unmount(str(scratch / "missing"))
    unmount(str(target))
    mount_all([Mount("bind", str(src), ["rbind", "ro"]), Mount("bind", str(src), ["rbind"])], str(target))
    assert len(mounts_under(str(target))) == 2
    unmount(str(target))
    assert mounts_under(str(target)) == []
    Mount("bind", str(src), ["bind"]).mount(str(target))
    with open(target / "f") as busy:
        unmount(str(target))
        assert mounts_under(str(target)) == []
        assert busy.read() == "f"


def test_mount_all_undoes_partial_work(scratch: Path) -> None:
    src, target = scratch / "src", scratch / "target"
    src.mkdir()
    target.mkdir()
    with pytest.raises(OSError):
        mount_all([Mount("bind", str(src), ["rbind"]), Mount("bind", str(scratch / "missing"), ["rbind"])],
                  str(target))
    assert mounts_under(str(target)) == []


def test_overlay_mount_shapes(scratch: Path) -> None:
    sn = OverlaySnapshotter(str(scratch / "root"))
    assert sn.prepare("a-active")[0].type == "bind"
    sn.commit("a", "a-active")
    layer(sn, "b", "a", {})
    [active] = sn.prepare("c", "b")
    assert active.type == "overlay"
    opts = dict(o.partition("=")[::2] for o in active.options)
    assert opts["upperdir"] == sn.layer_dir("c")
    assert opts["lowerdir"] == f"{sn.layer_dir('b')}:{sn.layer_dir('a')}"
    assert os.path.isdir(opts["workdir"])
    [one] = sn.view("v1", "a")
    assert (one.type, one.source, one.options) == ("bind", sn.layer_dir("a"), ["rbind", "ro"])
    [two] = sn.view("v2", "b")
    assert two.type == "overlay" and "ro" in two.options
    assert [o for o in two.options if o.startswith(("upperdir", "workdir"))] == []
    assert active.to_oci("/") == {"destination": "/", "type": "overlay", "source": "overlay",
                                  "options": active.options}
    assert sn.parent_dir("c") is None and sn.diff_mode() == "overlay"


def test_vfs_parent_dir_and_mounts(scratch: Path) -> None:
    sn = VfsSnapshotter(str(scratch / "root"))
    layer(sn, "a", None, {"f": "f"})
    [m] = sn.prepare("b", "a")
    assert (m.type, m.source, m.options) == ("bind", sn.layer_dir("b"), ["rbind", "rw"])
    assert sn.parent_dir("b") == sn.layer_dir("a")
    assert sn.parent_dir("a") is None
    assert (Path(sn.layer_dir("b")) / "f").read_text() == "f"
    [v] = sn.view("v", "a")
    assert (v.source, v.options) == (sn.layer_dir("a"), ["rbind", "ro"])


def test_vfs_copy_preserves_everything(scratch: Path) -> None:
    sn = VfsSnapshotter(str(scratch / "root"))
    sn.prepare("a-active")
    base = Path(sn.layer_dir("a-active"))
    (base / "dir").mkdir(mode=0o750)
    suid = base / "dir" / "suid"
    suid.write_text("#!/bin/sh\n")
    os.chown(suid, 1234, 5678)
    os.chmod(suid, 0o4755)
    os.setxattr(suid, "user.note", b"hello")
    os.setxattr(suid, "trusted.overlay.opaque", b"y")
    os.mknod(base / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(base / "loop", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mkfifo(base / "fifo", 0o640)
    os.mknod(base / "sock", stat.S_IFSOCK | 0o600)
    (base / "h1").write_text("linked")
    os.link(base / "h1", base / "dir" / "h2")
    os.symlink("/nowhere/at/all", base / "dangling")
    os.chown(base / "dangling", 42, 43, follow_symlinks=False)
    for path in (base / "h1", base / "dangling", base / "dir", base):
        os.utime(path, ns=(1_000_000_123, 2_000_000_456), follow_symlinks=False)
    sn.commit("a", "a-active")
    sn.prepare("b", "a")
    copy = Path(sn.layer_dir("b"))
    for rel in ("", "dir", "dir/suid", "null", "loop", "fifo", "sock", "h1", "dir/h2", "dangling"):
        s, c = os.lstat(base / rel), os.lstat(copy / rel)
        assert (c.st_mode, c.st_uid, c.st_gid, c.st_rdev, c.st_mtime_ns) == \
               (s.st_mode, s.st_uid, s.st_gid, s.st_rdev, s.st_mtime_ns), rel
        assert c.st_ino != s.st_ino
    assert os.lstat(copy / "h1").st_ino == os.lstat(copy / "dir" / "h2").st_ino
    assert os.lstat(copy / "h1").st_nlink == 2
    assert os.readlink(copy / "dangling") == "/nowhere/at/all"
    assert os.getxattr(copy / "dir" / "suid", "user.note") == b"hello"
    assert os.getxattr(copy / "dir" / "suid", "trusted.overlay.opaque") == b"y"
    assert (copy / "h1").read_text() == "linked"


# -- choosing a snapshotter ----------------------------------------------------------------------

def test_open_snapshotter_probes_once_and_keeps_the_recorded_driver(scratch: Path) -> None:
    root = scratch / "root"
    assert overlay_supported(str(scratch / "probe"))
    assert os.listdir(scratch / "probe" / "tmp") == []
    sn = open_snapshotter(str(root))
    assert isinstance(sn, OverlaySnapshotter)
    assert {name for name in os.listdir(root) if not name.startswith("metadata.db")} == {"snapshots", "tmp"}
    assert isinstance(open_snapshotter(str(root), prefer="vfs"), OverlaySnapshotter)
    assert isinstance(open_snapshotter(str(scratch / "other"), prefer="vfs"), VfsSnapshotter)
    with pytest.raises(SnapshotError, match="holds overlay snapshots"):
        VfsSnapshotter(str(root))
    with pytest.raises(SnapshotError, match="unknown snapshotter"):
        open_snapshotter(str(root), prefer="zfs")


def test_overlay_unsupported_on_an_overlay_upper(scratch: Path) -> None:
    """An overlay cannot use another overlay as its upper filesystem: the probe says so."""
    dirs = {n: scratch / n for n in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir()
    opts = [f"lowerdir={dirs['lower']}", f"upperdir={dirs['upper']}", f"workdir={dirs['work']}"]
    with mounted([Mount("overlay", "overlay", opts)], dirs["merged"]) as merged:
        assert not overlay_supported(str(merged / "root"))
        assert isinstance(open_snapshotter(str(merged / "root")), VfsSnapshotter)
