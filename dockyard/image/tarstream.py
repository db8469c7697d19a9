"""A small, fast streaming tar reader and writer (ustar + PAX + GNU long names).

Python's `tarfile` builds several objects and string conversions per member; layer apply and
diff only need the header fields, so this module parses and builds 512-byte headers directly.
Reading works over an iterator of byte chunks (see compression.DecompressedChunks), writing over
any `write(bytes)` callable. Paths are `str` decoded with surrogateescape (like os.fsdecode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from zlib import adler32

if os.environ.get("DOCKYARD_TARFAST") == "0":
    _tarfast = None
else:
    try:  # the C header parser and file writer, built by scripts/build-ext.sh (optional)
        from dockyard.image import _tarfast
    except ImportError:
        _tarfast = None

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_MAX_META = 1 << 20  # PAX / GNU long-name payloads above this are refused (memory bound)

REG, LINK, SYMLINK, CHR, BLK, DIR, FIFO = "0", "1", "2", "3", "4", "5", "6"
_HEADER_ONLY = {LINK, SYMLINK, CHR, BLK, DIR, FIFO}
_REG_ALIASES = {"\0": REG, "7": REG}
_META_KINDS = {"x": "PAX", "g": "PAX global", "L": "GNU long name", "K": "GNU long link"}
_NUMERIC = ((100, 108, "mode"), (108, 116, "uid"), (116, 124, "gid"), (124, 136, "size"), (136, 148, "mtime"),
            (148, 156, "checksum"))


class TarFormatError(ValueError):
    """The byte stream is not a well-formed tar archive (or uses an unsupported feature)."""


class Entry:
    """One archive member. `mtime` is in nanoseconds; `xattrs` maps names to raw values."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "size", "mtime", "atime", "linkname",
                 "devmajor", "devminor", "xattrs")

    def __init__(self, name: str, type: str, mode: int = 0o644, uid: int = 0, gid: int = 0,
                 size: int = 0, mtime: int = 0, *, atime: int | None = None, linkname: str = "",
                 devmajor: int = 0, devminor: int = 0, xattrs: dict[str, bytes] | None = None) -> None:
        self.name = name
        self.type = type
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.atime = atime
        self.linkname = linkname
        self.devmajor = devmajor
        self.devminor = devminor
        self.xattrs = xattrs

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.type!r}, size={self.size})"


def _cstr(field: bytes) -> bytes:
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _number(field: bytes, what: str) -> int:
    if field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            value -= 1 << (8 * (len(field) - 1))
        elif field[0] != 0x80:
            raise TarFormatError(f"corrupt tar header: invalid base-256 {what} field")
        return value
    text = _cstr(field).strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"corrupt tar header: invalid {what} field {field!r}") from None


def _parse_header(h: bytes) -> tuple[str, int, int, int, int, int, bytes, bytes]:
    """(type, mode, uid, gid, size, mtime seconds, raw name, raw link name) of a 512-byte header
    (the raw link name is b"" unless the type is a link); what _tarfast.parse_header returns."""
    try:  # fast path: plain octal fields
        mode = int(h[100:108].rstrip(b" \0"), 8)
        uid = int(h[108:116].rstrip(b" \0"), 8)
        gid = int(h[116:124].rstrip(b" \0"), 8)
        size = int(h[124:136].rstrip(b" \0"), 8)
        mtime = int(h[136:148].rstrip(b" \0"), 8)
        stored = int(h[148:156].rstrip(b" \0"), 8)
    except ValueError:
        mode, uid, gid, size, mtime, stored = (_number(h[a:b], what) for a, b, what in _NUMERIC)
    # The checksum is the byte sum with its own field as spaces; adler32's low half is
    # 1 + that sum mod 65521, computed in C (an exact sum() only when this disagrees).
    if (stored - 256 + sum(h[148:156]) - (adler32(h) & 0xFFFF) + 1) % 65521:
        _check_sum_exactly(h, stored)
    typ = chr(h[156])
    raw_name = h[0:100]
    if raw_name[-1] == 0:
        raw_name = raw_name[: raw_name.find(b"\0")]
    if h[345] != 0 and h[257:263] == b"ustar\x00":
        raw_name = _cstr(h[345:500]) + b"/" + raw_name
    raw_link = _cstr(h[157:257]) if typ == LINK or typ == SYMLINK else b""
    return typ, mode, uid, gid, size, mtime, raw_name, raw_link


