"""`dockyard registry serve` against the OCI distribution spec 1.1, over raw HTTP: uploads
(monolithic, chunked, resumable, mounted), manifests, tags and catalog pagination, referrers,
deletion, gc, auth, and hostile input answered with the spec's errors and no partial state."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import other_children
from tests.registries import DOCKYARD, Dockyard, write_htpasswd

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyard]:
    with Dockyard(tmp=tmp_path_factory.mktemp("reg")) as r:
        yield r


@pytest.fixture(autouse=True)
def no_leftover_children(reg: Dockyard) -> Iterator[None]:
    """conftest's check, except for this module's registry (shared, stopped at the end)."""
    yield
    assert not other_children({reg.proc.pid}), "a test left child processes running"  # type: ignore[union-attr]


def upload(reg: Dockyard, repo: str, data: bytes) -> str:
    """Monolithic POST ?digest= upload; the digest."""
    digest = sha(data)
    status, headers, body = reg.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data,
                                        {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    assert headers["docker-content-digest"] == digest
    assert headers["location"] == f"/v2/{repo}/blobs/{digest}"
    return digest


def image(reg: Dockyard, repo: str, layer: bytes = b"layer", tag: str | None = "v1",
          **extra: object) -> tuple[str, bytes]:
    """A manifest over an uploaded config and layer, put under tag (or its digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": upload(reg, repo, config),
                      "size": len(config)},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": upload(reg, repo, layer),
                       "size": len(layer)}], **extra}
    data = json.dumps(doc).encode()
    status, headers, body = reg.request("PUT", f"/v2/{repo}/manifests/{tag or sha(data)}", data,
                                        {"Content-Type": OCI_MANIFEST})
    assert status == 201, body
    assert headers["docker-content-digest"] == sha(data)
    return sha(data), data


def error_code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


