"""Fixtures for the container engine tests: one busybox image store per session, a fresh
ContainerService per test whose containers are all force-removed afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.containers import ContainerService
from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.image.store import ImageStore
from tests.conftest import TEST_CGROUP_PARENT


@pytest.fixture(scope="session")
def image_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageStore]:
    store = ImageStore(str(tmp_path_factory.mktemp("engine-images")))
    bootstrap_busybox(store)
    yield store
    store.close()


class Engine:
    """A ContainerService plus helpers to create containers in the test cgroup."""

    def __init__(self, data_root: str, exec_root: str, images: ImageStore) -> None:
        self.data_root, self.exec_root, self.images = data_root, exec_root, images
        self.service = ContainerService(data_root, images, exec_root)

    def body(self, cmd: list[str] | None, host_config: dict[str, Any] | None = None, **config: Any) -> dict:
        hc = {"CgroupParent": TEST_CGROUP_PARENT, **(host_config or {})}
        return {"Image": "busybox", **({"Cmd": cmd} if cmd is not None else {}), **config, "HostConfig": hc}

    def create(self, cmd: list[str] | None, host_config: dict[str, Any] | None = None, name: str | None = None,
               **config: Any) -> str:
        return self.service.create(self.body(cmd, host_config, **config), name=name)

    def run(self, cmd: list[str], host_config: dict[str, Any] | None = None, **config: Any) -> tuple[int, str, str]:
        """Create, start, wait: (exit code, stdout, stderr)."""
        cid = self.create(cmd, host_config, **config)
        self.service.start(cid)
        code = self.service.wait(cid, timeout=60)["StatusCode"]
        out = {"stdout": b"", "stderr": b""}
        for stream, data in self.service.logs(cid):
            out[stream] += data
        return code, out["stdout"].decode(), out["stderr"].decode()

    def reopen(self) -> ContainerService:
        """Simulate a daemon restart: a new service on the same roots."""
        self.service.close()
        self.service = ContainerService(self.data_root, self.images, self.exec_root)
        return self.service

    def cleanup(self) -> None:
        service = ContainerService(self.data_root, self.images, self.exec_root) if self.service._closed \
            else self.service
        for record in service.store.all():
            service.remove(record["ID"], force=True)
        service.close()


@pytest.fixture
def engine(tmp_path: Path, image_store: ImageStore) -> Iterator[Engine]:
    exec_root = tempfile.mkdtemp(prefix="dy", dir="/tmp")  # short: shim sockets live there
    e = Engine(str(tmp_path / "data"), exec_root, image_store)
    try:
        yield e
    finally:
        try:
            e.cleanup()
        finally:
            shutil.rmtree(exec_root, ignore_errors=True)
