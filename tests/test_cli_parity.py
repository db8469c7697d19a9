"""The dockyard CLI against the docker CLI, both on one private dockyardd: for each command line
the same exit code, stdout and stderr once IDs, generated names, timestamps, durations and the
program's name are normalised (scripts/cli_parity.py runs the longer list). Commands that change
state run their setup, docker, the cleanup, the setup again, then dockyard."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.cli_parity import normalise
from tests.daemon import Dockyardd, busybox_archive, other_children

DOCKYARD = str(Path(sys.executable).parent / "dockyard")

# Objects every test may use; containers a test creates are removed after it.
BASE = ["run --name pc-exited --label k=w busybox sh -c 'echo one; echo two; echo three; exit 3'",
        "create --name pc-made --label k=v --label a=b -p 80 -v /data busybox sleep 1000",
        "network create --label k=v pn1", "volume create --label k=v pv1", "volume create pv-2",
        "tag busybox busybox:pt"]
RUNNING = "run -d --name pc-run --label k=v -p 80 busybox sleep 1000"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockyardd]:
    archive = busybox_archive(tmp_path_factory.mktemp("busybox"))
    with Dockyardd() as d:
        assert d.docker("load", "-i", str(archive)).returncode == 0
        try:
            for cmd in BASE:
                proc = d.docker(*shlex.split(cmd))
                assert proc.returncode in (0, 3), proc.stderr
            yield d
        finally:
            d.remove_containers()


@pytest.fixture(scope="module")
def base(daemon: Dockyardd) -> set[str]:
    return containers(daemon)


@pytest.fixture(scope="module")
def window(daemon: Dockyardd) -> str:
    """`--since S --until U` around a few events of each type (the daemon keeps only the latest
    events, so the window is made when the first test needs it)."""
    since = int(time.time())
    for cmd in ("run --name pc-ev --label k=v busybox true", "rm pc-ev", "network create pn-ev", "network rm pn-ev",
                "volume create pv-ev", "volume rm pv-ev", "tag busybox pc-ev:1", "rmi pc-ev:1"):
        assert daemon.docker(*shlex.split(cmd)).returncode == 0, cmd
    time.sleep(1.1)
    return f"--since {since} --until {int(time.time())}"


def containers(d: Dockyardd) -> set[str]:
    return set(d.docker("ps", "-aq", "--no-trunc").stdout.split())


def remove_extra(d: Dockyardd, keep: set[str]) -> None:
    extra = containers(d) - keep
    if extra:
        d.docker("rm", "-f", *extra)


@pytest.fixture(autouse=True)
def no_leftover_children(daemon: Dockyardd, base: set[str]) -> Iterator[None]:
    """conftest's check, after removing the test's containers (the module's daemon stays)."""
    yield
    remove_extra(daemon, base)
    assert not other_children({daemon.proc.pid}), "a test left child processes running"  # type: ignore[union-attr]


def run(d: Dockyardd, cli: str, args: list[str], tmp: Path, stdin: bytes = b"") -> tuple[int, str, str]:
    """One command through docker (DOCKER_HOST) or dockyard (DOCKYARD_HOST), normalised."""
    env = {**d.env(), "DOCKYARD_HOST": d.host, "DOCKER_CLI_HINTS": "false"}
    argv = ["docker" if cli == "docker" else DOCKYARD, *(a.replace("<tmp>", str(tmp)) for a in args)]
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=60, cwd=tmp)
    out = normalise(proc.stdout.decode(errors="replace"), str(tmp))
    if "<ago>" in out:  # durations set the columns' widths: compare the cells
        out = re.sub(" {2,}", "  ", out)
    return proc.returncode, out, normalise(proc.stderr.decode(errors="replace"), str(tmp))


