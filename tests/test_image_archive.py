"""Image archives: docker save/load (Docker 25+ and legacy layouts, gzip, skopeo-style), OCI
layouts, docker import with --change, docker export, and a suite of hostile archives.
Real stores on the real disk; every test removes what it made, also when it fails."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image import digest as digests
from dockyard.image.archive import docker_archive, oci_layout
from dockyard.image.archive.changes import ChangeError, apply_changes
from dockyard.image.archive.export import export_rootfs
from dockyard.image.archive.importer import import_tarball
from dockyard.image.archive.tario import ArchiveError
from dockyard.image.bootstrap_busybox import build_rootfs, image_config
from dockyard.image.errors import NoSuchImage
from dockyard.image.manifest import parse_config
from dockyard.image.store import ImageStore

CREATED = "2024-01-01T00:00:00Z"


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-archive-", dir="/var/tmp"))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-q", str(path / "merged")], stderr=subprocess.DEVNULL)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_rootfs(str(tmp_path_factory.mktemp("busybox") / "rootfs")))


def new_store(path: Path) -> ImageStore:
    return ImageStore(str(path), snapshotter="vfs")


def add_busybox(store: ImageStore, rootfs: Path, tags: tuple[str, ...] = ("busybox:latest",)) -> str:
    layer = store.write_layer(str(rootfs), mode="compare", source_date_epoch=0)
    config = json.dumps(image_config(layer.diff_id, CREATED), sort_keys=True).encode()
    return store.add_image(config, [layer], tags=list(tags))


@pytest.fixture
def stores(work: Path, rootfs: Path) -> Iterator[tuple[ImageStore, ImageStore, str]]:
    """A store holding busybox:latest, a fresh empty store, and busybox's image ID."""
    src, dst = new_store(work / "src"), new_store(work / "dst")
    try:
        yield src, dst, add_busybox(src, rootfs)
    finally:
        src.close()
        dst.close()


def saved(store: ImageStore, refs: list[str], oci: bool = True) -> bytes:
    out = io.BytesIO()
    docker_archive.save(store, refs, out, oci=oci)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar}


