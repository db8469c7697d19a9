"""docker-py against a private dockyardd: behaviours docker-py's own integration suite relies on
(scripts/dockerpy_suite.py runs that suite), each checked here the way the suite uses it."""

from __future__ import annotations

import contextlib
import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import websocket

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


@pytest.fixture
def running(api: docker.APIClient) -> Iterator[str]:
    """A running busybox `cat` with stdin open."""
    cid = api.create_container("busybox", "cat", stdin_open=True, host_config=api.create_host_config(
        network_mode="none"))["Id"]
    api.start(cid)
    try:
        yield cid
    finally:
        api.remove_container(cid, force=True)


def test_exec_start_frames_output_unless_the_start_request_says_tty(api: docker.APIClient, running: str) -> None:
    """Whether exec output is multiplexed follows the start request's Tty, not the exec's:
    docker-py's exec_start(tty=False) of a tty exec reads 8-byte frames."""
    cmd = ["sh", "-c", "echo hello out; echo hello err >&2"]
    framed = api.exec_create(running, cmd, tty=True)
    assert api.exec_start(framed) == b"hello out\r\nhello err\r\n"
    assert api.exec_start(api.exec_create(running, cmd, tty=True), tty=True) == b"hello out\r\nhello err\r\n"
    assert api.exec_start(api.exec_create(running, cmd), demux=True) == (b"hello out\n", b"hello err\n")


def test_exec_detach_keys_in_lower_camel_case(api: docker.APIClient, running: str) -> None:
    """docker-py sends `detachKeys` (Go's decoder matches field names case-insensitively): the
    exec's own keys detach the client, whose connection then ends."""
    exec_id = api.exec_create(running, "cat", stdin=True, tty=True, detach_keys="ctrl-p")
    sock = api.exec_start(exec_id, tty=True, socket=True)
    try:
        raw = sock._sock
        raw.settimeout(10)
        raw.sendall(b"\x10")
        while raw.recv(128):  # (a socket timeout if the keys did not detach)
            pass
    finally:
        sock.close()
    assert api.exec_inspect(exec_id)["Running"] is True  # it runs on, tracked to its exit