def test_base_and_headers(reg: Dockyard) -> None:
    status, headers, body = reg.request("GET", "/v2/")
    assert status == 200 and json.loads(body) == {}
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_chunked_upload_with_status_and_ranges(reg: Dockyard) -> None:
    data = bytes(range(256)) * 100
    status, headers, _ = reg.request("POST", "/v2/chunk/blobs/uploads/")
    assert status == 202 and headers["range"] == "0-0"
    location = headers["location"]
    status, headers, _ = reg.request("PATCH", location, data[:1000],
                                     {"Content-Range": "0-999", "Content-Type": "application/octet-stream"})
    assert status == 202 and headers["range"] == "0-999"
    # out of order: 416, the session unchanged
    status, headers, body = reg.request("PATCH", location, data[2000:3000], {"Content-Range": "2000-2999"})
    assert status == 416 and headers["range"] == "0-999"
    status, headers, _ = reg.request("GET", location)
    assert status == 204 and headers["range"] == "0-999" and headers["docker-upload-uuid"]
    status, headers, _ = reg.request("PATCH", location, data[1000:], {"Content-Range": f"1000-{len(data) - 1}"})
    assert status == 202
    status, headers, _ = reg.request("PUT", f"{location}?digest={sha(data)}")
    assert status == 201 and headers["docker-content-digest"] == sha(data)
    status, headers, body = reg.request("GET", f"/v2/chunk/blobs/{sha(data)}")
    assert status == 200 and body == data and headers["docker-content-digest"] == sha(data)
    status, headers, body = reg.request("HEAD", f"/v2/chunk/blobs/{sha(data)}")
    assert status == 200 and headers["content-length"] == str(len(data)) and body == b""
    status, _, body = reg.request("GET", f"/v2/chunk/blobs/{sha(data)}", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    status, _, _ = reg.request("GET", location)
    assert status == 404  # the session is gone


def test_post_then_put_and_cross_repository_mount(reg: Dockyard) -> None:
    data = b"mount me"
    status, headers, _ = reg.request("POST", "/v2/src/blobs/uploads/")
    status, headers, _ = reg.request("PUT", f"{headers['location']}?digest={sha(data)}", data)
    assert status == 201
    status, headers, _ = reg.request("HEAD", f"/v2/dst/blobs/{sha(data)}")
    assert status == 404
    status, headers, _ = reg.request("POST", f"/v2/dst/blobs/uploads/?mount={sha(data)}&from=src")
    assert status == 201 and headers["location"] == f"/v2/dst/blobs/{sha(data)}"
    assert reg.request("GET", f"/v2/dst/blobs/{sha(data)}")[2] == data
    # a blob the source does not hold: an upload session instead
    status, headers, _ = reg.request("POST", f"/v2/dst/blobs/uploads/?mount={sha(b'nope')}&from=src")
    assert status == 202 and "/blobs/uploads/" in headers["location"]
    assert reg.request("DELETE", headers["location"])[0] == 204
    # without from: any stored copy is mounted (automatic content discovery)
    status, headers, _ = reg.request("POST", f"/v2/third/blobs/uploads/?mount={sha(data)}")
    assert status == 201 and reg.request("GET", f"/v2/third/blobs/{sha(data)}")[2] == data


def test_wrong_digest_and_truncated_uploads_leave_nothing(reg: Dockyard) -> None:
    before = set((reg.root / "uploads").iterdir())
    data = b"some bytes"
    status, _, body = reg.request("POST", f"/v2/bad/blobs/uploads/?digest={sha(b'other')}", data)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    assert reg.request("HEAD", f"/v2/bad/blobs/{sha(b'other')}")[0] == 404
    assert reg.request("HEAD", f"/v2/bad/blobs/{sha(data)}")[0] == 404
    status, _, body = reg.request("POST", "/v2/bad/blobs/uploads/?digest=sha256:xyz", data)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    status, headers, _ = reg.request("POST", "/v2/bad/blobs/uploads/")
    location = headers["location"]
    status, _, body = reg.request("PUT", location, data)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    # a body shorter than announced: the connection drops, nothing becomes visible
    with socket.create_connection(("127.0.0.1", reg.port)) as sock:
        sock.sendall(f"PUT {location}?digest={sha(data)} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                     .encode() + data)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(4096)
    assert reg.request("HEAD", f"/v2/bad/blobs/{sha(data)}")[0] == 404
    assert reg.request("DELETE", location)[0] in (204, 404)
    assert set((reg.root / "uploads").iterdir()) == before
    assert not any((reg.root / "blobs").rglob(sha(data).split(":")[1]))


def test_manifest_by_tag_and_digest(reg: Dockyard) -> None:
    digest, data = image(reg, "app/web")
    for ref in ("v1", digest):
        status, headers, body = reg.request("GET", f"/v2/app/web/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert status == 200 and body == data
        assert headers["content-type"] == OCI_MANIFEST and headers["docker-content-digest"] == digest
        status, headers, body = reg.request("HEAD", f"/v2/app/web/manifests/{ref}")
        assert status == 200 and body == b"" and headers["content-length"] == str(len(data))
    status, _, body = reg.request("GET", "/v2/app/web/manifests/nosuch")
    assert status == 404 and error_code(body) == "MANIFEST_UNKNOWN"
    status, _, body = reg.request("GET", "/v2/app/nosuch/tags/list")
    assert status == 404 and error_code(body) == "NAME_UNKNOWN"


def test_bad_manifests_are_refused(reg: Dockyard) -> None:
    digest, data = image(reg, "strict")
    doc = json.loads(data)
    cases = [
        (b"{not json", "MANIFEST_INVALID"),
        (json.dumps({**doc, "schemaVersion": 1}).encode(), "MANIFEST_INVALID"),
        (json.dumps({**doc, "layers": [{"mediaType": "x", "digest": sha(b"absent"), "size": 6}]}).encode(),
         "MANIFEST_BLOB_UNKNOWN"),
        (json.dumps({**doc, "config": {**doc["config"], "size": 1}}).encode(), "MANIFEST_INVALID"),
    ]
    for body, code in cases:
        status, _, answer = reg.request("PUT", "/v2/strict/manifests/bad", body, {"Content-Type": OCI_MANIFEST})
        assert status == 400 and error_code(answer) == code, answer
    status, _, answer = reg.request("PUT", f"/v2/strict/manifests/{sha(b'x')}", data, {"Content-Type": OCI_MANIFEST})
    assert status == 400 and error_code(answer) == "DIGEST_INVALID"
    status, _, answer = reg.request("PUT", "/v2/strict/manifests/big", b" " * (4 * 1024 * 1024 + 1),
                                    {"Content-Type": OCI_MANIFEST})
    assert status == 413
    status, _, answer = reg.request("PUT", "/v2/Bad_Name/manifests/x", data, {"Content-Type": OCI_MANIFEST})
    assert status in (400, 404)
    assert reg.json("GET", "/v2/strict/tags/list")[2]["tags"] == ["v1"]


def test_index_needs_its_manifests(reg: Dockyard) -> None:
    digest, data = image(reg, "multi", tag=None)
    entry = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data),
             "platform": {"architecture": "amd64", "os": "linux"}}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}).encode()
    assert reg.request("PUT", "/v2/multi/manifests/all", index, {"Content-Type": OCI_INDEX})[0] == 201
    missing = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                          "manifests": [{**entry, "digest": sha(b"absent")}]}).encode()
    status, _, body = reg.request("PUT", "/v2/multi/manifests/broken", missing, {"Content-Type": OCI_INDEX})
    assert status == 400 and error_code(body) == "MANIFEST_BLOB_UNKNOWN"


def test_tags_and_catalog_pagination(reg: Dockyard) -> None:
    for tag in ("c", "a", "b", "d"):
        image(reg, "paged", tag=tag)
    status, headers, doc = reg.json("GET", "/v2/paged/tags/list?n=2")
    assert doc == {"name": "paged", "tags": ["a", "b"]}
    assert headers["link"] == '</v2/paged/tags/list?n=2&last=b>; rel="next"'
    status, headers, doc = reg.json("GET", "/v2/paged/tags/list?n=2&last=b")
    assert doc["tags"] == ["c", "d"] and "link" not in headers
    assert reg.json("GET", "/v2/paged/tags/list")[2]["tags"] == ["a", "b", "c", "d"]
    status, headers, doc = reg.json("GET", "/v2/_catalog?n=1")
    assert len(doc["repositories"]) == 1 and 'rel="next"' in headers["link"]
    assert "paged" in reg.json("GET", "/v2/_catalog")[2]["repositories"]


