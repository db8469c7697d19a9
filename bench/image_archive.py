"""Benchmark: `docker save` / `docker load` of a ~100 MB, 4-layer image with dockyard's archive
code and, when dockerd is installed, with a private dockerd (vfs storage, temp roots, stopped
by PID at the end). Prints medians of --runs runs and the ratios."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dockyard.image.archive import docker_archive  # noqa: E402
from dockyard.image.store import ImageStore  # noqa: E402
from tests.test_image_interop import Dockerd  # noqa: E402

LAYERS = 4
FILES_PER_LAYER = 50
FILE_SIZE = 512 << 10  # 4 × 50 × 512 KiB = 100 MiB, incompressible (seeded random bytes)


def build_image(store: ImageStore, work: Path) -> str:
    """A deterministic multi-layer image tagged bench:latest; its ID."""
    rng = random.Random(1)
    layers = []
    for i in range(LAYERS):
        src = work / f"layer{i}"
        for j in range(FILES_PER_LAYER):
            path = src / f"d{j % 5}" / f"f{i}-{j}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(FILE_SIZE))
        layers.append(store.write_layer(str(src), source_date_epoch=0))
        shutil.rmtree(src)
    config = ('{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":['
              + ",".join(f'"{layer.diff_id}"' for layer in layers) + "]}}").encode()
    return store.add_image(config, layers, tags=["bench:latest"])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir="/var/tmp"))
    daemon = None
    try:
        seed = ImageStore(str(work / "seed"), snapshotter="vfs")
        build_image(seed, work)
        archive = work / "image.tar"
        with open(archive, "wb") as f:
            docker_archive.save(seed, ["bench:latest"], f)
        seed.close()
        size = archive.stat().st_size
        store = ImageStore(str(work / "store"), snapshotter="vfs")  # layers stored as Docker keeps them
        with open(archive, "rb") as f:
            docker_archive.load(store, f)
        results: dict[str, list[float]] = {k: [] for k in ("dockyard save", "dockyard load")}

        def our_save() -> None:
            with open(work / "out.tar", "wb") as f:
                docker_archive.save(store, ["bench:latest"], f)

        def our_load(i: int) -> None:
            fresh = ImageStore(str(work / f"load{i}"), snapshotter="vfs")
            with open(archive, "rb") as f:
                docker_archive.load(fresh, f)
            fresh.close()

        for i in range(args.runs):
            results["dockyard save"].append(timed(our_save))
            results["dockyard load"].append(timed(lambda i=i: our_load(i)))
            shutil.rmtree(work / f"load{i}")
        if shutil.which("dockerd"):
            base = Path(tempfile.mkdtemp(prefix="dkb-", dir="/var/tmp"))
            try:
                daemon = Dockerd(base)
                results["docker save"], results["docker load"] = [], []
                for _ in range(args.runs):
                    results["docker load"].append(timed(lambda: daemon.docker("load", "-i", str(archive))))
                    results["docker save"].append(
                        timed(lambda: daemon.docker("save", "-o", str(work / "docker.tar"), "bench:latest")))
                    daemon.docker("rmi", "bench:latest")
            finally:
                if daemon is not None:
                    daemon.stop()
                shutil.rmtree(base, ignore_errors=True)
        store.close()
        print(f"image: {LAYERS} layers, archive {size / 1e6:.1f} MB, {args.runs} runs, {os.cpu_count()} CPUs")
        medians = {k: statistics.median(v) for k, v in results.items()}
        for name, value in medians.items():
            print(f"{name:14s} median {value * 1000:8.1f} ms  ({size / value / 1e6:6.0f} MB/s)")
        for op in ("save", "load"):
            if f"docker {op}" in medians:
                print(f"{op}: dockyard / docker = {medians[f'dockyard {op}'] / medians[f'docker {op}']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
