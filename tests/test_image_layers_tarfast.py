"""dockyard/image/_tarfast.c, layer apply's optional C accelerator, against the pure-Python code it
stands in for: the header parser must give exactly what tarstream._parse_header gives (or None,
leaving the block to it), and write_file must make the same calls as layer_apply's Python path.
The whole apply is run both ways by the autouse fixture of test_image_layers (and the hostile
corpus in test_image_layers_hostile)."""

from __future__ import annotations

import io
import os
import random
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dockyard.image import tarstream
from dockyard.image.layer_apply import apply_layer
from dockyard.image.tarstream import BLOCK, TarFormatError, _parse_header
from tests.test_image_layers import build_rich_tree, entry, make_tar, reg, snapshot
from tests.test_image_layers import work as work  # the fixture

_tarfast = tarstream._tarfast
needs_c = pytest.mark.skipif(_tarfast is None, reason="dockyard/image/_tarfast.c is not built")

_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def python_parse(block: bytes):
    try:
        return _parse_header(block)
    except TarFormatError as exc:
        return exc


def headers(data: bytes) -> list[bytes]:
    return [data[i : i + BLOCK] for i in range(0, len(data), BLOCK)]


def sample_archives() -> list[bytes]:
    members = [
        reg("a.txt", b"hello"), reg("x" * 99, b"99"), reg("p" * 90 + "/" + "q" * 90, b"ustar prefix"),
        entry("d", tarfile.DIRTYPE, uid=1000, gid=1000, mtime=1_700_000_000),
        entry("s", tarfile.SYMTYPE, linkname="a.txt"), entry("h", tarfile.LNKTYPE, linkname="a.txt"),
        entry("l", tarfile.SYMTYPE, linkname="t" * 100), entry("c", tarfile.CHRTYPE, devmajor=1, devminor=3),
        entry("f", tarfile.FIFOTYPE), reg("big-uid", b"u", uid=0o7777777, gid=12, mode=0o4755),
        reg("é/ü.txt", b"utf-8 name"),
    ]
    longer = [reg("dir/" + "n" * 120, b"long name"), entry("l2", tarfile.SYMTYPE, linkname="t" * 150),
              reg("huge-uid", b"u", uid=1 << 30)]
    return [make_tar(*members, fmt=tarfile.USTAR_FORMAT), make_tar(*members, *longer, fmt=tarfile.GNU_FORMAT),
            make_tar(*members, *longer, fmt=tarfile.PAX_FORMAT)]


def mutations(block: bytes, rnd: random.Random):
    """The block with bytes of its fields changed: numbers in odd shapes, high bytes, bad sums."""
    odd = [b" ", b"\0", b"8", b"9", b"-", b"+", b"_", b"x", b"\x80", b"\xff", b"\t", b"0", b"7", b"1", b"\n", b"o"]
    for _ in range(60):
        h = bytearray(block)
        for _ in range(rnd.randint(1, 3)):
            where = rnd.choice([rnd.randrange(100, 156), rnd.randrange(0, BLOCK), rnd.randrange(148, 156),
                                156, 99, 345, rnd.randrange(257, 263)])
            h[where] = rnd.choice(odd)[0]
        yield bytes(h)
        fixed = bytearray(h)  # the same with a recomputed (hence valid) checksum
        fixed[148:156] = b"        "
        fixed[148:156] = b"%06o\0 " % sum(fixed)
        yield bytes(fixed)
        fixed[148:156] = b"%06o\0 " % (sum(fixed) + 65521)  # accepted by the adler32 shortcut
        yield bytes(fixed)


@needs_c
def test_parse_header_agrees_with_the_python_parser() -> None:
    rnd = random.Random(3)
    seen = accepted = 0
    for data in sample_archives():
        for block in headers(data):
            for h in [block, *mutations(block, rnd)]:
                fast = _tarfast.parse_header(h, 0)
                slow = python_parse(h)
                seen += 1
                if fast is not None:
                    accepted += 1
                    assert fast == slow, h
    assert accepted > seen // 5  # the plain case really takes the C path


