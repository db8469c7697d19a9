"""Interoperability of our archives with real tools: skopeo, umoci and (when installed) a
private dockerd. Skipped per tool when it is absent; no network is used. Every daemon is
stopped by PID and every temp dir removed, also on failure."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.archive import docker_archive, oci_layout
from dockyard.image.layer_apply import apply_layer
from dockyard.image.store import ImageStore
from tests.test_image_archive import add_busybox, new_store

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed")


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout


class Dockerd:
    """A private dockerd: temp data/exec roots and socket, vfs storage, no bridge, no iptables."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONFIG": str(base / "cli")}
        self.log = open(base / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "-H", f"unix://{self.sock}", "--pidfile", str(base / "dockerd.pid"), "--bridge=none",
             "--iptables=false", "--ip-masq=false", "--storage-driver=vfs"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dockerd did not start: {(base / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def docker(self, *args: str, timeout: float = 300) -> str:
        return run("docker", *args, env=self.env, timeout=timeout)

    def stop(self) -> None:
        """SIGTERM by PID (the managed containerd exits with it), SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        subprocess.run(["umount", "-R", "-q", str(self.base / "exec")], stderr=subprocess.DEVNULL)
        subprocess.run(["umount", "-R", "-q", str(self.base / "data")], stderr=subprocess.DEVNULL)


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-interop-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store(work: Path, rootfs: Path) -> Iterator[tuple[ImageStore, str]]:
    s = new_store(work / "store")
    try:
        yield s, add_busybox(s, rootfs)
    finally:
        s.close()


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dockyard.image.bootstrap_busybox import build_rootfs

    return Path(build_rootfs(str(tmp_path_factory.mktemp("busybox") / "rootfs")))


def save_to(store: ImageStore, refs: list[str], path: Path) -> Path:
    with open(path, "wb") as f:
        docker_archive.save(store, refs, f)
    return path


def load_from(store: ImageStore, path: Path) -> list[str]:
    with open(path, "rb") as f:
        return docker_archive.load(store, f)


def tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """path → (type+mode, uid, gid, content or link target digest) of every entry under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                what = os.readlink(p)
            elif p.is_file():
                what = str(hash(p.read_bytes()))
            else:
                what = ""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, what)
    return out


@needs_skopeo
def test_skopeo_round_trip(store: tuple[ImageStore, str], work: Path) -> None:
    src, image_id = store
    ours = save_to(src, ["busybox:latest"], work / "our.tar")
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{ours}"))
    assert info["Layers"] and info["Architecture"]
    assert json.loads(run("skopeo", "inspect", "--config", f"docker-archive:{ours}"))["rootfs"]["diff_ids"]
    run("skopeo", "copy", f"docker-archive:{ours}", f"oci:{work / 'dir'}:latest")
    assert json.loads(run("skopeo", "inspect", f"oci:{work / 'dir'}:latest"))["Layers"]
    back = work / "back.tar"
    run("skopeo", "copy", f"oci:{work / 'dir'}:latest", f"docker-archive:{back}:busybox:latest")
    dst = new_store(work / "dst")
    try:  # an archive written by skopeo loads; skopeo re-serialises the config (a new ID, same content)
        assert load_from(dst, back) == ["Loaded image: busybox:latest"]
        assert same_image(src, image_id, dst, dst.resolve("busybox"))
        dst.meta.delete_image(dst.resolve("busybox"))
        loaded = oci_layout.load_layout(dst, str(work / "dir"), ref="latest", name="busybox")
        assert same_image(src, image_id, dst, loaded[0]) and dst.resolve("busybox") == loaded[0]
    finally:
        dst.close()


def same_image(a: ImageStore, a_id: str, b: ImageStore, b_id: str) -> bool:
    """Same config content (whatever its serialisation) and the same layers."""
    def content(store: ImageStore, image_id: str) -> tuple:
        config = json.loads(store.content.read(image_id))
        return (config["config"], config["rootfs"], config["architecture"], config["os"],
                [layer.diff_id for layer in store.layers(image_id)])
    return content(a, a_id) == content(b, b_id)


@needs_skopeo
@needs_umoci
def test_our_layout_with_skopeo_and_umoci(store: tuple[ImageStore, str], work: Path) -> None:
    src, image_id = store
    layout = work / "layout"
    oci_layout.write_layout(src, ["busybox:latest"], str(layout))
    info = json.loads(run("skopeo", "inspect", f"oci:{layout}:latest"))
    assert len(info["Layers"]) == 1
    run("umoci", "unpack", "--image", f"{layout}:latest", str(work / "bundle"))
    ours = work / "ours"
    ours.mkdir()
    for layer in src.layers(image_id):
        with src.content.open(layer.descriptor.digest) as f:
            apply_layer(f, str(ours), whiteouts="naive")
    assert tree(work / "bundle" / "rootfs") == tree(ours)


@pytest.fixture
def dockerd(work: Path) -> Iterator[Dockerd]:
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("dockerd not installed")
    base = Path(tempfile.mkdtemp(prefix="dkd-", dir="/var/tmp"))  # short: the socket path has a length limit
    daemon = None
    try:
        daemon = Dockerd(base)
        yield daemon
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_docker_loads_and_runs_our_archive(store: tuple[ImageStore, str], work: Path, dockerd: Dockerd) -> None:
    src, image_id = store
    ours = save_to(src, ["busybox:latest"], work / "our.tar")
    assert "Loaded image: busybox:latest" in dockerd.docker("load", "-i", str(ours))
    assert json.loads(dockerd.docker("image", "inspect", "busybox:latest"))[0]["Id"] == image_id
    assert dockerd.docker("run", "--rm", "--network", "none", "busybox:latest", "echo", "hi").strip() == "hi"


def test_docker_saved_import_loads(rootfs: Path, work: Path, dockerd: Dockerd) -> None:
    tarball = work / "rootfs.tar"
    run("tar", "-C", str(rootfs), "-cf", str(tarball), ".")
    image_id = dockerd.docker("import", "-c", 'CMD ["sh"]', str(tarball), "imported:1").strip()
    dockerd.docker("save", "-o", str(work / "docker.tar"), "imported:1")
    dst = new_store(work / "dst")
    try:
        assert load_from(dst, work / "docker.tar") == ["Loaded image: imported:1"]
        assert dst.resolve("imported:1") == image_id
        assert json.loads(dst.content.read(image_id))["config"]["Cmd"] == ["sh"]
        buf = io.BytesIO()
        docker_archive.save(dst, ["imported:1"], buf)  # and back into docker
        (work / "again.tar").write_bytes(buf.getvalue())
        dockerd.docker("rmi", "imported:1")
        assert "Loaded image: imported:1" in dockerd.docker("load", "-i", str(work / "again.tar"))
        assert dockerd.docker("run", "--rm", "--network", "none", "imported:1", "true") == ""
    finally:
        dst.close()
