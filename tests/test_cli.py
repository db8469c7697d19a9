"""The `dockyard` CLI against a private dockyardd, compared with the real docker CLI on the same
daemon: exit codes, table headers and rows (timing columns normalised), inspect JSON, errors
('docker' and 'dockyard' normalised)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# fixtures: busybox as a save archive and a rootfs tar; the leftover-children check minus the daemon
from tests.daemon import (
    Dockyardd,
    daemon_children_only,  # noqa: F401 (fixture)
)
from tests.test_api_images import archives  # noqa: F401

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
TIMING = re.compile(r"(About a minute|About an hour|Less than a second|\d+ (seconds?|minutes|hours|days|weeks|months|years))"
                    r"( ago)?")


@pytest.fixture(scope="module")
def daemon(archives: dict[str, Path]) -> Iterator[Dockyardd]:  # noqa: F811
    with Dockyardd() as d:
        proc = d.docker("load", "-i", str(archives["save"]))
        assert proc.returncode == 0, proc.stderr
        yield d
        d.remove_containers()


def dy(d: Dockyardd, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the dockyard CLI against the private daemon (explicit -H)."""
    proc = subprocess.run([DOCKYARD, "-H", d.host, *args], input=input, capture_output=True, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def norm(text: str) -> str:
    """Timing columns → <t>, docker → dockyard, column padding collapsed (it follows the timing
    columns' widths)."""
    text = TIMING.sub("<t>", text).replace("Docker", "dockyard").replace("docker", "dockyard")
    return "\n".join(re.sub(r" {2,}", "  ", line.rstrip()) for line in text.splitlines())


def same(d: Dockyardd, *args: str, stderr: bool = False, unordered: bool = False) -> subprocess.CompletedProcess[str]:
    """Run both CLIs; assert the same exit code and stdout (and stderr if asked); dockyard's result.
    unordered: compare the lines as sets (docker lists an image's tags in Go map order)."""
    theirs, ours = d.docker(*args), dy(d, *args)
    assert ours.returncode == theirs.returncode, (args, ours.stderr, theirs.stderr)
    if unordered:
        assert sorted(norm(ours.stdout).splitlines()) == sorted(norm(theirs.stdout).splitlines()), args
    else:
        assert norm(ours.stdout) == norm(theirs.stdout), args
    if stderr:
        assert norm(ours.stderr) == norm(theirs.stderr), args
    return ours


def import_times(*modules: str) -> dict[str, int]:
    """-X importtime of `import modules` in a fresh interpreter: {module: cumulative µs}."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + ", ".join(modules)],
                          capture_output=True, text=True, check=True)
    lines = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {name.strip(): int(cumulative) for _, cumulative, name in lines[1:]}


def test_import_time_budget() -> None:
    """`import dockyard.cli.main` (all that `dockyard --version` or `--help` load) measured
    0.5-0.8 ms here: the command table and os/sys; 5 ms catches any command module, json, socket
    or typing pulled in eagerly. The `ps` path (runner, client, containers) measured 28-40 ms,
    mostly socket+enum, json+re and time formatting; 80 ms leaves CI room and still fails when
    something heavy (argparse, typing, urllib, asyncio) comes in."""
    main = import_times("dockyard.cli.main")
    assert main["dockyard.cli.main"] < 5_000, main
    assert not main.keys() & {"socket", "json", "typing", "dockyard.client.http", "dockyard.cli.runner"}
    ps = import_times("dockyard.cli.main", "dockyard.cli.runner", "dockyard.cli.commands.containers")
    assert not ps.keys() & {"argparse", "typing", "urllib.parse", "asyncio", "platform"}, sorted(ps)
    total = sum(ps[m] for m in ("dockyard.cli.main", "dockyard.cli.runner", "dockyard.cli.commands.containers"))
    assert total < 80_000, total


def test_version_and_help(daemon: Dockyardd) -> None:
    assert dy(daemon, "--version").stdout.startswith("Dockyard version")
    assert same(daemon, "version", "--format", "{{.Server.Version}}").stdout.strip() == "0.1.0"
    out = dy(daemon, "version").stdout
    assert "API version:       1.45" in out and "Server: dockyard" in out
    assert "Usage:  dockyard images" in dy(daemon, "images", "--help").stdout
    assert "Manage images" in dy(daemon, "image").stdout
    gone = subprocess.run([DOCKYARD, "-H", "unix:///nonexistent/d.sock", "version"], capture_output=True, text=True,
                          timeout=30)
    assert gone.returncode == 1 and gone.stdout.startswith("Client: dockyard\n Version:")  # as docker: the
    assert "Cannot connect to the dockyard daemon" in gone.stderr and "Server:" not in gone.stdout  # client part


def test_info_and_df(daemon: Dockyardd) -> None:
    same(daemon, "info", "--format", "{{.Images}} {{.ServerVersion}} {{json .Plugins}}")
    ours, theirs = dy(daemon, "info"), daemon.docker("info")
    def server(text: str) -> list[str]:  # the runtimes come from a Go map: docker's order varies
        return [line for line in text.split("Server:", 1)[1].splitlines() if line.strip() and "Runtimes:" not in line]
    assert server(ours.stdout) == server(theirs.stdout)
    same(daemon, "system", "df")
    same(daemon, "system", "df", "--format", "{{.Type}}: {{.Size}}")


@pytest.mark.parametrize("args", [
    ["images"], ["image", "ls"], ["images", "-q"], ["images", "-a"], ["images", "--no-trunc"],
    ["images", "--digests"], ["images", "-aq", "--no-trunc"], ["images", "busybox"], ["images", "nosuch"],
    ["images", "--format", "{{json .}}"], ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"],
    ["images", "--format", "table {{.Repository}}\t{{.ID}}\t{{.CreatedSince}}"],
    ["images", "--filter", "reference=busy*"], ["images", "--filter", "dangling=true"],
    ["images", "--filter", "bogus=1"], ["images", "--bogus"], ["images", "-z"],
])
def test_images(daemon: Dockyardd, args: list[str]) -> None:
    same(daemon, *args)


@pytest.mark.parametrize("args", [
    ["image", "inspect", "busybox"], ["inspect", "busybox"], ["inspect", "--type", "image", "busybox"],
    ["inspect", "--format", "{{.Id}} {{.Config.Cmd}} {{json .RepoTags}}", "busybox"],
    ["image", "inspect", "-f", "{{json .Config.Cmd}}", "busybox"], ["inspect", "nosuch"],
    ["inspect", "--type", "image", "nosuch"], ["image", "inspect", "nosuch"], ["image", "inspect", "busybox", "nosuch"],
    ["history", "busybox"], ["history", "--no-trunc", "busybox"], ["history", "-q", "busybox"],
    ["image", "history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}", "busybox"], ["history", "nosuch"],
    ["rmi", "nosuch"], ["image", "rm", "-f", "nosuch"], ["tag", "nosuch", "x:1"], ["tag", "busybox"], ["rmi"],
    ["nosuchcommand"], ["image", "prune", "-f"],
])
def test_image_commands(daemon: Dockyardd, args: list[str]) -> None:
    same(daemon, *args, stderr=True)


def test_tag_and_rmi(daemon: Dockyardd) -> None:
    assert dy(daemon, "tag", "busybox", "cli-tag:1").returncode == 0
    assert "cli-tag:1" in daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    same(daemon, "images", unordered=True)
    assert dy(daemon, "rmi", "cli-tag:1").stdout == "Untagged: cli-tag:1\n"
    assert daemon.docker("tag", "busybox", "cli-tag:2").returncode == 0
    assert dy(daemon, "rmi", "cli-tag:2").stdout == "Untagged: cli-tag:2\n"
    same(daemon, "rmi", "cli-tag:2", stderr=True)


def test_save_load_import(daemon: Dockyardd, archives: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "bb.tar"
    assert dy(daemon, "save", "-o", str(out), "busybox").returncode == 0
    assert out.stat().st_size > 1_000_000
    assert dy(daemon, "load", "-i", str(out)).stdout == "Loaded image: busybox:latest\n"
    assert dy(daemon, "load", "-q", input=out.read_bytes()).stdout == "Loaded image: busybox:latest\n"
    same(daemon, "load", "-i", str(tmp_path / "missing.tar"))
    proc = dy(daemon, "import", "-c", "CMD [\"sh\"]", "-m", "from the cli", str(archives["rootfs"]), "cli-import:1")
    assert proc.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", proc.stdout), proc.stderr
    inspected = json.loads(daemon.docker("image", "inspect", "cli-import:1").stdout)[0]
    assert inspected["Config"]["Cmd"] == ["sh"] and inspected["Comment"] == "from the cli"
    same(daemon, "history", "cli-import:1")
    assert dy(daemon, "rmi", "cli-import:1").returncode == 0


def test_events(daemon: Dockyardd) -> None:
    until = str(int(time.time()))
    ours = dy(daemon, "events", "--since", "0", "--until", until, "--format", "{{json .}}")
    theirs = daemon.docker("events", "--since", "0", "--until", until, "--format", "{{json .}}")
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    same(daemon, "events", "--since", "0", "--until", until)
    same(daemon, "events", "--since", "0", "--until", until, "--filter", "type=image", "--format", "{{.Action}}")


def test_unreachable_daemon() -> None:
    host = "unix:///tmp/dyx-absent.sock"
    ours = subprocess.run([DOCKYARD, "-H", host, "images"], capture_output=True, text=True)
    theirs = subprocess.run(["docker", "-H", host, "images"], capture_output=True, text=True)
    assert ours.returncode == theirs.returncode == 1
    assert norm(ours.stderr) == norm(theirs.stderr)
    ours = subprocess.run([DOCKYARD, "-H", host, "run", "busybox"], capture_output=True, text=True)
    assert ours.returncode == 125 and "Run 'dockyard run --help'" in ours.stderr


@pytest.fixture(scope="module")
def containers(daemon: Dockyardd) -> Dockyardd:
    status = daemon.request("POST", "/containers/create", b"{}", {"Content-Type": "application/json"})[0]
    if status == 404:
        pytest.skip("this dockyardd does not serve POST /containers/create yet")
    return daemon


def test_run_foreground(containers: Dockyardd) -> None:
    d = containers
    proc = same(d, "run", "--rm", "busybox", "echo", "hi")
    assert proc.stdout == "hi\n"
    assert same(d, "run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    same(d, "run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1:2", "-h", "box", "busybox",
         "sh", "-c", "echo $A; pwd; id -u; id -g; hostname")
    same(d, "run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint")
    assert dy(d, "run", "--rm", "-i", "busybox", "cat", input=b"piped\n").stdout == "piped\n"
    proc = dy(d, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (proc.stdout, proc.stderr) == ("out\n", "err\n")
    proc = dy(d, "run", "--rm", "busybox", "nosuchcmd")
    assert proc.returncode == 127 and proc.stderr.startswith("dockyard: Error response from daemon:"), proc.stderr
    proc = same(d, "run", "--rm", "127.0.0.1:9/nosuchimage:1", "true")  # a closed loopback registry
    assert proc.returncode == 125
    assert same(d, "run", "--bogus", "busybox").returncode == 125


def test_detached_lifecycle(containers: Dockyardd) -> None:
    d = containers
    proc = dy(d, "run", "-d", "--name", "cli-web", "--label", "k=v", "busybox", "sh", "-c",
              "echo out; echo err >&2; exec sleep 100")
    assert proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", proc.stdout), proc.stderr
    try:
        for args in (["ps"], ["ps", "-a"], ["ps", "-q"], ["ps", "--no-trunc"], ["ps", "-l"], ["ps", "-n", "1"],
                     ["ps", "--format", "{{.Names}} {{.Image}} {{.Command}} {{.Labels}}"],
                     ["ps", "--filter", "name=cli-web", "-q"], ["ps", "--format", "table {{.ID}}\t{{.Names}}"],
                     ["inspect", "--format", "{{.Name}} {{.Config.Image}} {{.State.Running}}", "cli-web"]):
            same(d, *args)
        assert dy(d, "inspect", "cli-web").stdout.count('"Id"') == 1
        assert same(d, "exec", "cli-web", "echo", "in-exec").stdout == "in-exec\n"
        assert same(d, "exec", "cli-web", "sh", "-c", "exit 4").returncode == 4
        same(d, "exec", "-e", "X=2", "-w", "/tmp", "cli-web", "sh", "-c", "echo $X; pwd")
        deadline = time.monotonic() + 10
        while dy(d, "logs", "cli-web").stdout != "out\n" and time.monotonic() < deadline:
            time.sleep(0.1)
        proc = same(d, "logs", "cli-web")
        assert (proc.stdout, proc.stderr) == ("out\n", "err\n")
        same(d, "logs", "--tail", "1", "cli-web")
        same(d, "logs", "-t", "--since", "1h", "cli-web", stderr=True)
        same(d, "exec", "-u", "1:1", "cli-web", "id")
        assert same(d, "exec", "-d", "cli-web", "true").stdout == ""
        same(d, "ps", "-s")
        same(d, "ps", "-a", "--filter", "status=running", "--format", "{{.Names}} {{.State}}")
        assert dy(d, "rename", "cli-web", "cli-web2").returncode == 0
        same(d, "rename", "cli-web", "cli-web3", stderr=True)
        assert same(d, "stop", "-t", "1", "cli-web2").stdout == "cli-web2\n"
        assert same(d, "wait", "cli-web2").stdout == "137\n"
        same(d, "stop", "nosuch-container", stderr=True)
    finally:
        dy(d, "rm", "-f", "cli-web", "cli-web2")
    same(d, "rm", "cli-web2", stderr=True)


def test_create_start_attach(containers: Dockyardd) -> None:
    d = containers
    cid = dy(d, "create", "--name", "cli-created", "busybox", "sh", "-c", "echo started; exit 5").stdout.strip()
    try:
        assert len(cid) == 64
        proc = dy(d, "start", "-a", "cli-created")
        assert (proc.returncode, proc.stdout) == (5, "started\n")
        assert same(d, "ps", "-a", "--filter", "name=cli-created", "--format", "{{.Status}}").stdout.startswith("Exited (5)")
        proc = dy(d, "container", "prune", "-f")
        lines = proc.stdout.splitlines()
        assert lines[0] == "Deleted Containers:" and cid in lines and lines[-2:] == ["", "Total reclaimed space: 0B"]
        same(d, "container", "prune", "-f")
    finally:
        dy(d, "rm", "-f", "cli-created")


def test_run_flags(containers: Dockyardd, tmp_path: Path) -> None:
    """Resource, security and mount flags give the same container as docker's."""
    (tmp_path / "f").write_text("bound\n")
    same(containers, "run", "--rm", "--init", "--read-only", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
         "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "--ulimit", "nofile=100:200", "--tmpfs", "/scratch",
         "-v", f"{tmp_path}:/b:ro", "--add-host", "foo:1.2.3.4", "--label", "a=b", "--stop-signal", "SIGINT",
         "--stop-timeout", "3", "--log-opt", "max-size=1m", "--restart", "no", "--pull", "never", "busybox",
         "sh", "-c", "cat /b/f; ulimit -n; grep foo /etc/hosts; touch /x 2>&1; grep -c scratch /proc/mounts;"
         "grep CapEff /proc/self/status", stderr=True)
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\n")
    same(containers, "run", "--rm", "--env-file", str(env_file), "-e", "B=2", "busybox", "sh", "-c",
         "echo $FROM_FILE $B")
    same(containers, "run", "--rm", "--pull", "never", "nosuch:1", "true", stderr=True)


def test_signals_pause_restart(containers: Dockyardd) -> None:
    d = containers
    assert dy(d, "run", "-d", "--name", "cli-pz", "busybox", "sleep", "100").returncode == 0
    try:
        assert dy(d, "pause", "cli-pz").stdout == "cli-pz\n"
        assert "(Paused)" in dy(d, "ps", "--format", "{{.Status}}", "-f", "name=cli-pz").stdout
        assert dy(d, "unpause", "cli-pz").stdout == "cli-pz\n"
        assert dy(d, "restart", "-t", "1", "cli-pz").stdout == "cli-pz\n"
        assert dy(d, "kill", "-s", "KILL", "cli-pz").stdout == "cli-pz\n"
        assert dy(d, "wait", "cli-pz").stdout == "137\n"
        same(d, "kill", "cli-pz", stderr=True)
    finally:
        dy(d, "rm", "-f", "cli-pz")


@pytest.mark.skipif(not shutil.which("script"), reason="needs script(1) for a pseudo-terminal")
def test_run_tty(containers: Dockyardd) -> None:
    """-it on a real terminal (script's pty): raw mode, a tty inside, the container's exit code."""
    argv = f"{DOCKYARD} -H {containers.host} run --rm -it busybox sh -c 'tty; exit 3'"
    proc = subprocess.run(["script", "-qec", argv, "/dev/null"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 3 and "/dev/pts/" in proc.stdout, (proc.stdout, proc.stderr)


def test_attach(containers: Dockyardd) -> None:
    d = containers
    assert dy(d, "run", "-d", "--name", "cli-att", "busybox", "sh", "-c", "sleep 2; echo late; exit 6").returncode == 0
    try:
        proc = dy(d, "attach", "--no-stdin", "cli-att", timeout=30)
        assert (proc.returncode, proc.stdout) == (6, "late\n"), proc.stderr
        same(d, "attach", "cli-att", stderr=True)
    finally:
        dy(d, "rm", "-f", "cli-att")


def test_client_version_settled_without_a_ping(daemon: Dockyardd, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.client import api, http

    sent: list[tuple[str, str]] = []
    real = http.request

    def spy(host: str, method: str, target: str, *args, **kwargs) -> http.Response:
        sent.append((method, target))
        return real(host, method, target, *args, **kwargs)

    monkeypatch.setattr(http, "request", spy)
    client = api.Client(daemon.host)
    assert isinstance(client.containers(), list) and client.version == "1.45"
    assert sent == [("GET", "/v1.45/containers/json")]
    # a daemon that finds the client's version too new: the ping, then the same call at its version
    monkeypatch.setattr(api, "MAX_API_VERSION", "1.99")
    sent.clear()
    client = api.Client(daemon.host)
    assert isinstance(client.containers(), list) and client.version == "1.45"
    assert sent == [("GET", "/v1.99/containers/json"), ("HEAD", "/_ping"), ("GET", "/v1.45/containers/json")]


def test_a_bad_template_is_an_error_as_docker(daemon: Dockyardd) -> None:
    """The runner reports a template error (the engine imported only by the commands that format)
    with Go's words and docker's exit code, not a traceback."""
    ours = same(daemon, "inspect", "--format", "{{.Id", "busybox")
    assert ours.returncode != 0 and ours.stderr.startswith("template"), ours.stderr
    assert "Traceback" not in ours.stderr
