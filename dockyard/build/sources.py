"""Where COPY/ADD read from (the context, a stage, an image, heredocs, URLs) and how the
files arrive in the image (ADD's archive extraction included)."""

from __future__ import annotations

import hashlib
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard.build import fsops
from dockyard.build.context import ContextError, extract
from dockyard.build.ignore import PatternMatcher
from dockyard.build.parser import Command, ParseError, parse_heredoc
from dockyard.build.remote import download, git_clone, git_commit, is_git_url, is_url, split_git_url
from dockyard.build.shell import Lex
from dockyard.image.compression import open_decompressed
from dockyard.image.snapshot import mount_all, unmount

if TYPE_CHECKING:
    from dockyard.build.builder import Builder, _State



# (image ID, source paths, excludes) -> SourceSet.matches(); the oldest entries go first
_IMAGE_DIGESTS: OrderedDict[tuple[str, tuple[str, ...], tuple[str, ...]], list[tuple[str, bool, dict[str, str]]]] = \
    OrderedDict()
_IMAGE_DIGESTS_LOCK = threading.Lock()
_IMAGE_DIGESTS_KEPT = 256


class SourceSet:
    """The root a COPY/ADD reads from and the source paths inside it."""

    def __init__(self, root: str, paths: list[str], identity: str, cleanup: list[Any],
                 from_context: bool, generated: set[str]) -> None:
        self.root = root
        self.paths = paths
        self.identity = identity
        self._cleanup = cleanup
        self.from_context = from_context
        self.generated = generated  # heredoc and URL files: no archive extraction, fixed names
        self.known: dict[str, str] = {}  # sha256 of context files computed while unpacking
        self.pinned: dict[str, str] = {}  # source path → what fixes its content (a git commit)
        self._mount: Callable[[], tuple[str, Callable[[], None]]] | None = None
        self._fetches: list[Callable[[], object]] = []  # git checkouts made on first use of root

    @classmethod
    def prepare(cls, builder: Builder, state: _State, frm: str, srcs: list[str], cmd: Command, add: bool,
                flags: dict[str, list[str]]) -> SourceSet:
        """Resolve --from and materialise heredocs and URLs."""
        cleanup: list[Any] = []
        heredocs = {h.name: h for h in cmd.heredocs}
        if heredocs or any(is_url(s) for s in srcs):
            tmp = tempfile.mkdtemp(prefix="build-src-", dir=builder.work_root)
            cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
            paths: list[str] = []
            generated: set[str] = set()
            pinned: dict[str, str] = {}
            fetches: list[Callable[[], object]] = []
            env = state.expansion_env()
            for src, word in zip(srcs, cmd.value[:-1], strict=False):
                info = parse_heredoc(word) if word.startswith("<<") or word[:1].isdigit() else None
                if info and info[0] in heredocs:
                    name, _fd, chomp, expand = info
                    content = heredocs[name].content
                    if chomp:
                        content = "\n".join(line.lstrip("\t") for line in content.split("\n"))
                    if expand:
                        content = Lex(builder.lex.escape, skip_quotes=True).process_word(content, env)
                    path = os.path.join(tmp, name)
                    with open(path, "w") as f:
                        f.write(content)
                    os.chmod(path, 0o644)
                    paths.append(name)
                    generated.add(name)
                elif is_url(src):
                    if not add:
                        raise ParseError("source can't be a URL for COPY", cmd.start_line)
                    if is_git_url(src):  # the checkout's contents, like a directory; keyed by commit
                        name, commit, fetch = _git_source(src, tmp, len(paths), flags)
                        pinned[name] = f"git commit {commit}"
                        if fetch is not None:
                            fetches.append(fetch)
                    else:
                        name = download(src, tmp, (flags.get("checksum") or [""])[-1])
                    paths.append(name)
                    generated.add(name)
                else:
                    raise ParseError(f"{src}: heredocs and URLs cannot be mixed with context files", cmd.start_line)
            found = cls(tmp, paths, "generated", cleanup, False, generated)
            found.pinned = pinned
            found._fetches = fetches
            return found
        named = builder.opts.contexts.get(frm.lower()) if frm else None
        if not frm or (named is not None and named.directory):
            found = cls(named.directory if named else builder.context, srcs, "context", cleanup, True, set())
            found.known = named.digests if named else builder.context_digests
            return found
        image = source_image(builder, state, frm)
        found = cls("", srcs, image or "scratch", cleanup, False, set())
        found._mount = lambda: mount_image(builder, image)  # on a cache miss only
        return found

    @property
    def root(self) -> str:
        """The directory the sources are read from (a --from image is mounted on first use)."""
        if not self._root and self._mount is not None:
            self._root, release = self._mount()
            self._cleanup.append(release)
        while self._fetches:
            self._fetches.pop(0)()
        return self._root

    @root.setter
    def root(self, value: str) -> None:
        self._root = value

    def close(self) -> None:
        """Unmount and delete what prepare made."""
        for fn in reversed(self._cleanup):
            fn()
        self._cleanup = []

    def digest(self, excludes: list[str]) -> dict[str, str]:
        """Content digests of every source file (path, mode, owner, size, link, bytes; never
        mtimes), for the cache key: a COPY --from hits when the files it copies are the same,
        whatever else changed in their stage."""
        out: dict[str, str] = {}
        for _match, _is_dir, digests in self.matches(excludes):
            out.update(digests)
        return out

    def matches(self, excludes: list[str]) -> list[tuple[str, bool, dict[str, str]]]:
        """Each source path after wildcard expansion: (path, is a directory, the digests of
        the files it holds, by path). A stage's or an image's are read once per daemon (an
        image ID fixes its files)."""
        if self.identity in ("context", "generated"):
            return self._matches(excludes)
        key = (self.identity, tuple(self.paths), tuple(excludes))
        with _IMAGE_DIGESTS_LOCK:
            found = _IMAGE_DIGESTS.get(key)
        if found is None:
            found = self._matches(excludes)
            with _IMAGE_DIGESTS_LOCK:
                _IMAGE_DIGESTS[key] = found
                while len(_IMAGE_DIGESTS) > _IMAGE_DIGESTS_KEPT:
                    _IMAGE_DIGESTS.popitem(last=False)
        return found

    def _matches(self, excludes: list[str]) -> list[tuple[str, bool, dict[str, str]]]:
        matcher = PatternMatcher(excludes) if excludes else None
        known = self.known if self.identity == "context" else {}
        found: list[tuple[str, bool, dict[str, str]]] = []
        for src in self.paths:
            if src in self.pinned:  # the instruction names the repository, ref and subdir
                found.append((src, True, {src: self.pinned[src]}))
                continue
            clean = posixpath.normpath("/" + src).lstrip("/")
            matches = fsops.glob(self.root, clean) if fsops.has_wildcards(clean) else [clean]
            for match in matches:
                host = fsops.resolve(self.root, match)
                if not os.path.lexists(host):
                    continue
                out: dict[str, str] = {}
                _digest_tree(host, match, out, matcher, match, self.root, known)
                found.append((match, os.path.isdir(host), out))
        return found


