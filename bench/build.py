"""Benchmark builds on a private dockyardd, through the dockyard CLI and the real docker CLI.

The issue's scenario: FROM busybox + COPY of a 20 MB file + RUN + a second stage that COPY
--from's the result (and a small source file copied last). Figures, each the median of --runs
rounds: a cold build (--no-cache), a rebuild with nothing changed, a rebuild after editing the
small source file. References from the issue (BuildKit / classic dockerd): cold 0.40 s / 1.07 s,
no-change rebuild 0.079 s / 0.153 s.
Usage: .venv/bin/python bench/build.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import BENCH_CGROUP, VENV_BIN, Summary, print_table, remove_cgroups, run_quiet

from tests.daemon import Dockyardd, busybox_archive

DOCKERFILE = """FROM busybox AS build
COPY big.bin /data/big.bin
RUN md5sum /data/big.bin > /data/sum
FROM busybox
COPY --from=build /data/sum /sum
COPY app.txt /app.txt
"""


def make_context(root: Path) -> Path:
    ctx = root / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "big.bin").write_bytes(os.urandom(20 << 20))
    (ctx / "app.txt").write_text("v0\n")
    return ctx


def timed_build(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    code, err = run_quiet(argv, env=env, timeout=300)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited with {code}: {err.strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    os.environ["DOCKYARD_BUILD_CGROUP_PARENT"] = f"{BENCH_CGROUP}/build-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp_s:
        tmp = Path(tmp_s)
        ctx = make_context(tmp)
        (tmp / "daemon").mkdir()
        daemon = Dockyardd(tmp=str(tmp / "daemon"))
        daemon.start()
        try:
            env = {**os.environ, "DOCKYARD_HOST": daemon.host, "DOCKER_HOST": daemon.host,
                   "DOCKER_CONFIG": str(tmp / "docker-config"), "DOCKER_BUILDKIT": "0"}
            run_quiet(["docker", "load", "-i", str(busybox_archive(tmp))], env=env)
            clis = {"dockyard": [str(VENV_BIN / "dockyard"), "build", "-q", "-t", "bench:1"],
                    "docker CLI": ["docker", "build", "-q", "-t", "bench:1"]}
            rows = []
            for name, cli in clis.items():
                cold, same, edited = [], [], []
                for i in range(opts.runs):
                    cold.append(timed_build([*cli, "--no-cache", str(ctx)], env))
                    same.append(timed_build([*cli, str(ctx)], env))
                    (ctx / "app.txt").write_text(f"{name} {i}\n")
                    edited.append(timed_build([*cli, str(ctx)], env))
                for label, values in (("cold build", cold), ("no-change rebuild", same),
                                      ("rebuild after editing one file", edited)):
                    s = Summary.of(values)
                    rows.append([f"{name}: {label}", f"{s.median:.3f}", f"{s.p90:.3f}", f"{s.min:.3f}"])
            print_table(["scenario (seconds)", "median", "p90", "min"], rows)
        finally:
            daemon.stop()
            remove_cgroups(os.environ["DOCKYARD_BUILD_CGROUP_PARENT"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
