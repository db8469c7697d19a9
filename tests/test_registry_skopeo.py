"""Interop with skopeo (Debian): copies into and out of `dockyard registry serve`, inspection,
registry-to-registry copies with distribution 2.8, deletion, concurrent pulls and credentials."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.daemon import busybox_archive, other_children
from tests.registries import Distribution, Dockyard, write_htpasswd


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"skopeo {' '.join(args)}: {proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_archive(tmp_path_factory.mktemp("bb"))


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyard]:
    with Dockyard(tmp=tmp_path_factory.mktemp("reg")) as r:
        yield r


@pytest.fixture(autouse=True)
def no_leftover_children(reg: Dockyard) -> Iterator[None]:
    yield
    assert not other_children({reg.proc.pid}), "a test left child processes running"  # type: ignore[union-attr]


def test_copy_in_inspect_and_out(reg: Dockyard, archive: Path, tmp_path: Path) -> None:
    for fmt in ("v2s2", "oci"):
        skopeo("copy", "--dest-tls-verify=false", "--format", fmt, f"docker-archive:{archive}",
               f"docker://{reg.addr}/sk/busybox:{fmt}")
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reg.addr}/sk/busybox:{fmt}").stdout)
        assert info["Architecture"] == "amd64" and len(info["Layers"]) == 1
        raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.addr}/sk/busybox:{fmt}").stdout)
        assert raw["mediaType"].endswith("manifest.v2+json" if fmt == "v2s2" else "manifest.v1+json")
        skopeo("copy", "--src-tls-verify=false", f"docker://{reg.addr}/sk/busybox:{fmt}", f"oci:{tmp_path}/out:{fmt}")
        index = json.loads((tmp_path / "out/index.json").read_text())
        assert any(m["annotations"]["org.opencontainers.image.ref.name"] == fmt for m in index["manifests"])
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{reg.addr}/sk/busybox").stdout)
    assert sorted(tags["Tags"]) == ["oci", "v2s2"]


def test_registry_to_registry_both_ways(reg: Dockyard, archive: Path, tmp_path: Path) -> None:
    with Distribution(tmp=tmp_path / "dist") as dist:
        skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{dist.addr}/d/bb:1")
        skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{dist.addr}/d/bb:1",
               f"docker://{reg.addr}/from-dist/bb:1")
        skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", f"docker://{reg.addr}/from-dist/bb:1",
               f"docker://{dist.addr}/back/bb:1")
        digests = {json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)["Digest"]
                   for ref in (f"{dist.addr}/d/bb:1", f"{reg.addr}/from-dist/bb:1", f"{dist.addr}/back/bb:1")}
        assert len(digests) == 1


def test_delete(reg: Dockyard, archive: Path) -> None:
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{reg.addr}/del/bb:1")
    skopeo("delete", "--tls-verify=false", f"docker://{reg.addr}/del/bb:1")
    assert skopeo("inspect", "--tls-verify=false", f"docker://{reg.addr}/del/bb:1", check=False).returncode != 0


def test_ten_concurrent_pulls(reg: Dockyard, archive: Path, tmp_path: Path) -> None:
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{reg.addr}/many/bb:1")

    def one(i: int) -> int:
        return skopeo("copy", "--src-tls-verify=false", f"docker://{reg.addr}/many/bb:1",
                      f"dir:{tmp_path}/pull{i}", check=False).returncode

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(one, range(10))) == [0] * 10


def test_credentials(archive: Path, tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"sk": "pw"})
    with Dockyard("--htpasswd", str(htpasswd), tmp=tmp_path / "r") as reg:
        dest = f"docker://{reg.addr}/priv/bb:1"
        bad = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "sk:nope", f"docker-archive:{archive}", dest,
                     check=False)
        assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "sk:pw", f"docker-archive:{archive}", dest)
        assert skopeo("inspect", "--tls-verify=false", dest, check=False).returncode != 0
        skopeo("inspect", "--tls-verify=false", "--creds", "sk:pw", dest)


def test_token_auth(archive: Path, tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"tk": "pw"})
    with Dockyard("--htpasswd", str(htpasswd), "--token-auth", tmp=tmp_path / "r") as reg:
        dest = f"docker://{reg.addr}/tok/bb:1"
        bad = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "tk:nope", f"docker-archive:{archive}", dest,
                     check=False)
        assert bad.returncode != 0
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "tk:pw", f"docker-archive:{archive}", dest)
        skopeo("copy", "--src-tls-verify=false", "--src-creds", "tk:pw", dest, f"dir:{tmp_path}/out")
