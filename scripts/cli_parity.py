"""Run the same command lines through the real docker CLI and the dockyard CLI against one private
dockyardd and print where they differ (stdout, stderr, exit code).

    .venv/bin/python scripts/cli_parity.py [-k SUBSTRING] [-v] [--dockerd]

Both CLIs see the same daemon state, so every difference is the CLI's. Scenarios that change
state run their setup, the docker CLI, their teardown, then the same for dockyard. Only what must
differ is normalised: IDs, generated names, timestamps, durations, the program's name.
--dockerd compares daemons instead: the docker CLI on a private dockerd (bench/_peers.py; no
bridge, so scenarios that publish ports or use the default network differ for that reason) and
on dockyardd, each with its own copy of the base state.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.daemon import Dockyardd, busybox_archive  # noqa: E402

DOCKYARD = str(Path(sys.executable).parent / "dockyard")

HEX = re.compile(r"\b(sha256:)?[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"
                   r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( [+-]\d{4} \w+)?")
PORT = re.compile(r"(?<=:)\d{4,5}(?=->|-\\u003e)")
AGO = re.compile(r"(About a minute|About an hour|Less than a second|\d+ (seconds?|minutes|hours|days))")


def normalise(text: str, tmp: str) -> str:
    """IDs, timestamps, durations and published host ports become tokens; docker's name becomes ours."""
    text = text.replace(tmp, "<tmp>")
    text = HEX.sub(lambda m: "<id64>" if len(m.group()) > 12 else "<id12>", text)
    text = STAMP.sub("<time>", text)
    text = AGO.sub("<ago>", text)
    text = PORT.sub("<port>", text)
    return text.replace("Docker", "dockyard").replace("docker", "dockyard")


@dataclass
class Scenario:
    """One command line, with the commands (through docker) that prepare and undo its state."""

    args: list[str]
    setup: list[list[str]] = field(default_factory=list)
    teardown: list[list[str]] = field(default_factory=list)
    stdin: bytes | None = None
    reset: bool = False  # the command may remove part of the base state: rebuild it after each run

    @property
    def name(self) -> str:
        return " ".join(self.args)


def s(cmd: str, setup: str = "", teardown: str = "", stdin: bytes | None = None, reset: bool = False) -> Scenario:
    """A scenario from shell-like strings (';' separates setup/teardown commands)."""
    import shlex
    split = [shlex.split(c) for c in setup.split(";") if c.strip()]
    return Scenario(shlex.split(cmd), split, [shlex.split(c) for c in teardown.split(";") if c.strip()], stdin,
                    reset)