def make_tar(files: dict[str, bytes], links: dict[str, str] | None = None, sizes: dict[str, int] | None = None,
             dup: str | None = None) -> bytes:
    """A tar of files (name → data, dup written twice) and symlinks, after forged entries
    whose headers claim sizes[name] bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in [*files.items(), *([(dup, files[dup])] if dup else [])]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    forged = b""
    for name, size in (sizes or {}).items():  # a header claiming size bytes, then a little data
        info = tarfile.TarInfo(name)
        info.size = size
        forged += info.tobuf(tarfile.PAX_FORMAT) + bytes(512)
    data = forged + buf.getvalue()
    return data


# ---- docker save / load ------------------------------------------------------------------------

def test_save_layout_is_docker_25(stores: tuple[ImageStore, ImageStore, str]) -> None:
    src, _, image_id = stores
    files = members(saved(src, ["busybox"]))
    diff_id = parse_config(src.content.read(image_id)).diff_ids[0]
    layer_hex, config_hex = digests.split(diff_id)[1], digests.split(image_id)[1]
    assert json.loads(files["manifest.json"]) == [
        {"Config": f"blobs/sha256/{config_hex}", "RepoTags": ["busybox:latest"], "Layers": [f"blobs/sha256/{layer_hex}"]}]
    assert files["manifest.json"].endswith(b"}]\n")
    assert json.loads(files["repositories"]) == {"busybox": {"latest": layer_hex}}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    entry = index["manifests"][0]
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert entry["annotations"] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                    "org.opencontainers.image.ref.name": "latest"}
    manifest = json.loads(files[f"blobs/sha256/{digests.split(entry['digest'])[1]}"])
    assert manifest["config"]["digest"] == image_id
    assert manifest["layers"] == [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id,
                                   "size": len(files[f"blobs/sha256/{layer_hex}"])}]
    assert hashlib.sha256(files[f"blobs/sha256/{layer_hex}"]).hexdigest() == layer_hex  # uncompressed
    assert list(files) == sorted(files)
    assert list(files)[:2] == ["blobs", "blobs/sha256"]


def test_save_is_deterministic(stores: tuple[ImageStore, ImageStore, str]) -> None:
    src, _, image_id = stores
    first = saved(src, ["busybox:latest"])
    assert saved(src, ["busybox:latest"]) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert {(m.mtime, m.uid, m.gid) for m in tar} == {(0, 0, 0)}


@pytest.mark.parametrize("oci", [True, False], ids=["docker25", "legacy"])
def test_round_trip(stores: tuple[ImageStore, ImageStore, str], oci: bool) -> None:
    src, dst, image_id = stores
    src.tag("busybox", "example.com/team/bb:v1")
    data = saved(src, ["busybox", "example.com/team/bb:v1"], oci=oci)
    lines = docker_archive.load(dst, io.BytesIO(data))
    assert lines == ["Loaded image: busybox:latest", "Loaded image: example.com/team/bb:v1"]
    assert dst.resolve("busybox") == dst.resolve("example.com/team/bb:v1") == image_id
    assert [layer.diff_id for layer in dst.layers(image_id)] == [layer.diff_id for layer in src.layers(image_id)]
    assert saved(dst, ["busybox", "example.com/team/bb:v1"], oci=oci) == data


def test_save_repository_saves_every_tag(stores: tuple[ImageStore, ImageStore, str], rootfs: Path) -> None:
    """`docker save busybox` writes every tag of the repository (an image once, its layers once);
    `repositories` keys are sorted as Go writes a map; a repository without tags is an ID prefix."""
    src, dst, image_id = stores
    other = add_busybox(src, rootfs / "etc", tags=("busybox:etc",))
    src.tag("busybox", "busybox:also")
    src.tag("busybox", "bb:x")
    files = members(saved(src, ["busybox"]))
    items = json.loads(files["manifest.json"])  # type: ignore[arg-type]
    assert [(i["Config"].rsplit("/", 1)[1], i["RepoTags"]) for i in items] == [
        (digests.split(image_id)[1], ["busybox:also", "busybox:latest"]), (digests.split(other)[1], ["busybox:etc"])]
    assert len([n for n in files if n.startswith("blobs/sha256/")]) == 2 * 3  # config, manifest, layer each
    assert list(json.loads(files["repositories"])["busybox"]) == ["also", "etc", "latest"]  # type: ignore[arg-type]
    index = json.loads(files["index.json"])  # type: ignore[arg-type]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == \
        ["also", "latest", "etc"]
    lines = docker_archive.load(dst, io.BytesIO(saved(src, ["busybox:latest", "busybox:also"])))
    assert lines == ["Loaded image: busybox:latest", "Loaded image: busybox:also"]
    assert dst.meta.tags_of(image_id) == ["docker.io/library/busybox:also", "docker.io/library/busybox:latest"]
    src.untag("busybox:latest")
    src.untag("busybox:also")
    src.untag("busybox:etc")
    assert json.loads(members(saved(src, [image_id[7:13]]))["manifest.json"])[0]["RepoTags"] is None  # type: ignore[arg-type]
    with pytest.raises(NoSuchImage, match="^No such image: busybox$"):
        saved(src, ["busybox"])


def test_load_untagged_and_retag_message(stores: tuple[ImageStore, ImageStore, str], rootfs: Path) -> None:
    src, dst, image_id = stores
    assert docker_archive.load(dst, io.BytesIO(saved(src, [image_id]))) == [f"Loaded image ID: {image_id}"]
    other = add_busybox(dst, rootfs / "etc", tags=("busybox:latest",))
    lines = docker_archive.load(dst, io.BytesIO(saved(src, ["busybox"])))
    assert lines == [f"The image busybox:latest already exists, renaming the old one with ID {other} to empty string",
                     "Loaded image: busybox:latest"]


def test_load_gzip_archive(stores: tuple[ImageStore, ImageStore, str]) -> None:
    src, dst, image_id = stores
    assert docker_archive.load(dst, io.BytesIO(gzip.compress(saved(src, ["busybox"]))))
    assert dst.resolve("busybox:latest") == image_id


def test_load_handmade_legacy_archive(stores: tuple[ImageStore, ImageStore, str]) -> None:
    """Docker < 25: <id>/layer.tar (here one a symlink to another, as Docker writes shared
    layers), <id>/json, <hex>.json config, manifest.json naming the layer paths."""
    src, dst, image_id = stores
    layer = src.layers(image_id)[0]
    with src.content.open(layer.descriptor.digest) as f:
        tar_bytes = gzip.decompress(f.read())
    config = src.content.read(image_id)
    hexid = digests.split(image_id)[1]
    files = {"aaaa/VERSION": b"1.0", "aaaa/json": b"{}", "aaaa/layer.tar": tar_bytes, f"{hexid}.json": config,
             "manifest.json": json.dumps([{"Config": f"{hexid}.json", "RepoTags": ["old:1"],
                                           "Layers": ["bbbb/layer.tar"]}]).encode(),
             "repositories": b'{"old":{"1":"bbbb"}}'}
    data = make_tar(files, links={"bbbb/layer.tar": "../aaaa/layer.tar"})
    assert docker_archive.load(dst, io.BytesIO(data)) == ["Loaded image: old:1"]
    assert dst.resolve("old:1") == image_id


def test_oci_layout_dir_and_tar(stores: tuple[ImageStore, ImageStore, str], work: Path) -> None:
    src, dst, image_id = stores
    src.tag("busybox", "busybox:other")
    oci_layout.write_layout(src, ["busybox:latest"], str(work / "layout"))
    oci_layout.write_layout(src, ["busybox:other"], str(work / "layout"))  # added beside the first
    index = json.loads((work / "layout/index.json").read_bytes())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["latest", "other"]
    assert oci_layout.load_layout(dst, str(work / "layout"), ref="other") == [image_id]
    assert dst.resolve("busybox:other") == image_id
    with pytest.raises(ArchiveError, match="no image named"):
        oci_layout.load_layout(dst, str(work / "layout"), ref="nope")
    buf = io.BytesIO()
    oci_layout.write_layout(src, ["busybox:latest"], buf)
    assert "manifest.json" not in members(buf.getvalue())
    third = new_store(work / "third")
    try:  # docker load of a plain OCI layout tarball
        assert docker_archive.load(third, io.BytesIO(buf.getvalue())) == ["Loaded image: busybox:latest"]
        assert third.record(image_id).target == src.record(image_id).target  # manifest digest kept
    finally:
        third.close()


def test_layout_symlinked_blob_refused(stores: tuple[ImageStore, ImageStore, str], work: Path) -> None:
    src, dst, _ = stores
    layout = work / "layout"
    oci_layout.write_layout(src, ["busybox"], str(layout))
    blob = next(p for p in (layout / "blobs/sha256").iterdir() if p.stat().st_size > 100000)
    shutil.move(blob, work / "elsewhere")
    blob.symlink_to(work / "elsewhere")
    with pytest.raises(ArchiveError, match="symlink"):
        oci_layout.load_layout(dst, str(layout))


# ---- hostile archives -------------------------------------------------------------------------

def _good_files(src: ImageStore) -> dict[str, bytes]:
    return {k: v for k, v in members(saved(src, ["busybox"])).items() if v is not None}


def _hostile_cases(files: dict[str, bytes]) -> dict[str, tuple[bytes, str]]:
    manifest = json.loads(files["manifest.json"])
    layer_path, config_path = manifest[0]["Layers"][0], manifest[0]["Config"]

    def with_manifest(**changes: object) -> dict[str, bytes]:
        return {**files, "manifest.json": json.dumps([{**manifest[0], **changes}]).encode()}

    no_manifest = {k: v for k, v in files.items() if k != "manifest.json"}
    config = json.loads(files[config_path])
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    bad_config = json.dumps(config).encode()
    bad_hex = hashlib.sha256(bad_config).hexdigest()
    return {
        "dotdot member": (make_tar({**files, "../evil": b"x"}), "escapes the archive"),
        "absolute member": (make_tar({**files, "/etc/evil": b"x"}), "absolute path"),
        "symlinked manifest.json": (make_tar(no_manifest, links={"manifest.json": "/etc/passwd"}), "not a link"),
        "symlinked blob": (make_tar({k: v for k, v in files.items() if k != layer_path},
                                    links={layer_path: "../../../etc/passwd"}), "must be a regular file"),
        "layer outside": (make_tar(with_manifest(Layers=["../../etc/passwd"])), "escapes the archive"),
        "link outside": (make_tar(with_manifest(Layers=["evil"]), links={"evil": "../../etc/shadow"}),
                         "outside the archive"),
        "missing layer": (make_tar(with_manifest(Layers=["blobs/sha256/" + "1" * 64])), "not in the archive"),
        "blob digest": (make_tar({**files, layer_path: files[layer_path][:-1] + b"\1"}), "does not match its digest"),
        "diff id": (make_tar({**with_manifest(Config=f"{bad_hex}.json"), f"{bad_hex}.json": bad_config}),
                    "diff ID"),
        "config name": (make_tar({**with_manifest(Config=f"{'2' * 64}.json"), f"{'2' * 64}.json": files[config_path]}),
                        "not the one its name says"),
        "size bomb": (make_tar(files, sizes={"big/layer.tar": 1 << 60}), "more than the"),
        "huge manifest.json": (make_tar({**files, "manifest.json": b" " * (9 << 20)}), "too large"),
        "duplicate": (make_tar(files, dup="manifest.json"), "appears twice"),
        "not a tar": (b"hello world" * 100, "invalid archive"),
        "neither manifest nor index": (make_tar({"x": b"y"}), "neither manifest.json nor index.json"),
    }


def test_hostile_archives_refused_and_nothing_recorded(stores: tuple[ImageStore, ImageStore, str], work: Path) -> None:
    """Each case on a fresh store (a blob the store already holds is not read again)."""
    src = stores[0]
    for i, (name, (data, message)) in enumerate(_hostile_cases(_good_files(src)).items()):
        dst = new_store(work / f"hostile{i}")
        try:
            with pytest.raises(ArchiveError, match=message):
                docker_archive.load(dst, io.BytesIO(data))
                pytest.fail(f"{name}: loaded")
            assert dst.meta.list_images() == [], name
            assert dst.meta.resolve_tag("docker.io/library/busybox:latest") is None, name
        finally:
            dst.close()


def test_second_image_bad_records_nothing(stores: tuple[ImageStore, ImageStore, str]) -> None:
    src, dst, _ = stores
    files = _good_files(src)
    item = json.loads(files["manifest.json"])[0]
    broken = {**item, "RepoTags": ["second:1"], "Layers": ["blobs/sha256/" + "3" * 64]}
    data = make_tar({**files, "manifest.json": json.dumps([item, broken]).encode()})
    with pytest.raises(ArchiveError):
        docker_archive.load(dst, io.BytesIO(data))
    assert dst.meta.list_images() == []


# ---- docker import / export -------------------------------------------------------------------

ALL_CHANGES = ['CMD ["sh"]', 'ENV a=b c="d e"', "ENV f g h", "ENTRYPOINT echo hi", "EXPOSE 80 53/udp",
               "HEALTHCHECK --interval=5s --retries=2 CMD true", "VOLUME /data", 'VOLUME ["/a","/b"]',
               "ONBUILD RUN x", 'LABEL x=y "z"="w v"', "WORKDIR /w", "WORKDIR rel", "USER nobody",
               "STOPSIGNAL SIGKILL"]
# What dockerd (20.10, this machine) wrote into the config for the changes above, minus
# STOPSIGNAL, which moby accepts from 23.0 on.
DOCKER_CONFIG = {"User": "nobody", "ExposedPorts": {"53/udp": {}, "80/tcp": {}}, "Env": ["a=b", "c=d e", "f=g h"],
                 "Cmd": ["sh"], "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5000000000, "Retries": 2},
                 "Volumes": {"/a": {}, "/b": {}, "/data": {}}, "WorkingDir": "/w/rel",
                 "Entrypoint": ["/bin/sh", "-c", "echo hi"], "OnBuild": ["RUN x"], "Labels": {"x": "y", "z": "w v"},
                 "StopSignal": "SIGKILL"}


def test_import_with_every_change(work: Path, rootfs: Path) -> None:
    store = new_store(work / "s")
    try:
        tarball = work / "rootfs.tar.gz"
        subprocess.run(["tar", "-C", str(rootfs), "-czf", str(tarball), "."], check=True)
        with open(tarball, "rb") as f:
            image_id = import_tarball(store, f, "imported:1", ALL_CHANGES, platform="linux/arm64")
        config = json.loads(store.content.read(image_id))
        assert config["config"] == DOCKER_CONFIG
        assert (config["architecture"], config["os"]) == ("arm64", "linux")
        assert config["comment"] == "Imported from -"
        assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
        assert store.resolve("imported:1") == image_id
        layer = store.layers(image_id)[0]
        with store.content.open(layer.descriptor.digest) as f, tarfile.open(fileobj=f, mode="r|gz") as tar:
            names = {m.name.rstrip("/") for m in tar}
        assert {"bin/busybox", "etc/passwd", "tmp"} <= names
        with open(tarball, "rb") as f:
            plain = import_tarball(store, f, message="msg here")
        assert json.loads(store.content.read(plain))["history"][0]["comment"] == "msg here"
    finally:
        store.close()


@pytest.mark.parametrize("change, message", [
    ("FROM x", "from is not a valid change command"),
    ("RUN true", "run is not a valid change command"),
    ("ENV a", "ENV must have two arguments"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV a=b c", "can't find = in 'c'"),
    ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK --interval=1us CMD true", "cannot be less than 1ms"),
    ("HEALTHCHECK FOO", 'Unknown type "FOO"'),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
    ("EXPOSE abc", "Invalid containerPort: abc"),
])
def test_change_errors(change: str, message: str) -> None:
    with pytest.raises(ChangeError, match=message):
        apply_changes({}, [change])


def test_change_details() -> None:
    config = apply_changes({}, ["ENV P=/x", "WORKDIR $P/y", "ENTRYPOINT [\"/bin/a\"]", "EXPOSE 8000-8002/UDP",
                                "HEALTHCHECK --timeout=1m30s CMD [\"/ok\", \"-v\"]", "USER ${U:-daemon}"])
    assert config["WorkingDir"] == "/x/y" and config["Entrypoint"] == ["/bin/a"] and "Cmd" not in config
    assert list(config["ExposedPorts"]) == ["8000/udp", "8001/udp", "8002/udp"]
    assert config["Healthcheck"] == {"Test": ["CMD", "/ok", "-v"], "Timeout": 90_000_000_000}
    assert config["User"] == "daemon"
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}


def test_export_mounted_rootfs(work: Path, rootfs: Path) -> None:
    for d in ("upper", "work", "merged"):
        (work / d).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={rootfs},upperdir={work / 'upper'},workdir={work / 'work'}", str(work / "merged")],
                   check=True)
    (work / "merged/etc/group").unlink()
    (work / "merged/new").write_text("hello")
    out = io.BytesIO()
    export_rootfs(str(work / "merged"), out)
    again = io.BytesIO()
    export_rootfs(str(work / "merged"), again)
    assert out.getvalue() == again.getvalue()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = [m.name.rstrip("/") for m in tar]
        assert tar.extractfile("new").read() == b"hello"
    assert "etc/passwd" in names and "etc/group" not in names
    assert not any(".wh." in n for n in names)
    assert names.index("etc") < names.index("etc/passwd")
