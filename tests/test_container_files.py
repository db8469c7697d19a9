"""docker cp (both directions), diff, export and commit against dockyardd, with the real docker
CLI, docker-py and the dockyard CLI on a private daemon (tests/daemon.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

from tests.daemon import Dockyardd
from tests.test_api_containers import daemon, no_leftover_children, ok, pytestmark  # noqa: F401
from tests.test_cli import DOCKYARD, dy

SETUP = "mkdir -p /d/sub; echo hi > /d/f; echo deep > /d/sub/g; ln -s /etc /d/l; ln -s ../../etc/passwd /tmp/rel"


def test_archive_api(daemon: Dockyardd) -> None:  # noqa: F811
    ok(daemon, "run", "--name", "arch", "busybox", "sh", "-c", SETUP)  # stopped: its rootfs is mounted per call
    status, headers, _ = daemon.request("HEAD", "/v1.45/containers/arch/archive?path=/d/f")
    stat = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert status == 200 and stat["name"] == "f" and stat["size"] == 3 and stat["mode"] == 0o644
    assert stat["linkTarget"] == "" and stat["mtime"].endswith("Z")
    stat = json.loads(base64.b64decode(daemon.request("HEAD", "/containers/arch/archive?path=/d")[1][
        "X-Docker-Container-Path-Stat"]))
    assert stat["mode"] == (1 << 31) | 0o755
    for path, target in (("/d/l", "/etc"), ("/tmp/rel", "/etc/passwd")):
        stat = json.loads(base64.b64decode(daemon.request("HEAD", f"/containers/arch/archive?path={path}")[1][
            "X-Docker-Container-Path-Stat"]))
        assert stat["mode"] & (1 << 27) and stat["linkTarget"] == target, stat
    status, _, body = daemon.request("HEAD", "/containers/arch/archive?path=/nosuch")
    assert status == 404
    status, _, body = daemon.request("GET", "/containers/arch/archive?path=/nosuch")
    assert status == 404 and json.loads(body)["message"] == "Could not find the file /nosuch in container arch"
    status, headers, body = daemon.request("GET", "/containers/arch/archive?path=/d")
    assert status == 200 and headers["Content-Type"] == "application/x-tar"
    names = tarfile.open(fileobj=io.BytesIO(body)).getnames()
    assert sorted(names) == ["d", "d/f", "d/l", "d/sub", "d/sub/g"]
    # a symlink in the middle is followed inside the container: /d/l/passwd is the container's /etc/passwd
    body = daemon.request("GET", "/containers/arch/archive?path=/d/l/passwd")[2]
    member = tarfile.open(fileobj=io.BytesIO(body)).extractfile("passwd")
    assert member is not None and member.read().startswith(b"root:")
    # hostile tars are refused and write nothing outside the target
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../../../../../../tmp/dockyard-evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    status, _, body = daemon.request("PUT", "/containers/arch/archive?path=/d", evil.getvalue())
    assert status == 400 and not os.path.exists("/tmp/dockyard-evil"), body
    status, _, body = daemon.request("PUT", "/containers/arch/archive?path=/d/f", evil.getvalue())
    assert status == 400 and json.loads(body)["message"] == "extraction point is not a directory"
    replace = io.BytesIO()
    with tarfile.open(fileobj=replace, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("sub"), io.BytesIO(b""))
    status, _, body = daemon.request("PUT", "/containers/arch/archive?path=/d&noOverwriteDirNonDir=true",
                                     replace.getvalue())
    assert status == 400 and "cannot overwrite directory" in json.loads(body)["message"]
    container = daemon.client().containers.get("arch")
    assert container.put_archive("/tmp", _tar({"py.txt": b"from python"}))
    bits, stat = container.get_archive("/tmp/py.txt")
    assert stat["name"] == "py.txt" and b"from python" in b"".join(bits)
    deadline = time.monotonic() + 5  # the daemon unmounts the stopped container's rootfs after the reply
    while [line for line in open("/proc/self/mountinfo") if container.id in line] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [line for line in open("/proc/self/mountinfo") if container.id in line]


def test_archive_read_only_and_bind_mounts(daemon: Dockyardd, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "inside").write_text("from the host\n")
    ok(daemon, "create", "--name", "binds", "--read-only", "-v", f"{tmp_path / 'rw'}:/mnt/rw",
       "-v", f"{tmp_path / 'ro'}:/mnt/ro:ro", "busybox")
    data = _tar({"new.txt": b"copied"})
    status, _, body = daemon.request("PUT", "/containers/binds/archive?path=/tmp", data)
    assert status == 400 and json.loads(body)["message"] == "container rootfs is marked read-only"
    status, _, body = daemon.request("PUT", "/containers/binds/archive?path=/mnt/ro", data)
    assert status == 400 and json.loads(body)["message"] == "mounted volume is marked read-only"
    assert daemon.request("PUT", "/containers/binds/archive?path=/mnt/rw", data)[0] == 200
    assert (tmp_path / "rw" / "new.txt").read_bytes() == b"copied"  # written through the bind mount
    body = daemon.request("GET", "/containers/binds/archive?path=/mnt/rw")[2]
    assert sorted(tarfile.open(fileobj=io.BytesIO(body)).getnames()) == ["rw", "rw/new.txt"]
    body = daemon.request("GET", "/containers/binds/archive?path=/mnt/ro/inside")[2]
    member = tarfile.open(fileobj=io.BytesIO(body)).extractfile("inside")
    assert member is not None and member.read() == b"from the host\n"
    # a symlink inside a bind-mounted directory resolves inside it, never on the host
    (tmp_path / "rw" / "esc").symlink_to("/etc")
    status, _, body = daemon.request("GET", "/containers/binds/archive?path=/mnt/rw/esc/hostname")
    assert status == 404, body
    status, headers, _ = daemon.request("HEAD", "/containers/binds/archive?path=/mnt/rw/esc")
    stat = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert stat["linkTarget"] == "/mnt/rw/etc"


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.uid = 1234
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_cp_both_directions(daemon: Dockyardd, tmp_path: Path) -> None:  # noqa: F811
    ok(daemon, "run", "-d", "--name", "cpc", "busybox", "sh", "-c", SETUP + "; exec sleep 1000")
    ok(daemon, "exec", "cpc", "true")
    (tmp_path / "h.txt").write_text("hello\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_text("x\n")
    for tool, run in (("docker", daemon.docker), ("dockyard", lambda *a: dy(daemon, *a))):
        out = tmp_path / tool
        out.mkdir()
        assert run("cp", "cpc:/d", str(out)).returncode == 0
        assert (out / "d" / "sub" / "g").read_text() == "deep\n" and os.readlink(out / "d" / "l") == "/etc"
        assert run("cp", "cpc:/d/f", str(out / "renamed")).returncode == 0
        assert (out / "renamed").read_text() == "hi\n"
        assert run("cp", "cpc:/d/.", str(out / "contents")).returncode == 0
        assert sorted(os.listdir(out / "contents")) == ["f", "l", "sub"]
        assert run("cp", "-L", "cpc:/tmp/rel", str(out / "passwd")).returncode == 0
        assert (out / "passwd").read_text().startswith("root:")
        proc = run("cp", "cpc:/nosuch", str(out))
        assert proc.returncode == 1 and "Could not find the file /nosuch in container cpc" in proc.stderr
        assert run("cp", str(tmp_path / "h.txt"), f"cpc:/tmp/{tool}.txt").returncode == 0
        assert run("cp", str(tmp_path / "dir"), f"cpc:/tmp/{tool}-dir").returncode == 0
        assert run("cp", str(tmp_path / "dir"), "cpc:/tmp/").returncode == 0
        assert ok(daemon, "exec", "cpc", "cat", f"/tmp/{tool}.txt", f"/tmp/{tool}-dir/x", "/tmp/dir/x") == \
            "hello\nx\nx\n"
        assert ok(daemon, "exec", "cpc", "stat", "-c", "%u %s", f"/tmp/{tool}.txt") == "0 6\n"
        proc = run("cp", str(tmp_path / "h.txt"), "cpc:/nosuchdir/")
        assert proc.returncode == 1
        proc = run("cp", str(tmp_path / "dir"), "cpc:/d/f")
        assert proc.returncode == 1 and "cannot copy directory" in proc.stderr
        proc = run("cp", "a", "b")
        assert proc.returncode == 1 and "must specify at least one container source" in proc.stderr
        piped = subprocess.run(["tar", "-C", str(tmp_path), "-c", "h.txt"], capture_output=True, check=True).stdout
        env = daemon.env()
        argv = ["docker"] if tool == "docker" else [DOCKYARD, "-H", daemon.host]
        assert subprocess.run([*argv, "cp", "-", "cpc:/d/sub"], input=piped, env=env).returncode == 0
        tar = subprocess.run([*argv, "cp", "cpc:/d/sub/h.txt", "-"], capture_output=True, env=env).stdout
        assert tarfile.open(fileobj=io.BytesIO(tar)).getnames() == ["h.txt"]
    assert ok(daemon, "exec", "cpc", "cat", "/tmp/docker.txt", "/tmp/dockyard.txt") == "hello\nhello\n"
    assert ok(daemon, "exec", "cpc", "cat", "/tmp/docker-dir/x", "/tmp/dockyard-dir/x", "/tmp/dir/x") == "x\nx\nx\n"


def test_diff_export_commit(daemon: Dockyardd, tmp_path: Path) -> None:  # noqa: F811
    ok(daemon, "run", "--name", "chg", "busybox", "sh", "-c", "touch /tmp/new; rm /bin/ls; echo >> /etc/passwd")
    expected = "C /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nC /tmp\nA /tmp/new\n"
    assert ok(daemon, "diff", "chg") == expected == dy(daemon, "diff", "chg").stdout
    assert daemon.client().containers.get("chg").diff() == [
        {"Path": "/bin", "Kind": 0}, {"Path": "/bin/ls", "Kind": 2}, {"Path": "/etc", "Kind": 0},
        {"Path": "/etc/passwd", "Kind": 0}, {"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/new", "Kind": 1}]
    ok(daemon, "export", "-o", str(tmp_path / "docker.tar"), "chg")
    assert dy(daemon, "export", "-o", str(tmp_path / "dockyard.tar"), "chg").returncode == 0
    for name in ("docker.tar", "dockyard.tar"):
        names = tarfile.open(tmp_path / name).getnames()
        assert "tmp/new" in names and "bin/sh" in names and "bin/ls" not in names
    image = ok(daemon, "commit", "-c", "ENV X=1", "-m", "msg", "-a", "me", "chg", "committed:1").strip()
    assert image.startswith("sha256:")
    info = json.loads(ok(daemon, "image", "inspect", "committed:1"))[0]
    assert info["Comment"] == "msg" and info["Author"] == "me" and "X=1" in info["Config"]["Env"]
    assert ok(daemon, "run", "--rm", "committed:1", "sh", "-c", "ls /tmp; ls /bin/ls 2>&1; echo $X") == \
        "new\nls: /bin/ls: No such file or directory\n1\n"
    ours = dy(daemon, "commit", "--change", "CMD [\"echo\", \"ours\"]", "chg", "committed:2")
    assert ours.returncode == 0 and ours.stdout.startswith("sha256:")
    assert ok(daemon, "run", "--rm", "committed:2") == "ours\n"
    ok(daemon, "run", "-d", "--name", "live", "busybox", "sh", "-c", "echo live > /live; exec sleep 1000")
    image = daemon.client().containers.get("live").commit(repository="committed", tag="3",
                                                          conf={"Env": ["Z=9"], "Cmd": ["cat", "/live"]})
    assert ok(daemon, "run", "--rm", "committed:3") == "live\n"
    assert image.id.startswith("sha256:") and "Z=9" in image.attrs["Config"]["Env"]
    assert any(e.startswith("PATH=") for e in image.attrs["Config"]["Env"])  # merged with the container's
    assert ok(daemon, "inspect", "-f", "{{.State.Status}}", "live").strip() == "running"  # paused, then not
    proc = daemon.docker("commit", "-c", "FOO bar", "chg")
    assert proc.returncode == 1 and "foo is not a valid change command" in proc.stderr
    proc = daemon.docker("commit", "nosuch")
    assert proc.returncode == 1 and "No such container: nosuch" in proc.stderr
    ok(daemon, "rm", "-f", "live", "chg")
    ok(daemon, "rmi", "committed:1", "committed:2", "committed:3")


def test_open_in_root_stays_inside(tmp_path: Path) -> None:
    """Symlinks and '..' resolve as if the root were '/' (absolute links included)."""
    from dockyard.runtime.paths import open_in_root

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside\n")
    (root / "abs").symlink_to("/etc")
    (root / "rel").symlink_to("../../../../../../etc")
    for path in ("/abs/passwd", "rel/passwd", "/../../etc/passwd"):
        fd = open_in_root(str(root), path)
        try:
            assert Path(f"/proc/self/fd/{fd}").read_text() == "inside\n", path
        finally:
            os.close(fd)