def scenarios() -> list[Scenario]:
    """The command lines compared (base state: see BASE)."""
    out: list[Scenario] = []
    # unknown commands, flags and arguments
    for cmd in ("frobnicate", "image frob", "container frob", "network frob", "volume frob", "system frob",
                "run --bogus busybox", "ps --bogus", "images --bogus", "rm --bogus x", "ps -Z",
                "start", "stop", "rm", "rename a", "rename", "logs", "wait", "inspect", "tag", "tag busybox",
                "rmi", "cp a", "port", "top", "diff", "commit", "export", "pause", "unpause", "kill",
                "create", "run", "exec", "exec pc-run", "attach", "network create", "network rm",
                "network inspect", "volume inspect", "volume rm", "history", "image inspect", "save",
                "network connect n1", "network disconnect", "logs a b", "diff a b", "port a b c",
                "events extra", "info extra", "version extra", "images a b", "ps extra", "system df extra",
                "volume ls extra", "network ls extra", "image prune extra", "container prune extra"):
        out.append(s(cmd))
    # bad flag values
    for cmd in ("run --memory abc busybox true", "run -p bad busybox true", "run --restart bad busybox true",
                "run --cpus abc busybox true", "run --cpu-shares x busybox true", "run -e busybox",
                "run --pids-limit x busybox true", "create --ulimit nofile=x busybox", "run --stop-timeout x busybox",
                "run -p 99999:80 busybox true", "run --log-opt foo busybox true", "run --memory 1m busybox true",
                "run -v /x:/y:bad busybox true", "run --restart on-failure:x busybox true",
                "run --restart always --rm busybox true", "run -d --rm --restart always busybox true",
                "ps -n x", "ps --filter bogus=1", "ps --filter status=bogus", "ps --filter nokey",
                "logs --tail x pc-run", "stop -t x pc-run", "images --filter bogus=1", "volume ls --filter bogus=1",
                "network ls --filter bogus=1", "events --since bogus --until 1", "run --network bogus busybox true",
                "run --name 'bad name' busybox true", "run -m 1x busybox true", "run --cpus -1 busybox true"):
        out.append(s(cmd))
    # no such object
    for cmd in ("start nosuch", "stop nosuch", "kill nosuch", "rm nosuch", "restart nosuch", "pause nosuch",
                "unpause nosuch", "wait nosuch", "logs nosuch", "inspect nosuch", "container inspect nosuch",
                "image inspect nosuch", "network inspect nosuch", "volume inspect nosuch", "rmi nosuch",
                "tag nosuch x", "history nosuch", "top nosuch", "port nosuch", "diff nosuch", "export nosuch",
                "commit nosuch", "rename nosuch x", "cp nosuch:/etc .", "cp /etc nosuch:/", "exec nosuch true",
                "network rm nosuch", "volume rm nosuch", "network connect nosuch pc-run",
                "network connect pn1 nosuch", "network disconnect pn1 nosuch", "attach nosuch",
                "stats --no-stream nosuch", "save nosuch", "run nosuch", "create nosuch",
                "inspect --type container busybox", "inspect --type image pc-run", "inspect --type volume nosuch",
                "inspect --type bogus x", "stop pc-exited nosuch", "kill pc-exited nosuch",
                "rm nosuch1 nosuch2", "image rm nosuch busybox:nosuch"):
        out.append(s(cmd))
    # conflicts
    out += [
        s("run --name pc-run busybox true"),
        s("create --name pc-run busybox"),
        s("rm pc-run"),
        s("rmi busybox", reset=True),
        s("rmi busybox:pt", teardown="tag busybox busybox:pt"),
        s("rename pc-run pc-exited"),
        s("network create pn1"),
        s("network rm bridge"),
        s("network rm pn1", setup="network connect pn1 pc-run", teardown="network disconnect pn1 pc-run"),
        s("volume rm pv-used"),
        s("volume create pv1"),
        s("unpause pc-run"),
        s("pause pc-exited"),
        s("kill pc-exited"),
        s("exec pc-exited true"),
        s("start pc-run"),
        s("attach pc-exited"),
        s("top pc-exited"),
        s("network connect pn1 pc-run", setup="network connect pn1 pc-run", teardown="network disconnect pn1 pc-run"),
        s("network disconnect pn1 pc-run"),
    ]
    # run and exec exit codes, output ordering
    for cmd in ("run --rm busybox true", "run --rm busybox false", "run --rm busybox sh -c 'exit 42'",
                "run --rm busybox /nonexistent", "run --rm busybox /etc/passwd", "run --rm busybox nosuchcmd",
                "run --rm busybox sh -c 'echo out; echo err >&2; exit 3'", "run --rm busybox echo hello world",
                "run --rm -w /nonexist busybox pwd", "run --rm -u nosuchuser busybox true",
                "run --rm --entrypoint nosuch busybox", "run --rm -e A=1 busybox sh -c 'echo $A'",
                "run --rm -a stdout busybox sh -c 'echo o; echo e >&2'",
                "run --rm -a stderr busybox sh -c 'echo o; echo e >&2'",
                "run --rm -i busybox cat", "run --rm busybox sh -c 'kill -9 $$'",
                "exec pc-run true", "exec pc-run false", "exec pc-run sh -c 'exit 7'", "exec pc-run nosuch",
                "exec pc-run /etc/passwd", "exec -w /nonexist pc-run pwd", "exec -u nosuch pc-run true",
                "exec -e X=y pc-run sh -c 'echo $X'", "exec pc-run sh -c 'echo a; echo b >&2'",
                "run --rm --pull never nosuch:latest true", "run --rm --pull bogus busybox true",
                "start -a pc-exited", "wait pc-exited", "wait pc-exited pc-exited"):
        out.append(s(cmd, stdin=b"piped\n" if " -i " in cmd else None))
    # listings and formats
    fmts = ["{{.ID}}", "{{.Names}}", "{{json .}}", "table {{.Names}}\t{{.Status}}", "{{.Label \"k\"}}",
            "{{.Labels}}", "{{range .Mounts}}{{.}}{{end}}", "{{upper .Names}}", "{{lower .Image}}",
            "{{json .Labels}}", "{{println .Names}}", "{{.Names}} {{.Ports}}", "{{.Command}}",
            "{{.State}}", "{{.Networks}}", "{{.Size}}", "{{.RunningFor}}", "{{.Image}}{{.Mounts}}",
            "table", "json", "{{.Bogus}}", "{{", "{{split .Names \"-\"}}", "{{join (split .Names \"-\") \"+\"}}",
            "{{title .Names}}", "{{len .Names}}", "{{if .Ports}}p{{else}}n{{end}}", "{{pad .Names 2 3}}",
            "{{truncate .Names 3}}"]
    for fmt in fmts:
        out.append(Scenario(["ps", "-a", "--format", fmt]))
    for extra in ([], ["-a"], ["-q"], ["-aq"], ["--no-trunc", "-a"], ["-l"], ["-n", "1"], ["-s", "-a"],
                  ["-a", "--filter", "status=exited"], ["-a", "--filter", "name=pc-run"],
                  ["-a", "--filter", "label=k=v"], ["-a", "--filter", "exited=3"],
                  ["-a", "--filter", "ancestor=busybox"], ["-a", "--filter", "label=k"],
                  ["-a", "--filter", "status=running", "--filter", "status=exited"]):
        out.append(Scenario(["ps", *extra]))
    for extra in ([], ["-a"], ["-q"], ["--no-trunc"], ["--digests"], ["busybox"], ["busybox:pt"], ["nosuch"],
                  ["--format", "{{.Repository}}:{{.Tag}}"], ["--format", "json"], ["--format", "table {{.ID}}"],
                  ["--filter", "dangling=true"], ["--filter", "reference=busy*"], ["--format", "{{json .}}"],
                  ["--filter", "label=x"], ["-f", "before=busybox"]):
        out.append(Scenario(["images", *extra]))
    for cmd in ("image ls", "image list -q", "history busybox", "history --no-trunc busybox",
                "history -q busybox", "history --format '{{.CreatedBy}}' busybox", "history -H=false busybox",
                "network ls", "network ls -q", "network ls --no-trunc", "network ls --format '{{.Name}} {{.Driver}}'",
                "network ls --filter name=pn1", "network ls --filter driver=bridge -q", "network ls --format json",
                "network inspect -f '{{.Name}} {{.Driver}} {{.Scope}}' pn1", "network inspect -f '{{json .Labels}}' pn1",
                "volume ls", "volume ls -q", "volume ls --format '{{.Name}} {{.Driver}}'", "volume ls --format json",
                "volume ls --filter name=pv1", "volume ls --filter dangling=true", "volume ls --filter label=k",
                "volume inspect -f '{{.Name}} {{.Driver}} {{.Labels}}' pv1", "volume inspect pv1 nosuch",
                "inspect -f '{{.Name}}' pc-run", "inspect -f '{{.State.Status}} {{.State.ExitCode}}' pc-exited",
                "inspect -f '{{index .Config.Labels \"k\"}}' pc-run", "inspect -f '{{json .State.Running}}' pc-run",
                "inspect -f '{{.Config.Cmd}}' pc-run", "inspect -f '{{join .Config.Cmd \",\"}}' pc-run",
                "inspect -f '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}' pc-run",
                "inspect -f '{{.HostConfig.RestartPolicy.Name}}' pc-run", "inspect -f '{{.NoSuchField}}' pc-run",
                "inspect -f '{{.Config.NoSuch}}' pc-run", "inspect -f '{{.Id}}' pc-run nosuch",
                "inspect -f '{{.Os}} {{.Architecture}}' busybox", "inspect -f '{{.RepoTags}}' busybox",
                "inspect -f '{{.Name}}' pn1", "inspect -f '{{.Name}}' pv1", "inspect --size -f '{{.SizeRw}}' pc-exited",
                "inspect -f '{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}' pc-run",
                "inspect -f '{{.NetworkSettings.Ports}}' pc-run", "inspect -f '{{len .Args}}' pc-run",
                "image inspect -f '{{.Config.Cmd}}' busybox", "container inspect -f '{{.Path}}' pc-run",
                "inspect -f '{{println .Name}}{{upper .Name}}' pc-run", "inspect -f '{{.State.Health}}' pc-run",
                "port pc-run", "port pc-run 80", "port pc-run 80/tcp", "port pc-run 81", "port pc-run 80/udp",
                "port pc-exited", "diff pc-exited", "top pc-run", "top pc-run -o pid,comm",
                "logs pc-exited", "logs --tail 2 pc-exited", "logs --tail 0 pc-exited", "logs -n 1 pc-exited",
                "logs --since 2000-01-01T00:00:00Z pc-exited", "logs --since 1h pc-exited",
                "logs --until 2000-01-01 pc-exited", "logs --tail all pc-exited", "logs --since bogus pc-exited",
                "stats --no-stream --format '{{.Name}}' pc-run", "stats --no-stream --format '{{.Container}}' pc-run",
                "stats --no-stream --format '{{.Name}}' pc-exited", "stats --no-stream --format json pc-exited",
                "system df --format '{{.Type}}'", "system df --format json", "info --format '{{.Containers}}'",
                "info --format '{{.ContainersRunning}} {{.Images}}'", "info -f '{{json .Driver}}'",
                "version --format '{{.Server.APIVersion}}'", "version --format '{{.Client.Bogus}}'",
                "info --format '{{.Bogus}}'", "events --since 0 --until 1",
                "events --since 0 --until 1 --filter type=container",
                "events --since 0 --until 1 --filter bogus=x", "events --until 1 --format '{{json .}}'",
                "system events --since 0 --until 1"):
        out.append(s(cmd))
    # state changes
    out += [
        s("rm pc-exited nosuch", setup="create --name pc-tmp busybox", teardown="rm -f pc-tmp", reset=True),
        s("rm pc-tmp", setup="create --name pc-tmp busybox"),
        s("rm -f pc-tmp nosuch", setup="run -d --name pc-tmp busybox sleep 100"),
        s("rm pc-tmp", setup="run -d --name pc-tmp busybox sleep 100", teardown="rm -f pc-tmp"),
        s("stop -t 0 pc-tmp nosuch", setup="run -d --name pc-tmp busybox sleep 100", teardown="rm -f pc-tmp"),
        s("kill pc-tmp nosuch", setup="run -d --name pc-tmp busybox sleep 100", teardown="rm -f pc-tmp"),
        s("kill -s bogus pc-tmp", setup="run -d --name pc-tmp busybox sleep 100", teardown="rm -f pc-tmp"),
        s("kill -s USR1 pc-tmp", setup="run -d --name pc-tmp busybox sleep 100", teardown="rm -f pc-tmp"),
        s("restart -t 0 pc-tmp", setup="run -d --name pc-tmp busybox sleep 100", teardown="rm -f pc-tmp"),
        s("pause pc-tmp", setup="run -d --name pc-tmp busybox sleep 100", teardown="rm -f pc-tmp"),
        s("pause pc-tmp", setup="run -d --name pc-tmp busybox sleep 100;pause pc-tmp", teardown="rm -f pc-tmp"),
        s("unpause pc-tmp", setup="run -d --name pc-tmp busybox sleep 100;pause pc-tmp", teardown="rm -f pc-tmp"),
        s("rename pc-tmp pc-tmp2", setup="create --name pc-tmp busybox", teardown="rm -f pc-tmp pc-tmp2"),
        s("rename pc-tmp pc-tmp", setup="create --name pc-tmp busybox", teardown="rm -f pc-tmp"),
        s("rename pc-tmp ''", setup="create --name pc-tmp busybox", teardown="rm -f pc-tmp"),
        s("wait pc-tmp", setup="run -d --name pc-tmp busybox sh -c 'exit 5'", teardown="rm -f pc-tmp"),
        s("wait pc-tmp nosuch", setup="run -d --name pc-tmp busybox sh -c 'exit 5'", teardown="rm -f pc-tmp"),
        s("start pc-tmp nosuch", setup="create --name pc-tmp busybox", teardown="rm -f pc-tmp"),
        s("start -a pc-tmp", setup="create --name pc-tmp busybox echo hi", teardown="rm -f pc-tmp"),
        s("start -a pc-tmp pc-exited", setup="create --name pc-tmp busybox echo hi", teardown="rm -f pc-tmp"),
        s("create --name pc-tmp busybox", teardown="rm -f pc-tmp"),
        s("container prune -f", setup="create --name pc-tmp --label p=1 busybox",
          teardown="rm -f pc-tmp", reset=True),
        s("container prune -f --filter label=p=1", setup="create --name pc-tmp --label p=1 busybox",
          teardown="rm -f pc-tmp"),
        s("commit -c 'CMD [\"echo\",\"x\"]' pc-exited pc-img:1", teardown="rmi pc-img:1"),
        s("commit -c 'BOGUS x' pc-exited pc-img:1", teardown="rmi pc-img:1"),
        s("commit pc-exited 'bad ref!'"),
        s("commit -m msg -a me pc-exited pc-img", teardown="rmi pc-img"),
        s("tag busybox pc-img:t1", teardown="rmi pc-img:t1"),
        s("tag busybox UPPER"), s("tag busybox 'a b'"), s("tag busybox a:b:c"), s("tag busybox :tag"),
        s("tag busybox a@sha256:abc"), s("tag busybox -x"), s("tag busybox a/"), s("tag busybox a//b"),
        s("tag busybox " + "a" * 300), s("tag busybox a:" + "t" * 200), s("tag busybox ''"),
        s("rmi pc-img:t1 nosuch", setup="tag busybox pc-img:t1"),
        s("rmi pc-img:t1", setup="tag busybox pc-img:t1"),
        s("image rm -f pc-img:t1", setup="tag busybox pc-img:t1"),
        s("network create pn2", teardown="network rm pn2"),
        s("network create --driver bogus pn2", teardown="network rm pn2"),
        s("network create --subnet bogus pn2", teardown="network rm pn2"),
        s("network rm pn2 nosuch", setup="network create pn2"),
        s("network rm pn2", setup="network create pn2"),
        s("network prune -f", setup="network create pn2", teardown="network rm pn2", reset=True),
        s("volume create pv2", teardown="volume rm pv2"),
        s("volume create --driver bogus pv2", teardown="volume rm pv2"),
        s("volume create 'bad name'"),
        s("volume rm pv2 nosuch", setup="volume create pv2"),
        s("volume prune -f", setup="volume create pv2", teardown="volume rm pv2", reset=True),
        s("volume prune -af", setup="volume create pv2", teardown="volume rm pv2", reset=True),
        s("image prune -f", reset=True),
        s("cp pc-exited:/etc/hostname -", ),
        s("cp pc-exited:/nosuch <tmp>/x"),
        s("cp <tmp>/nosuch pc-exited:/"),
        s("cp pc-exited:/etc/hostname <tmp>/nodir/x"),
        s("cp <tmp>/f pc-exited:/nodir/x"),
        s("cp <tmp>/f pc-exited:/etc/"),
        s("cp pc-exited:/etc/ <tmp>/"),
        s("cp a b"), s("cp a:/x b:/y"),
        s("export pc-exited"),
        s("save busybox"),
        s("save -o <tmp>/img.tar busybox nosuch"),
        s("load -i <tmp>/nosuch.tar"),
        s("load", stdin=b"not a tar"),
        s("import <tmp>/nosuch.tar"),
        s("import - pc-img:imp", stdin=b"", teardown="rmi pc-img:imp"),
        s("system df"),
        s("load -i <tmp>/img.tar", setup="save -o <tmp>/img.tar busybox"),
        s("load -q -i <tmp>/img.tar", setup="save -o <tmp>/img.tar busybox"),
        s("save -o <tmp>/out/img.tar busybox"),
        s("import -c 'CMD [\"sh\"]' -m msg <tmp>/rootfs.tar pc-img:imp", setup="export -o <tmp>/rootfs.tar pc-exited",
          teardown="rmi pc-img:imp"),
        s("export -o <tmp>/nodir/x.tar pc-exited"),
        s("commit -c 'CMD [\"echo\",\"x\"]' -c 'ENV A=1' pc-exited pc-img:c", teardown="rmi pc-img:c"),
        s("logs -t pc-exited"), s("logs --details pc-exited"), s("logs --until 1h pc-exited"),
        s("pause pc-tmp", setup="run -d --name pc-tmp busybox sleep 100"),
        s("unpause pc-tmp nosuch", setup="run -d --name pc-tmp busybox sleep 100;pause pc-tmp"),
        s("rename pc-tmp pc-tmp2", setup="create --name pc-tmp busybox", teardown="rm -f pc-tmp2"),
        s("network connect pn1 pc-tmp", setup="create --name pc-tmp busybox"),
        s("network disconnect pn1 pc-tmp", setup="create --name pc-tmp --network pn1 busybox"),
        s("network create --subnet 10.251.0.0/24 pn3", teardown="network rm pn3"),
        s("network create --subnet 10.251.0.0/24 pn3", setup="network create --subnet 10.251.0.0/24 pn4",
          teardown="network rm pn3 pn4"),
        s("volume create pv3", teardown="volume rm pv3"), s("volume rm pv1 pv-used", reset=True),
        s("builder prune -f"), s("system prune -f", reset=True), s("system prune -af --volumes", reset=True),
        s("system prune --volumes", stdin=b"n\n"), s("system prune -a", stdin=b"n\n"), s("image prune -a -f --filter label=nosuch"),
        s("events --since 0 --until <until> --filter container=pc-exited"),
        s("events --since 0 --until <until> --filter type=network --format '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'"),
        s("events --since 0 --until <until> --filter event=create --format json"),
        s("system events --since 0 --until <until> --filter type=volume"),
        s("wait pc-ok pc-exited"), s("diff pc-ok"), s("top pc-run aux"), s("port pc-run 80/tcp"),
        s("stats --no-stream --format '{{.Name}} {{.ID}}' pc-exited pc-ok"),
        s("stats --no-stream --no-trunc --format '{{.Container}}' pc-run"),
        s("container ls -a --filter volume=pv-used --format '{{.Names}}'"),
        s("container ls -a --filter network=pn1 --format '{{.Names}}'"),
        s("ps -a --filter since=pc-exited --format '{{.Names}}'"),
        s("ps -a --filter before=pc-run --format '{{.Names}}'"),
        s("ps -a --filter health=none --format '{{.Names}}'"),
        s("images --filter since=busybox"),
        s("image inspect -f '{{.RepoTags}} {{.Os}}' busybox:pt"),
        s("image history --format '{{.CreatedBy}}|{{.Size}}' busybox"),
        s("ps -a --format 'table {{.Label \"k\"}}\t{{upper .Names}}\t{{json .Labels}}\t{{.State}}'"),
        s("ps -a --format 'table {{.ID}}\t{{.CreatedAt}}\t{{.LocalVolumes}}\t{{.Networks}}\t{{.Mounts}}'"),
        s("images --format 'table {{.Digest}}\t{{.CreatedAt}}\t{{.VirtualSize}}\t{{.UniqueSize}}'"),
        s("volume ls --format 'table {{.Mountpoint}}\t{{.Labels}}\t{{.Scope}}\t{{.Size}}\t{{.Links}}'"),
        s("network ls --format 'table {{.CreatedAt}}\t{{.IPv4}}\t{{.IPv6}}\t{{.Internal}}\t{{.Labels}}'"),
        s("history --format 'table {{.ID}}\t{{.CreatedAt}}\t{{.Comment}}' busybox"),
        s("stats --no-stream --format 'table {{.Name}}\t{{.ID}}' pc-exited"),
        s("system df --format 'table {{.Type}}\t{{.Reclaimable}}'"),
        s("run --rm --memory 64m --memory-swap -1 --memory-reservation 32m --shm-size 8m busybox df -k /dev/shm"),
        s("run --rm --memory-swap x busybox true"), s("run --rm --shm-size 1q busybox true"),
        s("run --rm --device /dev/null:/dev/xnull:rw busybox ls /dev/xnull"), s("run --rm --device '' busybox true"),
        s("run --rm --sysctl net.ipv4.ip_forward=1 busybox cat /proc/sys/net/ipv4/ip_forward"),
        s("run --rm --sysctl bogus busybox true"), s("run --rm --pid host busybox sh -c 'test -d /proc/1'"),
        s("run --rm --ipc host --uts host busybox true"), s("run --rm --group-add 10 -u 1000 busybox id -G"),
        s("run --rm --label-file <tmp>/nosuch busybox true"), s("run --rm --domainname example.org busybox true"),
        s("run --rm --cpuset-cpus 0 --cpu-period 100000 --cpu-quota 50000 busybox true"),
        s("run --rm --oom-score-adj 100 busybox cat /proc/self/oom_score_adj"),
        s("run --rm --cidfile <tmp>/f busybox true"),
        s("run -i --name pc-dk --detach-keys ctrl-a,x busybox cat", stdin=b"hi\n\x01x"),
        s("run -i --name pc-dk --detach-keys bogus busybox cat", stdin=b"hi\n"),
        s("exec -i --detach-keys ctrl-a,x pc-run cat", stdin=b"hi\n\x01x"),
        s("run --rm --memory-swappiness 10 --cpu-rt-runtime 0 busybox true"),
        s("network create --subnet 10.252.0.0/24 --aux-address a=10.252.0.5 --ipam-opt x=y --ipv4 pn7",
          teardown="network rm pn7"),
        s("network create --aux-address a=10.252.0.5 pn7", teardown="network rm pn7"),
        s("network connect --alias x --link pc-run:r pn1 pc-tmp", setup="create --name pc-tmp busybox"),
        s("network connect --ip 10.1.2.3 pn1 pc-tmp", setup="create --name pc-tmp busybox"),
        s("system df -v"), s("system df -v --format json"), s("network inspect -f '{{.Name}} {{.Internal}}' pn1 bridge"),
        s("network ls --filter label=k"), s("network ls --filter type=custom"), s("network ls --filter type=builtin -q"),
        s("network create --internal --label a=b pn5", teardown="network rm pn5"),
        s("network inspect pn1 -f '{{range $k, $v := .Labels}}{{$k}}{{end}} {{.IPAM.Driver}} {{len .IPAM.Config}}'"),
        s("volume create --label x=y -o type=tmpfs -o device=tmpfs pv6", teardown="volume rm pv6"),
        s("volume inspect -f '{{.Labels}} {{.Options}} {{.Scope}}' pv1"),
        s("image tag busybox:pt busybox:pt2", teardown="rmi busybox:pt2"), s("ps -s --format '{{.Names}} {{.Size}}'"),
        s("container ls --latest --quiet"), s("container ls -n 2 --format '{{.Names}}'"),
        s("image ls --format 'table {{.Repository}}\t{{.Tag}}\t{{.Containers}}'"),
        s("run --rm -e A -e B=2 --env-file <tmp>/nosuch busybox env"),
        s("run --rm --name pc-r1 -h myhost -w /tmp busybox sh -c 'hostname; pwd'"),
        s("run --rm --entrypoint '' busybox echo x"), s("run --rm -u 1000:1000 busybox id"),
        s("run --rm --read-only busybox touch /x"), s("run --rm --network none busybox ip -o link"),
        s("run --rm busybox sh -c 'echo $HOME $PATH'"), s("create --name pc-c1 -t -i busybox", teardown="rm pc-c1"),
        s("start -a pc-c2", setup="create --name pc-c2 busybox sh -c 'echo a && echo b >&2 && exit 4'"),
        s("restart -t 0 pc-c3 nosuch", setup="run -d --name pc-c3 busybox sleep 100"),
        s("stop --signal KILL pc-c4", setup="run -d --name pc-c4 busybox sleep 100"),
        s("container wait pc-c5", setup="run -d --name pc-c5 busybox sh -c 'sleep 0.5 && exit 9'"),
    ]
    return out


