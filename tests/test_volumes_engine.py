"""The container service's view of a container's files with its volumes (what `docker cp` will
use): bound below the rootfs for a stopped container and undone afterwards, the live root for a
running one."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from dockyard.image.snapshot.mount import mounts_under
from tests import engine_fixtures
from tests.engine_fixtures import Engine

image_store = engine_fixtures.image_store
engine = engine_fixtures.engine


def test_stopped_container_view_has_its_volumes(engine: Engine, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "a").write_text("bound\n")
    hc = {"Binds": ["viewvol:/data", f"{host}:/deep/h:ro"]}
    code, _, err = engine.run(["sh", "-c", "echo in-volume > /data/f"], hc)
    assert code == 0, err
    cid = engine.service.store.all()[0]["ID"]
    rootfs = engine.service._rootfs(cid)
    with engine.service.filesystem(cid) as root:
        assert Path(root, "data/f").read_text() == "in-volume\n"
        assert Path(root, "deep/h/a").read_text() == "bound\n"
        with pytest.raises(OSError) as refused:
            Path(root, "deep/h/new").write_text("x")
        assert refused.value.errno == errno.EROFS
    assert mounts_under(rootfs) == []
    assert not (host / "new").exists()


def test_running_container_view_is_its_root(engine: Engine) -> None:
    cid = engine.create(["sh", "-c", "echo live > /data/f; sleep 30"], {"Binds": ["livevol:/data"]})
    engine.service.start(cid)
    try:
        for _ in range(100):
            with engine.service.filesystem(cid) as root:
                if os.path.exists(os.path.join(root, "data/f")):
                    assert Path(root, "data/f").read_text() == "live\n"
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the running container's file never appeared")
    finally:
        engine.service.remove(cid, force=True, volumes=True)
