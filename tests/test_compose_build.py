"""`dockyard compose build` with what dockyardd's builder offers beyond the classic protocol:
build.ssh, additional_contexts (directories, images, git, OCI layouts, `service:NAME`), local and
inline cache export/import, extra_hosts, labels, tags, network, platforms, and git or HTTP(S)
contexts. All on loopback: a private daemon, `git daemon`, http.server."""

from __future__ import annotations

import io
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Dockyardd, build_daemon, other_children
from tests.test_build_sources import GitDaemon, make_repository

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("servers")
    (tmp / "git").mkdir()
    make_repository(tmp / "git")
    gitd = GitDaemon(tmp / "git")
    try:
        with build_daemon(tmp) as d:
            yield {"daemon": d, "gitd": gitd, "git": gitd.url + "/app.git"}
    finally:
        gitd.stop()


@pytest.fixture(autouse=True)
def no_leftover_children(servers: dict) -> Iterator[None]:
    yield
    assert not other_children({servers["daemon"].proc.pid, servers["gitd"].proc.pid}), \
        "a test left child processes running"


class Project:
    def __init__(self, d: Dockyardd, directory: Path) -> None:
        self.d = d
        self.dir = directory
        directory.mkdir()

    def file(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def __call__(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([DOCKYARD, "-H", self.d.host, "compose", *args], cwd=self.dir, capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def cat(self, image: str, *paths: str) -> str:
        proc = self.d.docker("run", "--rm", "--network", "none", image, "cat", *paths)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture
def project(servers: dict, tmp_path: Path) -> Iterator[Project]:
    p = Project(servers["daemon"], tmp_path / "app")
    yield p
    images = p.d.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    mine = [i for i in images if i.startswith(("app-", "extra-tag"))]
    if mine:
        p.d.docker("rmi", "-f", *mine)


def test_build_ssh_keys_and_agent(project: Project, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(project.dir / "k")], check=True)
    project.file("Dockerfile",
                 'FROM busybox\nRUN --mount=type=ssh test -S "$SSH_AUTH_SOCK" && echo "$SSH_AUTH_SOCK" > /sock\n'
                 "RUN --mount=type=ssh,id=deploy,target=/deploy.sock,required=true test -S /deploy.sock "
                 "&& echo deploy > /deploy\n")
    project.file("compose.yaml", """
services:
  keys:
    build: {context: ., ssh: {default: ./k, deploy: ./k}}
  agent:
    build: {context: ., ssh: [default, deploy=./k], no_cache: true}
""")
    build = project("build", "keys")
    assert "ignored" not in build.stderr
    assert project.cat("app-keys", "/sock", "/deploy") == "/run/buildkit/ssh_agent.0\ndeploy\n"
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    env = dict(line.split(";")[0].split("=", 1) for line in agent.splitlines() if "=" in line.split(";")[0])
    try:  # `default` alone: the client's agent socket, forwarded (same host)
        project("build", "agent", env={"SSH_AUTH_SOCK": env["SSH_AUTH_SOCK"]})
    finally:
        os.kill(int(env["SSH_AGENT_PID"]), signal.SIGTERM)
    assert project.cat("app-agent", "/sock") == "/run/buildkit/ssh_agent.0\n"
    project.file("compose.yaml", "services:\n  keys:\n    build: {context: ., no_cache: true}\n")
    bad = project("build", check=False)
    assert bad.returncode == 1 and "returned a non-zero code" in bad.stderr, bad.stderr  # no agent socket
    project("build", "--ssh", "default=k,deploy=./k")  # `compose build --ssh`: added to each service's
    assert project.cat("app-keys", "/deploy") == "deploy\n"
    project.file("compose.yaml", "services:\n  keys:\n    build: {context: ., ssh: [deploy=./missing]}\n")
    bad = project("build", check=False)
    assert bad.returncode == 1 and "build.ssh: --ssh deploy:" in bad.stderr and "missing" in bad.stderr


def test_additional_contexts(project: Project, servers: dict, tmp_path: Path) -> None:
    project.file("extra/hello", "from a directory\n")
    project.file("extra/.dockerignore", "secret\n")
    project.file("extra/secret", "no\n")
    project.file("base/Dockerfile", "FROM busybox\nRUN echo base > /base\n")
    project.file("Dockerfile", "FROM base\nCOPY --from=files hello /hello\nCOPY --from=repo hello.txt /git-hello\n"
                               "COPY --from=img /etc/passwd /img-passwd\nCOPY --from=layout /etc/group /layout-group\n"
                               "RUN --mount=from=files,target=/mnt ls /mnt > /listed\n")
    save = project.d.docker("save", "-o", str(tmp_path / "busybox.tar"), "busybox")
    assert save.returncode == 0, save.stderr
    (project.dir / "layout").mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "busybox.tar"), "-C", str(project.dir / "layout")], check=True)
    project.file("compose.yaml", f"""
services:
  app:
    network_mode: none
    build:
      context: .
      additional_contexts:
        - files=./extra
        - base=service:base
        - repo={servers['git']}#v1
        - img=docker-image://busybox
        - layout=oci-layout://./layout:latest
  base:
    build: ./base
""")
    config = json.loads(project("config", "--format", "json").stdout)
    contexts = config["services"]["app"]["build"]["additional_contexts"]
    assert contexts["files"] == str(project.dir / "extra") and contexts["base"] == "service:base"
    dry = project("--dry-run", "build", "app")
    assert "DRY-RUN MODE -  Service base  Built" in dry.stderr, dry.stderr
    assert project.d.docker("image", "inspect", "app-base").returncode == 1
    build = project("build", "app")  # base is built first: app's FROM names its image
    assert build.stderr.index("#base Step 1/2") < build.stderr.index("#app Step 1/6"), build.stderr
    assert build.stderr.count("#base Step 1/2") == 1
    assert project.cat("app-app", "/base", "/hello", "/git-hello", "/listed") == \
        "base\nfrom a directory\nv1\nhello\n"
    assert project.cat("app-app", "/img-passwd") == project.cat("busybox", "/etc/passwd")
    again = project("build")  # each service once, the dependency first
    assert again.stderr.count("#base Step 1/2") == 1 and again.stderr.count("#app Step 1/6") == 1
    assert again.stderr.count("Using cache") == 6, again.stderr
    project.file("compose.yaml", """
services:
  a: {build: {context: ., additional_contexts: {x: "service:b"}}}
  b: {build: {context: ., additional_contexts: {y: "service:a"}}}
""")
    bad = project("build", check=False)
    assert bad.returncode == 1 and "build dependency cycle: a -> b -> a" in bad.stderr, bad.stderr
    project.file("compose.yaml", "services:\n  a: {build: {context: ., additional_contexts: {x: ./nowhere}}}\n")
    bad = project("build", check=False)
    assert bad.returncode == 1 and "additional context x: directory" in bad.stderr and "nowhere" in bad.stderr