def both(d: Dockyardd, base: set[str], tmp: Path, cmd: str, setup: str = "", teardown: str = "",
         stdin: bytes = b"") -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(docker's result, dockyard's) for cmd, each after setup (docker commands, ';'-separated)
    and followed by teardown and the removal of the containers it made."""
    results = []
    for cli in ("docker", "dockyard"):
        for step in filter(str.strip, setup.split(";")):
            d.docker(*shlex.split(step))
        results.append(run(d, cli, shlex.split(cmd), tmp, stdin))
        for step in filter(str.strip, teardown.split(";")):
            d.docker(*shlex.split(step))
        remove_extra(d, base)
    return results[0], results[1]


def check(d: Dockyardd, base: set[str], tmp: Path, cmd: str, **kwargs: str) -> tuple[int, str, str]:
    theirs, ours = both(d, base, tmp, cmd, **kwargs)
    assert ours == theirs, cmd
    return ours


USAGE_ERRORS = [
    "frobnicate", "image frob", "volume frob", "run --bogus busybox", "ps --bogus", "ps -Z", "start", "rename a",
    "logs a b", "port", "port a b c", "images a b", "ps extra", "events extra", "tag busybox", "exec pc-made",
    "run --memory abc busybox true", "run -m 1x busybox true", "run --cpus abc busybox true",
    "run --cpu-shares x busybox true", "create --ulimit nofile=x busybox", "run -p bad busybox true",
    "run -p 99999:80 busybox true", "run --restart on-failure:x busybox true", "run --rm --restart always busybox true",
    "run --pull bogus busybox true", "ps -n x", "ps --filter nokey", "stop -t x pc-made",
    "inspect --type bogus x", "logs --since bogus pc-exited", "events --since bogus --until 1",
]
NO_SUCH = [
    "start nosuch", "stop nosuch", "kill nosuch", "rm nosuch", "wait nosuch", "logs nosuch", "inspect nosuch",
    "image inspect nosuch", "network inspect nosuch", "volume inspect nosuch", "rmi nosuch", "tag nosuch x",
    "port nosuch", "diff nosuch", "rename nosuch x", "cp nosuch:/etc .", "exec nosuch true",
    "network rm nosuch", "volume rm nosuch", "inspect -f '{{.Id}}' pc-exited nosuch", "volume inspect pv1 nosuch",
    "stop pc-exited nosuch", "kill pc-exited nosuch",
]
REFERENCES = ["tag busybox UPPER", "tag busybox 'a b'", "tag busybox a:b:c", "tag busybox :tag", "tag busybox -x",
              "tag busybox a//b", "tag busybox ''", "tag busybox a@sha256:abc", "tag busybox " + "a" * 300,
              "commit pc-exited 'bad ref!'"]
FORMATS = [
    "{{.ID}}", "{{.Names}}", "{{json .}}", "json", "table", "table {{.Names}}\\t{{.Status}}\\t{{.Ports}}",
    '{{.Label "k"}}', "{{.Labels}}", "{{upper .Names}}", "{{println .Names}}", "{{.Command}}", "{{.Mounts}}",
    "{{.Bogus}}", "{{", '{{split .Names "-"}}', '{{join (split .Names "-") "+"}}', "{{title .Names}}",
    "{{if .Ports}}p{{else}}n{{end}}", "{{pad .Names 2 3}}", "{{truncate .Names 3}}", "{{range .Mounts}}{{.}}{{end}}",
    '{{printf "%s=%d" .Names 3}}', '{{with .Labels}}[{{.}}]{{else}}none{{end}}',
    'table {{.Label "com.x.my-key"}}\t{{upper .Names}}\t{{json .Labels}}\t{{.State}}\t{{.LocalVolumes}}',
]
INSPECT = [
    "{{.Name}}", "{{.State.Status}} {{.State.ExitCode}}", '{{index .Config.Labels "k"}}', "{{json .State.Running}}",
    "{{json .Config.Labels}}", "{{.Config.Cmd}}", '{{join .Config.Cmd ","}}',
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "{{.NoSuchField}}", "{{.Config.NoSuch}}",
    "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}", "{{len .Args}}", "{{println .Name}}{{upper .Name}}",
    '{{if eq .State.ExitCode 3}}three{{end}}', "{{ .Name | upper }}", "{{$n := .Name}}{{$n}}",
    "{{.State.Health}}", "{{json .State}}", "{{.HostConfig.RestartPolicy}}",
]
LISTS = [
    "ps -a", "ps -aq", "ps -a --no-trunc", "ps -l", "ps -n 1", "ps -a --filter status=exited", "history -H=false busybox",
    "ps -a --filter label=k=v", "ps -a --filter exited=3", "images", "images -q", "images --format json",
    "images --format '{{.Repository}}:{{.Tag}}'", "images busybox:pt", "history busybox", "network ls",
    "network ls --format json", "network ls --format '{{.Name}} {{.Label \"k\"}}'", "volume ls", "volume ls -q",
    "volume ls --format json", "volume ls --filter label=k", "logs --tail 2 pc-exited", "logs -n 1 pc-exited",
    "logs --tail x pc-exited", "diff pc-exited", "history --format 'table {{.ID}}\t{{.CreatedAt}}' busybox",
    "images --format 'table {{.Digest}}\t{{.VirtualSize}}\t{{.UniqueSize}}'", "port pc-made", "info --format '{{.Containers}} {{.Images}}'",
    "info --format '{{.Bogus}}'", "version --format '{{.Client.Bogus}}'", "system df --format '{{.Type}}'",
    "inspect -f '{{' pc-exited", "inspect --size -f '{{.SizeRw}} {{.SizeRootFs}}' pc-exited", "info -f '{{.Bogus'", "inspect -f json pc-exited pc-made",
]


@pytest.mark.parametrize("cmd", USAGE_ERRORS + NO_SUCH + REFERENCES + LISTS)
def test_same_output(daemon: Dockyardd, base: set[str], tmp_path: Path, cmd: str) -> None:
    (tmp_path / "f").write_text("file\n")
    code, _, err = check(daemon, base, tmp_path, cmd)
    if cmd in USAGE_ERRORS + NO_SUCH + REFERENCES:
        assert code != 0 and err  # a real failure on both sides, not two empty successes


@pytest.mark.parametrize("template", FORMATS)
def test_ps_format(daemon: Dockyardd, base: set[str], tmp_path: Path, template: str) -> None:
    check(daemon, base, tmp_path, f"ps -a --format {shlex.quote(template)}", setup=RUNNING)


@pytest.mark.parametrize("template", INSPECT)
def test_inspect_format(daemon: Dockyardd, base: set[str], tmp_path: Path, template: str) -> None:
    check(daemon, base, tmp_path, f"inspect -f {shlex.quote(template)} pc-made pc-exited")


@pytest.mark.parametrize("cmd, setup", [
    ("rm pc-tmp nosuch", "create --name pc-tmp busybox"),
    ("rm -f pc-tmp nosuch", RUNNING.replace("pc-run", "pc-tmp")),
    ("rm pc-run", RUNNING),
    ("start pc-tmp nosuch", "create --name pc-tmp busybox"),
    ("kill pc-run nosuch", RUNNING),
    ("rename pc-tmp pc-exited", "create --name pc-tmp busybox"),
    ("rename pc-tmp ''", "create --name pc-tmp busybox"),
    ("create --name pc-exited busybox", ""),
    ("unpause pc-run", RUNNING),
    ("exec pc-run sh -c 'echo a; echo b >&2; exit 7'", RUNNING),
    ("exec -u nosuch pc-run true", RUNNING),
    ("exec -w /nonexist pc-run pwd", RUNNING),
    ("top pc-run -o comm,args", RUNNING),
    ("port pc-run 80/udp", RUNNING),
    ("port pc-run 81", RUNNING),
    ("stats --no-stream --format '{{.Name}}' pc-run", RUNNING),
])
def test_state_changes(daemon: Dockyardd, base: set[str], tmp_path: Path, cmd: str, setup: str) -> None:
    ours = check(daemon, base, tmp_path, cmd, setup=setup)
    assert ours[0] != 0 or ours[1], cmd  # each either fails or prints something


def test_rmi_in_use(daemon: Dockyardd, base: set[str], tmp_path: Path) -> None:
    """An image a container uses: untagging works while other tags remain, removal is refused."""
    code, out, err = check(daemon, base, tmp_path, "rmi pc-img:x pc-img:y",
                           setup="tag busybox pc-img:x; create --name pc-tmp pc-img:x",
                           teardown="rmi -f pc-img:x pc-img:y")
    assert code == 1 and "Untagged: pc-img:x" in out and "No such image: pc-img:y" in err


@pytest.mark.parametrize("cmd, code", [
    ("run --rm busybox true", 0), ("run --rm busybox false", 1), ("run --rm busybox sh -c 'exit 42'", 42),
    ("run --rm busybox /nonexistent", 127), ("run --rm busybox /etc/passwd", 126), ("run --rm busybox nosuchcmd", 127),
    ("run --rm busybox sh -c 'echo out; echo err >&2; exit 3'", 3), ("run --rm -a stdout busybox sh -c 'echo o; echo e >&2'", 0),
    ("run --rm --memory 64m --memory-swap -1 --shm-size 8m busybox df -k /dev/shm", 0),
    ("run --rm --device '' busybox true", 125),
    ("run --rm --device /dev/zero:/dev/z:r --device-cgroup-rule 'c 1:5 r' busybox stat -c '%t %T %a' /dev/z", 0),
    ("run --rm --device /dev/no-such-device busybox true", 127),
    ("run --rm --device-cgroup-rule 'c 1:x r' busybox true", 125),
    ("run --rm --sysctl net.ipv4.ip_forward=1 busybox cat /proc/sys/net/ipv4/ip_forward", 0),
    ("run --rm --sysctl bogus busybox true", 125), ("run --rm --memory-swap x busybox true", 125),
    ("run --rm --oom-score-adj 100 busybox cat /proc/self/oom_score_adj", 0),
    ("run --rm --label-file <tmp>/nosuch busybox true", 125), ("run --rm --cidfile <tmp>/f busybox true", 125),
    ("run --name pc-exited busybox true", 125), ("run --rm busybox sh -c 'sleep 5 & kill -9 $!; wait $!'", 137),
])
def test_run_exit_codes(daemon: Dockyardd, base: set[str], tmp_path: Path, cmd: str, code: int) -> None:
    (tmp_path / "f").write_text("file\n")
    assert check(daemon, base, tmp_path, cmd)[0] == code


@pytest.mark.parametrize("cmd", ["system prune", "system prune -a --volumes", "image prune", "container prune"])
def test_prune_prompts(daemon: Dockyardd, base: set[str], tmp_path: Path, cmd: str) -> None:
    """The confirmation texts (answered no: nothing is removed)."""
    theirs, ours = both(daemon, base, tmp_path, cmd, stdin=b"n\n")
    assert ours == theirs and "Are you sure you want to continue? [y/N]" in ours[1]


def test_system_prune(daemon: Dockyardd, base: set[str], tmp_path: Path) -> None:
    """What system prune removes and prints, each side from the same state."""
    setup = "create --name pc-p1 busybox; network create pn-p; volume create pv-p; tag busybox pc-dangling:1"
    check(daemon, base, tmp_path, "system prune -f --filter label=nosuch", setup=setup,
          teardown="network rm pn-p; volume rm pv-p; rmi pc-dangling:1")


def test_tag_rmi_and_networks(daemon: Dockyardd, base: set[str], tmp_path: Path) -> None:
    """Successful changes print as docker's do (each side undoes its own)."""
    check(daemon, base, tmp_path, "tag busybox pc-img:t1", teardown="rmi pc-img:t1")
    check(daemon, base, tmp_path, "rmi pc-img:t1 nosuch", setup="tag busybox pc-img:t1")
    check(daemon, base, tmp_path, "network rm pn2 nosuch", setup="network create pn2")
    check(daemon, base, tmp_path, "volume rm pv3 nosuch", setup="volume create pv3")
    check(daemon, base, tmp_path, "commit -c 'BOGUS x' pc-exited pc-img:1", teardown="rmi pc-img:1")


