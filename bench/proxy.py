"""The userland proxy on its own: dockyard's splice loop (dockyard/network/_splice.c, in a process of
its own as in the daemon, once as shipped and once with the loop's thread left at SCHED_OTHER)
side by side with Docker's docker-proxy when installed, each relaying 127.0.0.1 to one server
process. Figures per proxy, rounds interleaved in a random order: bulk MB/s (median of --gets
transfers of --mb MiB), a connect alone, and a fresh connection with a small request and its
answer (medians and p25 of --requests). No containers: the relay itself, not the bridge behind it.

    .venv/bin/python bench/proxy.py [--mb 256] [--gets 8] [--requests 600]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from _common import VENV_PYTHON, free_port, load_average, raise_on_termination

SERVER = """
import socket, sys, threading
blob = b"\\0" * (1 << 20)
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=4096)
def answer(c):
    with c:
        if c.recv(16).startswith(b"big"):
            for _ in range(int(sys.argv[2])):
                c.sendall(blob)
        else:
            c.sendall(b"hi")
while True:
    c, _ = srv.accept()
    threading.Thread(target=answer, args=(c,), daemon=True).start()
"""

PROXY = """
import os, socket, sys, threading, time
from dockyard.network import _splice
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=socket.SOMAXCONN)
loop = threading.Thread(target=_splice.serve_tcp,
                        args=(listener.fileno(), socket.AF_INET, "127.0.0.1", int(sys.argv[2]), os.eventfd(0)))
loop.start()
if sys.argv[3] == "other":  # the loop's thread back to SCHED_OTHER: what its SCHED_BATCH is for
    time.sleep(0.2)
    os.sched_setscheduler(loop.native_id, os.SCHED_OTHER, os.sched_param(0))
loop.join()
"""


def bulk(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"big")
        c.shutdown(socket.SHUT_WR)
        size, buf, start = 0, bytearray(1 << 20), time.perf_counter()
        while n := c.recv_into(buf):
            size += n
        return size / (time.perf_counter() - start) / 1e6


def request(port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"small")
        c.shutdown(socket.SHUT_WR)
        while c.recv(100):
            pass
    return (time.perf_counter() - start) * 1000


def connect(port: int) -> float:
    start = time.perf_counter()
    with socket.socket() as c:
        c.connect(("127.0.0.1", port))
    return (time.perf_counter() - start) * 1000


def docker_proxy(upstream: int) -> tuple[int, subprocess.Popen[bytes]] | None:
    """docker-proxy on 127.0.0.1 toward upstream, started as dockerd starts it (it reports on fd 3)."""
    if shutil.which("docker-proxy") is None:
        return None
    port = free_port()
    ready, status = os.pipe()
    proc = subprocess.Popen(["docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", str(port),
                             "-container-ip", "127.0.0.1", "-container-port", str(upstream)],
                            pass_fds=(3, status), stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.dup2(status, 3))
    os.close(status)
    answer = os.read(ready, 100)
    os.close(ready)
    if answer != b"0\n":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"docker-proxy: {answer!r}")
    return port, proc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=256, help="MiB per bulk transfer (default 256)")
    p.add_argument("--gets", type=int, default=8, help="bulk transfers per proxy (default 8)")
    p.add_argument("--requests", type=int, default=600, help="connects and requests per proxy (default 600)")
    opts = p.parse_args()
    raise_on_termination()
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    try:
        upstream = free_port()
        procs.append(subprocess.Popen([VENV_PYTHON, "-c", SERVER, str(upstream), str(opts.mb)]))
        ports: dict[str, int] = {}
        for name, policy in (("dockyard", "batch"), ("dockyard (SCHED_OTHER)", "other")):
            ports[name] = free_port()
            procs.append(subprocess.Popen([VENV_PYTHON, "-c", PROXY, str(ports[name]), str(upstream), policy], env=env))
        peer = docker_proxy(upstream)
        if peer:
            ports["docker-proxy"], proc = peer
            procs.append(proc)
        time.sleep(0.5)
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}  cpus {os.cpu_count()}  load {load_average()}")
        samples: dict[tuple[str, str], list[float]] = {}
        rounds: list[tuple[int, list[tuple[str, Callable[[int], float]]]]] = [
            (opts.gets, [("bulk MB/s", bulk)]), (opts.requests, [("connect ms", connect), ("request ms", request)])]
        for count, steps in rounds:  # connects and requests mixed, as a client's traffic is
            for _ in range(count):
                for name, (label, step) in random.sample([(n, s) for n in ports for s in steps], len(ports) * len(steps)):
                    samples.setdefault((label, name), []).append(step(ports[name]))
        print(f"{'figure':<14}" + "".join(f"{name:>24}" for name in ports))
        for label in ("bulk MB/s", "connect ms", "request ms"):
            cells = [sorted(samples[(label, name)]) for name in ports]
            print(f"{label:<14}" + "".join(f"{statistics.median(v):>24.3f}" for v in cells))
            if label != "bulk MB/s":
                print(f"{label.replace(' ms', ' p25'):<14}" + "".join(f"{v[len(v) // 4]:>24.3f}" for v in cells))
        return 0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
