"""Where builds get their inputs besides a local context: base images from a registry that needs
credentials (the docker CLI's X-Registry-Config, config.json for `dockyard build`), git
repositories (remote contexts with `#ref:subdir`, `ADD <git url>`), and contexts or Dockerfiles
over HTTP; cache export/import, --build-context, --ssh. All on loopback: a private daemon, an
htpasswd registry, `git daemon`, http.server (and a private dockerd that must refuse what only
dockyardd understands)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_CGROUP_PARENT
from tests.daemon import Dockyardd, build_daemon, busybox_archive, other_children
from tests.registries import Dockyard, write_htpasswd

DOCKYARD = str(Path(sys.executable).parent / "dockyard")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


class GitDaemon:
    """`git daemon` serving the repositories under root on a free loopback port (git://)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(["git", "daemon", f"--base-path={root}", "--export-all", "--reuseaddr",
                                      "--listen=127.0.0.1", f"--port={self.port}", "--informative-errors", str(root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)
        self.url = f"git://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def make_repository(root: Path) -> dict[str, str]:
    """root/app.git: a tag v1 (hello "v1"), then main (hello "main", sub/ with its own
    Dockerfile); the commit IDs."""
    work = root / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "Dockerfile").write_text("FROM busybox\nCOPY . /src\n")
    (work / "hello.txt").write_text("v1\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "v1")
    git(work, "tag", "v1")
    first = git(work, "rev-parse", "HEAD").strip()
    (work / "hello.txt").write_text("main\n")
    (work / "sub").mkdir()
    (work / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY file /sub-file\n")
    (work / "sub" / "file").write_text("in sub\n")
    git(work, "add", ".")
    git(work, "commit", "-qm", "main")
    git(root, "clone", "-q", "--bare", str(work), "app.git")
    return {"v1": first, "main": git(work, "rev-parse", "HEAD").strip()}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("servers")
    htpasswd = write_htpasswd(tmp / "htpasswd", {"alice": "wonderland"})
    (tmp / "git").mkdir()
    commits = make_repository(tmp / "git")
    gitd = GitDaemon(tmp / "git")
    try:
        with build_daemon(tmp) as d, Dockyard("--htpasswd", str(htpasswd), tmp=tmp / "private") as private:
            yield {"daemon": d, "private": private, "git": gitd, "commits": commits}
    finally:
        gitd.stop()


@pytest.fixture(autouse=True)
def no_leftover_children(servers: dict) -> Iterator[None]:
    yield
    pids = {s.proc.pid for s in servers.values() if hasattr(s, "proc")}
    assert not other_children(pids), "a test left child processes running"


def ok(d: Dockyardd, *args: str, input: bytes | None = None) -> str:
    proc = d.docker(*args, input=input, timeout=180)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def dockyard(d: Dockyardd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKYARD, "-H", d.host, *args], capture_output=True, text=True,
                          env={**d.env(), "DOCKYARD_NO_AUTOSTART": "1"}, timeout=180)


def test_from_image_of_a_registry_that_needs_credentials(servers: dict, tmp_path: Path) -> None:
    d, reg = servers["daemon"], servers["private"]
    base = f"{reg.addr}/priv/base:1"
    ok(d, "login", reg.addr, "-u", "alice", "--password-stdin", input=b"wonderland\n")
    try:
        ok(d, "tag", "busybox", base)
        ok(d, "push", base)
        ok(d, "rmi", base)
        (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo built > /built\n")
        # the docker CLI sends its config.json credentials as X-Registry-Config
        out = ok(d, "build", "-t", "fromreg:docker", str(tmp_path))
        assert "Successfully tagged fromreg:docker" in out
        assert ok(d, "run", "--rm", "fromreg:docker", "cat", "/built") == "built\n"
        ok(d, "rmi", base)
        # dockyard build reads the same file
        proc = dockyard(d, "build", "-q", "-t", "fromreg:dockyard", str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert ok(d, "image", "inspect", "-f", "{{.Id}}", base).strip()
        ok(d, "rmi", base)
    finally:
        ok(d, "logout", reg.addr)
    proc = dockyard(d, "build", "-q", "-t", "fromreg:anonymous", str(tmp_path))
    assert proc.returncode != 0
    assert f"pull access denied for {reg.addr}/priv/base" in proc.stderr
    proc = d.docker("build", "-t", "fromreg:anonymous", str(tmp_path), timeout=180)
    assert proc.returncode != 0 and "pull access denied" in proc.stderr + proc.stdout
    ok(d, "rmi", "fromreg:docker", "fromreg:dockyard")


def test_registry_config_header_picks_credentials_by_host() -> None:
    import base64
    import json

    from dockyard.registry.client.auth import Credentials
    from dockyard.registry.client.endpoint import credentials_for
    doc = {"https://index.docker.io/v1/": {"username": "hub", "password": "h"},
           "http://127.0.0.1:5000/v2/": {"username": "local", "password": "l"}, "bad": "x"}
    for encode in (base64.urlsafe_b64encode, base64.b64encode):
        configs = Credentials.map_from_header(encode(json.dumps(doc).encode()).decode())
        assert credentials_for(configs, "docker.io") == Credentials("hub", "h")
        assert credentials_for(configs, "127.0.0.1:5000") == Credentials("local", "l")
        assert credentials_for(configs, "127.0.0.1:5001") is None
    assert Credentials.map_from_header("not base64!") == {}


def cat(d: Dockyardd, image: str, path: str) -> str:
    return ok(d, "run", "--rm", image, "cat", path)


def test_git_remote_contexts(servers: dict) -> None:
    d, url, commits = servers["daemon"], servers["git"].url + "/app.git", servers["commits"]
    for ref, expected in (("", "main\n"), ("#v1", "v1\n"), (f"#{commits['v1']}", "v1\n"), ("?tag=v1", "v1\n"),
                          ("#main", "main\n")):
        proc = dockyard(d, "build", "-q", "-t", "fromgit:1", url + ref)
        assert proc.returncode == 0, proc.stderr
        assert cat(d, "fromgit:1", "/src/hello.txt") == expected, ref
    assert ok(d, "run", "--rm", "fromgit:1", "ls", "-a", "/src").split() == [".", "..", "Dockerfile", "hello.txt",
                                                                            "sub"]  # no .git
    proc = dockyard(d, "build", "-q", "-t", "fromgit:sub", url + "?branch=main&subdir=sub")
    assert proc.returncode == 0, proc.stderr
    assert cat(d, "fromgit:sub", "/sub-file") == "in sub\n"
    import docker  # the API's remote= parameter, as docker-py sends it
    client = docker.APIClient(base_url=d.host)
    try:
        lines = list(client.build(path=url + "#v1", tag="fromgit:py", decode=True))
    finally:
        client.close()
    assert any("Successfully tagged fromgit:py" in (line.get("stream") or "") for line in lines), lines
    assert cat(d, "fromgit:py", "/src/hello.txt") == "v1\n"
    bad = dockyard(d, "build", "-q", url + "#no-such-ref")
    assert bad.returncode == 1 and "unable to prepare context" in bad.stderr and "no-such-ref" in bad.stderr
    bad = dockyard(d, "build", "-q", url + "#main:nowhere")
    assert bad.returncode == 1 and "subdirectory nowhere not found" in bad.stderr
    ok(d, "rmi", "fromgit:1", "fromgit:sub", "fromgit:py")


def test_add_git_repository(servers: dict, tmp_path: Path) -> None:
    d, url = servers["daemon"], servers["git"].url + "/app.git"
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nADD {url}#v1 /repo\nADD --keep-git-dir=true {url} /full\n"
                                         f"ADD {url}#main:sub /sub/\n")
    proc = dockyard(d, "build", "--progress=plain", "-t", "addgit:1", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert cat(d, "addgit:1", "/repo/hello.txt") == "v1\n"
    assert cat(d, "addgit:1", "/full/hello.txt") == "main\n"
    assert cat(d, "addgit:1", "/sub/file") == "in sub\n"
    listing = ok(d, "run", "--rm", "addgit:1", "sh", "-c", "ls -a /repo; echo --; ls -a /full")
    repo, full = listing.split("--")
    assert ".git" not in repo.split() and ".git" in full.split()
    again = dockyard(d, "build", "--progress=plain", "-t", "addgit:1", str(tmp_path))
    assert again.returncode == 0 and again.stdout.count("Using cache") == 3, again.stdout  # same commits, same keys
    proc = d.docker("build", "-t", "addgit:bad", "-", input=f"FROM busybox\nADD {url}#nope /x\n".encode(),
                    timeout=180)
    assert proc.returncode != 0 and "nope" in proc.stderr + proc.stdout
    ok(d, "rmi", "addgit:1")


def test_http_remote_context_and_dockerfile(servers: dict, web: tuple[str, Path]) -> None:
    d, (base, root) = servers["daemon"], web
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY note /note\n"), ("note", b"from a tarball\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "ctx.tar.gz").write_bytes(buf.getvalue())
    (root / "Dockerfile").write_text("FROM busybox\nRUN echo plain > /plain\n")
    proc = dockyard(d, "build", "-q", "-t", "fromweb:tar", f"{base}/ctx.tar.gz")
    assert proc.returncode == 0, proc.stderr
    assert cat(d, "fromweb:tar", "/note") == "from a tarball\n"
    proc = dockyard(d, "build", "-q", "-t", "fromweb:file", f"{base}/Dockerfile")
    assert proc.returncode == 0, proc.stderr
    assert cat(d, "fromweb:file", "/plain") == "plain\n"
    bad = dockyard(d, "build", "-q", "http://127.0.0.1:9/x")
    assert bad.returncode == 1 and "unable to prepare context: failed to download http://127.0.0.1:9/x" in bad.stderr
    ok(d, "rmi", "fromweb:tar", "fromweb:file")


def test_named_build_contexts(servers: dict, tmp_path: Path) -> None:
    d, url = servers["daemon"], servers["git"].url + "/app.git"
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "file").write_text("extra 1\n")
    (extra / ".dockerignore").write_text("ignored\n")
    (extra / "ignored").write_text("no\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM scratch AS base\nCOPY Dockerfile /\n"
        "FROM base\nCOPY --from=extra file /from-extra\nCOPY --from=repo hello.txt /from-git\n"
        "RUN --mount=from=extra,target=/mnt ls /mnt > /mounted\n")
    argv = ["build", "--progress=plain", "-t", "named:1", "--build-context", f"extra={extra}",
            "--build-context", "base=docker-image://busybox", "--build-context", f"repo={url}#v1", str(ctx)]
    proc = dockyard(d, *argv)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert cat(d, "named:1", "/from-extra") == "extra 1\n"
    assert cat(d, "named:1", "/from-git") == "v1\n"
    assert cat(d, "named:1", "/mounted").split() == ["file"]  # .dockerignore of the named directory applied
    again = dockyard(d, *argv)
    assert again.returncode == 0 and again.stdout.count("Using cache") == 3, again.stdout
    (extra / "file").write_text("extra 2\n")
    edited = dockyard(d, *argv)
    assert edited.returncode == 0 and "Cache miss: file file changed" in edited.stdout, edited.stdout
    assert cat(d, "named:1", "/from-extra") == "extra 2\n"
    (ctx / "Dockerfile").write_text("FROM extra\n")
    bad = dockyard(d, "build", "--build-context", f"extra={extra}", str(ctx))
    assert bad.returncode == 1 and "build context 'extra' is a directory" in bad.stderr
    bad = dockyard(d, "build", "--build-context", "x=nope://somewhere", str(ctx))
    assert bad.returncode == 1 and "unsupported build context source" in bad.stderr
    ok(d, "rmi", "named:1")


def test_named_context_from_an_oci_layout(servers: dict, tmp_path: Path) -> None:
    d = servers["daemon"]
    ok(d, "save", "-o", str(tmp_path / "busybox.tar"), "busybox")
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "busybox.tar"), "-C", str(layout)], check=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base\nRUN echo from-layout > /x\n")
    before = ok(d, "images", "-q", "--no-trunc")
    proc = dockyard(d, "build", "-q", "-t", "fromlayout:1", "--build-context", f"base=oci-layout://{layout}:latest",
                    str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert cat(d, "fromlayout:1", "/x") == "from-layout\n"
    bad = dockyard(d, "build", "--build-context", f"base=oci-layout://{layout}:nope", str(ctx))
    assert bad.returncode == 1 and "no image named 'nope'" in bad.stderr
    ok(d, "rmi", "fromlayout:1")
    assert ok(d, "images", "-q", "--no-trunc") == before  # nothing tagged from the layout


def test_cache_export_and_import(servers: dict, tmp_path: Path) -> None:
    import json
    d = servers["daemon"]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN head -c 8 /dev/urandom | od -x > /random\nCOPY f /f\n"
                                    "ENV X=1\n")
    (ctx / "f").write_text("f\n")
    layout = tmp_path / "cache"

    def build(*extra: str) -> tuple[str, str]:
        proc = dockyard(d, "build", "--progress=plain", "--iidfile", str(tmp_path / "iid"), "-t", "cached:1",
                        *extra, str(ctx))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return (tmp_path / "iid").read_text(), proc.stdout

    first, _ = build("--cache-to", f"type=local,dest={layout}")
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 3 and all("dockyard.build.cache-key" in m["annotations"]
                                                for m in index["manifests"])
    random = cat(d, "cached:1", "/random")
    ok(d, "builder", "prune", "-af")
    again, out = build("--cache-from", f"type=local,src={layout}")
    assert again == first and out.count("Using cache") == 3, out  # the RUN did not run again
    ok(d, "builder", "prune", "-af")
    _, out = build()
    assert out.count("Using cache") == 0, out

    # inline: the image carries its step configs; loaded elsewhere (here: after rmi + load) it seeds the cache
    inline, _ = build("--cache-to", "type=inline")
    random = cat(d, "cached:1", "/random")
    ok(d, "save", "-o", str(tmp_path / "img.tar"), "cached:1")
    ok(d, "builder", "prune", "-af")
    ok(d, "rmi", "cached:1")
    ok(d, "image", "prune", "-f")
    ok(d, "load", "-i", str(tmp_path / "img.tar"))
    again, out = build("--cache-from", "cached:1")
    assert out.count("Using cache") == 3, out
    assert cat(d, "cached:1", "/random") == random
    bad = dockyard(d, "build", "--cache-to", "type=registry,ref=x", str(ctx))
    assert bad.returncode == 1 and "unsupported --cache-to" in bad.stderr
    ok(d, "rmi", "cached:1")


