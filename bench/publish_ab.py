"""What published ports add to `run -d` and `rm -f`: this tree's dockyardd against another
checkout's (--baseline, e.g. main's worktree), both running at once, interleaved run by run.

Per mode (no port, `-p N:80`, `-p 80`, `-P --expose 80`, `-p 80` on a dual-stack network) and per
daemon: the median network setup time its log gives (--debug), and the wall times of the docker
CLI's `run -d` and `rm -f`. Needs root and the docker CLI; removes its containers, networks,
daemons and temp files, also on failure.

    .venv/bin/python bench/publish_ab.py --baseline /work/main/.venv/bin/dockyardd [--runs 10]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time

from _common import free_port, load_average, raise_on_termination

from tests.daemon import DOCKYARDD, Dockyardd, busybox_archive

NETWORK6 = "dy-ab-dual"


class Daemon(Dockyardd):
    """A private dockyardd started from a given executable."""

    def __init__(self, executable: str) -> None:
        super().__init__("--debug")
        self.executable = executable

    def argv(self) -> list[str]:
        return [self.executable, *super().argv()[1:]]

    def ok(self, *args: str) -> str:
        proc = self.docker(*args)
        if proc.returncode:
            raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr}")
        return proc.stdout


def modes() -> dict[str, list[str]]:
    """The `run -d` arguments of each mode (a fresh fixed host port each call)."""
    return {"no port": [], "-p N:80": ["-p", f"{free_port()}:80"], "-p 80": ["-p", "80"],
            "-P --expose 80": ["-P", "--expose", "80"], "-p 80 dual-stack": ["--network", NETWORK6, "-p", "80"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="the other dockyardd executable")
    p.add_argument("--runs", type=int, default=10, help="rounds (after one warm-up; default 10)")
    opts = p.parse_args()
    raise_on_termination()
    daemons = {"baseline": Daemon(opts.baseline), "this tree": Daemon(DOCKYARDD)}
    samples: dict[tuple[str, str, str], list[float]] = {}
    try:
        for daemon in daemons.values():
            daemon.start()
            daemon.ok("load", "-i", str(busybox_archive(daemon.tmp)))
            daemon.ok("network", "create", "--ipv6", NETWORK6)
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  load before {load_average()}")
        for i in range(opts.runs + 1):
            for mode, args in modes().items():
                for name, daemon in daemons.items():
                    start = time.perf_counter()
                    cid = daemon.ok("run", "-d", *args, "busybox", "sleep", "600").strip()
                    ran = time.perf_counter()
                    daemon.ok("rm", "-f", cid)
                    if i == 0:
                        continue
                    samples.setdefault((mode, name, "run -d ms"), []).append((ran - start) * 1000)
                    samples.setdefault((mode, name, "rm -f ms"), []).append((time.perf_counter() - ran) * 1000)
                    logged = re.findall(rf"network setup of {cid[:12]}: ([0-9.]+) ms", daemon.log.read_text())
                    samples.setdefault((mode, name, "setup ms"), []).extend(map(float, logged))
        print(f"# load after {load_average()}")
        print(f"{'mode':<18}{'figure':<11}" + "".join(f"{name:>12}" for name in daemons))
        for mode in modes():
            for figure in ("setup ms", "run -d ms", "rm -f ms"):
                print(f"{mode:<18}{figure:<11}" + "".join(
                    f"{statistics.median(samples[mode, name, figure]):>12.1f}" for name in daemons))
        return 0
    finally:
        for daemon in daemons.values():
            try:
                if daemon.proc is not None and daemon.proc.poll() is None:
                    for cid in daemon.docker("ps", "-aq").stdout.split():
                        daemon.docker("rm", "-f", cid)
                    daemon.docker("network", "rm", NETWORK6)
            finally:
                daemon.cleanup()


if __name__ == "__main__":
    sys.exit(main())
