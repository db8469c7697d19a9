"""`dockyard compose` is an Engine API client: the classic web + database example against a real
dockerd started privately (bench/_peers.py): web built from a local Dockerfile, a database whose
healthcheck turns healthy after a delay, a named volume, a published port, a project network;
web starts only once the database is healthy; an unhealthy dependency stops `up`. Skipped when
dockerd is not installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.compose_classic import V1, run_classic_with_v1, write_classic
from tests.conftest import TEST_CGROUP_PARENT
from tests.daemon import busybox_archive, other_children

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from _peers import DockerEngine, Skip  # noqa: E402

DOCKYARD = str(Path(sys.executable).parent / "dockyard")

@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    tmp = tmp_path_factory.mktemp("compose-docker")
    parent = f"{TEST_CGROUP_PARENT}/compose-docker"
    try:
        engine = DockerEngine(tmp, parent)
        engine.start()
    except Skip as exc:
        pytest.skip(str(exc))
    try:
        engine.run("load", "-i", str(busybox_archive(tmp)))
        yield engine
    finally:
        problems = engine.stop()
        remove_cgroups(parent)
        assert not problems, problems


def remove_cgroups(parent: str) -> None:
    """dockerd leaves its (empty) cgroup parent in every hierarchy: remove it, deepest first."""
    for hierarchy in os.scandir("/sys/fs/cgroup"):
        top = os.path.join(hierarchy.path, parent.strip("/"))
        for root, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            os.rmdir(root)


@pytest.fixture(autouse=True)
def no_leftover_children(dockerd: DockerEngine) -> Iterator[None]:
    """conftest's check, except for this module's dockerd."""
    yield
    assert not other_children({dockerd.proc.pid}), "a test left child processes running"  # type: ignore[union-attr]


def compose(engine: DockerEngine, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([DOCKYARD, "-H", f"unix://{engine.sock}", "compose", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def inspect(engine: DockerEngine, name: str) -> dict:
    return json.loads(engine.run("inspect", name))[0]


@pytest.fixture
def app(dockerd: DockerEngine, tmp_path: Path) -> Iterator[Path]:
    directory = write_classic(tmp_path)
    yield directory
    compose(dockerd, directory, "down", "-v", "--rmi", "local", "-t", "1", check=False)
    assert dockerd.run("ps", "-aq", "--filter", "label=com.docker.compose.project=classic").split() == []


def test_classic_example_against_dockerd(dockerd: DockerEngine, app: Path) -> None:
    up = compose(dockerd, app, "up", "-d")
    err = up.stderr
    for line in ("Network classic_default  Created", 'Volume "classic_dbdata"  Created', "Service web  Built",
                 "Container classic-db-1  Healthy", "Container classic-web-1  Started"):
        assert line in err, err
    assert err.index("classic-db-1  Healthy") < err.index("classic-web-1  Starting")
    db, web = inspect(dockerd, "classic-db-1"), inspect(dockerd, "classic-web-1")
    healthy_at = min(entry["End"] for entry in db["State"]["Health"]["Log"] if entry["ExitCode"] == 0)
    assert web["State"]["StartedAt"] > healthy_at
    assert web["Config"]["Image"] == "classic-web"
    assert web["Config"]["Labels"]["com.docker.compose.depends_on"] == "db:service_healthy:false"
    assert set(web["NetworkSettings"]["Networks"]) == {"classic_default"}
    assert "web" in web["NetworkSettings"]["Networks"]["classic_default"]["Aliases"]
    assert compose(dockerd, app, "port", "web", "8000").stdout == "0.0.0.0:18080\n"
    ps = compose(dockerd, app, "ps").stdout
    assert "(healthy)" in ps and "0.0.0.0:18080->8000/tcp" in ps
    assert compose(dockerd, app, "exec", "-T", "web", "cat", "/www/index.html").stdout == "hello\n"
    assert "db-1  | db ready" in compose(dockerd, app, "logs", "--no-color", "db").stdout
    top = compose(dockerd, app, "top", "web").stdout
    assert top.startswith("classic-web-1\n") and "httpd" in top
    compose(dockerd, app, "exec", "-T", "db", "sh", "-c", "echo kept > /data/kept")
    down = compose(dockerd, app, "down", "-t", "1")
    assert "Network classic_default  Removed" in down.stderr
    compose(dockerd, app, "up", "-d")
    assert compose(dockerd, app, "exec", "-T", "db", "cat", "/data/kept").stdout == "kept\n"
    again = compose(dockerd, app, "up", "-d")
    assert "Creating" not in again.stderr and "Building" not in again.stderr
    down = compose(dockerd, app, "down", "-v", "-t", "1")
    assert "Volume classic_dbdata  Removed" in down.stderr


def test_unhealthy_dependency_stops_up(dockerd: DockerEngine, app: Path) -> None:
    (app / "compose.yaml").write_text((app / "compose.yaml").read_text().replace('["CMD", "test", "-f", "/data/ready"]', '["CMD", "false"]')
                                      .replace("retries: 30", "retries: 2"))
    failed = compose(dockerd, app, "up", "-d", check=False)
    assert failed.returncode == 1
    assert "dependency failed to start: container classic-db-1 is unhealthy" in failed.stderr
    assert inspect(dockerd, "classic-web-1")["State"]["Status"] == "created"


def test_watch_rebuild_and_sync_restart_against_dockerd(dockerd: DockerEngine, app: Path) -> None:
    (app / "compose.yaml").write_text("""
services:
  web:
    build: ./web
    stop_signal: SIGKILL
    develop:
      watch:
        - {action: rebuild, path: ./web/index.html}
        - {action: sync+restart, path: ./conf, target: /conf}
