"""Hostile mount destinations: an image whose paths are symlinks out of its rootfs, a volume
that a container filled with such symlinks, and a path swapped for a symlink while the runtime
walks it. Nothing may be mounted, created or copied outside the container's root."""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime.paths import open_in_root

# fixtures: busybox as a save archive and a rootfs tar; the leftover-children check minus the daemon
from tests.daemon import (
    Dockyardd,
    daemon_children_only,  # noqa: F401 (fixture)
)
from tests.test_api_images import archives  # noqa: F401
from tests.test_volumes import fails, image_tar, member, ok, volume_daemon

UNIQUE = "dyhostile-" + uuid.uuid4().hex[:8]  # a name no host path has


@pytest.fixture(scope="module")
def host_secret() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dyv-secret-", dir="/tmp"))
    (path / "secret").write_text("host only\n")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(archives: dict[str, Path], host_secret: Path,  # noqa: F811
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyardd]:
    """busybox and evil:1, whose /evil is `/`, /esc climbs with `..` to /tmp and /leak points at a
    host directory holding a secret (and is a VOLUME, so it would be copied up)."""
    tmp = tmp_path_factory.mktemp("evil")
    tar = image_tar(archives["rootfs"], tmp / "evil.tar", [
        member("evil", tarfile.SYMTYPE, 0o777, link="/"),
        member("esc", tarfile.SYMTYPE, 0o777, link="../../../../../../../../tmp"),
        member("leak", tarfile.SYMTYPE, 0o777, link=str(host_secret)),
    ])
    with volume_daemon(archives) as d:
        ok(d, "import", "--change", "VOLUME /leak", "--change", 'CMD ["sh"]', str(tar), "evil:1")
        yield d


def test_symlinked_destinations_stay_in_the_rootfs(daemon: Dockyardd) -> None:
    vol = "h" + uuid.uuid4().hex[:8]
    out = ok(daemon, "run", "--rm", "-v", f"{vol}:/evil/{UNIQUE}", "-v", f"{vol}:/esc/{UNIQUE}", "evil:1", "sh", "-c",
             f"echo in > /{UNIQUE}/f; cat /tmp/{UNIQUE}/f")
    assert out == "in\n"
    assert not os.path.exists(f"/{UNIQUE}") and not os.path.exists(f"/tmp/{UNIQUE}")
    assert (daemon.data_root / "volumes" / vol / "_data" / "f").read_text() == "in\n"
    ok(daemon, "volume", "rm", vol)


def test_copy_up_does_not_follow_a_symlink_out(daemon: Dockyardd, host_secret: Path) -> None:
    cid = ok(daemon, "create", "evil:1").strip()
    try:
        (point,) = [m for m in daemon.client().api.inspect_container(cid)["Mounts"] if m["Destination"] == "/leak"]
        assert os.listdir(point["Source"]) == []
        assert os.listdir(host_secret) == ["secret"]
    finally:
        ok(daemon, "rm", "-v", cid)


def test_symlinks_planted_in_a_shared_volume(daemon: Dockyardd) -> None:
    """One container plants `sub -> /` and `up -> ../../../..` in a volume; another mounts that
    volume and, below it, a second volume through those links."""
    shared, other = "s" + uuid.uuid4().hex[:8], "o" + uuid.uuid4().hex[:8]
    ok(daemon, "run", "--rm", "-v", f"{shared}:/data", "busybox", "sh", "-c",
       "ln -s / /data/sub; ln -s ../../../../../.. /data/up")
    out = ok(daemon, "run", "--rm", "-v", f"{shared}:/data", "-v", f"{other}:/data/sub/{UNIQUE}",
             "-v", f"{other}:/data/up/tmp/{UNIQUE}", "busybox", "sh", "-c",
             f"echo ok > /{UNIQUE}/f; cat /tmp/{UNIQUE}/f")
    assert out == "ok\n"
    assert not os.path.exists(f"/{UNIQUE}") and not os.path.exists(f"/tmp/{UNIQUE}")
    ok(daemon, "volume", "rm", shared, other)


def test_dotdot_destination_cannot_reach_the_host(daemon: Dockyardd) -> None:
    assert "destination can't be '/'" in fails(daemon, 125, "run", "--rm", "-v", "x1:/..", "busybox", "true")
    out = ok(daemon, "run", "--rm", "--mount", f"type=volume,src=x2,dst=/../../{UNIQUE}", "busybox", "ls", "-d",
             f"/{UNIQUE}")
    assert out == f"/{UNIQUE}\n" and not os.path.exists(f"/{UNIQUE}")
    ok(daemon, "volume", "rm", "x2")


def test_open_in_root_under_a_symlink_swapping_race(tmp_path: Path) -> None:
    """While a thread swaps root/a between a directory and a symlink to an outside directory,
    every walk of a/b/c ends inside root and nothing is created outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    stop = threading.Event()

    def swap() -> None:
        a = root / "a"
        while not stop.is_set():
            with contextlib.suppress(OSError):
                shutil.rmtree(a)
            with contextlib.suppress(OSError):
                os.symlink(str(outside), a)
            with contextlib.suppress(OSError):
                os.unlink(a)
            with contextlib.suppress(OSError):
                os.mkdir(a)

    thread = threading.Thread(target=swap)
    thread.start()
    try:
        real_root = os.path.realpath(root)
        for _ in range(300):
            try:
                fd = open_in_root(str(root), "a/b/c", "dir")
            except OSError:
                continue  # a component vanished under the walk: refused, never escaped
            try:
                assert os.readlink(f"/proc/self/fd/{fd}").startswith(real_root + "/")
            finally:
                os.close(fd)
    finally:
        stop.set()
        thread.join()
    assert os.listdir(outside) == []


def test_open_in_root_resolves_like_secure_join(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "up").symlink_to("../../..")
    (tmp_path / "abs").symlink_to("/d")
    (tmp_path / "file").write_text("")
    for path, expected in (("/up/d", "d"), ("/abs/x", "d/x"), ("/../../d/./y", "d/y"), ("/", "")):
        fd = open_in_root(str(tmp_path), path, "dir")
        try:
            assert os.readlink(f"/proc/self/fd/{fd}") == os.path.join(str(tmp_path), expected).rstrip("/")
        finally:
            os.close(fd)
    with pytest.raises(NotADirectoryError):
        open_in_root(str(tmp_path), "/file/x", "dir")
    with pytest.raises(FileNotFoundError):
        open_in_root(str(tmp_path), "/missing", "")
