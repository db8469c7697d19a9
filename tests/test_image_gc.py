"""The metadata database (images, names, refs, leases) and garbage collection of the content store."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.image import digest as digests
from dockyard.image.content import ContentStore
from dockyard.image.gc import children_in, collect
from dockyard.image.metadata import (
    AmbiguousPrefix,
    LeaseExists,
    MetadataStore,
    SchemaTooNew,
    Target,
    UnknownImage,
    UnknownLease,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OLD = time.time() - 10 * 24 * 3600


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-gc-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def meta(root: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(root / "dockyard.db")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def content(root: Path) -> ContentStore:
    return ContentStore(root / "content")


def run_child(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def image_id(n: int) -> str:
    return digests.of_bytes(f"config {n}".encode())


def target(n: int = 0) -> Target:
    return Target(OCI_MANIFEST, digests.of_bytes(f"manifest {n}".encode()), 100 + n)


# == metadata =================================================================================


def test_wal_mode_and_pragmas(meta: MetadataStore, root: Path) -> None:
    meta.put_image(image_id(1), target())
    raw = sqlite3.connect(root / "dockyard.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    with meta.transaction(write=False) as db:
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_schema_version_and_reopen(meta: MetadataStore, root: Path) -> None:
    assert meta.schema_version() == 1
    meta.put_image(image_id(1), target())
    again = MetadataStore(root / "dockyard.db")
    try:
        assert again.schema_version() == 1
        assert again.get_image(image_id(1)) is not None
        with again.transaction() as db:
            db.execute("UPDATE schema_version SET version = 99")
    finally:
        again.close()
    with pytest.raises(SchemaTooNew, match="99"):
        MetadataStore(root / "dockyard.db")


def test_image_round_trip(meta: MetadataStore) -> None:
    iid = image_id(1)
    meta.put_image(iid, target(1), created="2024-01-02T03:04:05Z", labels={"a": "b"})
    rec = meta.get_image(iid)
    assert rec is not None
    assert (rec.id, rec.target, rec.created, rec.labels, rec.last_tag_time) == (
        iid, target(1), "2024-01-02T03:04:05Z", {"a": "b"}, None)
    meta.put_image(iid, Target(OCI_INDEX, digests.of_bytes(b"index"), 7))  # re-pulled by index
    assert meta.get_image(iid).target.media_type == OCI_INDEX
    meta.put_image(image_id(2), target(2))
    assert [r.id for r in meta.list_images()] == sorted([iid, image_id(2)])
    assert meta.get_image(image_id(3)) is None
    with pytest.raises(digests.InvalidDigest):
        meta.put_image("not-a-digest", target())
    with pytest.raises(ValueError):
        meta.put_image(image_id(1), target(), labels={"n": 1})  # type: ignore[dict-item]


def test_delete_image_removes_its_names(meta: MetadataStore) -> None:
    iid = image_id(1)
    meta.put_image(iid, target())
    meta.set_tag("docker.io/library/busybox:latest", iid)
    meta.add_repo_digest("docker.io/library/busybox@" + target().digest, iid)
    assert meta.delete_image(iid)
    assert not meta.delete_image(iid)
    assert meta.resolve_tag("docker.io/library/busybox:latest") is None
    assert meta.tags_of(iid) == [] and meta.repo_digests_of(iid) == []


def test_tag_move_semantics(meta: MetadataStore) -> None:
    a, b = image_id(1), image_id(2)
    meta.put_image(a, target(1))
    meta.put_image(b, target(2))
    name = "docker.io/library/busybox:latest"
    assert meta.set_tag(name, a) is None
    assert meta.get_image(a).last_tag_time is not None
    assert meta.set_tag(name, a) is None  # already there: nothing moved
    assert meta.set_tag("docker.io/library/busybox:1.36", a) is None
    assert meta.set_tag(name, b) == a  # moved: the image it was taken from
    assert meta.resolve_tag(name) == b
    assert meta.tags_of(a) == ["docker.io/library/busybox:1.36"]
    assert meta.tags_of(b) == [name]
    assert meta.remove_tag(name) == b
    assert meta.remove_tag(name) is None
    assert meta.tags_of(b) == []
    with pytest.raises(UnknownImage, match="No such image"):
        meta.set_tag(name, image_id(9))
    for bad in ("docker.io/library/busybox", "busybox@" + a, "localhost:5000/x"):
        with pytest.raises(ValueError, match="invalid tag"):
            meta.set_tag(bad, a)


def test_repo_digests(meta: MetadataStore) -> None:
    a, b = image_id(1), image_id(2)
    meta.put_image(a, target(1))
    meta.put_image(b, target(2))
    ref = "docker.io/library/busybox@" + target(1).digest
    assert meta.add_repo_digest(ref, a) is None
    assert meta.repo_digests_of(a) == [ref]
    assert meta.tags_of(a) == []
    assert meta.resolve_tag(ref) == a
    assert meta.add_repo_digest(ref, b) == a
    assert meta.repo_digests_of(a) == [] and meta.repo_digests_of(b) == [ref]
    for bad in ("docker.io/library/busybox:latest", "busybox@sha256:12", "busybox:1@" + a):
        with pytest.raises(ValueError):
            meta.add_repo_digest(bad, a)


def test_prefix_lookup(meta: MetadataStore) -> None:
    a = "sha256:abc1" + "0" * 60
    b = "sha256:abc2" + "0" * 60
    meta.put_image(a, target(1))
    meta.put_image(b, target(2))
    assert meta.images_by_prefix("abc1") == a
    assert meta.images_by_prefix("sha256:abc2") == b
    assert meta.images_by_prefix(a) == a
    assert meta.images_by_prefix(a[7:]) == a
    with pytest.raises(AmbiguousPrefix, match="'abc'"):
        meta.images_by_prefix("abc")
    for miss in ("abd", "", "sha256:", "ABC1", "zz", "busybox", "md5:abc", a + "0"):
        assert meta.images_by_prefix(miss) is None


def test_refs(meta: MetadataStore) -> None:
    parent = digests.of_bytes(b"manifest")
    kids = [digests.of_bytes(b"layer"), digests.of_bytes(b"config")]
    meta.set_refs(parent, kids)
    assert meta.refs_of(parent) == sorted(kids)
    meta.set_refs(parent, kids[:1])
    assert meta.refs_of(parent) == kids[:1]
    meta.clear_refs(parent)
    assert meta.refs_of(parent) == []
    with pytest.raises(digests.InvalidDigest):
        meta.set_refs(parent, ["nope"])


def test_transaction_is_atomic(meta: MetadataStore) -> None:
    with pytest.raises(RuntimeError), meta.transaction():
        meta.put_image(image_id(1), target())
        meta.set_tag("docker.io/library/a:1", image_id(1))
        raise RuntimeError
    assert meta.list_images() == [] and meta.resolve_tag("docker.io/library/a:1") is None
    with meta.transaction():
        meta.put_image(image_id(1), target())
        with pytest.raises(UnknownImage), meta.transaction():  # nested: a savepoint
            meta.set_tag("docker.io/library/a:1", image_id(1))
            meta.set_tag("docker.io/library/a:2", image_id(2))
    assert [r.id for r in meta.list_images()] == [image_id(1)]
    assert meta.tags_of(image_id(1)) == []
    with pytest.raises(RuntimeError, match="read transaction"), meta.transaction(write=False):
        meta.delete_image(image_id(1))
    assert meta.get_image(image_id(1)) is not None


def test_leases(meta: MetadataStore) -> None:
    lid = meta.create_lease("pull-1", labels={"purpose": "pull"})
    blob = digests.of_bytes(b"layer")
    meta.add_lease_resource(lid, "content", blob)
    meta.add_lease_resource(lid, "ingest", "layer-ref")
    meta.add_lease_resource(lid, "snapshot", "overlay/42")
    meta.add_lease_resource(lid, "content", blob)  # twice is once
    [lease] = meta.list_leases()
    assert (lease.id, lease.labels, lease.expires) == ("pull-1", {"purpose": "pull"}, None)
    assert set(lease.resources) == {("content", blob), ("ingest", "layer-ref"), ("snapshot", "overlay/42")}
    generated = meta.create_lease(expires_in=3600)
    assert generated and generated != lid
    with pytest.raises(LeaseExists):
        meta.create_lease("pull-1")
    with pytest.raises(UnknownLease):
        meta.add_lease_resource("missing", "content", blob)
    with pytest.raises(ValueError, match="kind"):
        meta.add_lease_resource(lid, "volume", "x")
    with pytest.raises(digests.InvalidDigest):
        meta.add_lease_resource(lid, "content", "not-a-digest")
    assert meta.delete_lease(lid) and not meta.delete_lease(lid)
    assert [lease.id for lease in meta.list_leases()] == [generated]


def test_expired_leases_are_ignored_and_purged(meta: MetadataStore) -> None:
    short = meta.create_lease("short", expires_in=0.05)
    meta.add_lease_resource(short, "content", digests.of_bytes(b"x"))
    time.sleep(0.1)
    assert meta.list_leases() == []
    assert [lease.id for lease in meta.list_leases(include_expired=True)] == ["short"]
    with pytest.raises(UnknownLease):
        meta.add_lease_resource(short, "content", digests.of_bytes(b"y"))
    assert meta.purge_expired_leases() == 1
    assert meta.list_leases(include_expired=True) == []


def test_concurrent_processes(meta: MetadataStore, root: Path) -> None:
    """Two processes and this one write at once: nothing lost, no 'database is locked'."""
    script = """
        import sys
        from dockyard.image import digest
        from dockyard.image.metadata import MetadataStore, Target
        meta = MetadataStore(sys.argv[1])
        worker = sys.argv[2]
        for i in range(150):
            iid = digest.of_bytes(f"{worker}-{i}".encode())
            with meta.transaction():
                meta.put_image(iid, Target("application/vnd.oci.image.manifest.v1+json", iid, i))
                meta.set_tag(f"docker.io/library/{worker}:{i}", iid)
            meta.set_tag("docker.io/library/shared:latest", iid)
            lease = meta.create_lease()
            meta.add_lease_resource(lease, "content", iid)
            meta.delete_lease(lease)
        print("done")
    """
    children = [run_child(script, str(root / "dockyard.db"), w) for w in ("one", "two")]
    try:
        for i in range(150):
            meta.put_image(image_id(i), target(i))
            meta.set_tag("docker.io/library/shared:latest", image_id(i))
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    assert len(meta.list_images()) == 450
    assert meta.resolve_tag("docker.io/library/one:149") == digests.of_bytes(b"one-149")
    assert meta.resolve_tag("docker.io/library/shared:latest") is not None
    assert meta.list_leases() == []


def test_threads_get_their_own_connections(meta: MetadataStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                meta.put_image(image_id(n * 1000 + i), target(i))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(meta.list_images()) == 200


# == garbage collection =======================================================================


@dataclass
class Image:
    id: str
    manifest: str
    layers: list[str]


def make_image(content: ContentStore, meta: MetadataStore | None, name: str, media_type: str = OCI_MANIFEST,
               record_refs: bool = True) -> Image:
    """A manifest, its config and two layers in the store (and, with meta, the image record)."""
    layers = [content.put(f"{name} layer {i}".encode() * 100) for i in range(2)]
    config = content.put(json.dumps({"architecture": "amd64", "os": "linux", "name": name}).encode())
    manifest = content.put(json.dumps({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 1}
                   for d in layers],
    }).encode())
    if meta is not None:
        if record_refs:
            meta.set_refs(manifest, [config, *layers])
        meta.put_image(config, Target(media_type, manifest, content.size(manifest)))
    return Image(config, manifest, layers)


def blobs(content: ContentStore) -> set[str]:
    return {d for d, _ in content.list()}


def make_old(content: ContentStore) -> None:
    """Age every blob and ingest beyond any grace period."""
    for dgst in blobs(content):
        os.utime(content.path(dgst), (OLD, OLD))
    for entry in content.ingests_dir.iterdir():
        if (entry / "data").exists():
            os.utime(entry / "data", (OLD, OLD))


def all_of(image: Image) -> set[str]:
    return {image.id, image.manifest, *image.layers}


def test_children_in_manifests_and_indexes() -> None:
    d1, d2, d3 = (digests.of_bytes(x) for x in (b"1", b"2", b"3"))
    manifest = {"config": {"digest": d1}, "layers": [{"digest": d2}, {"digest": "junk"}]}
    assert children_in(json.dumps(manifest).encode()) == [d1, d2]
    assert children_in(json.dumps({"manifests": [{"digest": d3}, {}]}).encode()) == [d3]
    for other in (b"\x1f\x8b binary layer", b"[1, 2]", b"{not json", b'{"config": {"digest": 1}}'):
        assert children_in(other) == []


@pytest.mark.parametrize("record_refs", [True, False], ids=["recorded-refs", "parsed"])
def test_gc_keeps_image_graph_and_removes_the_rest(content: ContentStore, meta: MetadataStore,
                                                   record_refs: bool) -> None:
    kept = make_image(content, meta, "kept", record_refs=record_refs)
    loose = make_image(content, None, "loose")
    garbage = content.put(b"unreferenced")
    meta.set_refs(garbage, [kept.id])  # the edges of a removed blob go with it
    make_old(content)
    sizes = dict(content.list())
    report = collect(content, meta)
    expected = all_of(loose) | {garbage}
    assert report.removed == sorted(expected)
    assert report.freed_bytes == sum(sizes[d] for d in expected)
    assert blobs(content) == all_of(kept)
    assert meta.refs_of(garbage) == []
    assert collect(content, meta).removed == []


def test_gc_follows_index_to_manifests(content: ContentStore, meta: MetadataStore) -> None:
    amd64 = make_image(content, None, "amd64")
    arm64 = make_image(content, None, "arm64", media_type=DOCKER_MANIFEST)
    index = content.put(json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd64.manifest, "size": 1,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": DOCKER_MANIFEST, "digest": arm64.manifest, "size": 1,
         "platform": {"architecture": "arm64", "os": "linux"}}]}).encode())
    meta.set_refs(index, [amd64.manifest, arm64.manifest])  # children of the manifests: parsed
    meta.put_image(amd64.id, Target(DOCKER_LIST, index, content.size(index)))
    garbage = content.put(b"garbage")
    make_old(content)
    assert collect(content, meta).removed == [garbage]
    assert blobs(content) == all_of(amd64) | all_of(arm64) | {index}


def test_gc_after_image_deleted(content: ContentStore, meta: MetadataStore) -> None:
    img = make_image(content, meta, "gone")
    meta.set_tag("docker.io/library/gone:latest", img.id)
    make_old(content)
    assert collect(content, meta).removed == []
    meta.delete_image(img.id)
    assert collect(content, meta).removed == sorted(all_of(img))
    assert blobs(content) == set()


def test_gc_dry_run_removes_nothing(content: ContentStore, meta: MetadataStore) -> None:
    garbage = content.put(b"garbage")
    with content.writer("stale") as w:
        w.write(b"partial")
    meta.create_lease("expired", expires_in=0)
    make_old(content)
    report = collect(content, meta, dry_run=True)
    assert (report.removed, report.freed_bytes, report.removed_ingests) == ([garbage], 7, ["stale"])
    assert blobs(content) == {garbage}
    assert [s.ref for s in content.ingests()] == ["stale"]
    assert len(meta.list_leases(include_expired=True)) == 1
    assert collect(content, meta) == report
    assert blobs(content) == set() and list(content.ingests()) == []
    assert meta.list_leases(include_expired=True) == []


def test_gc_grace_period_protects_recent_blobs(content: ContentStore, meta: MetadataStore) -> None:
    fresh = content.put(b"just pulled, image not written yet")
    assert collect(content, meta).removed == []
    assert collect(content, meta, grace=0).removed == [fresh]
    old = content.put(b"old")
    os.utime(content.path(old), (OLD, OLD))
    assert content.put(b"old") == old  # committing it again restarts its grace period
    assert collect(content, meta).removed == []
    os.utime(content.path(old), (OLD, OLD))
    assert collect(content, meta).removed == [old]


def test_gc_respects_leases_and_expiry(content: ContentStore, meta: MetadataStore) -> None:
    leased = content.put(b"leased")
    expiring = content.put(b"expiring")
    live = meta.create_lease("live")
    meta.add_lease_resource(live, "content", leased)
    meta.add_lease_resource(live, "ingest", "downloading")
    short = meta.create_lease("short", expires_in=0.05)
    meta.add_lease_resource(short, "content", expiring)
    with content.writer("downloading") as w:
        w.write(b"half a layer")
    with content.writer("abandoned") as w:
        w.write(b"nobody wants this")
    make_old(content)
    time.sleep(0.1)
    report = collect(content, meta)
    assert report.removed == [expiring]
    assert report.removed_ingests == ["abandoned"]
    assert blobs(content) == {leased}
    assert [s.ref for s in content.ingests()] == ["downloading"]
    assert [lease.id for lease in meta.list_leases(include_expired=True)] == ["live"]
    meta.delete_lease(live)
    assert collect(content, meta).removed == [leased]
    assert list(content.ingests()) == []


def test_gc_keeps_extra_roots_and_their_children(content: ContentStore, meta: MetadataStore) -> None:
    img = make_image(content, None, "build-cache")
    make_old(content)
    assert collect(content, meta, extra_roots=[img.manifest]).removed == []
    assert collect(content, meta).removed == sorted(all_of(img))


def test_gc_keeps_ingest_held_by_live_writer(content: ContentStore, meta: MetadataStore) -> None:
    writer = content.writer("active")
    writer.write(b"bytes")
    make_old(content)
    try:
        assert collect(content, meta).removed_ingests == []
        assert [s.ref for s in content.ingests()] == ["active"]
    finally:
        writer.abort()


def test_gc_waits_for_reference_lock_in_other_process(content: ContentStore, meta: MetadataStore) -> None:
    """A process between 'the blob exists' and 'its reference is recorded' holds the shared
    lock; a collection waits for it and then sees the reference."""
    img = make_image(content, None, "racing")
    make_old(content)
    child = run_child("""
        import sys
        from dockyard.image.content import ContentStore
        from dockyard.image.metadata import MetadataStore, Target
        content, meta = ContentStore(sys.argv[1]), MetadataStore(sys.argv[2])
        with content.reference_lock():
            assert content.exists(sys.argv[3])
            print("holding", flush=True)
            sys.stdin.readline()
            meta.put_image(sys.argv[4], Target("application/vnd.oci.image.manifest.v1+json",
                                               sys.argv[3], content.size(sys.argv[3])))
        print("recorded", flush=True)
    """, str(content.root), meta.path, img.manifest, img.id)
    results = []
    collector = threading.Thread(target=lambda: results.append(collect(content, meta)))
    try:
        assert child.stdout.readline().strip() == "holding"
        collector.start()
        collector.join(0.3)
        assert collector.is_alive(), "collect did not wait for the shared lock"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "recorded"
        child.wait(30)
        collector.join(30)
        assert not collector.is_alive()
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
        if collector.ident is not None:
            collector.join(30)  # the lock is free once the child is gone
    assert child.returncode == 0
    assert results[0].removed == []
    assert blobs(content) == all_of(img)