def _git_source(url: str, tmp: str, n: int, flags: dict[str, list[str]]
                ) -> tuple[str, str, Callable[[], object] | None]:
    """ADD of a git repository: (its path under tmp, the commit, the checkout to make on a cache
    miss, or None when it had to be made now to learn the commit)."""
    keep = "keep-git-dir" in flags and flags["keep-git-dir"][-1] in ("", "true")
    dest = os.path.join(tmp, f"git-{n}")
    commit = git_commit(url, tmp)
    if not commit:
        checkout, commit = git_clone(url, dest, keep)
        return os.path.relpath(checkout, tmp), commit, None
    subdir = split_git_url(url)[2]
    name = f"git-{n}/" + posixpath.normpath("/" + subdir).lstrip("/") if subdir else f"git-{n}"
    return name, commit, lambda: git_clone(url, dest, keep, commit)


def source_image(builder: Builder, state: _State, frm: str) -> str | None:
    """The image a --from names: a stage's result (None for scratch), a --build-context image,
    or an image (pulled when missing)."""
    stage = builder.stage_named(frm, state.stage.index)
    if stage is not None:
        return builder.futures[stage.index].result().image
    named = builder.opts.contexts.get(frm.lower())
    if named is not None:
        return builder.resolve_image(named.image)
    if frm.isdigit():  # a stage index, not an image name to pull
        raise fsops.CopyError(f"invalid from flag value {frm}: index out of bounds")
    return builder.resolve_image(frm, builder.opts.always_pull)


