"""Layer tars: compression detection, apply (overlay and naive whiteouts), write (overlay and
compare), round trips of every file type and attribute, determinism, diff_id correctness.
Real files on the real kernel; every test removes its temp dirs, also when it fails."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image import digest, tarstream
from dockyard.image.compression import compress_stream, detect, open_decompressed
from dockyard.image.layer_apply import ApplyResult, apply_layer
from dockyard.image.layer_diff import write_layer
from dockyard.image.layer_size import dir_size

CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")  # vfs cap v2: cap_net_raw+ep


@pytest.fixture(autouse=True, params=["c", "python"])
def tar_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here (and in test_image_layers_hostile, which imports this) runs with layer
    apply's C accelerator (_tarfast: header parser, file writer) and with its pure-Python code."""
    if request.param == "python":
        monkeypatch.setattr(tarstream, "_tarfast", None)
    elif tarstream._tarfast is None:
        pytest.skip("dockyard/image/_tarfast.c is not built (scripts/build-ext.sh)")
    return request.param


@pytest.fixture
def work() -> Iterator[Path]:
    """A temp dir on the data disk, removed after the test whatever happens."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-layers-", dir="/var/tmp"))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-R", "-q", str(path / "merged")], stderr=subprocess.DEVNULL)
        shutil.rmtree(path, ignore_errors=True)


def make_tar(*members: tuple[dict, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar built with Python's tarfile from (TarInfo attributes, data) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for attrs, data in members:
            attrs = dict(attrs)
            info = tarfile.TarInfo(attrs.pop("name"))
            for key, value in attrs.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def reg(name: str, data: bytes = b"x", **kw) -> tuple[dict, bytes]:
    return {"name": name, "mode": 0o644, **kw}, data


def entry(name: str, type: bytes, **kw) -> tuple[dict, None]:
    return {"name": name, "type": type, "mode": 0o755 if type == tarfile.DIRTYPE else 0o644, **kw}, None


def apply_bytes(data: bytes, dest: Path, **kw) -> ApplyResult:
    return apply_layer(io.BytesIO(data), str(dest), **kw)


def snapshot(root: Path, *, times: bool = True) -> dict[str, tuple]:
    """Everything observable about a tree: type, mode, owner, size, content, link target, device,
    xattrs, mtime (seconds; directories included) and which paths share an inode."""
    result: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                  for k in os.listxattr(path, follow_symlinks=False)))
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            link_group = inodes.setdefault(st.st_ino, rel) if stat.S_ISREG(st.st_mode) else None
            result[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, content, xattrs, link_group,
                           int(st.st_mtime) if times else None)
    return result


def build_rich_tree(root: Path) -> None:
    """Every kind of entry and attribute a layer can carry."""
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "bin").mkdir(mode=0o755)
    big = root / "bin" / "big"
    big.write_bytes(os.urandom(3 << 20) + b"tail")
    os.chmod(big, 0o4755)
    setgid = root / "bin" / "sg"
    setgid.write_bytes(b"#!/bin/sh\n")
    os.chmod(setgid, 0o2711)
    os.setxattr(setgid, "security.capability", CAP_NET_RAW)
    os.setxattr(setgid, "user.note", b"\x00binary\xff")
    os.link(big, root / "bin" / "big-link")
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "empty").write_bytes(b"")
    owned = root / "owned"
    owned.mkdir()
    (owned / "f").write_bytes(b"data")
    os.chown(owned / "f", 1000, 2000)
    os.chown(owned, 3000000, 65534)  # does not fit ustar's 7 octal digits: PAX uid
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("../etc/passwd", owned / "rel-link")
    os.symlink("nowhere", root / "dangling")
    os.lchown(root / "dangling", 7, 8)
    deep = root / ("d" * 90) / ("e" * 90) / ("f" * 90)
    deep.mkdir(parents=True)
    (deep / ("g" * 200)).write_bytes(b"long")
    os.symlink("t" * 150, root / "long-target")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "loop", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mkfifo(root / "fifo", 0o620)
    os.setxattr(root / "etc", "user.dir", b"1")
    (root / "ünïcode name").write_bytes(b"u")
    for i, (dirpath, dirnames, filenames) in enumerate(sorted(os.walk(root), reverse=True)):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (1_600_000_000 + i, 1_600_000_000 + i), follow_symlinks=False)
    os.utime(root, (1_500_000_000, 1_500_000_000))


# --- compression -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm,magic", [("gzip", b"\x1f\x8b\x08"), ("zstd", b"\x28\xb5\x2f\xfd\x00"),
                                             ("bzip2", b"BZh9"), ("xz", b"\xfd7zXZ\x00\x00"),
                                             ("none", b"./etc/passwd"), ("none", b"")])
def test_detect(algorithm: str, magic: bytes) -> None:
    assert detect(magic) == algorithm


@pytest.mark.parametrize("algorithm", ["gzip", "zstd", "bzip2", "xz", "none"])
def test_compress_then_decompress(algorithm: str) -> None:
    payload = os.urandom(300_000) + b"abc" * 500_000
    out = io.BytesIO()
    result_digest, size = compress_stream(io.BytesIO(payload), out, algorithm)
    blob = out.getvalue()
    assert size == len(blob)
    assert result_digest == digest.of_bytes(blob)
    assert detect(blob[:6]) == algorithm
    assert open_decompressed(io.BytesIO(blob)).read() == payload


def test_gzip_is_deterministic_and_readable_by_gzip() -> None:
    payload = b"layer" * 100_000
    outs = [io.BytesIO(), io.BytesIO()]
    for out in outs:
        compress_stream(io.BytesIO(payload), out, "gzip")
    assert outs[0].getvalue() == outs[1].getvalue()
    assert gzip.decompress(outs[0].getvalue()) == payload


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_round_trip_every_entry_kind(work: Path, compression: str) -> None:
    src, dest = work / "src", work / "dest"
    src.mkdir()
    dest.mkdir()
    build_rich_tree(src)
    with open(work / "layer", "wb") as out:
        written = write_layer(str(src), out, compression=compression)
    blob = (work / "layer").read_bytes()
    assert written.size == len(blob)
    assert written.digest == digest.of_bytes(blob)
    plain = blob if compression == "none" else open_decompressed(io.BytesIO(blob)).read()
    assert written.diff_id == digest.of_bytes(plain)
    assert (written.digest == written.diff_id) == (compression == "none")
    with open(work / "layer", "rb") as f:
        applied = apply_layer(f, str(dest))
    assert applied == ApplyResult(written.diff_id, len(plain), written.layer_size)
    assert written.layer_size == dir_size(str(src)) > 3 << 20  # dockerd's measure of the tree
    assert snapshot(dest) == snapshot(src)


def test_output_is_read_identically_by_tarfile_and_gnu_tar(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    build_rich_tree(src)
    with open(work / "layer.tar", "wb") as out:
        write_layer(str(src), out)
    with tarfile.open(work / "layer.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["bin/big-link"].islnk() and members["bin/big-link"].linkname == "bin/big"
        assert members["long-target"].linkname == "t" * 150
        assert members["owned"].uid == 3000000 and members["owned"].uname == ""
        assert members["bin/sg"].pax_headers["SCHILY.xattr.security.capability"].encode(
            "utf-8", "surrogateescape") == CAP_NET_RAW
        assert members["loop"].isblk() and (members["loop"].devmajor, members["loop"].devminor) == (7, 0)
        assert list(members) == sorted(members, key=lambda n: n.split("/"))  # parents first, sorted
    gnu = work / "gnu"
    gnu.mkdir()
    subprocess.run(["tar", "-xf", str(work / "layer.tar"), "-C", str(gnu)], check=True)
    assert {k: v[:5] for k, v in snapshot(gnu).items()} == {k: v[:5] for k, v in snapshot(src).items()}


def test_equal_trees_give_identical_bytes_and_epoch_clamps_mtimes(work: Path) -> None:
    a = work / "a"
    a.mkdir()
    build_rich_tree(a)
    b = work / "b"
    subprocess.run(["cp", "-a", str(a), str(b)], check=True)  # same content, other inodes and ctimes
    outs = []
    for tree in (a, b, a):
        out = io.BytesIO()
        result = write_layer(str(tree), out, compression="gzip")
        outs.append((out.getvalue(), result))
    assert outs[0] == outs[1] == outs[2]
    clamped = io.BytesIO()
    write_layer(str(a), clamped, source_date_epoch=1_550_000_000)
    clamped.seek(0)
    with tarfile.open(fileobj=clamped) as tar:
        mtimes = {m.name: m.mtime for m in tar.getmembers()}
    assert max(mtimes.values()) == 1_550_000_000
    assert mtimes["bin/big"] == 1_550_000_000


def test_diff_id_is_sha256_of_whole_uncompressed_stream(work: Path) -> None:
    # tarfile pads the archive to a 10240-byte record after the end marker: it counts too
    data = make_tar(reg("a", b"hello"), entry("d", tarfile.DIRTYPE), reg("d/b", os.urandom(5000)))
    assert len(data) % 10240 == 0
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    for i, blob in enumerate([data, gzip.compress(data), gzip.compress(data[:4000]) + gzip.compress(data[4000:])]):
        dest = work / f"d{i}"
        dest.mkdir()
        assert apply_bytes(blob, dest) == ApplyResult(expected, len(data), 5 + 5000)
        assert (dest / "a").read_bytes() == b"hello"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_reads_tarfile_formats_long_names_and_times(work: Path, fmt: int) -> None:
    long_dir = "x" * 70 + "/" + "y" * 70
    name = long_dir + "/" + ("z" * 99 if fmt == tarfile.USTAR_FORMAT else "z" * 150)
    members = [entry(long_dir.split("/")[0], tarfile.DIRTYPE, mtime=1_000_000_000),
               entry(long_dir, tarfile.DIRTYPE, mtime=1_000_000_001, mode=0o700),
               reg(name, b"long", mtime=1_234_567_890, uid=5, gid=6, mode=0o640)]
    if fmt != tarfile.USTAR_FORMAT:
        members.append(entry("l", tarfile.SYMTYPE, linkname="q" * 200))
        members.append(entry("h", tarfile.LNKTYPE, linkname=name))
    dest = work / "dest"
    dest.mkdir()
    apply_bytes(make_tar(*members, fmt=fmt), dest)
    st = os.lstat(dest / name)
    assert (st.st_size, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (4, 5, 6, 0o640, 1_234_567_890)
    assert os.stat(dest / long_dir).st_mtime == 1_000_000_001
    assert stat.S_IMODE(os.stat(dest / long_dir).st_mode) == 0o700
    if fmt != tarfile.USTAR_FORMAT:
        assert os.readlink(dest / "l") == "q" * 200
        assert os.stat(dest / "h").st_ino == st.st_ino


def test_pax_xattrs_and_subsecond_mtime(work: Path) -> None:
    attrs = {"name": "f", "mode": 0o755, "pax_headers": {
        "SCHILY.xattr.user.a": "1", "mtime": "1600000000.123456789",
        "SCHILY.xattr.trusted.overlay.redirect": "/etc"}}  # overlay metadata is never taken from a tar
    dest = work / "dest"
    dest.mkdir()
    apply_bytes(make_tar((attrs, b"data")), dest)
    assert os.getxattr(dest / "f", "user.a") == b"1"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "f")
    assert os.stat(dest / "f").st_mtime_ns == 1_600_000_000_123_456_789


def test_same_owner_false_keeps_callers_ownership(work: Path) -> None:
    dest = work / "dest"
    dest.mkdir()
    apply_bytes(make_tar(reg("f", uid=1234, gid=4321, mode=0o4750)), dest, same_owner=False)
    st = os.stat(dest / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), os.getegid(), 0o4750)


# --- whiteouts ---------------------------------------------------------------------------


def whiteout_layer() -> bytes:
    return make_tar(
        entry("d", tarfile.DIRTYPE),
        reg("d/-early", b"before the marker"),  # sorts before ".wh..wh..opq"
        reg("d/.wh..wh..opq", b""),
        reg("d/z-late", b"after the marker"),
        entry("d/kept", tarfile.DIRTYPE),
        reg("d/kept/new", b"n"),
        reg(".wh.gone", b""),
        reg("keep/.wh.file", b""),
        reg(".wh.olddir", b""),
        reg("keep/.wh.absent", b""),
    )


def make_lower(root: Path) -> None:
    (root / "d" / "kept").mkdir(parents=True)
    (root / "d" / "old").write_bytes(b"lower")
    (root / "d" / "kept" / "lower-file").write_bytes(b"lower")
    (root / "d" / "sub").mkdir()
    (root / "d" / "sub" / "x").write_bytes(b"lower")
    (root / "gone").write_bytes(b"lower")
    (root / "keep").mkdir()
    (root / "keep" / "file").write_bytes(b"lower")
    (root / "keep" / "other").write_bytes(b"lower")
    (root / "olddir" / "inner").mkdir(parents=True)


def test_naive_whiteouts_and_opaque_dir(work: Path) -> None:
    dest = work / "dest"
    dest.mkdir()
    make_lower(dest)
    apply_bytes(whiteout_layer(), dest, whiteouts="naive")
    files = {str(p.relative_to(dest)) for p in dest.rglob("*")}
    assert files == {"d", "d/-early", "d/z-late", "d/kept", "d/kept/new", "keep", "keep/other"}


def test_overlay_whiteouts_work_in_a_real_overlay_mount(work: Path) -> None:
    lower, upper, ovl_work, merged = (work / n for n in ("lower", "upper", "ovl-work", "merged"))
    for d in (lower, upper, ovl_work, merged):
        d.mkdir()
    make_lower(lower)
    apply_bytes(whiteout_layer(), upper)
    gone = os.lstat(upper / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(upper / "d", "trusted.overlay.opaque") == b"y"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={ovl_work}", str(merged)], check=True)
    try:
        files = {str(p.relative_to(merged)) for p in merged.rglob("*")}
        assert files == {"d", "d/-early", "d/z-late", "d/kept", "d/kept/new", "keep", "keep/other"}
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    # and the upper dir written back as a layer gives the same whiteouts
    out = io.BytesIO()
    write_layer(str(upper), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        names = [m.name for m in tar.getmembers()]
        assert not any("trusted.overlay" in k for m in tar.getmembers() for k in m.pax_headers)
    assert {".wh.gone", "d/.wh..wh..opq", "keep/.wh.file", ".wh.olddir", "keep/.wh.absent"} <= set(names)
    assert names.index("d/.wh..wh..opq") == names.index("d") + 1
    again = work / "again"
    again.mkdir()
    out.seek(0)
    apply_layer(out, str(again))
    # the mount added trusted.overlay.origin to upper dirs: kernel bookkeeping, not layer content
    for path in upper.rglob("*"):
        if "trusted.overlay.origin" in os.listxattr(path, follow_symlinks=False):
            os.removexattr(path, "trusted.overlay.origin", follow_symlinks=False)
    assert snapshot(again, times=False) == snapshot(upper, times=False)


def test_overlay_root_opaque_marker(work: Path) -> None:
    dest = work / "dest"
    dest.mkdir()
    apply_bytes(make_tar(reg(".wh..wh..opq", b""), reg(".wh..wh.plnk/123", b"aufs")), dest)
    assert os.getxattr(dest, "trusted.overlay.opaque") == b"y"
    assert os.listdir(dest) == []
    out = io.BytesIO()
    write_layer(str(dest), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        assert tar.getnames() == [".wh..wh..opq"]


def test_compare_mode_emits_changes_and_whiteouts(work: Path) -> None:
    old, new = work / "old", work / "new"
    old.mkdir()
    build_rich_tree(old)
    subprocess.run(["cp", "-a", str(old), str(new)], check=True)
    (new / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/bash\n")  # changed content
    (new / "owned" / "added").write_bytes(b"new")  # added in an unchanged dir
    os.unlink(new / "empty")  # deleted file
    shutil.rmtree(new / ("d" * 90))  # deleted dir
    os.unlink(new / "dangling")
    (new / "dangling").mkdir()  # symlink -> dir
    os.chmod(new / "tmp", 0o755)  # metadata-only change of a dir
    os.unlink(new / "null")
    os.symlink("elsewhere", new / "null")  # device -> symlink
    out = io.BytesIO()
    result = write_layer(str(new), out, mode="compare", parent=str(old))
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        names = tar.getnames()
    # whiteouts sit where the deleted name sorts; unchanged parents of changes are included
    assert names == ["dangling", ".wh." + "d" * 90, ".wh.empty", "etc", "etc/passwd", "null",
                     "owned", "owned/added", "tmp"]
    applied = work / "applied"
    subprocess.run(["cp", "-a", str(old), str(applied)], check=True)
    out.seek(0)
    assert apply_layer(out, str(applied), whiteouts="naive").diff_id == result.diff_id
    assert snapshot(applied) == snapshot(new)
    same = io.BytesIO()
    write_layer(str(old), same, mode="compare", parent=str(old))
    assert same.getvalue() == bytes(1024)  # equal trees: an empty layer


def test_compare_without_parent_is_a_full_export(work: Path) -> None:
    src = work / "src"
    src.mkdir()
    build_rich_tree(src)
    a, b = io.BytesIO(), io.BytesIO()
    write_layer(str(src), a, mode="compare")
    write_layer(str(src), b, mode="overlay")
    assert a.getvalue() == b.getvalue()


def test_invalid_arguments(work: Path) -> None:
    with pytest.raises(ValueError):
        apply_bytes(make_tar(reg("f")), work, whiteouts="aufs")
    with pytest.raises(ValueError):
        write_layer(str(work), io.BytesIO(), mode="magic")
    with pytest.raises(ValueError):
        write_layer(str(work), io.BytesIO(), compression="lz4")


def test_reader_handles_any_chunking(work: Path) -> None:
    """Headers and data split across chunk boundaries at every odd offset parse the same."""
    from dockyard.image.tarstream import TarReader

    data = make_tar(reg("a" * 150, os.urandom(1500)), entry("d", tarfile.DIRTYPE),
                    reg("d/b", b"b" * 513, pax_headers={"SCHILY.xattr.user.k": "v"}),
                    entry("l", tarfile.SYMTYPE, linkname="x" * 120), reg("e", b""))
    for step in (1, 7, 511, 513, 4096):
        got = []
        with open(work / "out", "wb+") as out:
            reader = TarReader(data[i : i + step] for i in range(0, len(data), step))
            for e in reader:
                out.seek(0)
                out.truncate()
                reader.copy_data(out.fileno())
                got.append((e.name, e.type, e.size, e.linkname, e.xattrs, (work / "out").read_bytes()))
        assert [g[:5] for g in got] == [("a" * 150, "0", 1500, "", None), ("d/", "5", 0, "", None),
                                        ("d/b", "0", 513, "", {"user.k": b"v"}), ("l", "2", 0, "x" * 120, None),
                                        ("e", "0", 0, "", None)]
        assert got[2][5] == b"b" * 513


@pytest.mark.parametrize("compress", [bytes, gzip.compress])
def test_decompressed_chunks_hash_lags_behind_the_consumer(compress) -> None:
    """Chunks reach the consumer in order while the hasher lags; digest and size cover them all."""
    import threading

    from dockyard.image.compression import DecompressedChunks

    data = os.urandom(300_000)
    with DecompressedChunks(io.BytesIO(compress(data)), chunk_size=1000, depth=2, hash_lag=3) as chunks:
        got = b"".join(chunks)
    assert got == data
    assert (chunks.digest, chunks.size) == (digest.of_bytes(data), len(data))
    with DecompressedChunks(io.BytesIO(compress(data[:50])), chunk_size=4) as chunks:  # smaller than the magic
        assert b"".join(chunks) == data[:50]
    # a consumer that stops early: both worker threads end, nothing hangs
    with DecompressedChunks(io.BytesIO(data), chunk_size=1000, depth=2, hash_lag=3) as chunks:
        assert len(next(iter(chunks))) == 1000
    assert not [t for t in threading.enumerate() if t.name in ("layer-decompress", "layer-hash")]


def test_decompressed_chunks_report_read_errors() -> None:
    from dockyard.image.compression import DecompressedChunks, DecompressionError

    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            raise OSError(5, "Input/output error")

    with pytest.raises(DecompressionError, match="Input/output error"):
        with DecompressedChunks(io.BufferedReader(Failing())) as chunks:
            list(chunks)
