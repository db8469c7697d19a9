"""Hostile input on both sides: requests that try to escape the server's root or confuse its
sessions, malformed parameters and documents (spec errors, nothing stored), and registries that
serve oversized, truncated, schema 1 or mislabelled content to the client (refused, nothing
recorded, no ingest left behind)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.store import ImageStore
from dockyard.registry.client.pull import PullError, pull
from dockyard.registry.client.push import push
from dockyard.registry.server.storage import Storage
from tests.daemon import other_children
from tests.registries import Dockyard, generated_image

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyard]:
    with Dockyard(tmp=tmp_path_factory.mktemp("reg")) as r:
        yield r


@pytest.fixture(autouse=True)
def no_leftover_children(reg: Dockyard) -> Iterator[None]:
    yield
    assert not other_children({reg.proc.pid}), "a test left child processes running"  # type: ignore[union-attr]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "store"))
    generated_image(s, "gen:1", [{"a": os.urandom(5000)}])
    yield s
    s.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "target"))
    yield s
    s.close()


def code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_names_and_ids_cannot_escape(reg: Dockyard) -> None:
    outside = reg.tmp / "escaped"
    for path in ("/v2/a/..%2F..%2F..%2Fescaped/manifests/x", "/v2/../escaped/tags/list",
                 "/v2/A/B/manifests/x", "/v2/a//b/manifests/x", "/v2/_x/manifests/y"):
        status, _, _ = reg.request("PUT", path, b"{}", {"Content-Type": OCI_MANIFEST})
        assert status in (400, 404), path
    status, headers, _ = reg.request("POST", "/v2/a/blobs/uploads/")
    session = headers["location"].rsplit("/", 1)[1]
    status, _, _ = reg.request("PATCH", "/v2/other/blobs/uploads/..%2F..%2Fescaped", b"x")
    assert status in (400, 404)
    for upload in ("not-a-uuid", session):  # another repository's session is unknown here
        status, _, body = reg.request("PATCH", f"/v2/other/blobs/uploads/{upload}", b"x")
        assert status == 404 and code(body) == "BLOB_UPLOAD_UNKNOWN"
    assert not outside.exists()
    assert reg.request("DELETE", headers["location"])[0] == 204


def test_malformed_parameters(reg: Dockyard) -> None:
    status, headers, _ = reg.request("POST", "/v2/p/blobs/uploads/")
    location = headers["location"]
    for content_range in ("garbage", "5-1", "0-99"):  # 0-99 with a 1-byte body
        status, _, body = reg.request("PATCH", location, b"x", {"Content-Range": content_range})
        assert status == 416 and code(body) == "BLOB_UPLOAD_INVALID", content_range
    for digest in ("md5:abcd", "sha256:" + "0" * 63, "sha256:" + "Z" * 64, ""):
        status, _, body = reg.request("PUT", f"{location}?digest={digest}", b"x")
        assert status == 400 and code(body) == "DIGEST_INVALID", digest
        status, headers, _ = reg.request("POST", "/v2/p/blobs/uploads/")
        location = headers["location"]
    for n in ("-1", "abc"):
        status, _, body = reg.request("GET", f"/v2/_catalog?n={n}")
        assert status == 400 and code(body) == "PAGINATION_NUMBER_INVALID"
    status, _, body = reg.request("GET", "/v2/p/blobs/sha256:zz")
    assert status == 400 and code(body) == "DIGEST_INVALID"
    assert reg.request("DELETE", location)[0] == 204


def test_malformed_documents_store_nothing(reg: Dockyard) -> None:
    before = files_under(reg.root / "blobs")
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    assert reg.request("POST", f"/v2/m/blobs/uploads/?digest={sha(config)}", config)[0] == 201
    before = files_under(reg.root / "blobs")
    good = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                       "size": len(config)}, "layers": []}
    index_type = "application/vnd.oci.image.index.v1+json"
    bodies = [
        (b"[1, 2]", OCI_MANIFEST), (b"\xff\xfe", OCI_MANIFEST), (b"", OCI_MANIFEST), (b"null", OCI_MANIFEST),
        (b"[" * 100_000 + b"]" * 100_000, OCI_MANIFEST),
        (json.dumps(good).encode(), index_type),  # a manifest sent as an index
        (json.dumps({**good, "config": {**good["config"], "digest": "sha256:nothex"}}).encode(), OCI_MANIFEST),
        (json.dumps({**good, "layers": "x"}).encode(), OCI_MANIFEST),
        (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(),
         "application/vnd.docker.distribution.manifest.v1+prettyjws"),
    ]
    for body, media_type in bodies:
        status, _, answer = reg.request("PUT", "/v2/m/manifests/t", body, {"Content-Type": media_type})
        assert status == 400 and code(answer) == "MANIFEST_INVALID", (body[:40], answer)
    status, _, _ = reg.request("PUT", "/v2/m/manifests/t", b"x" * (5 << 20), {"Content-Type": OCI_MANIFEST})
    assert status == 413
    assert files_under(reg.root / "blobs") == before
    assert reg.request("GET", "/v2/m/manifests/t")[0] == 404


def test_client_refuses_oversized_manifest(reg: Dockyard, target: ImageStore) -> None:
    huge = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "pad": "x" * (5 << 20)}).encode()
    Storage(reg.root).put_manifest("big/one", huge, OCI_MANIFEST, "1", None)
    with pytest.raises(PullError, match="larger than"):
        pull(target, f"{reg.addr}/big/one:1")
    assert target.meta.list_images() == []


def test_client_refuses_schema1(reg: Dockyard, target: ImageStore) -> None:
    doc = json.dumps({"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": [], "history": []}).encode()
    Storage(reg.root).put_manifest("old/one", doc, "application/vnd.docker.distribution.manifest.v1+prettyjws",
                                   "1", None)
    with pytest.raises(PullError, match="schema 1 is not supported"):
        pull(target, f"{reg.addr}/old/one:1")


def test_client_refuses_manifest_not_matching_its_digest(reg: Dockyard, store: ImageStore,
                                                         target: ImageStore) -> None:
    name = f"{reg.addr}/lying/gen:1"
    store.tag("gen:1", name)
    digest = push(store, name)[0].digest
    path = Storage(reg.root).blob_path(digest)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion"', b'"schemaVersion" '))
    with pytest.raises(PullError, match=f"manifest verification failed for digest {digest}"):
        pull(target, name)  # by tag: checked against Docker-Content-Digest
    assert target.meta.list_images() == []


def test_client_refuses_truncated_blob(reg: Dockyard, store: ImageStore, target: ImageStore) -> None:
    name = f"{reg.addr}/short/gen:1"
    store.tag("gen:1", name)
    push(store, name)
    layer = store.layers(store.resolve("gen:1"))[0].descriptor
    path = Storage(reg.root).blob_path(layer.digest)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PullError, match=f"verification failed for digest {layer.digest}"):
        pull(target, name)
    assert target.meta.list_images() == [] and not target.content.exists(layer.digest)
    assert list(target.content.ingests()) == []