def mount_image(builder: Builder, image: str | None) -> tuple[str, Callable[[], None]]:
    """An image's filesystem mounted under the build's work dir: (root, release)."""
    key = f"build-from-{uuid.uuid4().hex}"
    root = os.path.join(builder.work_root, key)
    os.makedirs(root)
    store = builder.store
    try:
        store.prepare_rootfs(key, image)
        mount_all(store.snapshots.mounts(key), root)
    except BaseException:
        store.remove_rootfs(key)
        os.rmdir(root)
        raise

    def release() -> None:
        unmount(root)
        store.remove_rootfs(key)
        os.rmdir(root)
    return root, release


def mount_from(builder: Builder, state: _State, frm: str) -> tuple[str, str, Callable[[], None]]:
    """A stage's result or an image mounted read-only for --from: (root, image ID, release)."""
    image = source_image(builder, state, frm)
    root, release = mount_image(builder, image)
    return root, image or "scratch", release


def _digest_tree(host: str, rel: str, out: dict[str, str], matcher: PatternMatcher | None, top: str,
                 root: str, known: dict[str, str]) -> None:
    st = os.lstat(host)
    meta = f"{st.st_mode:o}:{st.st_uid}:{st.st_gid}"
    if os.path.islink(host):
        out[rel or "."] = f"{meta}:link:{os.readlink(host)}"
    elif os.path.isdir(host):
        out[(rel or ".") + "/"] = meta
        for name in sorted(os.listdir(host)):
            child = f"{rel}/{name}" if rel else name
            below = child[len(top):].lstrip("/")
            if matcher is not None and (matcher.matches(child) or matcher.matches(below)):
                continue
            _digest_tree(os.path.join(host, name), child, out, matcher, top, root, known)
    else:
        digest = known.get(os.path.relpath(host, root))
        if digest is None:
            h = hashlib.sha256()
            with open(host, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            digest = h.hexdigest()
        out[rel or "."] = f"{meta}:{st.st_size}:{digest}"


def _is_archive(path: str) -> bool:
    """Whether ADD extracts the file: a tar, plain or compressed, whose first header reads
    (Docker's IsArchivePath); a compressed file that is not a tar is copied as it is."""
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        with open(path, "rb") as f, open_decompressed(f) as raw:
            block = raw.read(512)
    except (OSError, EOFError, lzma.LZMAError):
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def add_sources(sources: SourceSet, rootfs: str, dest: str, workdir: str, owner: fsops.Ownership,
                excludes: list[str], parents: bool, add: bool, cmd: Command, classic: bool = False) -> None:
    """Copy every source into rootfs at dest (Docker's rules); ADD extracts local archives.
    The classic builder makes the directories for an archive and above a copied directory as
    root, and lets a wildcard match nothing unless nothing matches at all."""
    name = (cmd.cmd or "").upper()

    def missing(src: str) -> fsops.CopyError:
        if sources.from_context:
            return fsops.CopyError(f"{name} failed: file not found in build context or excluded by "
                                   f".dockerignore: stat {src}: file does not exist")
        return fsops.CopyError(f"{name} failed: stat {src}: file does not exist")

    dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest == "."
    dir_parents = fsops.Ownership() if classic else None
    nothing = fsops.CopyError(f"{name} failed: no source files were specified") if classic else None
    for match, target, is_dir in fsops.plan_copy(sources.root, sources.paths, dest, workdir, parents=parents,
                                                  missing=missing, nothing=nothing):
        host = fsops.resolve(sources.root, match)
        if add and match not in sources.generated and _is_archive(host):
            dest_abs = dest if dest.startswith("/") else posixpath.join(workdir, dest)
            host_dst = fsops.make_dirs(rootfs, dest_abs, dir_parents or owner)
            try:
                with open(host, "rb") as f:
                    extract(f, host_dst)
            except ContextError as e:
                raise fsops.CopyError(f"ADD failed to extract {match}: {e}") from None
            continue
        fsops.copy_into(sources.root, match, rootfs, target, is_dir, owner, excludes, dest_is_dir, dir_parents)
