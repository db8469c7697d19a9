"""Engine API shapes against dockerd's: scripts/api_parity.py's scenario (containers of every
HostConfig kind, lists and filters, images, volumes, networks, execs, errors, events) run against
a private dockyardd and compared with the key/type skeletons it recorded from a real dockerd 20.10
(tests/data/api_shapes/), pinned to API 1.41 and unversioned (1.45: the recording carried forward
by moby's version history). Missing keys, extra keys, null vs [] vs {}, status codes, the headers
clients read and error texts all count; key order does not."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from scripts import api_parity as parity
from tests.daemon import Dockyardd, busybox_daemon, containers_removed

daemon = busybox_daemon  # the module's daemon fixture
no_leftover_children = containers_removed

RECORDED = Path(__file__).parent / "data" / "api_shapes" / "dockerd-20.10-v1.41.json"


@pytest.fixture(scope="module")
def oracle() -> dict[str, parity.Step]:
    return parity.load(str(RECORDED))


def differences(oracle: dict[str, parity.Step], ours: dict[str, parity.Step]) -> list[str]:
    """Every difference that is not accepted (see api_parity.NEWER_DOCKERD and KNOWN)."""
    out = []
    for name, want in oracle.items():
        if name.startswith("events "):
            if name in ours:
                out += [f"{name}: {line}" for line in parity.diff(want.shape, ours[name].shape)
                        if not parity.accepted(name, line)]
            continue
        if name not in ours:
            out.append(f"{name}: step missing")
            continue
        out += [f"{name}: {line}" for line in parity.compare(name, want, ours[name], parity.accepted)]
    return out


def test_shapes_at_api_1_41_match_dockerd(daemon: Dockyardd, oracle: dict[str, parity.Step]) -> None:
    ours = parity.Scenario(parity.Api(str(daemon.socket), "1.41")).run()
    assert differences(oracle, ours) == []


def test_shapes_unversioned_match_dockerd_carried_to_1_45(daemon: Dockyardd,
                                                          oracle: dict[str, parity.Step]) -> None:
    ours = parity.Scenario(parity.Api(str(daemon.socket), None)).run()
    assert differences(parity.upgrade(oracle, (1, 45)), ours) == []


def test_the_comparison_sees_what_clients_break_on(oracle: dict[str, parity.Step]) -> None:
    """The checker itself: a key dropped, null for [], a changed status and header are reported."""
    name = "GET /containers/{id}/json (basic, created)"
    broken = copy.deepcopy(oracle[name])
    del broken.shape["HostConfig"]["Binds"]
    broken.shape["Mounts"] = "null"
    broken.status = 500
    broken.headers["Content-Type"] = "text/plain"
    found = parity.compare(name, oracle[name], broken)
    assert "status: oracle 200 vs ours 500" in found
    assert ".HostConfig.Binds: missing (oracle: null)" in found
    assert ".Mounts: type oracle array vs ours null" in found
    assert any(line.startswith("header Content-Type") for line in found)


def test_recorded_inspect_has_dockerds_keys(oracle: dict[str, parity.Step]) -> None:
    """The recording holds what the comparison relies on (a regenerated one must too)."""
    created = oracle["GET /containers/{id}/json (basic, created)"].shape
    assert {"GraphDriver", "Platform", "HostConfig", "NetworkSettings", "Mounts"} <= set(created)
    assert created["HostConfig"]["Binds"] == "null" and created["HostConfig"]["MaskedPaths"] == ["string"]
    assert oracle["POST /containers/{id}/start (running)"].status == 304
    assert oracle["DELETE /containers/{id} (running)"].status == 409


def test_commit_keeps_the_container_and_its_config_for_older_clients(daemon: Dockyardd) -> None:
    """dockerd's commit records the container and its config: image inspect shows them up to API
    1.44 (docker-py's default, whose commit test reads them) and no more from 1.45."""
    status, _, body = daemon.request("POST", "/containers/create", json.dumps(
        {"Image": "busybox", "Cmd": ["touch", "/x"]}).encode(), {"Content-Type": "application/json"})
    assert status == 201, body
    cid = json.loads(body)["Id"]
    status, _, body = daemon.request("POST", f"/commit?container={cid}&repo=shapes-commit&tag=1")
    assert status == 201, body
    try:
        old = json.loads(daemon.request("GET", "/v1.44/images/shapes-commit:1/json")[2])
        assert old["Container"] == cid and old["ContainerConfig"]["Image"] == "busybox"
        assert old["ContainerConfig"]["Cmd"] == ["touch", "/x"] and old["ContainerConfig"]["Tty"] is False
        new = json.loads(daemon.request("GET", "/v1.45/images/shapes-commit:1/json")[2])
        assert "Container" not in new and "ContainerConfig" not in new
    finally:
        daemon.request("DELETE", "/images/shapes-commit:1")
        daemon.request("DELETE", f"/containers/{cid}")


def test_sizes_count_the_image_in_size_rootfs(daemon: Dockyardd) -> None:
    """size=1: SizeRootFs is the writable layer plus the image's layers, in the list and in inspect."""
    status, _, body = daemon.request("POST", "/containers/create?name=shapes-size", json.dumps(
        {"Image": "busybox", "Cmd": ["true"]}).encode(), {"Content-Type": "application/json"})
    assert status == 201, body
    try:
        image_size = json.loads(daemon.request("GET", "/images/busybox/json")[2])["Size"]
        listed = json.loads(daemon.request("GET", "/containers/json?all=1&size=1")[2])
        entry = next(c for c in listed if c["Names"] == ["/shapes-size"])
        assert entry["SizeRootFs"] == entry.get("SizeRw", 0) + image_size
        inspected = json.loads(daemon.request("GET", "/containers/shapes-size/json?size=1")[2])
        assert inspected["SizeRootFs"] == inspected["SizeRw"] + image_size
    finally:
        daemon.request("DELETE", "/containers/shapes-size")
