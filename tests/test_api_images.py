"""dockyardd's image endpoints, driven by the real docker CLI and docker-py on a private daemon
loaded with an offline busybox image (tests/daemon.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.archive import docker_archive
from dockyard.image.bootstrap import image_from_rootfs
from dockyard.image.bootstrap_busybox import build_rootfs
from dockyard.image.store import ImageStore
from tests.daemon import Dockyardd, busybox_archive, daemon_children_only  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """busybox as a `docker save` archive (made by dockyard.image.archive) and as a rootfs tar."""
    tmp = tmp_path_factory.mktemp("busybox")
    busybox_archive(tmp)
    rootfs = build_rootfs(str(tmp / "rootfs"))
    with tarfile.open(tmp / "rootfs.tar", "w") as tar:
        tar.add(rootfs, arcname=".")
    return {"save": tmp / "busybox.tar", "rootfs": tmp / "rootfs.tar"}


@pytest.fixture(scope="module")
def daemon(archives: dict[str, Path]) -> Iterator[Dockyardd]:
    with Dockyardd() as d:
        proc = d.docker("load", "-i", str(archives["save"]))
        assert proc.returncode == 0 and proc.stdout.strip() == "Loaded image: busybox:latest", proc.stderr
        yield d


def ok(d: Dockyardd, *args: str) -> str:
    proc = d.docker(*args)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def busybox_id(d: Dockyardd) -> str:
    return ok(d, "image", "inspect", "--format", "{{.Id}}", "busybox").strip()


def test_images_listing(daemon: Dockyardd) -> None:
    lines = ok(daemon, "images").splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.split()[:2] == ["busybox", "latest"] for line in lines[1:])
    image_id = busybox_id(daemon)
    assert image_id.split(":")[1][:12] in ok(daemon, "images", "-q").split()
    assert ok(daemon, "images", "-a", "-q")
    assert "busybox:latest" in ok(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert ok(daemon, "images", "--filter", "reference=busy*", "-q").split() == [image_id.split(":")[1][:12]]
    assert ok(daemon, "images", "--filter", "dangling=true", "-q").strip() == ""
    assert ok(daemon, "images", "--filter", "label=nonexistent", "-q").strip() == ""
    proc = daemon.docker("images", "--filter", "bogus=1")
    assert proc.returncode == 1 and "invalid filter 'bogus'" in proc.stderr


def test_inspect_and_history(daemon: Dockyardd) -> None:
    doc = json.loads(ok(daemon, "image", "inspect", "busybox"))[0]
    assert doc["RepoTags"] == ["busybox:latest"] and doc["Os"] == "linux"
    assert doc["Config"]["Cmd"] == ["sh"]
    lines = ok(daemon, "history", "busybox").splitlines()
    assert lines[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"] and len(lines) >= 2


def test_fields_of_api_versions_before_1_44(daemon: Dockyardd) -> None:
    """Older clients (docker-compose v1 reads ContainerConfig) get what dockerd gave them."""
    old = json.loads(daemon.request("GET", "/v1.41/images/busybox/json")[2])
    assert old["Container"] == "" and old["ContainerConfig"]["Cmd"] is None and old["VirtualSize"] == old["Size"]
    new = json.loads(daemon.request("GET", "/v1.45/images/busybox/json")[2])
    assert not {"Container", "ContainerConfig", "VirtualSize"} & set(new)
    listed = json.loads(daemon.request("GET", "/v1.43/images/json")[2])
    assert all(image["VirtualSize"] == image["Size"] for image in listed)
    assert all("VirtualSize" not in image for image in json.loads(daemon.request("GET", "/images/json")[2]))


def test_unknown_image(daemon: Dockyardd) -> None:
    for args in (("image", "inspect", "nosuch:1"), ("rmi", "nosuch:1"), ("history", "nosuch:1"),
                 ("tag", "nosuch:1", "other:1")):
        proc = daemon.docker(*args)
        assert proc.returncode == 1, args
        assert "Error response from daemon: No such image: nosuch:1" in proc.stderr, proc.stderr
    status, headers, body = daemon.request("GET", "/v1.45/images/nosuch/json")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"message": "No such image: nosuch:latest"}


def test_tag_slashes_and_rmi(daemon: Dockyardd) -> None:
    image_id = busybox_id(daemon)
    ok(daemon, "tag", "busybox", "localhost:5000/a/b:t")
    assert json.loads(ok(daemon, "image", "inspect", "localhost:5000/a/b:t"))[0]["Id"] == image_id
    status, _, body = daemon.request("GET", "/v1.41/images/localhost:5000/a/b:t/history")
    assert status == 200 and json.loads(body)[0]["Id"] == image_id
    assert ok(daemon, "rmi", "localhost:5000/a/b:t").strip() == "Untagged: localhost:5000/a/b:t"
    ok(daemon, "tag", "busybox", "extra:1")
    proc = daemon.docker("rmi", image_id.split(":")[1][:12])
    assert proc.returncode == 1 and "conflict: unable to delete" in proc.stderr and "must be forced" in proc.stderr
    ok(daemon, "rmi", "extra:1")


def test_save_load_round_trip(daemon: Dockyardd, tmp_path: Path) -> None:
    image_id = busybox_id(daemon)
    out = tmp_path / "saved.tar"
    ok(daemon, "save", "-o", str(out), "busybox:latest")
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and "index.json" in names
    ok(daemon, "rmi", "busybox")
    assert ok(daemon, "images", "-q").strip() == ""
    assert ok(daemon, "load", "-i", str(out)).strip() == "Loaded image: busybox:latest"
    assert busybox_id(daemon) == image_id


def test_save_repository_every_tag(daemon: Dockyardd, tmp_path: Path) -> None:
    """`docker save busybox` saves all of busybox's tags (as dockerd); load gives them all back."""
    image_id = busybox_id(daemon)
    ok(daemon, "tag", "busybox", "busybox:other")
    ok(daemon, "tag", "busybox", "elsewhere:1")
    try:
        ok(daemon, "save", "-o", str(tmp_path / "repo.tar"), "busybox")
        ok(daemon, "save", "-o", str(tmp_path / "two.tar"), "busybox:other", "busybox:latest")
        for name, tags in (("repo.tar", ["busybox:latest", "busybox:other"]),
                           ("two.tar", ["busybox:other", "busybox:latest"])):
            with tarfile.open(tmp_path / name) as tar:
                manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
                repositories = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
                layers = [n for n in tar.getnames() if n.startswith("blobs/sha256/")]
            assert [item["RepoTags"] for item in manifest] == [tags]
            assert list(repositories) == ["busybox"] and list(repositories["busybox"]) == ["latest", "other"]
            assert len(layers) == 3  # one config, one manifest, one layer
        ok(daemon, "rmi", "busybox:latest", "busybox:other")
        assert ok(daemon, "load", "-i", str(tmp_path / "repo.tar")).split("\n")[:2] == [
            "Loaded image: busybox:latest", "Loaded image: busybox:other"]
        assert ok(daemon, "image", "inspect", "--format", "{{.Id}}", "busybox:other").strip() == image_id
        proc = daemon.docker("save", "-o", str(tmp_path / "none.tar"), "nosuchrepo")
        assert proc.returncode == 1 and "No such image: nosuchrepo\n" in proc.stderr
    finally:
        daemon.docker("rmi", "busybox:other", "elsewhere:1")