@needs_c
def test_parse_header_takes_every_plain_header_of_a_real_archive(work: Path) -> None:
    (work / "tree").mkdir()
    build_rich_tree(work / "tree")
    data = subprocess.run(["tar", "--numeric-owner", "-cf", "-", "-C", str(work / "tree"), "."],
                          check=True, stdout=subprocess.PIPE).stdout
    pos, count = 0, 0
    while pos + BLOCK <= len(data) and data[pos : pos + BLOCK] != bytes(BLOCK):
        fields = _tarfast.parse_header(data, pos)
        block = data[pos : pos + BLOCK]
        if any(block[i] & 0x80 for i in (108, 116)):  # GNU base-256 uid/gid (3000000): the Python path
            assert fields is None
            fields = _parse_header(block)
        assert fields is not None and fields == _parse_header(block)
        size = fields[4] if fields[0] in "0\0xLK" else 0
        pos += BLOCK + size + (-size % BLOCK)
        count += 1
    assert count > 10


@needs_c
def test_parse_header_positions() -> None:
    block = make_tar(reg("a"))[:BLOCK]
    buf = bytes(BLOCK) + block + bytes(BLOCK - 1)
    assert _tarfast.parse_header(buf, BLOCK) == _parse_header(block)
    for pos in (-1, 2 * BLOCK, len(buf)):  # no whole block there
        assert _tarfast.parse_header(buf, pos) is None
    assert _tarfast.parse_header(buf, 0) is None  # end of archive: the Python path decides


@needs_c
def test_write_file_makes_the_file(work: Path) -> None:
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        data = b"..hello world.."
        done = _tarfast.write_file(fd, "f", _O_NEWFILE, 0o600, data, 2, 11, True, 123, 456, 0o4751,
                                   1_500_000_000_123_456_789, -1_500_000_001)
        assert done is True
        st = os.stat(work / "f")
        assert (work / "f").read_bytes() == b"hello world"
        assert stat.S_IMODE(st.st_mode) == 0o4751 and (st.st_uid, st.st_gid) == (123, 456)
        assert st.st_atime_ns == 1_500_000_000_123_456_789 and st.st_mtime_ns == -1_500_000_001
        # no chown, no chmod: open()'s mode under the umask, the caller's owner
        assert _tarfast.write_file(fd, "g", _O_NEWFILE, 0o640, b"", 0, 0, False, 0, 0, -1, 0, 0)
        st = os.stat(work / "g")
        assert stat.S_IMODE(st.st_mode) == 0o640 & ~_umask() and st.st_size == 0
        assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
        with pytest.raises(FileExistsError) as info:
            _tarfast.write_file(fd, "f", _O_NEWFILE, 0o600, b"x", 0, 1, False, 0, 0, -1, 0, 0)
        assert info.value.filename == "f"
        os.symlink("/etc/passwd", work / "link")
        with pytest.raises(OSError):  # O_NOFOLLOW|O_EXCL: never through a symlink
            _tarfast.write_file(fd, "link", _O_NEWFILE, 0o600, b"x", 0, 1, False, 0, 0, -1, 0, 0)
        with pytest.raises(ValueError):
            _tarfast.write_file(fd, "h", _O_NEWFILE, 0o600, b"x", 0, 2, False, 0, 0, -1, 0, 0)
        for uid, times in [(1 << 32, (0, 0)), (-2, (0, 0)), (0, (1 << 64, 0)), (0, (0, -(1 << 70)))]:
            assert _tarfast.write_file(fd, "h", _O_NEWFILE, 0o600, b"x", 0, 1, True, uid, 0, -1, *times) is False
        assert not (work / "h").exists()  # False: nothing was done
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@needs_c
def test_both_paths_unpack_identical_trees(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rich tree (every kind, setuid, xattrs, owners, times), plus files spanning chunks."""
    (work / "tree").mkdir()
    build_rich_tree(work / "tree")  # bin/big: 3 MiB, spans chunks

    data = subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-cf", "-", "-C",
                           str(work / "tree"), "."], check=True, stdout=subprocess.PIPE).stdout
    results = {}
    for name, accel in (("c", _tarfast), ("python", None)):
        monkeypatch.setattr(tarstream, "_tarfast", accel)
        dest = work / name
        dest.mkdir()
        results[name] = apply_layer(io.BytesIO(data), str(dest))
    assert results["c"] == results["python"]
    assert snapshot(work / "c") == snapshot(work / "python")


@pytest.mark.parametrize("env,expect", [("0", "None"), ("1", "c")])
def test_dockyard_tarfast_0_forces_the_python_path(env: str, expect: str) -> None:
    code = ("from dockyard.image import tarstream, layer_apply; import tempfile; "
            "a = layer_apply._Applier(tempfile.gettempdir(), False, True); a.close(); "
            "print('None' if tarstream._tarfast is None and a.write_file is None else 'c')")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DOCKYARD_TARFAST": env},
                         check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    assert out == (expect if _tarfast is not None else "None")
