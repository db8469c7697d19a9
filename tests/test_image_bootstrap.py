"""Offline base images: busybox (reproducible, runnable) and Debian via mmdebstrap (slow, needs
the network: run with DOCKYARD_SLOW=1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.image.bootstrap_debian import bootstrap_debian, host_mirror
from dockyard.image.snapshot import unmount
from dockyard.image.store import ImageStore
from tests.conftest import Runtime
from tests.test_image_store import mounted, root, run_in  # noqa: F401  (root is a fixture)

slow = pytest.mark.skipif(os.environ.get("DOCKYARD_SLOW") != "1", reason="slow: set DOCKYARD_SLOW=1")


@pytest.fixture
def stores(root: Path) -> Iterator[list[ImageStore]]:  # noqa: F811
    made = [ImageStore(str(root / f"store{i}")) for i in range(2)]
    try:
        yield made
    finally:
        for store in made:
            store.close()


def test_busybox_is_reproducible(stores: list[ImageStore], monkeypatch: pytest.MonkeyPatch) -> None:
    first = bootstrap_busybox(stores[0])
    assert bootstrap_busybox(stores[1]) == first
    assert bootstrap_busybox(stores[0]) == first
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    pinned = bootstrap_busybox(stores[0], "busybox:pinned")
    assert pinned != first and bootstrap_busybox(stores[1], "busybox:pinned") == pinned
    assert stores[0].inspect("busybox:pinned")["Created"] == "2023-11-14T22:13:20Z"
    assert stores[0].resolve("busybox") == first


def test_busybox_runs(stores: list[ImageStore], root: Path, dockyard_runtime: Runtime) -> None:  # noqa: F811
    store = stores[0]
    image_id = bootstrap_busybox(store)
    target = root / "rootfs"
    mounted(store, "bb", image_id, target)
    try:
        proc = run_in(dockyard_runtime, target, root / "bundle", ["sh", "-c", "head -1 /etc/passwd; ls /bin | wc -l"])
        first, count = proc.stdout.split()
        assert first == "root:x:0:0:root:/root:/bin/sh" and int(count) > 100
    finally:
        unmount(str(target))
        store.remove_rootfs("bb")


def test_host_mirror(tmp_path: Path) -> None:
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n")
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://security.example/debian-security\n\n"
                      "Types: deb\nURIs: http://other.example/debian\n")
    assert host_mirror((str(tmp_path / "absent"), str(one_line))) == "http://mirror.example/debian"
    assert host_mirror((str(deb822),)) == "http://other.example/debian"
    assert host_mirror((str(tmp_path / "absent"),)) == "http://deb.debian.org/debian"


@slow
def test_debian_bootstrap_runs_bash(stores: list[ImageStore], root: Path,  # noqa: F811
                                    dockyard_runtime: Runtime) -> None:
    store = stores[0]
    image_id = bootstrap_debian(store, "bookworm")
    info = store.inspect("debian:bookworm")
    assert info["Id"] == image_id and info["Config"]["Cmd"] == ["bash"]
    assert len(info["RootFS"]["Layers"]) == 1 and info["Size"] > 50_000_000
    target = root / "rootfs"
    mounted(store, "deb", image_id, target)
    try:
        assert os.listdir(target / "dev") == []
        proc = run_in(dockyard_runtime, target, root / "bundle",
                      ["bash", "-c", "cat /etc/debian_version; dpkg-query -W -f='${Package}\\n' bash"])
        version, package = proc.stdout.split()
        assert version.startswith("12.") and package == "bash"
    finally:
        unmount(str(target))
        store.remove_rootfs("deb")
