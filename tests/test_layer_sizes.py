"""Layer and image sizes as dockerd reports them (overlay2: the bytes of a layer's files and
symlinks, each inode once): counted from tar entries, equal to a walk of the applied layer, and
through the API and the docker CLI equal to what a private dockerd 20.10 showed for busybox and a
small built image (tests/layer_sizes.py; recorded in tests/data/layer_sizes.json, compared live
when dockerd is installed)."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from dockyard.image.archive.importer import import_tarball
from dockyard.image.layer_apply import apply_layer
from dockyard.image.layer_diff import write_layer
from dockyard.image.layer_size import dir_size, measure_layer
from dockyard.image.store import LABEL_LAYER_SIZES, ImageStore
from dockyard.image.store import OLD_LABEL_LAYER_SIZES as OLD
from tests.conftest import TEST_CGROUP_PARENT
from tests.daemon import build_daemon
from tests.layer_sizes import BUILT, DATA, cli, context, dockerd, facts

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from _peers import Skip  # noqa: E402


def layer(*members: tuple[str, bytes, str | bytes]) -> bytes:
    """A tar of (name, type, data or link target) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.LNKTYPE, tarfile.SYMTYPE):
                info.linkname = str(value)
            data = value if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


F, D, L, S, C = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE
CASES = {
    # hard links once, symlinks by their target's length, directories and empty files nothing
    "kinds": (layer(("d", D, b""), ("d/f", F, b"x" * 100), ("d/h", L, "d/f"), ("d/s", S, "/d/f"),
                    ("e", F, b""), ("d/h2", L, "e")), 104),
    # a path written twice counts its last content; a whiteout removes what the layer put there
    "replaced": (layer(("a", F, b"x" * 10), ("a", F, b"y" * 3), ("b", F, b"z" * 7), (".wh.b", F, b"")), 3),
    # the first name of a hard-linked file replaced: the inode lives on through the link
    "relinked": (layer(("a", F, b"x" * 100), ("b", L, "a"), ("a", F, b"y" * 50)), 150),
    # a directory replaced by a file, or whited out, takes its subtree with it
    "subtrees": (layer(("d", D, b""), ("d/f", F, b"x" * 40), ("d", F, b"y"),
                       ("e", D, b""), ("e/g", D, b""), ("e/g/f", F, b"x" * 9), ("e/s", S, "g"), (".wh.e", F, b""),
                       ("k", D, b""), ("k/f", F, b"x" * 5), ("k/.wh..wh..opq", F, b"")), 1 + 5),
    # parents the tar does not list are directories all the same
    "unlisted": (layer(("x/y/f", F, b"x" * 10), ("x/z", F, b"x" * 2), (".wh.x", F, b""), ("v/w", F, b"x" * 3)), 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_counted_from_the_entries_as_a_walk_of_the_applied_layer(case: str) -> None:
    data, want = CASES[case]
    work = Path(tempfile.mkdtemp(prefix="layer-sizes-", dir="/var/tmp"))
    try:
        dest = work / "layer"
        dest.mkdir()
        applied = apply_layer(io.BytesIO(data), str(dest))  # overlay whiteouts: 0/0 devices count 0
        assert applied.layer_size == dir_size(str(dest)) == want
        assert measure_layer(io.BytesIO(data)) == (applied.diff_id, want)
        with open(work / "again", "wb") as out:  # the applied layer written back: the same size
            assert write_layer(str(dest), out, mode="overlay").layer_size == want
    finally:
        shutil.rmtree(work)


@pytest.fixture(scope="module")
def dockyardd_facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The facts of tests/layer_sizes.py from a private dockyardd (stopped again), through the
    real docker CLI."""
    tmp = tmp_path_factory.mktemp("layer-sizes")
    with build_daemon(tmp) as d:
        return facts(cli(d.env()), tmp / "ctx")


def test_sizes_as_recorded_from_dockerd(dockyardd_facts: dict[str, list[str]]) -> None:
    assert dockyardd_facts == json.loads(DATA.read_text())


def test_sizes_as_a_live_dockerd(dockyardd_facts: dict[str, list[str]]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ls-", dir="/tmp"))  # containerd's socket path must stay short
    try:
        with dockerd(tmp, f"{TEST_CGROUP_PARENT}/layer-sizes-docker") as docker:
            found = facts(docker, tmp / "ctx")
    except Skip as exc:
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert found == dockyardd_facts


def test_stores_from_before_are_measured_once_and_saved(tmp_path: Path) -> None:
    data = CASES["kinds"][0]
    store = ImageStore(str(tmp_path / "store"))
    try:
        image = import_tarball(store, io.BytesIO(data), "sizes:loaded")
        assert store.size(image) == 104
        # as recorded before: the tar's length; the label replaced by the real size on first use
        store.meta.set_image_labels(image, {LABEL_LAYER_SIZES: None, OLD: json.dumps([len(data)])})
        assert [layer.size for layer in store.layers(image)] == [104]
        labels = store.record(image).labels
        assert OLD not in labels and json.loads(labels[LABEL_LAYER_SIZES]) == [104]
        # pulled unmeasured, not unpacked: the blob's size for layers() until a size report
        # measures the blob (once: saved)
        store.meta.set_image_labels(image, {LABEL_LAYER_SIZES: None, OLD: "[null]"})
        blob = store.layers(image)[0].descriptor.size
        assert store.layers(image)[0].size == blob != 104
        assert json.loads(store.record(image).labels[LABEL_LAYER_SIZES]) == [None]
        assert store.size(image) == 104
        assert json.loads(store.record(image).labels[LABEL_LAYER_SIZES]) == [104]
        store.unpack(image)
        assert store.size(image) == 104
        # unpacked by an older version: the snapshot has no size; the blob is measured once
        chain = store.chain_ids(image)[0]
        with sqlite3.connect(Path(store.snapshots.root) / "metadata.db") as db:
            db.execute("UPDATE snapshots SET labels = ? WHERE key = ?",
                       (json.dumps({"dockyard.image/size": str(len(data))}), chain))
        db.close()
        store.meta.set_image_labels(image, {LABEL_LAYER_SIZES: "[null]"})
        assert store.unpacker.unpacked_size(chain) is None
        assert store.size(image) == 104
        assert json.loads(store.record(image).labels[LABEL_LAYER_SIZES]) == [104]
    finally:
        store.close()


def test_shared_size_on_request_from_api_1_42(tmp_path: Path) -> None:
    with build_daemon(tmp_path) as d:
        docker = cli(d.env())
        docker("build", "-q", "-t", BUILT, str(context(tmp_path / "ctx")))
        try:
            def listed(path: str) -> dict[str, int]:
                return {i["RepoTags"][0]: i["SharedSize"] for i in json.loads(d.request("GET", path)[2])}
            busybox = json.loads(d.request("GET", "/images/busybox/json")[2])["Size"]
            assert listed("/v1.42/images/json?shared-size=1") == {BUILT: busybox, "busybox:latest": busybox}
            assert set(listed("/v1.41/images/json?shared-size=1").values()) == set(listed("/v1.42/images/json").values()) == {-1}
        finally:
            docker("rmi", BUILT)


@pytest.mark.parametrize("snapshotter", ["overlay", "vfs"])
def test_a_containers_size_counts_its_own_changes(tmp_path: Path, snapshotter: str) -> None:
    store = ImageStore(str(tmp_path / "store"), snapshotter=snapshotter)
    try:
        image = import_tarball(store, io.BytesIO(CASES["kinds"][0]), "sizes:base")
        store.prepare_rootfs("c1", image)
        layer = Path(store.snapshots.layer_dir("c1"))
        assert store.rootfs_size("c1") == 0  # vfs: the image's files are in the layer dir, unchanged
        (layer / "written").write_bytes(b"12345\n")
        if snapshotter == "vfs":
            (layer / "d" / "f").unlink()  # a deletion counts nothing
        assert store.rootfs_size("c1") == 6
        store.remove_rootfs("c1")
    finally:
        store.close()