def test_import_with_change_and_prune(daemon: Dockyardd, archives: dict[str, Path]) -> None:
    out = ok(daemon, "import", "-c", 'CMD ["sh"]', "-m", "imported here", str(archives["rootfs"]), "imp:1")
    image_id = out.strip()
    assert image_id.startswith("sha256:")
    doc = json.loads(ok(daemon, "image", "inspect", "imp:1"))[0]
    assert doc["Id"] == image_id and doc["Config"]["Cmd"] == ["sh"] and doc["Comment"] == "imported here"
    ok(daemon, "import", str(archives["rootfs"]))  # untagged → dangling
    dangling = ok(daemon, "images", "--filter", "dangling=true", "-q").split()
    assert len(dangling) == 1
    assert "Total reclaimed space" in ok(daemon, "image", "prune", "-f")
    assert ok(daemon, "images", "--filter", "dangling=true", "-q").strip() == ""
    assert ok(daemon, "rmi", "-f", "imp:1").splitlines()[0] == "Untagged: imp:1"


def test_pull_unreachable_and_url_import_refused(daemon: Dockyardd) -> None:
    proc = daemon.docker("pull", "127.0.0.1:9/busybox:1.36")  # a closed loopback port: nothing leaves the host
    assert proc.returncode == 1 and 'Get "https://127.0.0.1:9/v2/"' in proc.stderr and "refused" in proc.stderr
    proc = daemon.docker("import", "http://127.0.0.1:1/rootfs.tar")
    assert proc.returncode == 1 and "not available" in proc.stderr