def _check_sum_exactly(h: bytes, stored: int) -> None:
    unsigned = sum(h[:148]) + sum(h[156:]) + 256
    signed = unsigned - 256 * sum(b > 127 for b in h[:148] + h[156:])
    if stored not in (unsigned, signed):
        raise TarFormatError("tar header checksum mismatch (corrupt or not a tar archive)")


def _pax_time(value: bytes) -> int:
    sec, _, frac = value.decode("ascii", "replace").partition(".")
    try:
        ns = int(sec) * 1_000_000_000
        if frac:
            sign = -1 if sec.startswith("-") else 1
            ns += sign * int(frac[:9].ljust(9, "0"))
        return ns
    except ValueError:
        raise TarFormatError(f"invalid PAX time {value!r}") from None


def _parse_pax(data: bytes) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("invalid PAX record length") from None
        if space < 0 or length <= space - pos + 1 or pos + length > len(data):
            raise TarFormatError("invalid PAX record")
        record = data[space + 1 : pos + length]
        key, eq, value = record.partition(b"=")
        if not eq or not record.endswith(b"\n"):
            raise TarFormatError("invalid PAX record")
        records[key.decode("utf-8", "surrogateescape")] = value[:-1]
        pos += length
    return records


class TarReader:
    """Iterate over the entries of a tar stream given as an iterator of byte chunks.

    After an entry is yielded its data can be written to a file with `copy_data`; data not
    consumed is skipped when the next entry is requested. Iteration stops at the end-of-archive
    marker (or a clean EOF on a block boundary); a stream cut short raises TarFormatError."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        self._data_left = 0  # data bytes of the current entry not yet consumed
        self._pad_left = 0
        self.current: Entry | None = None
        self._parse = _tarfast.parse_header if _tarfast is not None else None

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf = chunk
                self._view = memoryview(chunk)
                self._pos = 0
                return True
        return False

    def _read(self, n: int, what: str) -> bytes:
        buf, pos = self._buf, self._pos
        end = pos + n
        if end <= len(buf):
            self._pos = end
            return buf[pos:end]
        parts = [buf[pos:]]
        have = len(parts[0])
        while have < n:
            if not self._fill():
                if have == 0 and what == "header":
                    return b""
                raise TarFormatError(f"unexpected end of archive while reading {what}")
            take = min(n - have, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            have += take
        return b"".join(parts)

    def _skip(self, n: int, what: str) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise TarFormatError(f"unexpected end of archive in {what}")
                continue
            step = min(avail, n)
            self._pos += step
            n -= step

    def data_span(self) -> tuple[bytes, int, int] | None:
        """(chunk, start, length) of the current entry's unread data when all of it is in the
        current chunk (None otherwise); call `data_done` once it is written."""
        pos, n = self._pos, self._data_left
        return (self._buf, pos, n) if pos + n <= len(self._buf) else None

    def data_done(self) -> None:
        """The span `data_span` returned has been consumed."""
        self._pos += self._data_left
        self._data_left = 0

    def copy_data(self, fd: int) -> int:
        """Write the current entry's data to `fd`; returns the number of bytes written."""
        n = self._data_left
        total = n
        pos = self._pos
        if n and pos + n <= len(self._buf):  # the common case: all of it in the current chunk, one write
            done = os.write(fd, self._view[pos : pos + n])
            self._pos = pos + done
            self._data_left = n = n - done
        write = os.write
        while n:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    name = self.current.name if self.current else "?"
                    raise TarFormatError(f"unexpected end of archive in the data of {name!r}")
                continue
            step = min(avail, n)
            view = self._view[self._pos : self._pos + step]
            while view:
                view = view[write(fd, view):]
            self._pos += step
            n -= step
            self._data_left = n
        return total

    def _meta_payload(self, size: int, kind: str) -> bytes:
        if size < 0 or size > _MAX_META:
            raise TarFormatError(f"{kind} header of {size} bytes is too large")
        data = self._read(size, f"a {kind} header")
        self._skip(-size % BLOCK, f"a {kind} header")
        return data

    @staticmethod
    def _apply_pax(entry: Entry, pax: dict[str, bytes]) -> None:
        if any(k.startswith("GNU.sparse.") for k in pax):
            raise TarFormatError(f"sparse tar entry {entry.name!r} is not supported")
        try:
            if "size" in pax and entry.type == REG:
                entry.size = int(pax["size"])
            if "uid" in pax:
                entry.uid = int(pax["uid"])
            if "gid" in pax:
                entry.gid = int(pax["gid"])
        except ValueError:
            raise TarFormatError(f"invalid number in the PAX header of {entry.name!r}") from None
        if "mtime" in pax:
            entry.mtime = _pax_time(pax["mtime"])
        if "atime" in pax:
            entry.atime = _pax_time(pax["atime"])
        xattrs = {k[13:]: v for k, v in pax.items() if k.startswith("SCHILY.xattr.")}
        entry.xattrs = xattrs or None

    def __iter__(self) -> Iterator[Entry]:
        parse = self._parse
        pax: dict[str, bytes] = {}
        long_name = long_link = None
        while True:
            left = self._data_left + self._pad_left
            if left:
                end = self._pos + left
                if end <= len(self._buf):  # the common case: within the current chunk
                    self._pos = end
                else:
                    self._skip(left, f"the data of {self.current.name!r}")
                self._data_left = self._pad_left = 0
            buf, pos = self._buf, self._pos
            fields = parse(buf, pos) if parse is not None else None
            if fields is not None:  # the C parser: a plain header, checksum verified
                self._pos = pos + BLOCK
                h = None
                if fields[0] == REG and not pax and long_name is None and long_link is None:
                    # the common case, a regular file with nothing before it: what the code
                    # below does for it, without the checks that cannot apply
                    size = fields[4]
                    entry = Entry(fields[6].decode("utf-8", "surrogateescape"), REG, fields[1] & 0o7777, fields[2],
                                  fields[3], size, fields[5] * 1_000_000_000)
                    self._data_left = size
                    self._pad_left = -size % BLOCK
                    self.current = entry
                    yield entry
                    continue
            else:
                if pos + BLOCK <= len(buf):
                    h = buf[pos : pos + BLOCK]
                    self._pos = pos + BLOCK
                else:
                    h = self._read(BLOCK, "header")
                if not h or h == _ZERO_BLOCK:
                    self.current = None
                    return
                fields = _parse_header(h)
            typ, mode, uid, gid, size, mtime, raw_name, raw_link = fields
            if typ in ("x", "g", "L", "K"):
                payload = self._meta_payload(size, _META_KINDS[typ])
                if typ == "x":
                    pax.update(_parse_pax(payload))
                elif typ == "L":
                    long_name = _cstr(payload)
                elif typ == "K":
                    long_link = _cstr(payload)
                continue  # global PAX headers carry nothing a layer needs
            if long_name is not None:
                raw_name = long_name
            elif "path" in pax:
                raw_name = pax["path"]
            name = raw_name.decode("utf-8", "surrogateescape")
            if typ == "\0" and name.endswith("/"):  # pre-POSIX directory
                typ = DIR
            typ = _REG_ALIASES.get(typ, typ)
            if typ in _HEADER_ONLY:
                size = 0
            elif typ == "S":
                raise TarFormatError(f"sparse tar entry {name!r} is not supported")
            elif typ != REG:
                raise TarFormatError(f"unsupported tar entry type {typ!r} for {name!r}")
            entry = Entry(name, typ, mode & 0o7777, uid, gid, size, mtime * 1_000_000_000)
            if typ == LINK or typ == SYMLINK:
                raw_link = long_link if long_link is not None else pax.get("linkpath") or raw_link
                entry.linkname = raw_link.decode("utf-8", "surrogateescape")
            if typ == CHR or typ == BLK:  # rare: the header block again
                if h is None:  # parsed in C: the block is buf[pos:pos + BLOCK]
                    h = buf[pos : pos + BLOCK]
                entry.devmajor = _number(h[329:337], "devmajor")
                entry.devminor = _number(h[337:345], "devminor")
            if pax:
                self._apply_pax(entry, pax)
                pax = {}
            long_name = long_link = None
            size = entry.size
            if size < 0:
                raise TarFormatError(f"negative size for {name!r}")
            self._data_left = size
            self._pad_left = -size % BLOCK
            self.current = entry
            yield entry


