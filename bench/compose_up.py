"""`compose up -d` of a 10-service project from scratch, then `compose down`, on a private
dockerd: dockyard compose side by side with docker-compose v1 (Debian's, an Engine API client in
Python) when installed. Both talk to the same daemon; rounds alternate between the tools. A third
row, "API floor", makes the same daemon calls with no compose at all (in-process, parallel
creates and starts, no file to load): what any client must wait for on that daemon. A fourth,
"dockyard compose -> dockyardd", is dockyard's whole stack (its compose on a private dockyardd),
to set against docker-compose on dockerd.

    .venv/bin/python bench/compose_up.py [--services 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import PROJECT_ROOT, VENV_BIN, print_table, remove_cgroups
from _peers import DockerEngine, Skip

from dockyard.client.api import Client
from tests.daemon import Dockyardd, busybox_archive

SERVICE = """  s{i}:
    image: busybox
    command: sh -c 'trap "exit 0" TERM; sleep 1000 & wait'
    volumes: [data{i}:/data]
"""


FULL_STACK = "dockyard compose -> dockyardd"


def project(directory: Path, services: int) -> None:
    text = "services:\n" + "".join(SERVICE.format(i=i) for i in range(services))
    text += "volumes:\n" + "".join(f"  data{i}: {{}}\n" for i in range(services))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "docker-compose.yml").write_text(text)


def floor_up(client: Client, services: int) -> None:
    """The daemon calls of `up -d`, nothing else: network, volumes, then create+start per service
    in parallel."""
    client.call("POST", "/networks/create", None, {"Name": "floor_default", "Driver": "bridge"})
    with ThreadPoolExecutor(services) as pool:
        list(pool.map(lambda i: client.call("POST", "/volumes/create", None, {"Name": f"floor_data{i}"}),
                      range(services)))

        def one(i: int) -> None:
            body = {"Image": "busybox", "Cmd": ["sh", "-c", 'trap "exit 0" TERM; sleep 1000 & wait'],
                    "HostConfig": {"NetworkMode": "floor_default",
                                   "Mounts": [{"Type": "volume", "Source": f"floor_data{i}", "Target": "/data"}]}}
            client.start(client.create_container(body, f"floor-s{i}-1")["Id"])
        list(pool.map(one, range(services)))


def floor_down(client: Client, services: int) -> None:
    """The daemon calls of `down -v`: stop and remove in parallel, then the network and volumes."""
    with ThreadPoolExecutor(services) as pool:
        def one(i: int) -> None:
            client.container_action(f"floor-s{i}-1", "stop")
            client.remove_container(f"floor-s{i}-1", force=True, volumes=False)
        list(pool.map(one, range(services)))
        client.call("DELETE", "/networks/floor_default")
        list(pool.map(lambda i: client.call("DELETE", f"/volumes/floor_data{i}"), range(services)))


def timed_call(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float | None:
    """The command's wall time; None (reported, the round's sample dropped) when it fails, as
    dockerd sometimes makes docker-compose v1's `down` fail ("network ... has active endpoints")."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"failed, sample dropped: {' '.join(argv)}: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return elapsed


def median(samples: list[float | None]) -> float:
    return statistics.median(x for x in samples if x is not None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dy-bench-compose-", dir="/tmp"))
    parent = f"/dockyard-bench/compose-{os.getpid()}"
    engine = ours = None
    try:
        engine = DockerEngine(tmp, parent)
        engine.start()
        archive = busybox_archive(tmp)
        engine.run("load", "-i", str(archive))
        (tmp / "dockyardd").mkdir()
        ours = Dockyardd(tmp=str(tmp / "dockyardd")).start()
        ours.docker("load", "-i", str(archive))
        env = {**os.environ, "DOCKER_HOST": f"unix://{engine.sock}", "DOCKER_CONFIG": str(tmp / "cli")}
        ours_env = {**env, "DOCKER_HOST": f"unix://{ours.socket}"}
        dockyard = str(VENV_BIN / "dockyard")
        tools = {"dockyard compose": ([dockyard, "-H", env["DOCKER_HOST"], "compose"], env)}
        if shutil.which("docker-compose"):
            tools["docker-compose v1"] = (["docker-compose"], env)
        tools[FULL_STACK] = ([dockyard, "-H", ours_env["DOCKER_HOST"], "compose"], ours_env)
        client = Client(env["DOCKER_HOST"])
        times: dict[str, dict[str, list[float | None]]] = {t: {"up": [], "down": []} for t in [*tools, "API floor"]}
        for r in range(opts.rounds):
            for name, (argv, tool_env) in (tools.items() if r % 2 == 0 else reversed(tools.items())):
                directory = tmp / "proj"
                project(directory, opts.services)
                times[name]["up"].append(timed([*argv, "up", "-d"], directory, tool_env))
                down = timed([*argv, "down", "-v"], directory, tool_env)
                if down is None:
                    timed([*argv, "down", "-v"], directory, tool_env)  # clean up for the next tool
                times[name]["down"].append(down)
            times["API floor"]["up"].append(timed_call(lambda: floor_up(client, opts.services)))
            times["API floor"]["down"].append(timed_call(lambda: floor_down(client, opts.services)))
        rows = []
        base = next(iter(times.values()))
        for name, t in times.items():
            rows.append([name, f"{median(t['up']):.2f} s", f"{median(t['down']):.2f} s",
                         f"{median(t['up']) / median(base['up']):.2f}x" if t is not base else "1",
                         f"{median(t['down']) / median(base['down']):.2f}x" if t is not base else "1"])
        print(f"{opts.services} services, {opts.rounds} rounds (medians), dockerd {engine.run('version', '-f', '{{.Server.Version}}').strip()}")
        print_table(["tool", "up -d", "down -v", "up vs dockyard", "down vs dockyard"], rows)
        if "docker-compose v1" in times:
            v1 = times["docker-compose v1"]
            for label, tool in (("dockyard / v1, both on dockerd", "dockyard compose"),
                                ("dockyard on dockyardd / v1 on dockerd", FULL_STACK)):
                for step in ("up", "down"):
                    ratios = [a / b for a, b in zip(times[tool][step], v1[step], strict=True) if a and b]
                    print(f"{label}, per round, {step}: {min(ratios):.2f}-{max(ratios):.2f}x "
                          f"(median {statistics.median(ratios):.2f}x)")
    except Skip as exc:
        print(f"skipped: {exc}")
    finally:
        if ours is not None:
            left = ours.docker("ps", "-aq").stdout.split()
            if left:
                ours.docker("rm", "-f", *left)
            ours.cleanup()
        if engine is not None:
            for problem in engine.stop():
                print(problem, file=sys.stderr)
        for problem in remove_cgroups(parent):
            print(problem, file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    assert PROJECT_ROOT
    sys.exit(main())
