"""`dockyard registry gc`: mark every blob the repositories' manifests reference, sweep the rest
(like distribution's garbage-collect: run it while the registry is stopped or read-only)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dockyard.image.manifest import Index, InvalidManifest, parse_any
from dockyard.registry.server.storage import Storage


@dataclass
class GCResult:
    """What a collection kept and removed."""

    marked: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    freed: int = 0
    uploads: int = 0

UPLOAD_AGE = 7 * 24 * 3600  # uploads untouched this long are abandoned (distribution's default purge age)


def collect(storage: Storage, delete_untagged: bool = False, dry_run: bool = False,
            upload_age: float = UPLOAD_AGE) -> GCResult:
    """Remove blobs no manifest references (with delete_untagged, manifests without a tag go
    first) and uploads abandoned for upload_age seconds."""
    result = GCResult()
    result.uploads = storage.purge_uploads(time.time() - upload_age, dry_run)
    for repo in storage.repositories():
        tagged = {storage.resolve_tag(repo, t) for t in storage.tags(repo) or []}
        for digest in list(storage.manifests(repo)):
            if delete_untagged and digest not in tagged and not dry_run:
                storage.delete_manifest(repo, digest)
                continue
            found = storage.manifest(repo, digest)
            if found is None:
                continue
            result.marked.add(digest)
            try:
                doc = parse_any(found[0], found[1])
            except InvalidManifest:
                continue
            children = doc.manifests if isinstance(doc, Index) else (doc.config, *doc.layers)
            result.marked.update(d.digest for d in children)
    for digest in list(storage.all_blobs()):
        if digest in result.marked:
            continue
        size = storage.blob_size(digest) or 0
        if not dry_run:
            storage.blob_path(digest).unlink(missing_ok=True)
        result.removed.append(digest)
        result.freed += size
    return result
