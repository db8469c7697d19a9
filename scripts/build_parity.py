"""Build parity: the corpus of tests/build_parity.py built by a private dockerd's classic builder
(the oracle) and by a private dockyardd, each through the real docker CLI (DOCKER_BUILDKIT=0);
prints the differences per Dockerfile.

    .venv/bin/python scripts/build_parity.py              # dockerd vs dockyardd
    .venv/bin/python scripts/build_parity.py --record     # also (re)write tests/data/build_parity/
    .venv/bin/python scripts/build_parity.py --recorded   # dockyardd vs the recorded facts (no dockerd)
    .venv/bin/python scripts/build_parity.py -k copy      # only cases whose name contains "copy"

Both daemons get the same busybox image (`docker load` of the offline bootstrap), so IDs of the
base layers and the base file tree are equal; the trees compared are what each image changes
over it. Exit status 1 when any case differs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _common import remove_cgroups  # noqa: E402
from _peers import DockerEngine, Skip  # noqa: E402

from tests.build_parity import BASE, CASES, DATA, Case, Engine, comparable, compare, expected, facts  # noqa: E402
from tests.daemon import Dockyardd, busybox_archive  # noqa: E402


def run_cases(engine: Engine, cases: list[Case], work: Path) -> dict[str, dict]:
    """Each case's facts on one engine (busybox loaded already)."""
    base_tree = engine.tree(BASE)
    results = {}
    for case in cases:
        try:
            results[case.name] = facts(engine, case, work, base_tree)
        except RuntimeError as e:
            results[case.name] = {"error": str(e)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write dockerd's facts under tests/data/")
    parser.add_argument("--recorded", action="store_true", help="compare with the recorded facts, no dockerd")
    parser.add_argument("-k", default="", help="only cases whose name contains this")
    parser.add_argument("--cli", default="docker", choices=("docker", "dockyard"),
                        help="the client building on dockyardd (dockyard build may act as BuildKit)")
    opts = parser.parse_args()
    cases = [c for c in CASES if opts.k in c.name]
    cgroups = f"/dockyard-build-parity-{os.getpid()}"  # dockerd's containers and dockyardd's RUN steps
    os.environ["DOCKYARD_BUILD_CGROUP_PARENT"] = f"{cgroups}/build"
    try:
        return compare_cases(cases, opts, cgroups)
    finally:
        for left in remove_cgroups(cgroups):
            print(f"cgroup left behind: {left}", file=sys.stderr)


def compare_cases(cases: list[Case], opts: argparse.Namespace, cgroups: str) -> int:
    """Build the cases on both daemons (or take dockerd's recorded facts); print the differences."""
    with tempfile.TemporaryDirectory(prefix="build-parity-") as tmp_s:
        tmp = Path(tmp_s)
        archive = busybox_archive(tmp)
        oracle: dict[str, dict] = {}
        if opts.recorded:
            oracle = {c.name: expected(c) for c in cases}
        else:
            dockerd = DockerEngine(tmp, cgroups)
            try:
                dockerd.start()
                env = {**dockerd.env, "DOCKER_HOST": f"unix://{dockerd.sock}"}
                dockerd.run("load", "-i", str(archive))
                oracle = run_cases(Engine(env), cases, tmp / "docker")
            except Skip as e:
                print(f"dockerd: {e}", file=sys.stderr)
                return 2
            finally:
                for problem in dockerd.stop():
                    print(problem, file=sys.stderr)
        if opts.record:
            DATA.mkdir(parents=True, exist_ok=True)
            for name, doc in oracle.items():
                (DATA / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        (tmp / "dy").mkdir()
        with Dockyardd(tmp=str(tmp / "dy")) as daemon:
            cli = ("docker",) if opts.cli == "docker" else (str(ROOT / ".venv" / "bin" / "dockyard"),)
            env = {**daemon.env(), "DOCKYARD_HOST": daemon.host}
            engine = Engine(env, cli)
            if engine.docker("load", "-i", str(archive)).returncode != 0:
                raise SystemExit("dockyardd: loading busybox failed")
            ours = run_cases(engine, cases, tmp / "dockyard")
    differing = 0
    for case in cases:
        diffs = compare(comparable(oracle[case.name]), comparable(ours[case.name]))
        differing += bool(diffs)
        print(f"== {case.name}: {'same' if not diffs else f'{len(diffs)} differences'}")
        for line in diffs:
            print(f"   {line}")
    print(f"{len(cases) - differing}/{len(cases)} cases the same")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