def test_cache_hosts_labels_tags_and_platforms(project: Project) -> None:
    project.file("Dockerfile", "FROM busybox\nRUN head -c 8 /dev/urandom | od -x > /random\n"
                               "RUN grep dbhost /etc/hosts > /hosts\n")
    project.file("compose.yaml", f"""
services:
  app:
    network_mode: none
    build:
      context: .
      cache_to: ["type=local,dest=./cache"]
      extra_hosts: ["dbhost=10.1.2.3"]
      labels: {{stage: test}}
      tags: [extra-tag:1]
      network: none
      platforms: [linux/{ARCH}]
""")
    project("build")
    index = json.loads((project.dir / "cache" / "index.json").read_text())
    assert len(index["manifests"]) == 2  # the two RUN steps
    random = project.cat("app-app", "/random")
    assert project.cat("extra-tag:1", "/hosts").split() == ["10.1.2.3", "dbhost"]
    labels = json.loads(project.d.docker("inspect", "app-app").stdout)[0]["Config"]["Labels"]
    assert labels["stage"] == "test"
    project.d.docker("builder", "prune", "-af")
    project.file("compose.yaml", "services:\n  app:\n    build:\n      context: .\n"
                                 "      cache_from: ['type=local,src=./cache']\n"
                                 "      extra_hosts: {dbhost: 10.1.2.3}\n      network: none\n")
    out = project("build").stderr
    assert out.count("Using cache") == 2, out  # the RUN steps came from the exported cache
    assert project.cat("app-app", "/random") == random
    project.file("compose.yaml", "services:\n  app:\n    build:\n      context: .\n      no_cache: true\n"
                                 "      extra_hosts: {dbhost: 10.1.2.3}\n      cache_to: [type=inline]\n")
    out = project("build").stderr
    assert "Using cache" not in out, out
    assert project.cat("app-app", "/random") != random
    for conf, message in (("platforms: [linux/amd64, linux/arm64]", "multi-platform builds are not supported"),
                          ("platforms: [linux/s390x]", "platform linux/s390x is not supported"),
                          ("cache_to: [\"type=registry,ref=x\"]", "build.cache_to: unsupported --cache-to")):
        project.file("compose.yaml", f"services:\n  app:\n    build:\n      context: .\n      {conf}\n")
        bad = project("build", check=False)
        assert bad.returncode == 1 and message in bad.stderr, (conf, bad.stderr)