BASE = [
    ["run", "-d", "--name", "pc-run", "--label", "k=v", "--label", "a=b", "-p", "80", "-v", "/data",
     "busybox", "sleep", "1000"],
    ["run", "--name", "pc-exited", "--label", "k=w", "busybox", "sh", "-c", "echo one; echo two; echo three; exit 3"],
    ["network", "create", "--label", "k=v", "pn1"],
    ["volume", "create", "--label", "k=v", "pv1"],
    ["run", "--name", "pc-vol", "-v", "pv-used:/x", "busybox", "true"],
    ["tag", "busybox", "busybox:pt"],
    ["run", "--name", "pc-ok", "busybox", "true"],
]


class Side:
    """One CLI against one daemon, with the docker CLI on the same daemon for setup and teardown."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], tmp: str) -> None:
        self.label, self.argv, self.env, self.tmp = label, argv, env, tmp
        self.base: set[str] = set()
        self.until = ["0"]  # the end of the base state's events (a list: shared like base)

    def run(self, args: list[str], stdin: bytes | None = None, admin: bool = False) -> tuple[int, str, str]:
        """One command (admin: through the docker CLI): exit code, stdout, stderr."""
        argv = ["docker"] if admin else self.argv
        args = [a.replace("<tmp>", self.tmp).replace("<until>", self.until[0]) for a in args]
        try:
            proc = subprocess.run([*argv, *args], input=stdin if stdin is not None else b"", capture_output=True,
                                  env=self.env, timeout=60, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            return -1, "", "TIMEOUT"
        return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")

    def build_base(self) -> None:
        """(Re)create the base state every scenario starts from."""
        self.remove_containers(set())
        for cmd in (["volume", "prune", "-af"], ["network", "prune", "-f"], ["tag", "busybox:pt", "busybox"], *BASE):
            self.run(cmd, admin=True)
        self.base.clear()  # shared by both sides on one daemon
        self.base.update(self.containers())
        time.sleep(1.1)  # events of the base state end before <until>
        self.until[0] = str(int(time.time()))

    def containers(self) -> set[str]:
        return set(self.run(["ps", "-aq", "--no-trunc"], admin=True)[1].split())

    def remove_containers(self, keep: set[str]) -> None:
        extra = self.containers() - keep
        if extra:
            self.run(["rm", "-f", *extra], admin=True)

    def one(self, sc: Scenario) -> tuple[int, str, str]:
        """The scenario's result, normalised; its state undone."""
        for cmd in sc.setup:
            self.run(cmd, admin=True)
        code, out, err = self.run(sc.args, sc.stdin)
        for cmd in sc.teardown:
            self.run(cmd, admin=True)
        if sc.reset:
            self.build_base()
        elif sc.setup or sc.args[0] in ("run", "create", "start", "container", "rm"):
            self.remove_containers(self.base)
        return code, normalise(out, self.tmp), normalise(err, self.tmp)