def test_exec_runs_on_after_its_client_goes_away(api: docker.APIClient, running: str) -> None:
    """An exec whose client closed the connection keeps running and gets its exit code."""
    exec_id = api.exec_create(running, ["sh", "-c", "sleep 1; seq 100000; exit 3"])
    sock = api.exec_start(exec_id, socket=True)
    sock._sock.shutdown(socket.SHUT_RDWR)  # the connection itself (docker-py's response holds the socket)
    sock.close()
    deadline = time.monotonic() + 30
    while api.exec_inspect(exec_id)["ExitCode"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.exec_inspect(exec_id)["ExitCode"] == 3


def test_log_driver_none_and_unknown_drivers(daemon: Dockyardd, api: docker.APIClient) -> None:  # noqa: F811
    """The `none` log driver keeps no log (docker-py's run() then returns None; reading logs is a
    501); an unknown driver is refused with dockerd's text."""
    client = daemon.client()
    try:
        assert client.containers.run("busybox", "echo hello", log_config={"type": "none"}, remove=True) is None
        assert client.containers.run("busybox", "echo hello", log_config={"type": "json-file"}, remove=True) \
            == b"hello\n"
    finally:
        client.close()
    cid = api.create_container("busybox", "true", host_config=api.create_host_config(
        log_config={"Type": "none"}))["Id"]
    try:
        assert api.inspect_container(cid)["LogPath"] == ""
        with pytest.raises(docker.errors.APIError, match="does not support reading") as err:
            api.logs(cid)
        assert err.value.status_code == 501
    finally:
        api.remove_container(cid)
    with pytest.raises(docker.errors.APIError, match="logger: no log driver named 'asdf' is registered"):
        api.create_container("busybox", "true", host_config=api.create_host_config(log_config={"Type": "asdf"}))


def test_load_of_a_bad_archive_reports_in_the_stream(daemon: Dockyardd) -> None:  # noqa: F811
    """A failed load answers 200 with an error message in the JSON stream (dockerd's), which
    docker-py turns into ImageLoadError; the docker CLI still exits 1."""
    client = daemon.client()
    try:
        with pytest.raises(docker.errors.ImageLoadError):
            client.images.load(b"abc")
    finally:
        client.close()
    proc = daemon.docker("load", input=b"abc")
    assert proc.returncode == 1 and "invalid archive" in proc.stderr


def test_commit_with_changes_over_null_config_fields(api: docker.APIClient) -> None:
    """--change lines apply over config fields the container has as null (ExposedPorts here)."""
    cid = api.create_container("busybox", ["touch", "/test"], host_config=api.create_host_config(
        network_mode="none"))["Id"]
    try:
        api.start(cid)
        api.wait(cid, timeout=30)
        image = api.commit(cid, changes=["EXPOSE 8000", 'CMD ["bash"]'])["Id"]
        config = api.inspect_image(image)["Config"]
        assert "8000/tcp" in config["ExposedPorts"] and config["Cmd"] == ["bash"]
        api.remove_image(image)
    finally:
        api.remove_container(cid, force=True)


def test_commit_while_the_container_exits(api: docker.APIClient) -> None:
    """commit (pause=True) right after starting a container that exits at once never fails: a
    container found exited by the runtime's pause is committed unpaused (docker-py's test_remove)."""
    for _ in range(5):
        cid = api.create_container("busybox", "true", host_config=api.create_host_config(network_mode="none"))["Id"]
        try:
            api.start(cid)
            api.remove_image(api.commit(cid)["Id"])
        finally:
            api.remove_container(cid, force=True)


def _cache_hits(api: docker.APIClient, **kwargs: object) -> int:
    return sum("Using cache" in chunk.get("stream", "") for chunk in api.build(decode=True, **kwargs))


def test_build_cache_from_restricts_the_cache_to_those_images(api: docker.APIClient) -> None:
    """With cache_from, only those images (and their parents) serve as cache, as the classic
    builder: a missing one means no cache at all, even with local records."""
    df = b"FROM busybox\nENV FOO=bar\nRUN touch baz\nRUN touch bax\n"
    try:
        _cache_hits(api, fileobj=io.BytesIO(df), tag="cachefrom1")
        assert _cache_hits(api, fileobj=io.BytesIO(df), tag="cachefrom2", cache_from=["cachefrom1"]) == 3
        api.remove_image("cachefrom2")
        assert _cache_hits(api, fileobj=io.BytesIO(df), tag="cachefrom2", cache_from=["nosuchtag"]) == 0
        assert _cache_hits(api, fileobj=io.BytesIO(df), tag="cachefrom3") == 3
    finally:
        for tag in ("cachefrom1", "cachefrom2", "cachefrom3"):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_image(tag)


def _run_output(api: docker.APIClient, image: str, cmd: list[str]) -> bytes:
    cid = api.create_container(image, cmd, host_config=api.create_host_config(network_mode="none"))["Id"]
    try:
        api.start(cid)
        api.wait(cid, timeout=30)
        return api.logs(cid)
    finally:
        api.remove_container(cid, force=True)


def test_build_drops_ignored_dockerfile_and_dockerignore(api: docker.APIClient, tmp_path: Path) -> None:
    """The Dockerfile and .dockerignore leave an uploaded context when .dockerignore lists them
    (docker-py lists both when it adds a Dockerfile from outside the context)."""
    context, outside = tmp_path / "context", tmp_path / "outside"
    context.mkdir()
    outside.mkdir()
    (context / "file.txt").write_text("hello")
    (context / ".dockerignore").write_text(".dockerignore\nDockerfile\nignored\n")
    (context / "ignored").write_text("x")
    (context / "Dockerfile").write_text("FROM busybox\nCOPY . /src\n")
    (outside / "Dockerfile").write_text("FROM busybox\nCOPY . /src\n")
    try:
        for tag, dockerfile in (("dropignored1", None), ("dropignored2", str(outside / "Dockerfile"))):
            for _ in api.build(path=str(context), dockerfile=dockerfile, tag=tag):
                pass
            assert _run_output(api, tag, ["ls", "-A", "/src"]) == b"file.txt\n"
    finally:
        for tag in ("dropignored1", "dropignored2"):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_image(tag)


def test_build_extra_hosts(api: docker.APIClient) -> None:
    """/build's extrahosts reach the /etc/hosts of RUN steps."""
    df = b"FROM busybox\nRUN ping -c1 -W2 extrahost.local.test\nRUN cp /etc/hosts /hosts-file\n"
    try:
        for chunk in api.build(fileobj=io.BytesIO(df), tag="extrahosts", decode=True,
                               extra_hosts={"extrahost.local.test": "127.0.0.1", "hello.world.test": "127.0.0.1"}):
            assert "errorDetail" not in chunk, chunk
        hosts = _run_output(api, "extrahosts", ["cat", "/hosts-file"]).decode()
        assert "127.0.0.1\textrahost.local.test" in hosts and "127.0.0.1\thello.world.test" in hosts
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image("extrahosts")


def test_build_on_a_user_defined_network(api: docker.APIClient) -> None:
    """network_mode of a build naming a user-defined network: RUN steps run there as containers
    do (an address, the embedded DNS resolving the network's aliases, extra hosts in /etc/hosts),
    and nothing of them stays on the network; an unknown network is a 404."""
    network = api.create_network("buildnet")["Id"]
    target = api.create_container("busybox", ["sleep", "60"])["Id"]
    df = (b"FROM busybox\nRUN ping -c1 -W2 pingtarget.docker && ping -c1 -W2 extrahost.test\n"
          b"RUN grep -c 127.0.0.11 /etc/resolv.conf\n")
    try:
        api.start(target)
        api.connect_container_to_network(target, network, aliases=["pingtarget.docker"])
        chunks = list(api.build(fileobj=io.BytesIO(df), network_mode="buildnet", nocache=True, tag="buildnet",
                                extra_hosts={"extrahost.test": "127.0.0.1"}, decode=True))
        assert not [c for c in chunks if "errorDetail" in c], chunks
        assert {"stream": "1\n"} in chunks
        assert list(api.inspect_network(network)["Containers"]) == [target]
        with pytest.raises(docker.errors.APIError, match="network nosuchnet not found"):
            list(api.build(fileobj=io.BytesIO(df), network_mode="nosuchnet", decode=True))
    finally:
        api.remove_container(target, force=True)
        api.remove_network(network)
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image("buildnet")


def test_build_colours_stderr_of_run_steps(api: docker.APIClient) -> None:
    """A RUN step's stderr reaches the build stream in red, as the classic builder sends it."""
    df = b"FROM busybox\nRUN echo out; echo Ancient Temple >&2\n"
    streams = [chunk.get("stream") for chunk in api.build(fileobj=io.BytesIO(df), decode=True, nocache=True)]
    assert "\x1b[91mAncient Temple\n\x1b[0m" in streams and "out\n" in streams
    api.prune_images(filters={"dangling": True})


def test_prune_containers_reports_the_space_reclaimed(api: docker.APIClient) -> None:
    """SpaceReclaimed counts the removed containers' writable layers."""
    cid = api.create_container("busybox", ["sh", "-c", "echo hello > /data.txt"],
                               host_config=api.create_host_config(network_mode="none"))["Id"]
    api.start(cid)
    api.wait(cid, timeout=30)
    result = api.prune_containers()
    assert cid in result["ContainersDeleted"] and result["SpaceReclaimed"] > 0


def test_container_wide_mac_address(api: docker.APIClient) -> None:
    """The deprecated Config.MacAddress (docker-py's mac_address) becomes the main network's."""
    mac = "02:42:ac:11:00:0a"
    cid = api.create_container("busybox", ["sleep", "60"], mac_address=mac)["Id"]
    try:
        api.start(cid)
        assert api.inspect_container(cid)["NetworkSettings"]["MacAddress"] == mac
        assert mac in api.exec_start(api.exec_create(cid, ["cat", "/sys/class/net/eth0/address"])).decode()
    finally:
        api.remove_container(cid, force=True)


def test_attach_before_start_sees_all_output(api: docker.APIClient) -> None:
    """An attach (stream, logs) answered with its 101 is registered already: a start right after
    it cannot run the process before the attach is connected (docker-py's attach_socket, then start)."""
    line = b"hi there and stuff"
    for _ in range(5):
        cid = api.create_container("busybox", ["printf", line.decode()], host_config=api.create_host_config(
            network_mode="none"))["Id"]
        sock = api.attach_socket(cid, {"stdout": 1, "stream": 1, "logs": 1})
        try:
            api.start(cid)
            raw = sock._sock
            raw.settimeout(10)
            data = b""
            while chunk := raw.recv(4096):
                data += chunk
            assert data == b"\x01\x00\x00\x00" + len(line).to_bytes(4, "big") + line
        finally:
            sock.close()
            api.remove_container(cid, force=True)


def test_attach_logs_right_after_the_head(api: docker.APIClient) -> None:
    """attach(stream=False, logs=True) of an exited container: the log replay follows the 101 head
    only once docker-py has read the head (it reads the head buffered, then the raw socket, and
    would lose replay bytes that came with it)."""
    for _ in range(20):
        cid = api.create_container("busybox", "echo hello", host_config=api.create_host_config(
            network_mode="none"))["Id"]
        try:
            api.start(cid)
            api.wait(cid, condition="not-running", timeout=30)
            assert api.attach(cid, stream=False, logs=True) == b"hello\n"
        finally:
            api.remove_container(cid, force=True)


def test_volume_subpath_mount(api: docker.APIClient) -> None:
    """A volume mount with a subpath shows only that directory of the volume; a subpath leaving
    the volume is refused, and one reached through a symlink stays inside the volume."""
    volume = api.create_volume()["Name"]
    cids = []

    def run(cmd: str, **hc: object) -> bytes:
        cid = api.create_container("busybox", ["sh", "-c", cmd], host_config=api.create_host_config(
            network_mode="none", **hc))["Id"]
        cids.append(cid)
        api.start(cid)
        assert api.wait(cid, timeout=30)["StatusCode"] == 0, api.logs(cid)
        return api.logs(cid)

    try:
        run("mkdir -p /vol/subdir && echo test content > /vol/subdir/testfile.txt && ln -s / /vol/escape",
            binds=[f"{volume}:/vol"])
        sub = docker.types.Mount("/mnt", volume, type="volume", read_only=True, subpath="subdir")
        assert run("cat /mnt/testfile.txt; ls /mnt", mounts=[sub]) == b"test content\ntestfile.txt\n"
        escape = docker.types.Mount("/mnt", volume, type="volume", subpath="escape")
        assert run("ls /mnt", mounts=[escape]).split() == [b"escape", b"subdir"]  # the volume's root
        with pytest.raises(docker.errors.APIError, match="subpath must be a relative path within the volume"):
            api.create_container("busybox", "true", host_config=api.create_host_config(
                mounts=[docker.types.Mount("/mnt", volume, type="volume", subpath="../x")]))
    finally:
        for cid in cids:
            api.remove_container(cid, force=True)
        api.remove_volume(volume)


def _websocket(daemon: Dockyardd, path: str) -> websocket.WebSocket:  # noqa: F811
    """A WebSocket to path on daemon's unix socket (websocket-client, as docker-py's ws=True uses)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(str(daemon.socket))
    return websocket.create_connection(f"ws://localhost{path}", socket=sock, timeout=10)


def test_attach_websocket_carries_raw_output_and_input(daemon: Dockyardd, api: docker.APIClient) -> None:  # noqa: F811
    """GET /containers/{id}/attach/ws: a WebSocket whose binary messages carry the output unframed
    (no tty: stdout and stderr as written), logs=1 replaying what was logged; the client's
    messages reach stdin, and the socket closes when the container exits."""
    cid = api.create_container("busybox", ["sh", "-c", "echo ready; read line; echo got $line >&2"],
                               stdin_open=True, host_config=api.create_host_config(network_mode="none"))["Id"]
    try:
        api.start(cid)
        deadline = time.monotonic() + 10
        while b"ready" not in api.logs(cid) and time.monotonic() < deadline:
            time.sleep(0.05)
        ws = _websocket(daemon, f"/v1.45/containers/{cid}/attach/ws?logs=1&stream=1&stdin=1&stdout=1&stderr=1")
        try:
            assert ws.recv() == b"ready\n"  # replayed from the log, unframed
            ws.send_binary(b"hello\n")
            received = b""
            with contextlib.suppress(websocket.WebSocketConnectionClosedException):
                while message := ws.recv():
                    received += message
            assert received == b"got hello\n"
        finally:
            ws.close()
        assert api.wait(cid, timeout=30)["StatusCode"] == 0
    finally:
        api.remove_container(cid, force=True)


def test_attach_websocket_tty_before_start(daemon: Dockyardd, api: docker.APIClient) -> None:  # noqa: F811
    """docker-py's attach_socket(ws=True) before start: the stream is connected at the start, and a
    missing container is a 404 before any upgrade."""
    cid = api.create_container("busybox", ["printf", "words!"], tty=True,
                               host_config=api.create_host_config(network_mode="none"))["Id"]
    try:
        ws = _websocket(daemon, f"/containers/{cid}/attach/ws?stream=1&stdout=1")
        try:
            api.start(cid)
            assert ws.recv() == b"words!"
        finally:
            ws.close()
    finally:
        api.remove_container(cid, force=True)
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        _websocket(daemon, "/containers/nosuchcontainer/attach/ws?stream=1&stdout=1")
    assert err.value.status_code == 404


def test_create_container_runtime_beside_the_config(api: docker.APIClient) -> None:
    """docker-py's create_container(runtime=) sends Runtime beside the Config's fields, not in
    HostConfig: it is the container's runtime, and an unknown one is refused."""
    runtime = next(name for name in api.info()["Runtimes"] if name != api.info()["DefaultRuntime"])
    cid = api.create_container("busybox", ["true"], runtime=runtime)["Id"]
    try:
        assert api.inspect_container(cid)["HostConfig"]["Runtime"] == runtime
        assert "Runtime" not in api.inspect_container(cid)["Config"]
    finally:
        api.remove_container(cid, force=True)
    with pytest.raises(docker.errors.APIError, match="unknown or invalid runtime name: nosuch"):
        api.create_container("busybox", ["true"], runtime="nosuch")
