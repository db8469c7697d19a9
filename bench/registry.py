"""Registry figures, side by side with skopeo and distribution 2.8 (Debian's docker-registry).

An image of --size MB of incompressible gzip layers (4 layers) is made in a private ImageStore,
then, --runs times each (medians printed, with ratios):

  push   dockyard's client (library call, in this process) store → a fresh distribution
         vs `skopeo copy oci:LAYOUT docker://…` of the same blobs → a fresh distribution
  pull   dockyard's client distribution → an empty ImageStore
         vs `skopeo copy docker://… oci:EMPTY` (neither unpacks layers)
  serve  `skopeo copy docker://… dir:EMPTY` from `dockyard registry serve` vs from distribution
  10x    ten concurrent skopeo pulls from `dockyard registry serve` (errors counted)
  docker the docker CLI through dockyardd: push to a fresh distribution, pull after rmi
         (reference on this kind of VM, docker CLI through dockerd: push 2.90 s, pull 1.05 s)

Every server runs on a free loopback port over a temp dir and is stopped by its PID.

    .venv/bin/python bench/registry.py [--size 107] [--runs 5]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockyard.image.store import ImageStore  # noqa: E402
from dockyard.registry.client.pull import pull  # noqa: E402
from dockyard.registry.client.push import push  # noqa: E402
from tests.daemon import Dockyardd  # noqa: E402
from tests.registries import Distribution, Dockyard, generated_image  # noqa: E402


def skopeo(*args: str) -> None:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)}: {proc.stderr.strip()}")


def run_docker(daemon: Dockyardd, *args: str) -> None:
    proc = daemon.docker(*args, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.strip()}")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=107, help="image size in MB (compressed)")
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reg-"))
    servers: list = []
    try:
        store = ImageStore(str(tmp / "store"))
        per_layer = opts.size * 1_000_000 // 4
        generated_image(store, "bench:1", [{f"f{i}": os.urandom(per_layer)} for i in range(4)])
        image_id = store.resolve("bench:1")
        print(f"image: {sum(la.descriptor.size for la in store.layers(image_id)) / 1e6:.1f} MB in 4 layers")

        def fresh_distribution() -> Distribution:
            d = Distribution(tmp=Path(tempfile.mkdtemp(dir=tmp)))
            servers.append(d)
            return d.start()

        # push: ours (library) and skopeo (oci layout of the same blobs), each into a fresh registry
        ours_push, skopeo_push = [], []
        layout = tmp / "layout"
        for i in range(opts.runs):
            d = fresh_distribution()
            name = f"{d.addr}/bench/img:1"
            store.tag("bench:1", name)
            ours_push.append(timed(lambda n=name: push(store, n)))
            if i == 0:
                skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:img")
            d.cleanup()
            d = fresh_distribution()
            skopeo_push.append(timed(lambda a=d.addr: skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:img",
                                                             f"docker://{a}/bench/img:1")))
            source_reg = d  # keep the last one for the pulls
            if i < opts.runs - 1:
                d.cleanup()
        name = f"{source_reg.addr}/bench/img:1"

        ours_pull, skopeo_pull = [], []
        for i in range(opts.runs):
            target = ImageStore(str(tmp / f"target{i}"))
            ours_pull.append(timed(lambda t=target: pull(t, name)))
            target.close()
            shutil.rmtree(tmp / f"target{i}")
            skopeo_pull.append(timed(lambda i=i: skopeo("copy", "--src-tls-verify=false", f"docker://{name}",
                                                        f"oci:{tmp}/pulled{i}:img")))
            shutil.rmtree(tmp / f"pulled{i}")

        # serving: skopeo pulls from our server vs from distribution
        ours = Dockyard(tmp=Path(tempfile.mkdtemp(dir=tmp)))
        servers.append(ours)
        ours.start()
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:img", f"docker://{ours.addr}/bench/img:1")
        serve_ours, serve_dist = [], []
        for i in range(opts.runs):
            for addr, out in ((ours.addr, serve_ours), (source_reg.addr, serve_dist)):
                dest = tmp / f"dir{i}"
                out.append(timed(lambda a=addr, d=dest: skopeo("copy", "--src-tls-verify=false",
                                                               f"docker://{a}/bench/img:1", f"dir:{d}")))
                shutil.rmtree(dest)

        def one(i: int) -> bool:
            try:
                skopeo("copy", "--src-tls-verify=false", f"docker://{ours.addr}/bench/img:1", f"dir:{tmp}/c{i}")
                return True
            except RuntimeError:
                return False
        start = time.perf_counter()
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(one, range(10)))
        concurrent = time.perf_counter() - start

        # the docker CLI through dockyardd (the image made in the daemon's store before it starts)
        daemon = Dockyardd(tmp=tempfile.mkdtemp(prefix="dy-", dir="/tmp"))
        servers.append(daemon)
        dstore = ImageStore(str(daemon.data_root / "image-store"))
        generated_image(dstore, "bench:1", [{f"f{i}": os.urandom(per_layer)} for i in range(4)])
        dstore.close()
        daemon.start()
        docker_push, docker_pull = [], []
        for _ in range(opts.runs):
            d = fresh_distribution()
            name = f"{d.addr}/bench/img:1"
            run_docker(daemon, "tag", "bench:1", name)
            docker_push.append(timed(lambda n=name: run_docker(daemon, "push", n)))
            run_docker(daemon, "rmi", name)
            docker_pull.append(timed(lambda n=name: run_docker(daemon, "pull", n)))
            run_docker(daemon, "rmi", name)
            d.cleanup()

        size = opts.size
        print(f"{'':28}{'dockyard':>10}{'peer':>10}{'ratio':>8}")
        for label, a, b in (("push (client → distribution)", ours_push, skopeo_push),
                            ("pull (distribution → client)", ours_pull, skopeo_pull),
                            ("skopeo pull (our server)", serve_ours, serve_dist)):
            print(f"{label:28}{median(a):>9.2f}s{median(b):>9.2f}s{median(a) / median(b):>7.2f}x")
        print(f"server throughput: ours {size / median(serve_ours):.0f} MB/s, distribution "
              f"{size / median(serve_dist):.0f} MB/s ({median(serve_dist) / median(serve_ours):.2f}x)")
        print(f"docker CLI through dockyardd: push {median(docker_push):.2f}s, pull {median(docker_pull):.2f}s "
              "(reference through dockerd: 2.90s, 1.05s)")
        print(f"10 concurrent skopeo pulls from our server: {results.count(False)} errors, {concurrent:.2f}s")
        store.close()
    finally:
        for server in servers:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