@pytest.mark.parametrize("args", [
    "", "--filter container=pc-ev", "--filter type=network --format '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'",
    "--filter event=create --format json", "--filter type=volume --format '{{json .Actor}}'",
    "--filter bogus=x",
])
def test_events(daemon: Dockyardd, base: set[str], window: str, tmp_path: Path, args: str) -> None:
    out = check(daemon, base, tmp_path, f"events {window} {args}")[1]
    assert out or "bogus" in args


def test_daemon_texts(daemon: Dockyardd, base: set[str], tmp_path: Path) -> None:
    """What the docker CLI shows from dockyardd where dockerd's answers were copied (found by
    cli_parity.py --dockerd): since/before filters, logs details, kill/rename/exec errors, ps's
    quoted Command."""
    def docker(cmd: str) -> tuple[int, str, str]:
        return run(daemon, "docker", shlex.split(cmd), tmp_path)

    assert docker("ps -a --filter since=pc-exited --format '{{.Names}}'")[1] == "pc-made\n"
    assert docker("ps -a --filter before=pc-made --format '{{.Names}}'")[1] == "pc-exited\n"
    assert docker("ps -a --filter before=nosuch")[2] == "Error response from daemon: No such container: nosuch\n"
    assert docker("logs --details pc-exited")[1] == " one\n two\n three\n"
    assert docker("ps -a --filter name=pc-exited --format '{{.Command}}'")[1] == "\"sh -c 'echo one; ec…\"\n"
    assert docker("kill nosuch")[2] == "Error response from daemon: Cannot kill container: nosuch: No such container: nosuch\n"
    assert docker("rename pc-made pc-exited")[2].startswith(
        "Error response from daemon: Error when allocating new name: Conflict. The container name \"/pc-exited\"")
    daemon.docker(*shlex.split(RUNNING))
    code, out, _ = docker("exec -u nosuch pc-run true")
    assert (code, out) == (126, "unable to find user nosuch: no matching entries in passwd file\r\n")
    assert docker("volume create --driver bogus pv-x")[2] == (
        "Error response from daemon: create pv-x: error looking up volume plugin bogus: plugin \"bogus\" not found\n")
