"""The registry client library (dockyard.registry.client) against distribution 2.8 and our own
server: push and pull round trips, skipped and mounted blobs, all tags, digests and platform
selection from an index, Basic and bearer auth, and registries serving corrupted content."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.image.store import ImageStore
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.progress import Progress
from dockyard.registry.client.pull import PullError, pull
from dockyard.registry.client.push import PushError, push
from tests.daemon import other_children
from tests.registries import Distribution, Dockyard, generated_image, write_htpasswd

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with Distribution(tmp=tmp_path_factory.mktemp("dist")) as d:
        yield d


@pytest.fixture(autouse=True)
def no_leftover_children(dist: Distribution) -> Iterator[None]:
    yield
    assert not other_children({dist.proc.pid}), "a test left child processes running"  # type: ignore[union-attr]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[ImageStore]:
    store = ImageStore(str(tmp_path / "source"))
    bootstrap_busybox(store)
    generated_image(store, "gen:1", [{"a": b"a" * 4000}, {"b": os.urandom(300_000)}])
    yield store
    store.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[ImageStore]:
    store = ImageStore(str(tmp_path / "target"))
    yield store
    store.close()


def messages(sink: list[dict]) -> Progress:
    return Progress(sink.append)


def statuses(sink: list[dict]) -> list[str]:
    return [m.get("status", "") for m in sink]


def test_push_pull_round_trip(dist: Distribution, source: ImageStore, target: ImageStore) -> None:
    name = f"{dist.addr}/rt/gen:1"
    image_id = source.tag("gen:1", name)
    log: list[dict] = []
    pushed = push(source, name, progress=messages(log))
    assert [p.tag for p in pushed] == ["1"]
    assert statuses(log).count("Pushed") == 2 and statuses(log)[0] == f"The push refers to repository [{dist.addr}/rt/gen]"
    assert f"1: digest: {pushed[0].digest} size: {pushed[0].size}" in statuses(log)
    log.clear()
    assert pull(target, name, progress=messages(log)) == image_id
    assert statuses(log).count("Pull complete") == 2
    assert any(m.get("status") == "Downloading" and m["progressDetail"]["total"] for m in log)
    assert target.inspect(name)["RepoDigests"] == [f"{dist.addr}/rt/gen@{pushed[0].digest}"]
    assert [la.diff_id for la in target.layers(image_id)] == [la.diff_id for la in source.layers(image_id)]
    # again: every layer is skipped, and a second repository mounts them
    log.clear()
    push(source, name, progress=messages(log))
    assert statuses(log).count("Layer already exists") == 2
    source.tag("gen:1", f"{dist.addr}/other/gen:1")
    log.clear()
    push(source, f"{dist.addr}/other/gen:1", progress=messages(log))
    assert statuses(log).count("Mounted from rt/gen") == 2, log
    # by digest
    assert pull(target, f"{dist.addr}/rt/gen@{pushed[0].digest}") == image_id


def test_push_all_tags_and_missing_image(dist: Distribution, source: ImageStore) -> None:
    for tag in ("a", "b"):
        source.tag("busybox", f"{dist.addr}/all/bb:{tag}")
    assert sorted(p.tag for p in push(source, f"{dist.addr}/all/bb")) == ["a", "b"]
    assert sorted(dist.json("GET", "/v2/all/bb/tags/list")[2]["tags"]) == ["a", "b"]
    with pytest.raises(PushError, match="An image does not exist locally with the tag"):
        push(source, f"{dist.addr}/nothing/here:1")


def test_pull_missing(dist: Distribution, target: ImageStore) -> None:
    with pytest.raises(PullError, match=f"manifest for {dist.addr}/no/such:latest not found") as info:
        pull(target, f"{dist.addr}/no/such")
    assert info.value.status == 404


def test_index_platform_selection(dist: Distribution, source: ImageStore, target: ImageStore) -> None:
    digests = {}
    for image, arch in (("busybox", "amd64"), ("gen:1", "arm64")):
        source.tag(image, f"{dist.addr}/multi/app:{arch}")
        digests[arch] = push(source, f"{dist.addr}/multi/app:{arch}")[0]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": p.digest, "size": p.size,
         "platform": {"architecture": arch, "os": "linux"}} for arch, p in digests.items()]}
    status, _, body = dist.request("PUT", "/v2/multi/app/manifests/latest", json.dumps(index).encode(),
                                   {"Content-Type": OCI_INDEX})
    assert status == 201, body
    assert pull(target, f"{dist.addr}/multi/app", platform="linux/arm64") == source.resolve("gen:1")
    assert pull(target, f"{dist.addr}/multi/app", platform="linux/amd64") == source.resolve("busybox")
    with pytest.raises(PullError, match="no matching manifest for linux/s390x"):
        pull(target, f"{dist.addr}/multi/app", platform="linux/s390x")


def test_corrupted_blob_is_rejected(dist: Distribution, source: ImageStore, target: ImageStore) -> None:
    name = f"{dist.addr}/corrupt/gen:1"
    source.tag("gen:1", name)
    push(source, name)
    layer = source.layers(source.resolve("gen:1"))[1].descriptor
    data = dist.blob_file(layer.digest)
    original = data.read_bytes()
    data.write_bytes(bytes(layer.size))  # same size, other bytes
    try:
        with pytest.raises(PullError, match=f"verification failed for digest {layer.digest}"):
            pull(target, name)
    finally:
        data.write_bytes(original)  # the registry is shared by the module's tests
    assert target.meta.list_images() == []
    assert not target.content.exists(layer.digest)
    assert list(target.content.ingests()) == []


def test_corrupted_manifest_is_rejected(dist: Distribution, source: ImageStore, target: ImageStore) -> None:
    name = f"{dist.addr}/badman/bb:1"
    source.tag("busybox", name)
    pushed = push(source, name)[0]
    blob = dist.blob_file(pushed.digest)
    original = blob.read_bytes()
    blob.write_bytes(original.replace(b"schemaVersion", b"schemaversion"))
    try:
        with pytest.raises(PullError, match="manifest verification failed"):
            pull(target, f"{dist.addr}/badman/bb@{pushed.digest}")
    finally:
        blob.write_bytes(original)
    assert target.meta.list_images() == []


def test_basic_auth_against_distribution(tmp_path: Path, source: ImageStore, target: ImageStore) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"u": "p"})
    with Distribution(htpasswd=htpasswd, tmp=tmp_path / "d") as d:
        name = f"{d.addr}/auth/bb:1"
        source.tag("busybox", name)
        with pytest.raises(PushError):
            push(source, name)
        with pytest.raises(PushError):
            push(source, name, Credentials("u", "wrong"))
        push(source, name, Credentials("u", "p"))
        with pytest.raises(PullError, match="pull access denied"):
            pull(target, name)
        assert pull(target, name, Credentials("u", "p")) == source.resolve("busybox")


def test_bearer_token_auth_against_our_server(tmp_path: Path, source: ImageStore, target: ImageStore) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"u": "p"})
    with Dockyard("--htpasswd", str(htpasswd), "--token-auth", tmp=tmp_path / "r") as reg:
        name = f"{reg.addr}/tok/gen:1"
        source.tag("gen:1", name)
        with pytest.raises(PushError, match="unauthorized"):
            push(source, name, Credentials("u", "bad"))
        push(source, name, Credentials("u", "p"))
        assert pull(target, name, Credentials("u", "p")) == source.resolve("gen:1")


def test_concurrent_pulls_share_downloads(dist: Distribution, source: ImageStore, target: ImageStore) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor
    name = f"{dist.addr}/same/gen:1"
    source.tag("gen:1", name)
    push(source, name)
    lock = threading.Lock()
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda _: pull(target, name, write_lock=lock), range(4)))
    assert ids == [source.resolve("gen:1")] * 4
    assert list(target.content.ingests()) == []


def test_platform_of_a_single_manifest_is_checked(dist: Distribution, source: ImageStore,
                                                   target: ImageStore) -> None:
    name = f"{dist.addr}/single/bb:1"
    source.tag("busybox", name)
    push(source, name)
    with pytest.raises(PullError, match="was found but does not match the specified platform: wanted "
                                        "linux/arm64, actual: linux/amd64"):
        pull(target, name, platform="linux/arm64")
    assert target.meta.list_images() == []
    assert pull(target, name, platform="linux/amd64") == source.resolve("busybox")


def test_download_resumes_a_partial_ingest(dist: Distribution, source: ImageStore, target: ImageStore) -> None:
    name = f"{dist.addr}/resume/gen:1"
    source.tag("gen:1", name)
    push(source, name)
    layer = source.layers(source.resolve("gen:1"))[1].descriptor
    data = source.content.read(layer.digest)
    writer = target.content.writer(f"pull-{layer.digest}", layer.digest, layer.size)
    writer.write(data[: len(data) // 2])
    writer.close()  # as a dropped connection leaves it
    log: list[dict] = []
    assert pull(target, name, progress=messages(log)) == source.resolve("gen:1")
    first = next(m for m in log if m.get("status") == "Downloading" and m["id"] == layer.digest[7:19])
    assert first["progressDetail"]["current"] == len(data) // 2
    assert target.content.read(layer.digest) == data and list(target.content.ingests()) == []


def test_login_basic_and_token(tmp_path: Path) -> None:
    from dockyard.registry.client.login import LoginError, login
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"u": "p"})
    with Distribution(htpasswd=htpasswd, tmp=tmp_path / "d") as d, \
            Dockyard("--htpasswd", str(htpasswd), "--token-auth", tmp=tmp_path / "r") as tok:
        login(d.addr, Credentials("u", "p"))
        with pytest.raises(LoginError, match=f"login attempt to http://{d.addr}/v2/ failed with status: 401"):
            login(f"http://{d.addr}/", Credentials("u", "x"))
        login(tok.addr, Credentials("u", "p"))
        with pytest.raises(LoginError, match=f'Get "http://{tok.addr}/v2/": unauthorized'):
            login(tok.addr, Credentials("u", "x"))


def test_diff_ids_are_checked_at_the_first_unpack(dist: Distribution, source: ImageStore, target: ImageStore) -> None:
    """A pull verifies every blob's digest but does not decompress the layers (as containerd):
    a config whose diff IDs lie is refused when a container's rootfs is first prepared."""
    from dockyard.image.unpack import LayerMismatch

    good = source.resolve("gen:1")
    layers = source.layers(good)
    config = json.loads(source.content.read(good))
    config["rootfs"]["diff_ids"] = list(reversed(config["rootfs"]["diff_ids"]))
    name = f"{dist.addr}/lying/gen:1"
    source.add_image(json.dumps(config).encode(), [layer.descriptor for layer in layers], tags=[name],
                     measure_layers=False)
    push(source, name)
    image_id = pull(target, name)
    assert target.size(image_id) == sum(layer.size for layer in layers)  # measured: the diff IDs are not checked
    with pytest.raises(LayerMismatch, match="wrong diff id"):
        target.prepare_rootfs("ctr", image_id)
    assert [info.key for info in target.snapshots.walk()] == []


def test_sizes_of_a_pulled_image_are_measured_once_when_reported(dist: Distribution, source: ImageStore,
                                                                 target: ImageStore) -> None:
    name = f"{dist.addr}/sized/gen:1"
    source.tag("gen:1", name)
    push(source, name)
    image_id = pull(target, name)
    compressed = [layer.descriptor.size for layer in target.layers(image_id)]
    assert [layer.size for layer in target.layers(image_id)] == compressed  # pull did not decompress
    expected = source.size(source.resolve("gen:1"))
    assert target.size(image_id) == expected > sum(compressed)  # measured from the blobs, as dockerd's
    assert [layer.size for layer in target.layers(image_id)] == [layer.size for layer in source.layers(
        source.resolve("gen:1"))]  # and saved
    target.prepare_rootfs("ctr", image_id)
    try:
        assert target.size(image_id) == expected
    finally:
        target.remove_rootfs("ctr")