def test_git_and_http_contexts(project: Project, servers: dict, web: tuple[str, Path]) -> None:
    base, root = web
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY note /note\n"), ("note", b"from a tarball\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "ctx.tar.gz").write_bytes(buf.getvalue())
    project.file("compose.yaml", f"""
services:
  fromgit: {{build: "{servers['git']}#v1"}}
  sub: {{build: {{context: "{servers['git']}#main:sub"}}}}
  fromweb: {{build: {{context: "{base}/ctx.tar.gz"}}}}
""")
    config = json.loads(project("config", "--format", "json").stdout)
    assert config["services"]["fromgit"]["build"]["context"] == servers["git"] + "#v1"
    project("build")
    assert project.cat("app-fromgit", "/src/hello.txt") == "v1\n"
    assert project.cat("app-sub", "/sub-file") == "in sub\n"
    assert project.cat("app-fromweb", "/note") == "from a tarball\n"
    project.file("compose.yaml", f"services:\n  bad: {{build: \"{servers['git']}#no-such-ref\"}}\n")
    bad = project("build", check=False)
    assert bad.returncode == 1 and "no-such-ref" in bad.stderr


def test_pull_and_shm_size(project: Project, tmp_path: Path) -> None:
    from tests.registries import Dockyard
    d = project.d
    with Dockyard(tmp=tmp_path / "registry") as registry:
        base = f"{registry.addr}/base:1"
        (tmp_path / "newer").mkdir()
        (tmp_path / "newer" / "Dockerfile").write_text("FROM busybox\nRUN echo newer > /version\n")
        for argv in (("build", "-q", "-t", base, str(tmp_path / "newer")), ("push", base), ("tag", "busybox", base)):
            proc = d.docker(*argv, timeout=120)
            assert proc.returncode == 0, (argv, proc.stderr)
        # the registry holds the newer base, the daemon an older one under the same name
        project.file("Dockerfile", f"FROM {base}\nRUN cat /version > /seen || echo old > /seen; "
                                   "df -k /dev/shm | tail -1 > /shm\n")
        project.file("compose.yaml", "services:\n  app:\n    build: {context: ., shm_size: 96m}\n")
        project("build")
        assert project.cat("app-app", "/seen") == "old\n"
        assert project.cat("app-app", "/shm").split()[1] == str(96 * 1024)
        project.file("compose.yaml", "services:\n  app:\n    build: {context: ., pull: true}\n")
        project("build")
        assert project.cat("app-app", "/seen") == "newer\n"
        assert project.cat("app-app", "/shm").split()[1] == str(64 * 1024)
        d.docker("rmi", base)
