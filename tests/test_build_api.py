"""Builds through dockyardd's /build endpoint, driven by the real docker CLI (classic builder)
and docker-py, on a private daemon loaded with offline busybox."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.daemon import Dockyardd, build_busybox_daemon, daemon_children_only  # noqa: F401 (fixtures)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return root


def build(d: Dockyardd, ctx: Path, *args: str, legacy_env: bool = False):
    env_args = ("build", *args, str(ctx))
    if legacy_env:
        os.environ["DOCKER_BUILDKIT"] = "0"
    try:
        return d.docker(*env_args, timeout=180)
    finally:
        os.environ.pop("DOCKER_BUILDKIT", None)


def run(d: Dockyardd, image: str, *cmd: str) -> str:
    proc = d.docker("run", "--rm", image, *cmd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_multistage_copy_from(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": (
        "ARG BASE=busybox\n"
        "FROM $BASE AS builder\n"
        "ARG GREETING=hello\n"
        "WORKDIR /src\n"
        "COPY app.txt ./\n"
        "RUN echo \"$GREETING from $(cat app.txt)\" > /out.txt\n"
        "FROM ${BASE}\n"
        "COPY --from=builder /out.txt /result.txt\n"
        "CMD [\"cat\", \"/result.txt\"]\n"), "app.txt": "dockyard"})
    proc = build(daemon, ctx, "-t", "ms:1", "--build-arg", "GREETING=hi", legacy_env=True)
    assert proc.returncode == 0, proc.stderr
    assert "Step 1/9 : ARG BASE=busybox" in proc.stdout and "Successfully tagged ms:1" in proc.stdout
    assert run(daemon, "ms:1") == "hi from dockyard\n"
    # without DOCKER_BUILDKIT=0 too: the daemon advertises the classic builder in /_ping
    proc = build(daemon, ctx, "-t", "ms:2")
    assert proc.returncode == 0 and "Using cache" in proc.stdout, proc.stderr


def test_cache_hits_misses_and_reasons(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN ls /ctx > /listing\n",
                           "a.txt": "one", "b.txt": "two", "ignored.log": "x", ".dockerignore": "*.log\n"})
    first = build(daemon, ctx, "-t", "cache:1")
    assert first.returncode == 0, first.stderr
    again = build(daemon, ctx, "-t", "cache:1")
    assert again.stdout.count("Using cache") == 2, again.stdout
    (ctx / "ignored.log").write_text("changed")  # an ignored file never reaches the daemon
    os.utime(ctx / "a.txt")  # a new mtime with the same content keeps the cache
    assert build(daemon, ctx, "-t", "cache:1").stdout.count("Using cache") == 2
    (ctx / "b.txt").write_text("changed")
    edited = build(daemon, ctx, "-t", "cache:1")
    assert "Using cache" not in edited.stdout
    # the classic builder's protocol says nothing of why (dockyard build does: test_build_sources)
    assert "Cache miss" not in edited.stdout and edited.stdout.count("Running in") == 1, edited.stdout
    no_cache = build(daemon, ctx, "--no-cache", "-t", "cache:1")
    assert no_cache.returncode == 0 and "Using cache" not in no_cache.stdout


def test_dockerignore_edge_cases(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {
        "Dockerfile": "FROM busybox\nCOPY . /ctx\nRUN cd /ctx && find . -type f | sort > /files\n"
                      "CMD [\"cat\", \"/files\"]\n",
        ".dockerignore": "# comment\n**/*.tmp\n/secret\ndocs\n!docs/README.md\n*.md\n!keep.md\n",
        "a.tmp": "", "deep/er/b.tmp": "", "secret/key": "", "sub/secret": "", "docs/README.md": "",
        "docs/other.txt": "", "x.md": "", "keep.md": "", "main.c": ""})
    proc = build(daemon, ctx, "-t", "ignore:1")
    assert proc.returncode == 0, proc.stderr
    files = run(daemon, "ignore:1").split()
    assert files == ["./.dockerignore", "./Dockerfile", "./docs/README.md", "./keep.md", "./main.c",
                     "./sub/secret"]


def test_metadata_instructions(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        "LABEL a=1 \"b c\"=\"d e\"\n"
        "ENV PATH=/opt/bin:$PATH NAME=world\n"
        "EXPOSE 80 53/udp\n"
        "VOLUME /data\n"
        "USER nobody\n"
        "WORKDIR /home/app\n"
        "WORKDIR sub\n"
        "STOPSIGNAL SIGQUIT\n"
        "HEALTHCHECK --interval=5s --retries=2 CMD true\n"
        "ENTRYPOINT [\"sh\", \"-c\"]\n"
        "CMD [\"echo hello $NAME from $(pwd) as $(id -u)\"]\n")})
    proc = build(daemon, ctx, "-t", "meta:1", "--label", "extra=yes")
    assert proc.returncode == 0, proc.stderr
    fmt = "{{json .Config}}"
    import json
    cfg = json.loads(daemon.docker("image", "inspect", "-f", fmt, "meta:1").stdout)
    assert cfg["Labels"] == {"a": "1", "b c": "d e", "extra": "yes"}
    assert cfg["Env"][0].startswith("PATH=/opt/bin:/usr/local/sbin") and "NAME=world" in cfg["Env"]
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp"} and cfg["Volumes"] == {"/data": {}}
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/home/app/sub" and cfg["StopSignal"] == "SIGQUIT"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert run(daemon, "meta:1") == "hello world from /home/app/sub as 65534\n"
    history = daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "meta:1").stdout
    assert "WORKDIR /home/app/sub" in history and "ENV PATH=/opt/bin:" in history


def test_heredocs_and_shell(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": (
        "FROM busybox\n"
        "ARG WHO=heredoc\n"
        "RUN <<EOF\n"
        "echo one > /one\n"
        "echo \"$WHO\" >> /one\n"
        "EOF\n"
        "COPY <<EOF /etc/conf\n"
        "value=${WHO}\n"
        "EOF\n"
        "SHELL [\"/bin/sh\", \"-ec\"]\n"
        "RUN cat /one /etc/conf > /all\n")})
    proc = build(daemon, ctx, "-t", "heredoc:1")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert run(daemon, "heredoc:1", "cat", "/all") == "one\nheredoc\nvalue=heredoc\n"


def test_buildkit_copy_flags_through_the_classic_protocol(daemon: Dockyardd, tmp_path: Path) -> None:
    """COPY --chmod (BuildKit's) works through /build: without buildx it is the docker CLI's only way."""
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nCOPY --chmod=0751 --chown=12:34 run.sh /run.sh\n",
                           "run.sh": "#!/bin/sh\necho ran\n"})
    proc = build(daemon, ctx, "-t", "chmod:1", legacy_env=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert run(daemon, "chmod:1", "stat", "-c", "%a %u:%g", "/run.sh") == "751 12:34\n"
    assert run(daemon, "chmod:1", "/run.sh") == "ran\n"


def test_failing_run_reports_step_and_code(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo before\nRUN echo oops && exit 3\n"})
    proc = build(daemon, ctx)
    assert proc.returncode == 3
    assert "Step 3/3 : RUN echo oops && exit 3" in proc.stdout and "oops" in proc.stdout
    assert "The command '/bin/sh -c echo oops && exit 3' returned a non-zero code: 3" in proc.stderr


def test_parse_and_source_errors(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path / "a", {"Dockerfile": "FROM busybox\nRUN true\nFOO bar\n"})
    proc = build(daemon, ctx)
    # an HTTP error, as dockerd answers a Dockerfile that does not parse (nothing streamed)
    assert proc.returncode == 1 and "Error response from daemon: dockerfile parse error on line 3: unknown " \
        "instruction: FOO" in proc.stderr and "Step" not in proc.stdout, proc.stderr
    ctx = write(tmp_path / "b", {"Dockerfile": "FROM busybox\nCOPY missing.txt /\n"})
    proc = build(daemon, ctx)
    # the classic builder's message names no line: the step printed before it does
    assert proc.returncode == 1 and "stat missing.txt: file does not exist" in proc.stderr, proc.stderr
    assert proc.stdout.rstrip().endswith("Step 2/2 : COPY missing.txt /"), proc.stdout
    ctx = write(tmp_path / "c", {"Dockerfile": "FROM 127.0.0.1:9/nosuchimage:1\n"})  # a closed loopback port
    proc = build(daemon, ctx)
    assert proc.returncode == 1 and 'Get "https://127.0.0.1:9/v2/"' in proc.stderr and "refused" in proc.stderr


def test_symlink_pointing_out_of_context(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nCOPY link/passwd /copied\n"})
    os.symlink("/etc", ctx / "link")
    proc = build(daemon, ctx, "-t", "links:1")
    # the link is resolved inside the context: there is no /etc/passwd in it
    assert proc.returncode == 1 and "link/passwd" in proc.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
    assert build(daemon, ctx, "-t", "links:1").returncode == 0
    assert run(daemon, "links:1", "readlink", "/ctx/link") == "/etc\n"


def test_hostile_context_tar(daemon: Dockyardd) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        df = b"FROM busybox\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        tar.addfile(info, io.BytesIO(df))
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    status, _headers, body = daemon.request("POST", "/v1.45/build", buf.getvalue(),
                                            {"Content-Type": "application/x-tar"})
    assert status == 200 and b"points outside the context" in body


def test_dockerfile_from_stdin_and_f(daemon: Dockyardd, tmp_path: Path) -> None:
    proc = daemon.docker("build", "-t", "stdin:1", "-", input=b"FROM busybox\nRUN echo from-stdin > /x\n")
    assert proc.returncode == 0, proc.stderr
    ctx = write(tmp_path, {"docker/Custom.Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "custom"})
    proc = daemon.docker("build", "-f", str(ctx / "docker/Custom.Dockerfile"), "-t", "custom:1", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert run(daemon, "custom:1", "cat", "/f") == "custom"


def test_docker_py_build_and_prune(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nARG V=1\nRUN echo $V > /v\nLABEL built=by-py\n",
                           ".dockerignore": "junk\n", "junk": "x"})
    client = daemon.client()
    try:
        image, logs = client.images.build(path=str(ctx), tag="py:1", buildargs={"V": "7"}, rm=True)
        assert image.labels == {"built": "by-py"} and "py:1" in image.tags
        assert any("Successfully built" in entry.get("stream", "") for entry in logs)
        with pytest.raises(Exception) as e:
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 5\n"), tag="py:bad")
        assert "returned a non-zero code: 5" in str(e.value)
        result = client.api.prune_builds()
        assert "SpaceReclaimed" in result
    finally:
        client.close()
    proc = daemon.docker("builder", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
