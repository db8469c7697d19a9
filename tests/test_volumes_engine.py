"""`docker cp`'s view of a container's files with its volumes and binds (engine level): paths
below a mount point resolve in the mount's source, for stopped and running containers alike, and
a read-only bind refuses extraction."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.engine.containers.archive import ContainerFiles
from dockyard.engine.containers.errors import InvalidParameter
from dockyard.image.snapshot.mount import mounts_under
from tests import engine_fixtures
from tests.engine_fixtures import Engine

image_store = engine_fixtures.image_store
engine = engine_fixtures.engine


def read(files: ContainerFiles, path: str) -> str:
    with files.opened(path) as (host, _):
        return Path(host).read_text()


def one_file_tar(name: str, data: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_stopped_container_files_include_volumes_and_binds(engine: Engine, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "a").write_text("bound\n")
    hc = {"Binds": ["viewvol:/data", f"{host}:/deep/h:ro"]}
    code, _, err = engine.run(["sh", "-c", "echo in-volume > /data/f"], hc)
    assert code == 0, err
    cid = engine.service.store.all()[0]["ID"]
    with ContainerFiles(engine.service, cid) as files:
        assert read(files, "/data/f") == "in-volume\n"
        assert read(files, "/deep/h/a") == "bound\n"
        files.extract("/data", one_file_tar("g", b"copied in\n"), False, False)
        with pytest.raises(InvalidParameter, match="read-only"):
            files.extract("/deep/h", one_file_tar("new", b"x"), False, False)
    assert mounts_under(engine.service._rootfs(cid)) == []
    assert not (host / "new").exists()
    code, out, _ = engine.run(["cat", "/data/g"], {"Binds": ["viewvol:/data"]})
    assert (code, out) == (0, "copied in\n")


def test_running_container_files_include_its_volume(engine: Engine) -> None:
    cid = engine.create(["sh", "-c", "echo live > /data/f; sleep 30"], {"Binds": ["livevol:/data"]})
    engine.service.start(cid)
    try:
        deadline = time.monotonic() + 10
        with ContainerFiles(engine.service, cid) as files:
            while True:
                try:
                    assert read(files, "/data/f") == "live\n"
                    break
                except (FileNotFoundError, AssertionError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        engine.service.remove(cid, force=True, volumes=True)
