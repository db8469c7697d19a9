"""docker-py against a private dockyardd: its volume API calls and models, and containers with
binds, Mount objects, tmpfs and volumes_from, checked as docker-py's own integration tests check
them."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.types import Mount

# fixtures: busybox as a save archive and a rootfs tar; the leftover-children check minus the daemon
from tests.daemon import (
    Dockyardd,
    daemon_children_only,  # noqa: F401 (fixture)
)
from tests.test_api_images import archives  # noqa: F401
from tests.test_volumes import volume_daemon


@pytest.fixture(scope="module")
def daemon(archives: dict[str, Path]) -> Iterator[Dockyardd]:  # noqa: F811
    with volume_daemon(archives) as d:
        yield d


@pytest.fixture
def client(daemon: Dockyardd) -> Iterator[docker.DockerClient]:
    c = daemon.client()
    try:
        yield c
    finally:
        for container in c.containers.list(all=True):
            container.remove(force=True, v=True)
        c.volumes.prune(filters={"all": "true"})
        c.close()


@pytest.fixture
def host_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dyv-", dir="/tmp"))
    (path / "shared.txt").write_text("from host\n")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def random_name() -> str:
    return "dockerpy" + uuid.uuid4().hex[:12]


def test_api_create_list_inspect_remove(client: docker.DockerClient) -> None:
    api = client.api
    name = random_name()
    volume = api.create_volume(name, labels={"a": "b"})
    assert volume["Name"] == name and volume["Driver"] == "local" and volume["Labels"] == {"a": "b"}
    assert volume in api.volumes()["Volumes"]
    assert api.inspect_volume(name) == volume
    assert [v["Name"] for v in api.volumes(filters={"name": name})["Volumes"]] == [name]
    api.remove_volume(name)
    with pytest.raises(docker.errors.NotFound):
        api.inspect_volume(name)
    with pytest.raises(docker.errors.NotFound):
        api.remove_volume(name)
    api.create_volume(name)
    api.remove_volume(name, force=True)  # (docker-py drops the force parameter: the volume must exist)
    with pytest.raises(docker.errors.NotFound):
        api.create_volume(random_name(), driver="invaliddriver")


def test_api_prune_removes_unnamed_ones(client: docker.DockerClient) -> None:
    api = client.api
    anonymous = api.create_volume()
    named = api.create_volume(random_name())
    result = api.prune_volumes()
    assert anonymous["Name"] in result["VolumesDeleted"] and named["Name"] not in result["VolumesDeleted"]
    assert named["Name"] in api.prune_volumes(filters={"all": "true"})["VolumesDeleted"]


def test_models(client: docker.DockerClient) -> None:
    volume = client.volumes.create(random_name(), driver="local", labels={"foo": "bar"})
    assert volume.attrs["Labels"] == {"foo": "bar"} and volume.id == volume.name
    assert volume.name in [v.name for v in client.volumes.list()]
    assert client.volumes.get(volume.name).attrs == volume.attrs
    volume.reload()
    user = client.containers.create("busybox", "true", volumes={volume.name: {"bind": "/data", "mode": "rw"}})
    with pytest.raises(docker.errors.APIError) as conflict:
        volume.remove()
    assert conflict.value.response.status_code == 409 and "volume is in use" in str(conflict.value)
    user.remove(v=True)
    volume.remove()
    assert volume.name not in [v.name for v in client.volumes.list()]


def _mount(client: docker.DockerClient, container_id: str, destination: str) -> dict:
    (found,) = [m for m in client.api.inspect_container(container_id)["Mounts"] if m["Destination"] == destination]
    return found


def test_binds_rw_and_ro(client: docker.DockerClient, host_dir: Path) -> None:
    api = client.api
    for mode, rw in (("rw", True), ("ro", False)):
        host_config = api.create_host_config(binds={str(host_dir): {"bind": "/mnt", "mode": mode}})
        container = api.create_container("busybox", ["ls", "/mnt"], host_config=host_config)
        api.start(container)
        assert api.wait(container)["StatusCode"] == 0
        assert b"shared.txt" in api.logs(container)
        point = _mount(client, container["Id"], "/mnt")
        assert point["Source"] == str(host_dir) and point["RW"] is rw and point["Propagation"] == "rprivate"
        api.remove_container(container)


def test_mount_objects(client: docker.DockerClient, host_dir: Path) -> None:
    api = client.api
    bind = Mount("/bind", str(host_dir), type="bind", read_only=True, propagation="rslave")
    named = random_name()
    volume = Mount("/vol", named, type="volume", labels={"com.dockerpy.test": "true"})
    tmpfs = Mount("/tmp1", None, type="tmpfs", tmpfs_size=1 << 20, tmpfs_mode=0o1777)
    container = api.create_container("busybox", ["sh", "-c", "cat /bind/shared.txt; stat -c %a /tmp1"],
                                     host_config=api.create_host_config(mounts=[bind, volume, tmpfs]))
    api.start(container)
    assert api.wait(container)["StatusCode"] == 0
    assert api.logs(container) == b"from host\n1777\n"
    assert _mount(client, container["Id"], "/bind")["RW"] is False
    assert _mount(client, container["Id"], "/bind")["Propagation"] == "rslave"
    point = _mount(client, container["Id"], "/vol")
    assert point["Name"] == named and point["RW"] is True and point["Driver"] == "local"
    assert api.inspect_volume(named)["Labels"] == {"com.dockerpy.test": "true"}
    api.remove_container(container, v=True)
    assert api.inspect_volume(named)["Name"] == named  # named volumes survive `v`


def test_tmpfs_and_volumes_from(client: docker.DockerClient) -> None:
    api = client.api
    source = api.create_container("busybox", "true", volumes=["/data"],
                                  host_config=api.create_host_config(tmpfs={"/tmp1": "size=1m"}))
    user = api.create_container("busybox", ["sh", "-c", "touch /data/x && grep -c /tmp1 /proc/mounts"],
                                host_config=api.create_host_config(volumes_from=[source["Id"]],
                                                                   tmpfs={"/tmp1": ""}))
    api.start(user)
    assert api.wait(user)["StatusCode"] == 0 and api.logs(user) == b"1\n"
    anonymous = _mount(client, source["Id"], "/data")["Name"]
    assert _mount(client, user["Id"], "/data")["Name"] == anonymous
    api.remove_container(user, v=True)
    api.remove_container(source, v=True)
    with pytest.raises(docker.errors.NotFound):
        api.inspect_volume(anonymous)
