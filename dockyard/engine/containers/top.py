"""docker top: the host's `ps` output restricted to the processes of a container's cgroup, in
Docker's {"Titles", "Processes"} shape."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

from dockyard.engine.containers.errors import Conflict, ContainerError

if TYPE_CHECKING:
    from dockyard.engine.containers.service import ContainerService

DEFAULT_PS_ARGS = "-ef"


def container_pids(service: ContainerService, record: dict[str, Any]) -> list[int]:
    """Host PIDs in the container's cgroup, as its OCI runtime reports them (`RUNTIME ps`)."""
    state = record["State"]
    if not state["Running"] or state["Restarting"]:
        raise Conflict(f"Container {record['ID']} is not running")
    proc = service._runtime(record["ID"], "ps", "--format", "json", check=False)
    if proc.returncode:
        raise Conflict(f"Container {record['ID']} is not running")
    return [int(pid) for pid in json.loads(proc.stdout or "[]") or []]


def parse_ps(output: str, pids: list[int]) -> dict[str, Any]:
    """ps output → Titles and the rows whose PID is one of pids (the last column keeps its spaces)."""
    lines = output.splitlines()
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise ContainerError("Couldn't find PID field in ps output")
    column = titles.index("PID")
    wanted = set(pids)
    rows = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= column or not fields[column].isdigit() or int(fields[column]) not in wanted:
            continue
        rows.append(fields[:len(titles) - 1] + [" ".join(fields[len(titles) - 1:])])
    return {"Titles": titles, "Processes": rows}


def top(service: ContainerService, ref: str, ps_args: str | None = None) -> dict[str, Any]:
    """GET /containers/{id}/top?ps_args: as dockerd, `ps ARGS -q PIDS` first, plain `ps ARGS`
    when that fails (options such as f cannot be combined with -q)."""
    record = service.store.get(service.store.resolve(ref))
    pids = container_pids(service, record)
    args = (ps_args or DEFAULT_PS_ARGS).split()
    proc = subprocess.run(["ps", *args, "-q", ",".join(map(str, pids or [0]))], capture_output=True, text=True)
    if proc.returncode:
        proc = subprocess.run(["ps", *args], capture_output=True, text=True)
        if proc.returncode:
            reason = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else f"exit status {proc.returncode}"
            raise ContainerError(f"ps: {reason}")
    return parse_ps(proc.stdout, pids)