def test_events_since_until_show_tag(daemon: Dockyardd) -> None:
    since = time.time()
    ok(daemon, "tag", "busybox", "evt:1")
    ok(daemon, "rmi", "evt:1")
    until = time.time() + 1
    out = ok(daemon, "events", "--since", f"{since:.9f}", "--until", f"{until:.9f}", "--filter", "type=image",
             "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert "image tag evt:1" in out.splitlines() and any(line.startswith("image untag") for line in out.splitlines())
    out = ok(daemon, "events", "--since", f"{since:.9f}", "--until", f"{until:.9f}", "--filter", "image=evt",
             "--filter", "event=tag", "--format", "{{.Action}}")
    assert out.split() == ["tag"]


def test_events_stream_live(daemon: Dockyardd) -> None:
    proc = subprocess.Popen(["docker", "events", "--format", "{{json .}}", "--filter", "type=image"],
                            stdout=subprocess.PIPE, env=daemon.env())
    try:
        time.sleep(0.5)
        ok(daemon, "tag", "busybox", "live:1")
        assert proc.stdout is not None
        event = json.loads(proc.stdout.readline())
        assert (event["Type"], event["Action"], event["Actor"]["Attributes"]["name"]) == ("image", "tag", "live:1")
        assert event["Actor"]["ID"] == busybox_id(daemon) and event["timeNano"] // 10**9 == event["time"]
    finally:
        proc.terminate()
        proc.wait(10)
        ok(daemon, "rmi", "live:1")


def test_docker_py(daemon: Dockyardd) -> None:
    client = daemon.client()
    try:
        image = client.images.get("busybox")
        assert "busybox:latest" in image.tags
        assert any(i.id == image.id for i in client.images.list())
        assert image.tag("pyrepo/x", "2")
        assert "pyrepo/x:2" in client.images.get("pyrepo/x:2").tags
        data = b"".join(image.save(named=True))
        client.images.remove("pyrepo/x:2")
        client.images.remove("busybox:latest")
        loaded = client.images.load(io.BytesIO(data))
        assert [i.id for i in loaded] == [image.id]
        with pytest.raises(Exception, match="No such image"):
            client.images.get("nosuch:2")
    finally:
        client.close()


def test_system_df_counts_images(daemon: Dockyardd) -> None:
    doc = json.loads(daemon.request("GET", "/v1.45/system/df")[2])
    assert doc["LayersSize"] > 0 and doc["Containers"] == [] and doc["Volumes"] == []
    assert all(i["Containers"] == 0 for i in doc["Images"])
    line = next(line for line in ok(daemon, "system", "df").splitlines() if line.startswith("Images"))
    assert int(line.split()[1]) == len(doc["Images"])


def test_system_df_verbose(daemon: Dockyardd) -> None:
    """`docker system df -v` (and its JSON): containers per image, unique and shared sizes, each
    container's writable layer in bytes of its files (as dockerd counts them), volume links."""
    ok(daemon, "volume", "create", "df-v1")
    try:
        ok(daemon, "run", "--name", "df-c1", "-v", "df-v1:/data", "busybox", "sh", "-c",
           "echo hi > /data/x; echo y > /y")
        ok(daemon, "run", "-d", "--name", "df-c2", "busybox", "sleep", "100")
        ok(daemon, "create", "--name", "df-c3", "busybox")
        doc = json.loads(ok(daemon, "system", "df", "-v", "--format", "json"))
        image = next(i for i in doc["Images"] if i["Repository"] == "busybox")
        assert image["Containers"] == "3" and image["SharedSize"] == "0B"
        assert image["UniqueSize"] == image["VirtualSize"] != "0B"
        rows = {c["Names"]: c for c in doc["Containers"]}
        assert {n: (rows[n]["Size"], rows[n]["LocalVolumes"], rows[n]["State"]) for n in rows} == {
            "df-c1": ("2B", "1", "exited"), "df-c2": ("0B", "0", "running"), "df-c3": ("0B", "0", "created")}
        volume = next(v for v in doc["Volumes"] if v["Name"] == "df-v1")
        assert (volume["Links"], volume["Size"]) == ("1", "3B")
        text = ok(daemon, "system", "df", "-v")
        for title in ("Images space usage:", "Containers space usage:", "Local Volumes space usage:",
                      "Build cache usage: 0B"):
            assert title in text
        c1 = next(line for line in text.splitlines() if line.endswith(" df-c1")).split()
        assert c1[1:2] == ["busybox"] and "2B" in c1
        totals = {row["Type"]: row for row in map(json.loads, ok(daemon, "system", "df", "--format", "json").splitlines())}
        assert (totals["Containers"]["Size"], totals["Containers"]["Reclaimable"]) == ("2B", "2B (100%)")
    finally:
        daemon.docker("rm", "-f", "df-c1", "df-c2", "df-c3")
        daemon.docker("volume", "rm", "df-v1")


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def test_load_and_save_stream_without_buffering(daemon: Dockyardd, tmp_path: Path) -> None:
    """A 64 MiB layer goes in and out without the daemon's peak memory growing by its size."""

    def fill(rootfs: str) -> None:
        os.makedirs(rootfs)
        with open(os.path.join(rootfs, "blob"), "wb") as f:
            f.write(os.urandom(64 << 20))

    def config(diff_id: str) -> dict[str, object]:
        return {"architecture": "amd64", "os": "linux", "config": {},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]}}

    store = ImageStore(str(tmp_path / "store"))
    try:
        image_from_rootfs(store, fill, config, 0, "big:1")
        with open(tmp_path / "big.tar", "wb") as out:
            docker_archive.save(store, ["big:1"], out)
    finally:
        store.close()
    pid = daemon.proc.pid  # type: ignore[union-attr]
    before = _peak_rss(pid)
    assert ok(daemon, "load", "-i", str(tmp_path / "big.tar")).strip() == "Loaded image: big:1"
    ok(daemon, "save", "-o", str(tmp_path / "again.tar"), "big:1")
    assert (tmp_path / "again.tar").stat().st_size > 64 << 20
    assert _peak_rss(pid) - before < 32 << 20
    ok(daemon, "rmi", "big:1")