def test_referrers(reg: Dockyard) -> None:
    subject, data = image(reg, "refs")
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(data)}
    config = b"{}"
    empty = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": upload(reg, "refs", config), "size": 2}
    sig = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-sig",
                      "config": empty, "layers": [empty], "subject": descriptor,
                      "annotations": {"k": "v"}}).encode()
    status, headers, _ = reg.request("PUT", f"/v2/refs/manifests/{sha(sig)}", sig, {"Content-Type": OCI_MANIFEST})
    assert status == 201 and headers["oci-subject"] == subject
    status, headers, doc = reg.json("GET", f"/v2/refs/referrers/{subject}")
    assert headers["content-type"] == OCI_INDEX  # exactly: the conformance suite compares it whole
    assert doc["manifests"] == [{"mediaType": OCI_MANIFEST, "digest": sha(sig), "size": len(sig),
                                 "artifactType": "application/x-sig", "annotations": {"k": "v"}}]
    status, headers, doc = reg.json("GET", f"/v2/refs/referrers/{subject}?artifactType=other")
    assert doc["manifests"] == [] and headers["oci-filters-applied"] == "artifactType"
    assert reg.json("GET", f"/v2/refs/referrers/{sha(b'none')}")[2]["manifests"] == []


def test_delete_and_gc(reg: Dockyard) -> None:
    digest, data = image(reg, "gone", layer=b"only in gone")
    layer = sha(b"only in gone")
    assert reg.request("DELETE", "/v2/gone/manifests/v1")[0] == 202  # the tag
    assert reg.request("GET", "/v2/gone/manifests/v1")[0] == 404
    assert reg.request("GET", f"/v2/gone/manifests/{digest}")[0] == 200
    assert reg.request("DELETE", f"/v2/gone/manifests/{digest}")[0] == 202
    assert reg.request("GET", f"/v2/gone/manifests/{digest}")[0] == 404
    assert reg.request("DELETE", f"/v2/gone/blobs/{layer}")[0] == 202
    assert reg.request("HEAD", f"/v2/gone/blobs/{layer}")[0] == 404
    proc = subprocess.run([DOCKYARD, "registry", "gc", "--root", str(reg.root)], capture_output=True, text=True)
    assert proc.returncode == 0 and f"deleted blob: {layer}" in proc.stdout, proc.stderr
    assert not (reg.root / "blobs/sha256" / layer.split(":")[1]).exists()
    status, headers, _ = reg.request("POST", "/v2/gone/blobs/uploads/")
    session = reg.root / "uploads" / headers["docker-upload-uuid"]
    os.utime(session, (0, 0))
    os.utime(session / "data", (0, 0))
    proc = subprocess.run([DOCKYARD, "registry", "gc", "--root", str(reg.root)], capture_output=True, text=True)
    assert "1 abandoned upload removed" in proc.stdout and not session.exists()
    _, other = image(reg, "kept", layer=b"kept layer")
    assert reg.request("GET", f"/v2/kept/blobs/{sha(b'kept layer')}")[2] == b"kept layer"


def test_htpasswd_basic_auth(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "s3cret"})
    with Dockyard("--htpasswd", str(htpasswd), tmp=tmp_path / "r") as reg:
        status, headers, body = reg.request("GET", "/v2/")
        assert status == 401 and headers["www-authenticate"].startswith("Basic realm=")
        assert error_code(body) == "UNAUTHORIZED"
        good = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}
        assert reg.request("GET", "/v2/", headers=good)[0] == 200
        assert reg.request("GET", "/v2/", headers=bad)[0] == 401
        assert reg.request("GET", "/v2/_catalog", headers=bad)[0] == 401


def test_token_auth(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"bob": "pw"})
    with Dockyard("--htpasswd", str(htpasswd), "--token-auth", tmp=tmp_path / "r") as reg:
        status, headers, _ = reg.request("GET", "/v2/app/tags/list")
        assert status == 401
        challenge = headers["www-authenticate"]
        assert challenge.startswith(f'Bearer realm="http://{reg.addr}/token"') and 'scope="repository:app:pull"' in challenge
        creds = {"Authorization": "Basic " + base64.b64encode(b"bob:pw").decode()}
        assert reg.request("GET", "/token?service=dockyard-registry", headers={
            "Authorization": "Basic " + base64.b64encode(b"bob:no").decode()})[0] == 401
        status, _, doc = reg.json("GET", "/token?service=dockyard-registry&scope=repository:app:pull", headers=creds)
        assert status == 200
        assert reg.request("GET", "/v2/", headers={"Authorization": f"Bearer {doc['token']}"})[0] == 200
        assert reg.request("GET", "/v2/", headers={"Authorization": "Bearer forged"})[0] == 401
