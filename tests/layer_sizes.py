"""The sizes dockerd reports (images, history, containers, system df) for busybox and a small
built image, gathered through the docker CLI from any daemon: tests/test_layer_sizes.py checks
dockyardd against the facts recorded from a private dockerd 20.10 (overlay2) in
tests/data/layer_sizes.json, and against a live dockerd when one is installed.

Record again with: .venv/bin/python -m tests.layer_sizes --record"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

DATA = Path(__file__).parent / "data" / "layer_sizes.json"
BUILT = "layer-sizes/built:latest"
WRITER = "layer-sizes-writer"
COMMITTED = "layer-sizes/committed:latest"
# a COPY, then RUN steps that add a hard link and a symlink, append to a hard-linked file (copy-up
# breaks the link), delete a file of the same image and one of the base (whiteouts only)
DOCKERFILE = """\
FROM busybox
COPY data.bin /data/data.bin
RUN echo hello > /a.txt && ln /a.txt /b.txt && ln -s /a.txt /c.lnk && dd if=/dev/zero of=/big bs=1000 count=5
RUN rm /big /bin/ls && echo world >> /a.txt
"""
WRITES = "echo 12345 > /f && rm /bin/cat"


def context(directory: Path) -> Path:
    """The build context of BUILT."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    (directory / "data.bin").write_bytes(bytes(range(256)) * 12)
    return directory


def facts(docker: Callable[..., str], directory: Path) -> dict[str, list[str]]:
    """Build BUILT, run WRITER and commit it as COMMITTED (busybox loaded already) with
    docker(*args) -> stdout; the sizes shown."""
    docker("build", "-q", "-t", BUILT, str(context(directory)))
    docker("run", "--name", WRITER, "busybox", "sh", "-c", WRITES)
    docker("commit", WRITER, COMMITTED)
    try:
        verbose = json.loads(docker("system", "df", "-v", "--format", "{{json .}}"))
        return {
            "inspect": docker("image", "inspect", "-f", "{{.Size}}", "busybox", BUILT).split(),
            "history": docker("history", "-H=false", "--format", "{{.Size}}", BUILT).split(),
            # sorted: the three images may be created within the same second
            "images": sorted(docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").splitlines()),
            "container": docker("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", WRITER).split(),
            "ps": docker("ps", "-as", "--filter", f"name={WRITER}", "--format", "{{.Size}}").splitlines(),
            "df": docker("system", "df", "--format", "{{.Type}} {{.Size}} {{.Reclaimable}}").splitlines(),
            "df_images": sorted(" ".join(i[k] for k in ("Repository", "Tag", "Size", "SharedSize", "UniqueSize",
                                                        "Containers")) for i in verbose["Images"]),
            "df_containers": [f"{c['Names']} {c['Size']}" for c in verbose["Containers"]],
            "committed": [docker("image", "inspect", "-f", "{{.Size}}", COMMITTED).strip(),
                          *docker("history", "-H=false", "--format", "{{.Size}}", COMMITTED).split()],
        }
    finally:
        docker("rm", WRITER)
        docker("rmi", BUILT, COMMITTED)


def cli(env: dict[str, str]) -> Callable[..., str]:
    """docker(*args) -> stdout for the docker CLI with env (the classic builder); raises on failure."""
    env = {**env, "DOCKER_BUILDKIT": "0"}

    def docker(*args: str) -> str:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout
    return docker


@contextlib.contextmanager
def dockerd(tmp: Path, cgroup_parent: str) -> Iterator[Callable[..., str]]:
    """A private dockerd (bench/_peers.py) on tmp with busybox loaded, as docker(*args); its cgroup
    parent removed afterwards. Raises _peers.Skip when it cannot run here."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    from _common import remove_cgroups
    from _peers import DockerEngine

    from tests.daemon import busybox_archive

    engine = DockerEngine(tmp, cgroup_parent)
    try:
        engine.start()
        engine.run("load", "-i", str(busybox_archive(tmp)))
        yield cli({**engine.env, "DOCKER_HOST": f"unix://{engine.sock}"})
    finally:
        problems = engine.stop() + [f"cgroup left: {p}" for p in remove_cgroups(cgroup_parent)]
        if problems:
            raise RuntimeError(f"dockerd: {problems}")


def main() -> None:
    """Print the facts from a private dockerd (--record: write them to DATA)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="layer-sizes-") as tmp, \
            dockerd(Path(tmp), f"/dockyard-layer-sizes-{os.getpid()}") as docker:
        found = facts(docker, Path(tmp) / "ctx")
    print(json.dumps(found, indent=1))
    if args.record:
        DATA.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