def compare(ref: Side, subject: Side, selected: list[Scenario], verbose: bool) -> int:
    """Run every scenario on both sides; print the differences; how many differ."""
    differ = 0
    for sc in selected:
        theirs, ours = ref.one(sc), subject.one(sc)
        if theirs == ours and not verbose:
            continue
        differ += theirs != ours
        print(f"=== {sc.name}" + ("" if theirs != ours else "  (same)"))
        for label, a, b in zip(("exit", "stdout", "stderr"), theirs, ours, strict=True):
            if a != b or verbose:
                print(f"--- {label}\n  {ref.label}: {a!r}\n  {subject.label}: {b!r}")
    return differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only scenarios whose command line contains this")
    parser.add_argument("-v", action="store_true", help="print every scenario, not only differences")
    parser.add_argument("--dockerd", action="store_true",
                        help="compare the docker CLI on dockerd (a private one) with the docker CLI on dockyardd")
    opts = parser.parse_args()
    selected = [sc for sc in scenarios() if opts.k in sc.name]
    tmp = tempfile.mkdtemp(prefix="clip-", dir="/tmp")
    peer = None
    sides: list[Side] = []
    try:
        Path(tmp, "f").write_text("file\n")
        archive = busybox_archive(Path(tmp))
        with Dockyardd() as daemon:
            ours = Side("dockyard", [DOCKYARD], {**daemon.env(), "DOCKYARD_HOST": daemon.host}, tmp)
            if opts.dockerd:
                sys.path.insert(0, str(ROOT / "bench"))
                from _peers import DockerEngine
                peer = DockerEngine(Path(tmp), f"/dockyard-parity-{os.getpid()}")
                peer.start()
                ref = Side("dockerd ", ["docker"], {**peer.env, "DOCKER_HOST": f"unix://{peer.sock}"}, tmp)
                ours = Side("dockyardd", ["docker"], daemon.env(), tmp)
            else:
                ref = Side("docker  ", ["docker"], daemon.env(), tmp)
            sides = [ref] if opts.dockerd else []
            sides.append(ours)
            for side in sides:
                side.run(["load", "-i", str(archive)], admin=True)
                side.build_base()
            if not opts.dockerd:
                ref.base, ref.until = ours.base, ours.until
            differ = compare(ref, ours, selected, opts.v)
            for side in sides:
                side.remove_containers(set())
    finally:
        if peer is not None:
            from _common import remove_cgroups
            for problem in [*peer.stop(), *remove_cgroups(f"/dockyard-parity-{os.getpid()}")]:
                print(problem, file=sys.stderr)
        subprocess.run(["rm", "-rf", tmp], check=False)
    print(f"{differ} of {len(selected)} scenarios differ", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    os.environ.setdefault("DOCKER_CLI_HINTS", "false")
    sys.exit(main())
