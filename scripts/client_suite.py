"""What the scripts running a client's own test suite against a private dockyardd share
(dockerpy_suite.py, testcontainers_suite.py): the private namespaces, the client's tests taken
from its fetched repository, busybox loaded offline under the image names the tests use, and the
clean-up of what the tests leave."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ISOLATED = "DOCKYARD_CLIENT_SUITE_ISOLATED"


def reexec_isolated(script: str, packages: dict[str, str]) -> int | None:
    """Outside the namespaces: check root, install the missing packages (pip name → module), and
    run script again in new network and mount namespaces; its exit code. None once inside."""
    if os.environ.get(ISOLATED) == "1":
        return None
    if os.geteuid() != 0:
        raise SystemExit("run as root (the daemon needs it)")
    missing = [pkg for pkg, module in packages.items() if importlib.util.find_spec(module) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
    env = {**os.environ, ISOLATED: "1"}
    return subprocess.run(["unshare", "--net", "--mount", "--", sys.executable, script, *sys.argv[1:]],
                          env=env).returncode


def isolate_network() -> None:
    """In the new network and mount namespaces: loopback up, and a sysfs of this network
    namespace on /sys (bridge ports live there), the cgroup hierarchies moved back under it."""
    cgroups = tempfile.mkdtemp(prefix="client-suite-cgroup-")
    for cmd in (["ip", "link", "set", "lo", "up"], ["mount", "--rbind", "/sys/fs/cgroup", cgroups],
                ["mount", "-t", "sysfs", "sysfs", "/sys"], ["mount", "--move", cgroups, "/sys/fs/cgroup"]):
        subprocess.run(cmd, check=True)
    os.rmdir(cgroups)


def extract_tests(repo: str, refs: list[str], paths: list[str], into: Path) -> str:
    """paths of the bare git repository repo at the first of refs it has (else HEAD), unpacked
    under into; the ref used."""
    def has(ref: str) -> bool:
        return subprocess.run(["git", f"--git-dir={repo}", "rev-parse", "--verify", "-q", ref],
                              capture_output=True).returncode == 0
    ref = next((r for r in refs if has(r)), "HEAD")
    tar = subprocess.run(["git", f"--git-dir={repo}", "archive", ref, *paths], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return ref


def load_images(daemon: object, workdir: Path, names: list[str], builds: dict[bytes, list[str]]) -> None:
    """busybox, built offline, loaded and tagged as every one of names; then each Dockerfile of
    builds (FROM busybox) built with its tags."""
    from tests.daemon import busybox_archive
    archive = busybox_archive(workdir)
    steps: list[tuple[list[str], bytes | None]] = [(["load", "-i", str(archive)], None)]
    steps += [(["tag", "busybox:latest", name], None) for name in names]
    steps += [(["build", "--network", "none", "-q", *(a for t in tags for a in ("-t", t)), "-"], dockerfile)
              for dockerfile, tags in builds.items()]
    for args, stdin in steps:
        proc = daemon.docker(*args, input=stdin)  # type: ignore[attr-defined]
        if proc.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)}: {proc.stderr}")


def remove_leftovers(daemon: object) -> None:
    """Every container the tests left: the daemon keeps containers running when it stops (live
    restore), and they must not outlive the run."""
    ids = daemon.docker("ps", "-aq").stdout.split()  # type: ignore[attr-defined]
    if ids:
        daemon.docker("rm", "-f", *ids)  # type: ignore[attr-defined]


def finish_daemon(daemon: object, log_env: str) -> None:
    """After a suite: the containers it left removed, the daemon's log copied to $log_env when
    set, the daemon stopped and its directories removed."""
    proc = daemon.proc  # type: ignore[attr-defined]
    if proc is not None and proc.poll() is None:
        remove_leftovers(daemon)
    log = daemon.log  # type: ignore[attr-defined]
    if os.environ.get(log_env) and log.exists():
        shutil.copyfile(log, os.environ[log_env])
    daemon.cleanup()  # type: ignore[attr-defined]
