"""docker-py against a private dockyardd: behaviours docker-py's own integration suite relies on
(scripts/dockerpy_suite.py runs that suite), each checked here the way the suite uses it."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from tests.daemon import Dockyardd
from tests.daemon import busybox_daemon as daemon  # noqa: F401
from tests.daemon import containers_removed as no_leftover_children  # noqa: F401


@pytest.fixture
def api(daemon: Dockyardd) -> Iterator[docker.APIClient]:  # noqa: F811
    client = docker.APIClient(base_url=daemon.host, timeout=60)
    try:
        yield client
    finally:
        client.close()


def test_wait_returns_on_exit_of_a_restarting_container(api: docker.APIClient) -> None:
    """`wait` (not-running) returns at the exit even when a restart policy runs the container
    again, as dockerd's; removing it then needs force."""
    cid = api.create_container("busybox", ["sleep", "1"], host_config=api.create_host_config(
        restart_policy={"Name": "always"}, network_mode="none"))["Id"]
    api.start(cid)
    assert api.wait(cid, timeout=30)["StatusCode"] == 0
    with pytest.raises(docker.errors.APIError, match="(?i)stop the container before"):
        api.remove_container(cid)
    api.remove_container(cid, force=True)
