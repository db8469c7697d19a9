"""Hostile layer tars: whatever an archive says, nothing outside dest is created, modified or
deleted. Each test applies a crafted archive next to a sentinel directory and checks that the
sentinel and the directory holding dest are exactly as before."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.layer_apply import LayerApplyError, apply_layer
from tests.test_image_layers import entry, make_tar, reg, snapshot, tar_backend  # noqa: F401 - autouse: C and Python

DIR, SYM, LNK = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


class Scene:
    """dest and, next to it, a sentinel dir holding a file and a subdir."""

    def __init__(self, base: Path, mode: str) -> None:
        self.base = base
        self.mode = mode  # the whiteouts= flavour under test
        self.dest = base / "dest"
        self.sentinel = base / "sentinel"
        self.dest.mkdir()
        (self.sentinel / "sub").mkdir(parents=True)
        (self.sentinel / "file").write_bytes(b"precious")
        (self.sentinel / "sub" / "inner").write_bytes(b"precious too")
        os.chmod(self.sentinel, 0o750)
        self.before = self.outside()

    def outside(self) -> dict:
        """The state of everything outside dest (the base dir minus dest's subtree, dest's own inode)."""
        state = snapshot(self.base)
        return {k: v for k, v in state.items() if k != "dest" and not k.startswith("dest/")}

    def apply(self, data: bytes, **kw):
        return apply_layer(io.BytesIO(data), str(self.dest), **kw)

    def refused(self, data: bytes, match: str | None = None, **kw) -> LayerApplyError:
        with pytest.raises(LayerApplyError, match=match) as info:
            self.apply(data, **kw)
        return info.value


@pytest.fixture(params=["overlay", "naive"])
def scene(request: pytest.FixtureRequest) -> Iterator[Scene]:
    base = Path(tempfile.mkdtemp(prefix="dockyard-hostile-", dir="/var/tmp"))
    try:
        s = Scene(base, request.param)
        yield s
        assert s.outside() == s.before, "something outside dest changed"
        assert (s.sentinel / "file").read_bytes() == b"precious"
        assert os.stat(s.sentinel / "file").st_nlink == 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_absolute_paths_land_inside_dest(scene: Scene) -> None:
    target = str(scene.sentinel / "evil")
    scene.apply(make_tar(reg(target, b"abs"), reg("/../../../top", b"clamped")), whiteouts=scene.mode)
    assert (scene.dest / target.lstrip("/")).read_bytes() == b"abs"
    assert (scene.dest / "top").read_bytes() == b"clamped"


@pytest.mark.parametrize("name", ["../sentinel/evil", "a/../../sentinel/evil", "./../evil", ".."])
def test_dotdot_traversal_is_refused(scene: Scene, name: str) -> None:
    err = scene.refused(make_tar(reg(name, b"evil")), "outside of the layer root", whiteouts=scene.mode)
    assert repr(name) in str(err)


def test_symlink_then_write_through_stays_inside(scene: Scene) -> None:
    data = make_tar(
        entry("rel", SYM, linkname="../sentinel"),
        entry("abs", SYM, linkname=str(scene.sentinel)),
        entry("up", SYM, linkname="../../../../.."),
        reg("rel/evil1", b"1"),
        reg("abs/evil2", b"2"),
        reg("up/evil3", b"3"),
        entry("abs/sub", DIR, mode=0o777, uid=4242),
    )
    scene.apply(data, whiteouts=scene.mode)
    # resolved as if dest were "/": a chrooted apply (what Docker does) ends up in the same places
    assert (scene.dest / "sentinel" / "evil1").read_bytes() == b"1"
    assert (scene.dest / str(scene.sentinel).lstrip("/") / "evil2").read_bytes() == b"2"
    assert (scene.dest / "evil3").read_bytes() == b"3"
    assert os.readlink(scene.dest / "rel") == "../sentinel"


def test_entry_replacing_a_symlink_never_follows_it(scene: Scene) -> None:
    data = make_tar(
        entry("s", SYM, linkname=str(scene.sentinel)),
        entry("s", DIR, mode=0o777, uid=4242, gid=4242),  # replaces the link, does not chmod its target
        entry("f", SYM, linkname=str(scene.sentinel / "file")),
        reg("f", b"replaced", mode=0o777),
        entry("n", SYM, linkname=str(scene.sentinel / "file")),
        entry("n", tarfile.FIFOTYPE),
    )
    scene.apply(data, whiteouts=scene.mode)
    assert (scene.dest / "s").is_dir() and not (scene.dest / "s").is_symlink()
    assert (scene.dest / "f").read_bytes() == b"replaced"


@pytest.mark.parametrize("links", [
    [("a", "b"), ("b", "a")],
    [("c", "c")],
    [(f"l{i}", f"l{i + 1}") for i in range(45)] + [("l45", ".")],
])
def test_symlink_loops_are_refused(scene: Scene, links: list[tuple[str, str]]) -> None:
    members = [entry(name, SYM, linkname=target) for name, target in links]
    scene.refused(make_tar(*members, reg(f"{links[0][0]}/x", b"x")), "symbolic links", whiteouts=scene.mode)


@pytest.mark.parametrize("linkname", ["../sentinel/file", "../../sentinel/file", "/../sentinel/file",
                                      "via/file", "via-abs/file", "via-up/sentinel/file"])
def test_hardlink_escapes_are_refused(scene: Scene, linkname: str) -> None:
    data = make_tar(
        entry("via", SYM, linkname="../sentinel"),
        entry("via-abs", SYM, linkname=str(scene.sentinel)),
        entry("via-up", SYM, linkname="../.."),
        entry("h", LNK, linkname=linkname),
    )
    scene.refused(data, "invalid hardlink|outside of the layer root", whiteouts=scene.mode)
    assert not (scene.dest / "h").exists()


def test_hardlink_to_a_directory_or_the_root_is_refused(scene: Scene) -> None:
    scene.refused(make_tar(entry("d", DIR), entry("h", LNK, linkname="d")), "invalid hardlink",
                  whiteouts=scene.mode)
    scene.refused(make_tar(entry("h", LNK, linkname="./")), "invalid hardlink", whiteouts=scene.mode)


def test_hardlink_inside_the_layer_works(scene: Scene) -> None:
    scene.apply(make_tar(reg("a/f", b"f"), entry("b", LNK, linkname="/a/f")), whiteouts=scene.mode)
    assert os.stat(scene.dest / "b").st_ino == os.stat(scene.dest / "a" / "f").st_ino


@pytest.mark.parametrize("name", [".wh...", ".wh..", ".wh.", "sub/.wh...", "sub/.wh."])
def test_whiteouts_of_dotdot_or_the_root_are_refused(scene: Scene, name: str) -> None:
    (scene.dest / "sub").mkdir()
    scene.refused(make_tar(reg(name, b"")), "invalid whiteout", whiteouts=scene.mode)
    assert (scene.dest / "sub").is_dir()


def test_whiteout_names_with_separators_are_refused(scene: Scene) -> None:
    scene.refused(make_tar(reg(".wh.x/y", b"")), "whiteout name cannot be a directory", whiteouts=scene.mode)
    scene.refused(make_tar(reg("a/.wh.b/../../../sentinel", b"")), "outside", whiteouts=scene.mode)


def test_whiteouts_through_symlinks_stay_inside(scene: Scene) -> None:
    (scene.dest / "lower").write_bytes(b"lower")
    data = make_tar(
        entry("rel", SYM, linkname="../sentinel"),
        entry("abs", SYM, linkname=str(scene.sentinel)),
        reg("rel/.wh.file", b""),
        reg("abs/.wh.file", b""),
        reg("rel/.wh.sub", b""),
        reg("abs/.wh..wh..opq", b""),
        reg("rel/.wh..wh..opq", b""),
    )
    scene.apply(data, whiteouts=scene.mode)


def test_opaque_marker_for_the_root_keeps_dest(scene: Scene) -> None:
    (scene.dest / "lower").write_bytes(b"lower")
    scene.apply(make_tar(reg(".wh..wh..opq", b""), reg("new", b"n")), whiteouts=scene.mode)
    assert scene.dest.is_dir() and (scene.dest / "new").exists()
    assert (scene.dest / "lower").exists() == (scene.mode == "overlay")


def test_entries_replacing_dirs_with_files_and_back(scene: Scene) -> None:
    (scene.dest / "was-dir" / "deep").mkdir(parents=True)
    (scene.dest / "was-dir" / "deep" / "f").write_bytes(b"x")
    (scene.dest / "was-file").write_bytes(b"x")
    data = make_tar(
        reg("was-dir", b"now a file"),
        entry("was-file", DIR),
        reg("was-file/inner", b"i"),
        entry("flip", DIR),
        reg("flip/a", b"a"),
        reg("flip", b"file again"),
        entry("flip", DIR),
        reg("flip/b", b"b"),
    )
    scene.apply(data, whiteouts=scene.mode)
    assert (scene.dest / "was-dir").read_bytes() == b"now a file"
    assert (scene.dest / "was-file" / "inner").read_bytes() == b"i"
    assert sorted(os.listdir(scene.dest / "flip")) == ["b"]


def test_a_file_cannot_replace_the_root(scene: Scene) -> None:
    scene.refused(make_tar(reg("./", b"x")), "replace the layer root", whiteouts=scene.mode)
    scene.refused(make_tar(entry("/", SYM, linkname="/etc")), "replace the layer root", whiteouts=scene.mode)


def raw_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


@pytest.mark.parametrize("blob", [
    raw_header("huge", 1 << 40) + b"only a little data",
    raw_header("ok", 5) + b"hello" + bytes(507) + raw_header("cut", 2000) + b"x" * 1000,
    make_tar(reg("f", os.urandom(20000)))[:7000],
    gzip.compress(make_tar(reg("f", os.urandom(20000))))[:-100],
    b"this is not a tar archive at all" * 40,
    raw_header("neg", 0)[:124] + b"\xff" * 12 + raw_header("neg", 0)[136:],
])
def test_truncated_huge_or_corrupt_archives_fail_cleanly(scene: Scene, blob: bytes) -> None:
    err = scene.refused(blob, whiteouts=scene.mode)
    assert any(w in str(err) for w in ("end of archive", "checksum", "cannot read", "negative", "corrupt"))


def test_oversized_pax_header_is_refused(scene: Scene) -> None:
    info = tarfile.TarInfo("PaxHeaders/x")
    info.type = tarfile.XHDTYPE
    info.size = 1 << 30
    scene.refused(info.tobuf(tarfile.USTAR_FORMAT) + bytes(4096), "too large", whiteouts=scene.mode)


def test_device_nodes_are_created_inside_only(scene: Scene) -> None:
    data = make_tar(entry("s", SYM, linkname=str(scene.sentinel)),
                    entry("s/null", tarfile.CHRTYPE, devmajor=1, devminor=3))
    scene.apply(data, whiteouts=scene.mode)
    assert os.stat(scene.dest / str(scene.sentinel).lstrip("/") / "null").st_rdev == os.makedev(1, 3)
