"""The registry's filesystem storage: blobs by digest, shared by every repository, and per
repository links that say which blobs and manifests it holds, its tags and its referrers.

Layout under root::

    blobs/<algo>/<hex>                         blob and manifest bytes, verified when written
    repositories/<name>/_layers/<algo>/<hex>   empty: the repository holds the blob
    repositories/<name>/_manifests/<algo>/<hex>  the manifest's media type
    repositories/<name>/_tags/<tag>            the digest the tag points at
    repositories/<name>/_referrers/<algo>-<subject hex>/<algo>-<hex>  a referrer's descriptor (JSON)
    uploads/<uuid>/data, uploads/<uuid>/repo   blob uploads in progress

Repository path components cannot start with "_", so the link directories never clash with
nested repositories. Every change is a write to a temporary name and a rename: a crash leaves
either the old state or the new one (and maybe a stray temporary file, ignored and swept by gc)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.image import digest as digests

TMP_PREFIX = ".tmp-"


class UploadUnknown(LookupError):
    """No upload session with this ID (in this repository)."""


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _digest_path(base: Path, digest: str) -> Path:
    algo, hexpart = digests.split(digest)
    return base / algo / hexpart


def _walk_digests(base: Path) -> Iterator[str]:
    for algo in digests.ALGORITHMS:
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(base / algo):
                if not entry.name.startswith(TMP_PREFIX):
                    yield f"{algo}:{entry.name}"


@dataclass
class Upload:
    """An upload session: its data file and the repository it belongs to."""

    id: str
    repo: str
    path: Path

    @property
    def size(self) -> int:
        """Bytes received so far."""
        return self.path.stat().st_size


class Storage:
    """Blobs, manifests, tags and uploads under root (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.blobs = self.root / "blobs"
        self.repos = self.root / "repositories"
        self.uploads = self.root / "uploads"
        for d in (self.blobs, self.repos, self.uploads):
            d.mkdir(parents=True, exist_ok=True)

    # -- blobs -----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists)."""
        return _digest_path(self.blobs, digest)

    def blob_size(self, digest: str) -> int | None:
        """The blob's size, None when the store does not have it."""
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put_blob(self, data: bytes) -> str:
        """Store a small blob (a manifest); its sha256 digest."""
        digest = digests.of_bytes(data)
        if self.blob_size(digest) is None:
            write_atomic(self.blob_path(digest), data)
        return digest

    def commit_file(self, src: Path, digest: str) -> None:
        """Move a verified file into the blob store (keeping an existing copy)."""
        target = self.blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            src.unlink()
        else:
            os.replace(src, target)

    def all_blobs(self) -> Iterator[str]:
        """Every stored blob digest."""
        return _walk_digests(self.blobs)

    # -- repositories ----------------------------------------------------------------------------

    def repo_dir(self, repo: str) -> Path:
        """The repository's directory."""
        return self.repos / repo

    def repositories(self) -> list[str]:
        """Every repository holding at least one manifest, sorted."""
        found = []
        for dirpath, dirnames, _ in os.walk(self.repos):
            if "_manifests" in dirnames:
                found.append(os.path.relpath(dirpath, self.repos))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(found)

    def repo_exists(self, repo: str) -> bool:
        """Whether the repository holds any blob or manifest."""
        d = self.repo_dir(repo)
        return (d / "_manifests").is_dir() or (d / "_layers").is_dir()

    def link_blob(self, repo: str, digest: str) -> None:
        """Record that repo holds the blob."""
        write_atomic(_digest_path(self.repo_dir(repo) / "_layers", digest), b"")

    def has_blob(self, repo: str, digest: str) -> bool:
        """Whether repo holds the blob (linked, and stored)."""
        return (_digest_path(self.repo_dir(repo) / "_layers", digest).exists()
                and self.blob_size(digest) is not None)

    def unlink_blob(self, repo: str, digest: str) -> bool:
        """Remove repo's link to the blob; whether there was one."""
        try:
            _digest_path(self.repo_dir(repo) / "_layers", digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def blob_links(self, repo: str) -> Iterator[str]:
        """The blobs repo links."""
        return _walk_digests(self.repo_dir(repo) / "_layers")

    # -- manifests and tags ----------------------------------------------------------------------

    def put_manifest(self, repo: str, data: bytes, media_type: str, tag: str | None,
                     subject: tuple[str, dict[str, Any]] | None) -> str:
        """Store a verified manifest in repo, tag it, record it as a referrer of its subject
        ((subject digest, this manifest's descriptor)); its digest."""
        digest = self.put_blob(data)
        base = self.repo_dir(repo)
        if subject is not None:
            subject_digest, descriptor = subject
            write_atomic(base / "_referrers" / subject_digest.replace(":", "-") / digest.replace(":", "-"),
                         json.dumps(descriptor).encode())
        write_atomic(_digest_path(base / "_manifests", digest), media_type.encode())
        if tag is not None:
            write_atomic(base / "_tags" / tag, digest.encode())
        return digest

    def manifest(self, repo: str, digest: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of a manifest repo holds, else None."""
        try:
            media_type = _digest_path(self.repo_dir(repo) / "_manifests", digest).read_text()
            return self.blob_path(digest).read_bytes(), media_type
        except FileNotFoundError:
            return None

    def manifest_type(self, repo: str, digest: str) -> str | None:
        """The media type of a manifest repo holds, else None."""
        try:
            return _digest_path(self.repo_dir(repo) / "_manifests", digest).read_text()
        except FileNotFoundError:
            return None

    def manifests(self, repo: str) -> Iterator[str]:
        """The manifests repo holds."""
        return _walk_digests(self.repo_dir(repo) / "_manifests")

    def resolve_tag(self, repo: str, tag: str) -> str | None:
        """The digest a tag points at, else None."""
        try:
            return (self.repo_dir(repo) / "_tags" / tag).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def tags(self, repo: str) -> list[str] | None:
        """repo's tags, sorted; None when the repository does not exist."""
        if not self.repo_exists(repo):
            return None
        with contextlib.suppress(FileNotFoundError):
            return sorted(n for n in os.listdir(self.repo_dir(repo) / "_tags") if not n.startswith(TMP_PREFIX))
        return []

    def delete_tag(self, repo: str, tag: str) -> bool:
        """Remove a tag; whether it existed."""
        try:
            (self.repo_dir(repo) / "_tags" / tag).unlink()
            return True
        except FileNotFoundError:
            return False

    def delete_manifest(self, repo: str, digest: str) -> bool:
        """Remove a manifest from repo with the tags pointing at it and its referrer entries."""
        try:
            _digest_path(self.repo_dir(repo) / "_manifests", digest).unlink()
        except FileNotFoundError:
            return False
        for tag in self.tags(repo) or []:
            if self.resolve_tag(repo, tag) == digest:
                self.delete_tag(repo, tag)
        referrers = self.repo_dir(repo) / "_referrers"
        with contextlib.suppress(FileNotFoundError):
            for subject in os.listdir(referrers):
                (referrers / subject / digest.replace(":", "-")).unlink(missing_ok=True)
        return True

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests in repo whose subject is the given digest."""
        d = self.repo_dir(repo) / "_referrers" / subject.replace(":", "-")
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                if entry.name.startswith(TMP_PREFIX):
                    continue
                with contextlib.suppress(FileNotFoundError, ValueError):
                    descriptor = json.loads(Path(entry.path).read_text())
                    if self.manifest_type(repo, descriptor["digest"]) is not None:
                        out.append(descriptor)
        return out

    # -- uploads ---------------------------------------------------------------------------------

    def new_upload(self, repo: str) -> Upload:
        """Start an upload session in repo."""
        upload_id = str(uuid.uuid4())
        d = self.uploads / upload_id
        d.mkdir()
        (d / "repo").write_text(repo)
        (d / "data").touch()
        return Upload(upload_id, repo, d / "data")

    def upload(self, repo: str, upload_id: str) -> Upload:
        """An upload session of repo; UploadUnknown if there is none."""
        try:
            uuid.UUID(upload_id)
            d = self.uploads / upload_id
            if (d / "repo").read_text() == repo and (d / "data").exists():
                return Upload(upload_id, repo, d / "data")
        except (ValueError, FileNotFoundError, NotADirectoryError):
            pass
        raise UploadUnknown(upload_id)

    def purge_uploads(self, before: float, dry_run: bool = False) -> int:
        """Remove upload sessions last written before the given time; how many."""
        count = 0
        for entry in os.scandir(self.uploads):
            try:
                stale = max(os.stat(entry.path).st_mtime, os.stat(Path(entry.path) / "data").st_mtime) < before
            except FileNotFoundError:
                stale = True
            if stale:
                count += 1
                if not dry_run:
                    shutil.rmtree(entry.path, ignore_errors=True)
        return count

    def drop_upload(self, upload: Upload) -> None:
        """Remove an upload session and what it received."""
        shutil.rmtree(self.uploads / upload.id, ignore_errors=True)
