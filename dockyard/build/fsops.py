"""File operations of COPY/ADD/WORKDIR: paths resolved inside a root, Docker's copy rules."""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dockyard.build.ignore import PatternMatcher

MAX_LINKS = 40


class CopyError(ValueError):
    """A source or destination Docker refuses (the message is Docker's)."""


def resolve(root: str, path: str, follow_last: bool = True) -> str:
    """The host path of path inside root, symlinks followed as if root were `/` (`..` and
    absolute link targets stay inside root); missing components are kept as they are."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        if (parts or follow_last) and os.path.islink(candidate):
            links += 1
            if links > MAX_LINKS:
                raise CopyError(f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return os.path.join(root, *done)


def has_wildcards(path: str) -> bool:
    """Whether a COPY source is a pattern (Go filepath.Match characters)."""
    return any(c in path for c in "*?[")


def _component_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < len(pattern):
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise CopyError(f"syntax error in pattern: {pattern}")
            body = pattern[i:j]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob(root: str, pattern: str) -> list[str]:
    """Paths (relative, sorted) in root matching a COPY source pattern, `**` spanning directories."""
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    results: list[str] = []

    def walk(rel: str, rest: list[str]) -> None:
        if not rest:
            results.append(rel)
            return
        head = rest[0]
        base = resolve(root, rel) if rel else root
        if head == "**":
            walk(rel, rest[1:])
            for name in _listdir(base):
                child = f"{rel}/{name}" if rel else name
                if os.path.isdir(resolve(root, child)):
                    walk(child, rest)
            return
        if not has_wildcards(head):
            child = f"{rel}/{head}" if rel else head
            if os.path.lexists(resolve(root, child, follow_last=False)):
                walk(child, rest[1:])
            return
        rx = _component_regex(head)
        for name in _listdir(base):
            if rx.match(name):
                walk(f"{rel}/{name}" if rel else name, rest[1:])

    walk("", parts)
    return sorted(set(results))


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


@dataclass
class Ownership:
    """Who owns what a COPY writes: fixed uid/gid, or None to keep the source's."""

    uid: int | None = 0
    gid: int | None = 0
    mode: int | None = None  # --chmod


def make_dirs(root: str, path: str, owner: Ownership) -> str:
    """mkdir -p of path inside root (created directories get owner and 0755); its host path."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = "/"
    for part in parts:
        current = posixpath.join(current, part)
        host = resolve(root, current)
        if not os.path.lexists(host):
            os.mkdir(host, 0o755)
            if owner.uid is not None:
                os.lchown(host, owner.uid, owner.gid if owner.gid is not None else 0)
        elif not os.path.isdir(host):
            raise CopyError(f"mkdir {current}: not a directory")
    return resolve(root, path)


def _apply(path: str, st: os.stat_result, owner: Ownership, is_link: bool) -> None:
    uid = st.st_uid if owner.uid is None else owner.uid
    gid = st.st_gid if owner.gid is None else owner.gid
    os.lchown(path, uid, gid)
    if not is_link:
        mode = stat.S_IMODE(st.st_mode) if owner.mode is None else owner.mode
        os.chmod(path, mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_entry(src: str, dst: str, owner: Ownership, excluded: Callable[[str], bool] | None = None,
               rel: str = "") -> None:
    """Copy src (file, symlink or directory tree, not following links inside) to dst."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        if os.path.lexists(dst) and not os.path.isdir(dst):
            os.unlink(dst)
        if not os.path.lexists(dst):
            os.mkdir(dst, 0o700)
        for name in sorted(os.listdir(src)):
            child_rel = f"{rel}/{name}" if rel else name
            if excluded and excluded(child_rel):
                continue
            copy_entry(os.path.join(src, name), os.path.join(dst, name), owner, excluded, child_rel)
        _apply(dst, st, owner, False)
        return
    if os.path.lexists(dst):
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        else:
            os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        _apply(dst, st, owner, True)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        _apply(dst, st, owner, False)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst)
        _apply(dst, st, owner, False)


def plan_copy(src_root: str, sources: list[str], dest: str, workdir: str, *, parents: bool = False,
              missing: Callable[[str], CopyError], nothing: CopyError | None = None
              ) -> Iterator[tuple[str, str, bool]]:
    """(source path in src_root, destination path in the image, source is a directory) for
    each match of sources, with Docker's rules: a directory's contents go into the destination,
    a file goes to dest/basename when dest ends with `/` (or is an existing directory, checked by
    the caller), several sources need a directory destination. With nothing (the classic
    builder), a wildcard may match nothing; nothing is raised when no source matched at all."""
    dest_abs = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest == "."
    matches: list[str] = []
    for src in sources:
        clean = posixpath.normpath("/" + src).lstrip("/")
        if has_wildcards(clean):
            found = glob(src_root, clean)
            if not found and nothing is None:
                raise missing(src)
            matches += found
        else:
            if not os.path.lexists(resolve(src_root, clean)):
                raise missing(src)
            matches.append(clean)
    if not matches and nothing is not None:
        raise nothing
    if len(matches) > 1 and not dest_is_dir:
        raise CopyError("When using COPY with more than one source file, the destination must be a directory "
                        "and end with a /")
    for match in matches:
        host = resolve(src_root, match)
        is_dir = os.path.isdir(host)
        if parents and match:
            target = posixpath.join(dest_abs, match)
            yield match, target, is_dir
        elif is_dir:
            yield match, dest_abs, True
        else:
            base = posixpath.basename(match) if match else ""
            yield match, (posixpath.join(dest_abs, base) if dest_is_dir else dest_abs), False


def copy_into(src_root: str, match: str, rootfs: str, target: str, is_dir: bool, owner: Ownership,
              excludes: list[str] | None = None, dest_is_dir_hint: bool = False,
              dir_parents: Ownership | None = None) -> None:
    """Copy one planned match from src_root into rootfs at target (a directory's missing
    parents made with dir_parents' ownership, owner's by default)."""
    host_src = resolve(src_root, match)
    matcher = PatternMatcher(excludes) if excludes else None

    def excluded(rel: str) -> bool:  # patterns apply below the source, and to context paths
        return matcher is not None and (matcher.matches(rel) or matcher.matches(posixpath.join(match, rel)))

    if is_dir:
        if dir_parents is not None:
            make_dirs(rootfs, posixpath.dirname(target.rstrip("/")), dir_parents)
        host_dst = make_dirs(rootfs, target, owner)
        for name in sorted(os.listdir(host_src)):
            if excluded(name):
                continue
            copy_entry(os.path.join(host_src, name), os.path.join(host_dst, name), owner, excluded, name)
        return
    parent, base = posixpath.split(target.rstrip("/") or "/")
    host_parent = make_dirs(rootfs, parent, owner)
    host_dst = os.path.join(host_parent, base)
    if not dest_is_dir_hint and os.path.isdir(resolve(rootfs, target)):
        host_dst = os.path.join(resolve(rootfs, target), posixpath.basename(match))
    copy_entry(host_src, host_dst, owner)