def daemon_children(d: Dockyardd, name: str) -> list[int]:
    """PIDs of the daemon's child processes running the program name."""
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError):
            continue
        if int(fields[1]) == d.proc.pid and comm == name:  # type: ignore[union-attr]
            out.append(int(entry))
    return out


def test_ssh_agent_holds_the_sent_keys(tmp_path: Path) -> None:
    from dockyard.build.sshagent import AgentError, start_agent
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "build-key", "-f", str(tmp_path / "k")],
                   check=True)
    sock, stop = start_agent([(tmp_path / "k").read_bytes()], str(tmp_path / "agents"))
    try:
        listed = subprocess.run(["ssh-add", "-l"], env={"SSH_AUTH_SOCK": sock, "PATH": os.environ["PATH"]},
                                capture_output=True, text=True)
        assert "build-key (ED25519)" in listed.stdout
    finally:
        stop()
    assert not os.path.exists(sock)
    with pytest.raises(AgentError, match="key 1 was refused"):
        start_agent([b"not a key\n"], str(tmp_path / "agents"))


def test_ssh_mounts(servers: dict, tmp_path: Path) -> None:
    d = servers["daemon"]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        'FROM busybox\nRUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /sock\n'
        "RUN --mount=type=ssh,id=other,target=/agent sh -c 'test -e /agent || echo absent > /other'\n")
    proc = dockyard(d, "build", "--no-cache", "-q", "-t", "sshy:1", "--ssh", f"default={tmp_path / 'k'}", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert cat(d, "sshy:1", "/sock") == "/run/buildkit/ssh_agent.0\n"
    assert cat(d, "sshy:1", "/other") == "absent\n"  # not forwarded, not required: no mount
    assert not daemon_children(d, "ssh-agent")
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    env = dict(line.split(";")[0].split("=", 1) for line in agent.splitlines() if "=" in line.split(";")[0])
    try:  # the client's own agent socket, forwarded (same host)
        proc = subprocess.run([DOCKYARD, "-H", d.host, "build", "--no-cache", "-q", "-t", "sshy:2", "--ssh",
                               "default", str(ctx)], capture_output=True, text=True, timeout=180,
                              env={**d.env(), "SSH_AUTH_SOCK": env["SSH_AUTH_SOCK"]})
        assert proc.returncode == 0, proc.stderr
        assert cat(d, "sshy:2", "/sock") == "/run/buildkit/ssh_agent.0\n"
    finally:
        os.kill(int(env["SSH_AGENT_PID"]), signal.SIGTERM)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN --mount=type=ssh,id=other,required=true true\n")
    bad = dockyard(d, "build", "--ssh", f"default={tmp_path / 'k'}", str(ctx))
    assert bad.returncode == 1 and "no SSH key 'other' forwarded" in bad.stderr
    ok(d, "rmi", "sshy:1", "sshy:2")


def test_hostile_sources_are_refused(servers: dict, tmp_path: Path) -> None:
    import json
    from urllib.parse import quote
    d, gitd = servers["daemon"], servers["git"]
    # a submodule pointing at the daemon host's files: git's file transport is not allowed
    root = gitd.root
    secret = tmp_path / "secret"
    secret.mkdir()
    git(secret, "init", "-q", "-b", "main")
    (secret / "key").write_text("host secret\n")
    git(secret, "add", ".")
    git(secret, "commit", "-qm", "s")
    work = tmp_path / "evil"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "Dockerfile").write_text("FROM busybox\nCOPY . /src\n")
    git(work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", f"file://{secret}", "sub")
    git(work, "commit", "-qam", "evil")
    git(root, "clone", "-q", "--bare", str(work), "evil.git")
    bad = dockyard(d, "build", "-q", f"{gitd.url}/evil.git")
    assert bad.returncode == 1 and "transport 'file' not allowed" in bad.stderr, bad.stderr
    for query, message in ((f"remote={quote('file:///etc')}", b"unsupported remote context"),
                           (f"remote={quote('ext::sh -c id')}", b"unsupported remote context")):
        status, _headers, body = d.request("POST", f"/build?{query}", b"")
        assert status == 200 and message in body, body
    contexts = quote(json.dumps({"../escape": "local"}))
    status, _headers, body = d.request("POST", f"/build?buildcontexts={contexts}", b"")
    assert status == 400 and b"invalid buildcontexts" in body
    status, _headers, body = d.request("POST", "/build", b"", {"X-Dockyard-Build-Ssh": "bm90IGpzb24="})
    assert status == 400 and b"invalid X-Dockyard-Build-Ssh" in body


def test_inline_cache_through_a_registry(servers: dict, tmp_path: Path) -> None:
    d, reg = servers["daemon"], servers["private"]
    name = f"{reg.addr}/cache/app:1"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN head -c 8 /dev/urandom | od -x > /random\n"
                                         "WORKDIR /app\n")
    ok(d, "login", reg.addr, "-u", "alice", "--password-stdin", input=b"wonderland\n")
    try:
        proc = dockyard(d, "build", "-q", "--cache-to", "type=inline", "-t", name, str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        random = cat(d, name, "/random")
        ok(d, "push", name)
        ok(d, "rmi", name)
        ok(d, "builder", "prune", "-af")
        ok(d, "image", "prune", "-f")
        # a fresh machine's view: the image only in the registry; --cache-from pulls it (with
        # config.json's credentials) and its inline cache makes every step a hit
        proc = dockyard(d, "build", "--progress=plain", "--cache-from", name, "-t", "frominline:1", str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("Using cache") == 2, proc.stdout
        assert cat(d, "frominline:1", "/random") == random
    finally:
        ok(d, "logout", reg.addr)
    ok(d, "rmi", "frominline:1", name)


def test_a_docker_daemon_refuses_what_only_dockyardd_does(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from _common import remove_cgroups
    from _peers import DockerEngine, Skip
    parent = f"{TEST_CGROUP_PARENT}/build-docker"
    short = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))  # containerd's socket path must stay short
    try:
        engine = DockerEngine(short, parent)
    except Skip as exc:
        shutil.rmtree(short, ignore_errors=True)
        pytest.skip(str(exc))
    try:
        try:
            engine.start()
        except Skip as exc:  # a dockerd that failed may leave its mounts: cleaned below
            pytest.skip(str(exc))
        engine.run("load", "-i", str(busybox_archive(tmp_path)))
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo hi > /hi\n")
        host = f"unix://{engine.sock}"
        env = {**engine.env, "DOCKYARD_NO_AUTOSTART": "1"}
        plain = subprocess.run([DOCKYARD, "-H", host, "build", "-q", str(ctx)], capture_output=True, text=True,
                               env=env, timeout=180)
        assert plain.returncode == 0, plain.stderr  # the whole context, the classic protocol
        for flag in (["--build-context", "x=docker-image://busybox"], ["--cache-to", f"type=local,dest={tmp_path}/c"],
                     ["--ssh", f"default={ctx / 'Dockerfile'}"]):
            bad = subprocess.run([DOCKYARD, "-H", host, "build", *flag, str(ctx)], capture_output=True, text=True,
                                 env=env, timeout=180)
            assert bad.returncode == 1 and "this daemon is not a dockyardd" in bad.stderr, bad.stderr
    finally:
        problems = engine.stop()
        remove_cgroups(parent)
        shutil.rmtree(short, ignore_errors=True)
        assert not problems, problems