""")
    (app / "conf").mkdir()
    (app / "conf" / "app.conf").write_text("one\\n")
    compose(dockerd, app, "up", "-d")
    first = inspect(dockerd, "classic-web-1")
    # without --no-up: watch's own (idempotent) up has seen the old image, the rebuild must still recreate
    watcher = subprocess.Popen([DOCKYARD, "-H", f"unix://{dockerd.sock}", "compose", "watch"], cwd=app,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        (app / "conf" / "app.conf").write_text("two\\n")
        wait_for(lambda: compose(dockerd, app, "exec", "-T", "web", "cat", "/conf/app.conf", check=False).stdout
                 == "two\\n")
        wait_for(lambda: inspect(dockerd, "classic-web-1")["State"]["StartedAt"] != first["State"]["StartedAt"])
        (app / "web" / "index.html").write_text("rebuilt\\n")
        wait_for(lambda: compose(dockerd, app, "exec", "-T", "web", "cat", "/www/index.html", check=False).stdout
                 == "rebuilt\\n", 30)
        assert inspect(dockerd, "classic-web-1")["Id"] != first["Id"]
    finally:
        os.kill(watcher.pid, signal.SIGINT)
        _, err = watcher.communicate(timeout=30)
    assert "Rebuilding service 'web'" in err and "Syncing service 'web' after 1 changes" in err


def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_networks_aliases_and_static_address_against_dockerd(dockerd: DockerEngine, app: Path) -> None:
    (app / "compose.yaml").write_text("""
services:
  api:
    image: busybox
    stop_signal: SIGKILL
    command: sleep 1000
    networks:
      front: {ipv4_address: 10.123.0.10}
      back: {aliases: [api-internal]}
networks:
  front:
    ipam: {config: [{subnet: 10.123.0.0/24}]}
  back:
    internal: true
""")
    compose(dockerd, app, "up", "-d")
    networks = inspect(dockerd, "classic-api-1")["NetworkSettings"]["Networks"]
    assert set(networks) == {"classic_front", "classic_back"}
    assert networks["classic_front"]["IPAddress"] == "10.123.0.10"
    assert "api-internal" in networks["classic_back"]["Aliases"]
    back = json.loads(dockerd.run("network", "inspect", "classic_back"))[0]
    assert back["Internal"] is True and back["Labels"]["com.docker.compose.network"] == "back"
    down = compose(dockerd, app, "down", "-t", "1")
    assert "Network classic_front  Removed" in down.stderr and "Network classic_back  Removed" in down.stderr


def test_secrets_links_and_dry_run_against_dockerd(dockerd: DockerEngine, app: Path) -> None:
    (app / "compose.yaml").write_text("""
services:
  db:
    image: busybox
    stop_signal: SIGKILL
    command: sleep 1000
  api:
    image: busybox
    stop_signal: SIGKILL
    command: sleep 1000
    links: ["db:database"]
    secrets: [{source: token, mode: 0400}]
    configs: [{source: settings, target: /etc/settings}]
secrets:
  token: {environment: HOME}
configs:
  settings: {content: "level=3"}
""")
    assert compose(dockerd, app, "--dry-run", "up", "-d").stderr.startswith(" DRY-RUN MODE -  Network classic_default")
    assert dockerd.run("ps", "-aq").split() == []
    compose(dockerd, app, "up", "-d")
    script = "stat -c %a /run/secrets/token; cat /run/secrets/token /etc/settings; nslookup database 127.0.0.11"
    out = compose(dockerd, app, "exec", "-T", "api", "sh", "-c", script).stdout
    assert out.startswith(f"400\n{os.environ['HOME']}level=3") and "Name:\tdatabase" in out
    compose(dockerd, app, "down", "-t", "1")


@pytest.mark.skipif(V1 is None, reason="docker-compose (v1) is not installed")
def test_classic_example_with_docker_compose_v1_against_dockerd(dockerd: DockerEngine, app: Path) -> None:
    """The same example through Debian's docker-compose: the reference the dockyardd run of
    tests/test_compose_engine.py is held to once the daemon has networks, healthchecks and builds."""
    run_classic_with_v1(app, {**dockerd.env, "DOCKER_HOST": f"unix://{dockerd.sock}"})


def test_builder_extensions_against_dockerd(dockerd: DockerEngine, tmp_path: Path) -> None:
    """What only dockyardd's builder takes: against dockerd build.ssh and cache_to are ignored
    with a warning, directories as additional contexts refused; the classic build still runs."""
    (tmp_path / "extra").mkdir()
    (tmp_path / "ignored").write_text("no\n")
    (tmp_path / ".dockerignore").write_text("ignored\n")
    (tmp_path / "compose.yaml").write_text("""
name: extensions
services:
  app:
    build:
      context: .
      dockerfile_inline: "FROM busybox\\nCOPY . /ctx\\n"
      ssh: [default]
      cache_to: ["type=local,dest=./cache"]
      extra_hosts: {dbhost: 10.1.2.3}
""")
    build = compose(dockerd, tmp_path, "build")
    assert "build.ssh is ignored" in build.stderr and "build.cache_to is ignored" in build.stderr
    listed = dockerd.run("run", "--rm", "extensions-app", "ls", "/ctx").split()
    assert "ignored" not in listed and "compose.yaml" in listed
    assert not (tmp_path / "cache").exists()
    (tmp_path / "compose.yaml").write_text("name: extensions\nservices:\n  app:\n    build:\n      context: .\n"
                                           "      additional_contexts: {x: ./extra}\n")
    bad = compose(dockerd, tmp_path, "build", check=False)
    assert bad.returncode == 1 and "the classic builder doesn't support additional contexts" in bad.stderr
    dockerd.run("rmi", "extensions-app")
