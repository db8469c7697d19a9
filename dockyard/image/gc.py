"""Garbage collection of the content store: mark from the metadata's roots, sweep the rest.

Roots: every image's ID (config digest) and target (manifest or index), every live lease's
"content" resources, and the caller's extra roots. Edges: the references recorded with
``MetadataStore.set_refs``, or, for a blob with none recorded, the children named in it when it
is an OCI/Docker manifest (config + layers) or index / manifest list (manifests).

Locking protocol (all on ``<content root>/gc.lock``, flock):
  * ``collect`` holds it exclusively while it reads the roots, marks and sweeps;
  * ``Writer.commit`` (and ``ContentStore.put`` on content it already has) hold it shared while
    the blob becomes visible or has its mtime refreshed;
  * a caller that records a reference to a blob it did not just commit (found with
    ``exists()``) must hold ``ContentStore.reference_lock()`` from that check until the
    metadata transaction that records the reference has committed.
Order: gc.lock before the database. Never commit a blob or take ``reference_lock()`` inside an
open ``MetadataStore.transaction()``: a collection holding gc.lock may be waiting for the
database (it clears the removed blobs' references and purges expired leases).
Blobs modified within ``grace`` seconds are kept whether marked or not, so content committed
before the image that will reference it is written survives even without a lease; a lease is
still the way to protect a long operation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dockyard.image import digest as digests
from dockyard.image.content import ContentStore, NotFound
from dockyard.image.metadata import MetadataStore

PARSE_LIMIT = 4 << 20  # blobs larger than this are not read in search of children
DEFAULT_GRACE = 3600.0


@dataclass
class GCReport:
    """What a collection removed (or, in a dry run, would remove)."""

    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    removed_ingests: list[str] = field(default_factory=list)


def children_in(blob: bytes) -> list[str]:
    """Digests a manifest (config + layers) or an index / manifest list (manifests) names;
    nothing for any other blob."""
    if not blob.lstrip().startswith(b"{"):
        return []
    try:
        doc = json.loads(blob)
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    descriptors: list[object] = []
    if isinstance(doc.get("manifests"), list):
        descriptors += doc["manifests"]
    if isinstance(doc.get("config"), dict) and isinstance(doc.get("layers"), list):
        descriptors += [doc["config"], *doc["layers"]]
    found = []
    for descriptor in descriptors:
        child = descriptor.get("digest") if isinstance(descriptor, dict) else None
        try:
            found.append(digests.validate(child))
        except digests.InvalidDigest:
            continue
    return found


def _children(content: ContentStore, meta: MetadataStore, dgst: str) -> list[str]:
    recorded = meta.refs_of(dgst)
    if recorded:
        return recorded
    try:
        if content.size(dgst) > PARSE_LIMIT:
            return []
        with content.open(dgst) as f:
            head = f.read(64)
            return children_in(head + f.read()) if head.lstrip().startswith(b"{") else []
    except NotFound:
        return []


def _roots(meta: MetadataStore, extra_roots: Iterable[str]) -> tuple[set[str], set[str]]:
    """(content roots, leased ingest refs), read in one snapshot of the database."""
    with meta.transaction(write=False):
        images = meta.list_images()
        leases = meta.list_leases()
    roots = {digests.validate(d) for d in extra_roots}
    for image in images:
        roots |= {image.id, image.target.digest}
    ingests = set()
    for lease in leases:
        for kind, key in lease.resources:
            if kind == "content":
                roots.add(key)
            elif kind == "ingest":
                ingests.add(key)
    return roots, ingests


def mark(content: ContentStore, meta: MetadataStore, roots: Iterable[str]) -> set[str]:
    """Every digest reachable from roots."""
    marked: set[str] = set()
    pending = list(roots)
    while pending:
        dgst = pending.pop()
        if dgst in marked:
            continue
        marked.add(dgst)
        pending += [c for c in _children(content, meta, dgst) if c not in marked]
    return marked


def collect(content: ContentStore, meta: MetadataStore, extra_roots: Iterable[str] = (),
            dry_run: bool = False, grace: float = DEFAULT_GRACE) -> GCReport:
    """Remove unreachable blobs older than grace and stale ingests nobody leases or writes;
    purge expired leases. A dry run removes nothing and reports what it would remove."""
    report = GCReport()
    with content.gc_lock():
        roots, leased_ingests = _roots(meta, extra_roots)
        marked = mark(content, meta, roots)
        cutoff = time.time() - grace
        for dgst, size in list(content.list()):
            if dgst in marked:
                continue
            try:
                if content.modified(dgst) > cutoff:
                    continue
                if not dry_run:
                    content.delete(dgst)
            except NotFound:
                continue
            report.removed.append(dgst)
            report.freed_bytes += size
        for status in content.ingests():
            if status.updated > cutoff or status.ref in leased_ingests:
                continue
            if dry_run or content.abort_ingest(status.ref):
                report.removed_ingests.append(status.ref)
        if not dry_run:
            with meta.transaction():
                for dgst in report.removed:
                    meta.clear_refs(dgst)
                meta.purge_expired_leases()
    report.removed.sort()
    report.removed_ingests.sort()
    return report