def _octal(value: int, width: int) -> bytes | None:
    """`value` as a NUL-terminated octal field, or None when it does not fit."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return None


def _base256(value: int, width: int) -> bytes:
    return b"\x80" + value.to_bytes(width - 1, "big")


def _pax_record(key: str, value: bytes) -> bytes:
    payload = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(str(length)) + len(payload) != length:
        length += 1
    return str(length).encode() + payload


def _split_ustar_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) fitting ustar's 155 + 100 bytes, or None."""
    if len(name) <= 100:
        return b"", name
    cut = name.find(b"/", len(name) - 101)
    while 0 < cut <= 155:
        if len(name) - cut - 1 <= 100 and cut + 1 < len(name):
            return name[:cut], name[cut + 1 :]
        cut = name.find(b"/", cut + 1)
    return None


def _header_block(name: bytes, prefix: bytes, mode: int, uid: bytes, gid: bytes, size: bytes,
                  mtime: bytes, typ: str, linkname: bytes, devmajor: bytes, devminor: bytes) -> bytes:
    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = b"%07o\0" % mode
    block[108:116] = uid
    block[116:124] = gid
    block[124:136] = size
    block[136:148] = mtime
    block[148:156] = b"        "
    block[156] = ord(typ)
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    block[329:337] = devmajor
    block[337:345] = devminor
    block[345 : 345 + len(prefix)] = prefix
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


