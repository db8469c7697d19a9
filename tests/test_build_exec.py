"""The builder library run by the engine's BuildService without a daemon: RUN mounts (secret,
cache, tmpfs, bind), parallel stages, --target pruning, reproducible images, ADD, COPY flags."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.builder import BuildError, BuildOptions
from dockyard.build.context import pack
from dockyard.engine.builds import CGROUP_PARENT_ENV, BuildService
from dockyard.image.bootstrap import bootstrap_busybox
from dockyard.image.compression import open_decompressed
from dockyard.image.snapshot.mount import mounts_under
from dockyard.image.store import ImageStore
from tests.conftest import TEST_CGROUP_PARENT

RUNTIME = str(Path(sys.executable).parent / "dockyard-runtime")


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = ImageStore(str(root / "images"))
        bootstrap_busybox(self.store)
        self.service = BuildService(str(root / "data"), self.store, RUNTIME, str(root / "exec"))
        self.log: list[str] = []

    def build(self, files: dict[str, str | bytes], **options: object) -> str:
        ctx = self.root / f"ctx-{time.monotonic_ns()}"
        for rel, content in files.items():
            p = ctx / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content.encode() if isinstance(content, str) else content)
        buf = io.BytesIO()
        pack(str(ctx), buf)
        buf.seek(0)
        self.log = []
        return self.service.build(buf, BuildOptions(**options), self.log.append)  # type: ignore[arg-type]

    @property
    def output(self) -> str:
        return "".join(self.log)

    def files(self, image: str) -> dict[str, bytes]:
        """Every regular file of every layer of image (later layers win)."""
        out: dict[str, bytes] = {}
        for layer in self.store.layers(image):
            with self.store.content.open(layer.descriptor.digest) as blob, open_decompressed(blob) as raw, \
                    tarfile.open(fileobj=raw, mode="r|") as tar:
                for m in tar:
                    if m.isreg():
                        out[m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
        return out

    def close(self) -> None:
        self.service.close()
        self.store.close()
        assert not mounts_under(str(self.root)), "a build left mounts behind"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    os.environ[CGROUP_PARENT_ENV] = TEST_CGROUP_PARENT
    e = Env(tmp_path_factory.mktemp("builds"))
    try:
        yield e
    finally:
        e.close()
        os.environ.pop(CGROUP_PARENT_ENV, None)


def test_secret_mount_never_lands_in_the_image(env: Env) -> None:
    secret = b"s3cr3t-token-value"
    image = env.build({"Dockerfile": "FROM busybox\n"
                                     "RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\n"
                                     "RUN --mount=type=secret,id=tok,target=/x/y cat /x/y | md5sum > /sum\n"},
                      secrets={"tok": secret})
    files = env.files(image)
    assert files["len"].strip() == str(len(secret)).encode()
    assert files["sum"].split()[0].decode() == hashlib.md5(secret).hexdigest()
    assert not any(secret in data for data in files.values())
    assert not any(name.startswith(("run/secrets", "x/")) for name in files)
    history = str(env.store.config(image)["history"])
    assert secret.decode() not in history and secret.decode() not in env.output


def test_cache_mount_persists_between_builds(env: Env) -> None:
    df = "FROM busybox\nRUN --mount=type=cache,target=/var/cache/app echo x >> /var/cache/app/log && " \
         "wc -l < /var/cache/app/log > /count\n"
    first = env.build({"Dockerfile": df}, no_cache=True)
    second = env.build({"Dockerfile": df}, no_cache=True)
    assert int(env.files(second)["count"]) == int(env.files(first)["count"]) + 1
    assert not any(n.startswith("var/cache/app") for n in env.files(second))


def test_tmpfs_and_bind_mounts(env: Env) -> None:
    image = env.build({"Dockerfile": "FROM busybox\n"
                                     "RUN --mount=type=tmpfs,target=/scratch touch /scratch/t && "
                                     "grep -q ' /scratch tmpfs' /proc/mounts && echo ok > /tmpfs\n"
                                     "RUN --mount=type=bind,source=data,target=/mnt cat /mnt/d.txt > /bound\n",
                       "data/d.txt": "from context"})
    files = env.files(image)
    assert files["tmpfs"] == b"ok\n" and files["bound"] == b"from context"
    assert "scratch/t" not in files


def test_independent_stages_run_in_parallel(env: Env) -> None:
    df = ("FROM busybox AS a\nRUN sleep 2 && date +%s > /a\n"
          "FROM busybox AS b\nRUN sleep 2 && date +%s > /b\n"
          "FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n")
    start = time.monotonic()
    image = env.build({"Dockerfile": df}, no_cache=True)
    elapsed = time.monotonic() - start
    files = env.files(image)
    assert abs(int(files["a"]) - int(files["b"])) <= 1
    assert elapsed < 3.9, f"stages ran one after the other ({elapsed:.1f}s)"  # serial: over 4 s


def test_target_runs_only_needed_stages(env: Env) -> None:
    df = ("FROM busybox AS broken\nRUN exit 9\n"
          "FROM busybox AS base\nRUN echo base > /base\n"
          "FROM base AS good\nRUN cat /base > /good\n"
          "FROM broken\n")
    image = env.build({"Dockerfile": df}, target="good")
    assert env.files(image)["good"] == b"base\n"
    assert "exit 9" not in env.output
    with pytest.raises(BuildError) as e:
        env.build({"Dockerfile": df})
    assert e.value.code == 9


def test_source_date_epoch_reproducible(env: Env) -> None:
    files = {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN echo built > /b\nENV X=1\n", "f": "content"}
    one = env.build(files, no_cache=True, source_date_epoch=1700000000)
    two = env.build(files, no_cache=True, source_date_epoch=1700000000)
    assert one == two
    assert env.store.config(one)["created"] == "2023-11-14T22:13:20Z"


def test_add_archives_and_urls(env: Env, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("pkg/readme")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    served = tmp_path / "served"
    served.mkdir()
    (served / "file.txt").write_bytes(b"downloaded")
    digest = hashlib.sha256(b"downloaded").hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a: Quiet(*a, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file.txt"
        image = env.build({"Dockerfile": f"FROM busybox\nADD pkg.tar.gz /opt/\nADD --checksum=sha256:{digest} "
                                         f"{url} /dl/\nCOPY pkg.tar.gz /raw/\n",
                           "pkg.tar.gz": buf.getvalue()})
        files = env.files(image)
        assert files["opt/pkg/readme"] == b"hello" and files["dl/file.txt"] == b"downloaded"
        assert "raw/pkg.tar.gz" in files
        with pytest.raises(BuildError, match="digest mismatch"):
            env.build({"Dockerfile": f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /dl/\n"})
    finally:
        server.shutdown()
        server.server_close()


def test_copy_flags(env: Env) -> None:
    image = env.build({"Dockerfile": "FROM busybox\n"
                                     "COPY --chown=nobody:nogroup --chmod=640 a.txt /owned/\n"
                                     "COPY --exclude=*.tmp src/ /src/\n"
                                     "COPY --parents deep/x/*.txt /p/\n"
                                     "USER nobody\nRUN stat -c '%U:%G %a' /owned/a.txt > /tmp/st\n",
                       "a.txt": "a", "src/keep.c": "", "src/drop.tmp": "", "deep/x/one.txt": "1"})
    files = env.files(image)
    assert files["tmp/st"] == b"nobody:nogroup 640\n"
    assert "src/keep.c" in files and "src/drop.tmp" not in files
    assert files["p/deep/x/one.txt"] == b"1"


def test_errors_name_the_line(env: Env) -> None:
    with pytest.raises(BuildError, match="line 2"):
        env.build({"Dockerfile": "FROM busybox\nCOPY --bogus=1 a /\n", "a": ""})
    with pytest.raises(BuildError, match="platform linux/s390x is not supported"):
        env.build({"Dockerfile": "FROM busybox\n"}, platform="linux/s390x")


def test_bind_mount_from_stage_and_cache_key(env: Env) -> None:
    df = ("FROM busybox AS tools\nRUN echo tool > /tool\n"
          "FROM busybox\nRUN --mount=type=bind,from=tools,source=/tool,target=/t cat /t > /from-stage\n"
          "RUN --mount=type=bind,source=in.txt,target=/in cat /in > /from-context\n")
    image = env.build({"Dockerfile": df, "in.txt": "one"})
    files = env.files(image)
    assert files["from-stage"] == b"tool\n" and files["from-context"] == b"one"
    again = env.build({"Dockerfile": df, "in.txt": "two"})  # the bound file is part of the key
    assert env.files(again)["from-context"] == b"two"


def test_cache_from_an_image_after_prune(env: Env) -> None:
    files = {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n", "f": "cached"}
    first = env.build(files, tags=["cachefrom:1"])
    env.service.prune()
    env.build(files)
    assert "Using cache" not in env.output  # no local records left
    env.service.prune()
    assert env.build(files, cache_from=["cachefrom:1"]) == first
    assert env.output.count("Using cache") == 2


def test_history_like_buildkit(env: Env) -> None:
    df = ("FROM busybox AS base\nARG V=1\nENV E=x\nWORKDIR /w\nCOPY --chmod=644 f ./\nRUN echo $V\n"
          "EXPOSE 80 53/udp\nVOLUME /data\nSHELL [\"/bin/sh\", \"-ec\"]\nUSER nobody\nSTOPSIGNAL SIGINT\n"
          "HEALTHCHECK --interval=5s CMD true\nCMD [\"sh\", \"-c\", \"x\"]\n")
    first = env.build({"Dockerfile": df, "f": "f"}, build_args={"V": "2"})
    texts = [h["created_by"] for h in env.store.config(first)["history"][-12:]]
    assert texts == ["ARG V=2", "ENV E=x", "WORKDIR /w", "COPY --chmod=644 f ./ # buildkit",
                     "RUN |1 V=2 /bin/sh -c echo $V # buildkit", "EXPOSE [80/tcp 53/udp]", "VOLUME [/data]",
                     "SHELL [/bin/sh -ec]", "USER nobody", "STOPSIGNAL SIGINT",
                     "HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s "
                     "Retries:0}", 'CMD ["sh" "-c" "x"]']
    second = env.build({"Dockerfile": df, "f": "f"}, build_args={"V": "3"})
    assert "ARG V=3" in [h["created_by"] for h in env.store.config(second)["history"]]
    assert env.output.count("Using cache") >= 3  # ENV, WORKDIR and COPY do not depend on V


def test_cache_survives_a_restart_and_leftovers_are_repaired(env: Env) -> None:
    files = {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f\n", "f": "persisted"}
    first = env.build(files)
    env.service.close()
    # what a daemon killed during a build leaves: a step snapshot mounted under the work dir
    leftover = os.path.join(env.service.tmp, "build-dead", "build-0123")
    os.makedirs(leftover)
    env.store.prepare_rootfs("build-0123", None)
    from dockyard.image.snapshot import mount_all
    mount_all(env.store.snapshots.mounts("build-0123"), leftover)
    env.service = BuildService(str(env.root / "data"), env.store, RUNTIME, str(env.root / "exec"))
    assert not mounts_under(str(env.root / "data")) and not os.path.exists(leftover)
    assert "build-0123" not in {i.key for i in env.store.snapshots.walk()}
    assert env.build(files) == first and env.output.count("Using cache") == 2


def test_args_env_and_platform(env: Env) -> None:
    from dockyard.image.bootstrap_busybox import host_platform
    image = env.build({"Dockerfile": "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\n"
                                     "ENV A=1\nENV A=2 B=$A\nRUN echo \"$TARGETARCH $B $http_proxy\" > /out\n"},
                      build_args={"http_proxy": "http://proxy:3128", "UNUSED": "x"})
    assert env.files(image)["out"] == f"{host_platform()[0]} 1 http://proxy:3128\n".encode()
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in env.output
    assert "proxy:3128" not in str(env.store.config(image)["history"])


def test_cache_mount_sharing_and_owner(env: Env) -> None:
    run = "RUN --mount=type=cache,id=lk,target=/c,sharing=locked,uid=65534,gid=65534,mode=0700 " \
          "mkdir /c/busy && sleep 0.4 && rmdir /c/busy && stat -c '%u %a' /c > /owner"
    df = f"FROM busybox AS a\n{run}\nFROM busybox AS b\n{run} && true\n" \
         "FROM busybox\nCOPY --from=a /owner /a\nCOPY --from=b /owner /b\n"
    image = env.build({"Dockerfile": df}, no_cache=True)  # both would fail on mkdir if they overlapped
    files = env.files(image)
    assert files["a"] == files["b"] == b"65534 700\n"


def test_shebang_heredoc_and_secret_env(env: Env) -> None:
    df = ("FROM busybox\nRUN <<EOF\n#!/bin/sh -e\necho \"script $0\" > /script\nEOF\n"
          "RUN --mount=type=secret,id=tok,env=TOKEN sh -c 'echo ${#TOKEN} > /len'\n")
    image = env.build({"Dockerfile": df}, secrets={"tok": b"Zq9-s3cr3t"})
    files = env.files(image)
    assert files["script"] == b"script /dev/pipes/EOF\n" and files["len"] == b"10\n"
    assert not any(b"Zq9-s3cr3t" in data for data in files.values())
    changed = env.build({"Dockerfile": df.replace("script $0", "changed $0")}, secrets={"tok": b"Zq9-s3cr3t"})
    assert env.files(changed)["script"] == b"changed /dev/pipes/EOF\n"  # heredoc bodies are in the key


def test_run_network_modes(env: Env) -> None:
    image = env.build({"Dockerfile": "FROM busybox\nRUN --network=none grep -c : /proc/net/dev > /none\n"
                                     "RUN grep -c : /proc/net/dev > /default\n"})
    files = env.files(image)
    assert int(files["none"]) == 1  # loopback only
    if Path("/proc/net/dev").read_text().count(":") > 1:  # the host's interfaces (others may come and go)
        assert int(files["default"]) > 1


def test_copy_from_keyed_by_the_files_copied(env: Env) -> None:
    """A rebuilt stage whose copied files are unchanged keeps the COPY --from cached (BuildKit
    and the classic builder both key it by content); a changed file misses and says which."""
    df = ("FROM busybox AS b\nCOPY f /f\nRUN cat /f > /log && echo fixed > /artifact\n"
          "FROM busybox\nCOPY --from=b /artifact /a\nCOPY --from=b /log /log\n")
    env.build({"Dockerfile": df, "f": "one"})
    env.build({"Dockerfile": df, "f": "two"}, target="b")  # the stage alone, so its new image is cached
    image = env.build({"Dockerfile": df, "f": "two"})
    copies = env.output.split("COPY --from=b /artifact /a")[1]
    assert copies.split("Step")[0].count("Using cache") == 1, env.output
    assert "Cache miss: file log changed" in copies, env.output
    assert env.files(image)["log"] == b"two"