class TarWriter:
    """Write tar entries (ustar, with a PAX header only when a value does not fit) to `write`."""

    def __init__(self, write: Callable[[bytes], object], *, flush_at: int = 1 << 20) -> None:
        self._write = write
        self._buf = bytearray()
        self._flush_at = flush_at

    def _flush(self) -> None:
        if self._buf:
            self._write(bytes(self._buf))
            self._buf.clear()

    def _header(self, e: Entry) -> bytes:
        pax: dict[str, bytes] = {}
        name = e.name.encode("utf-8", "surrogateescape")
        split = _split_ustar_name(name)
        if split is None:
            pax["path"] = name
            split = b"", name[:100]
        link = e.linkname.encode("utf-8", "surrogateescape")
        if len(link) > 100:
            pax["linkpath"] = link
            link = link[:100]
        fields = {}
        seconds = e.mtime // 1_000_000_000
        for key, value, width in (("uid", e.uid, 8), ("gid", e.gid, 8), ("size", e.size, 12), ("mtime", seconds, 12)):
            field = _octal(value, width)
            if field is None:
                pax[key] = str(value).encode()
                field = _octal(0, width)
            fields[key] = field
        devs = [(_octal(v, 8) or _base256(v, 8)) for v in (e.devmajor, e.devminor)]
        for key in sorted(e.xattrs or ()):
            pax["SCHILY.xattr." + key] = e.xattrs[key]
        block = _header_block(split[1], split[0], e.mode & 0o7777, fields["uid"], fields["gid"], fields["size"],
                              fields["mtime"], e.type, link, devs[0], devs[1])
        if not pax:
            return block
        payload = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
        pax_name = b"PaxHeaders/" + name.rsplit(b"/", 1)[-1][:80]
        pax_block = _header_block(pax_name, b"", 0o644, _octal(0, 8), _octal(0, 8), _octal(len(payload), 12),
                                  _octal(0, 12), "x", b"", _octal(0, 8), _octal(0, 8))
        return pax_block + payload + bytes(-len(payload) % BLOCK) + block

    def add(self, entry: Entry, fd: int | None = None) -> None:
        """Append `entry`; a regular file's `entry.size` bytes are read from `fd`.

        A file that shrank while being read is padded with zeros, one that grew is cut,
        so the archive always matches its headers."""
        buf = self._buf
        buf += self._header(entry)
        if entry.type == REG and entry.size:
            left = entry.size
            while left:
                data = os.read(fd, min(left, 1 << 20)) if fd is not None else b""
                if not data:
                    data = bytes(min(left, 1 << 20))
                buf += data
                left -= len(data)
                if len(buf) >= self._flush_at:
                    self._flush()
            buf += bytes(-entry.size % BLOCK)
        if len(buf) >= self._flush_at:
            self._flush()

    def close(self) -> None:
        """Write the end-of-archive marker (two zero blocks) and flush."""
        self._buf += bytes(2 * BLOCK)
        self._flush()
