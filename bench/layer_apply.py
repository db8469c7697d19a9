"""Layer apply / write throughput: dockyard vs GNU tar (and umoci unpack, if installed).

Generates a deterministic (seeded) layer of mixed content in a temp dir on the data disk, then
times, in interleaved rounds, apply_layer of the gzip and the plain tar against `tar -xzf` /
`tar -xf` of the same files, `umoci unpack` of an OCI layout holding the gzip layer, and
write_layer against `tar -cf` / `tar -czf`. Prints medians and ratios; removes everything.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(PROJECT_ROOT / ".venv" / "bin" / "python")

# Each prints its own peak RSS (VmHWM, KiB): ru_maxrss would include this big parent's, kept across exec.
PEAK = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
APPLY = ("import sys; from dockyard.image.layer_apply import apply_layer; "
         "apply_layer(open(sys.argv[1], 'rb'), sys.argv[2]); " + PEAK)
WRITE = ("import sys; from dockyard.image.layer_diff import write_layer; "
         "write_layer(sys.argv[1], open(sys.argv[2], 'wb'), compression=sys.argv[3]); " + PEAK)


def make_tree(root: Path, seed: int, scale: float) -> dict[str, int]:
    """A tree of thousands of small files, a few big ones, dirs, symlinks and hardlinks."""
    rnd = random.Random(seed)
    words = [bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz_", k=rnd.randint(2, 10))) for _ in range(4000)]
    text = b" ".join(rnd.choices(words, k=400_000)).replace(b"_", b"\n")  # ~2.6 MB, gzip ~3x
    dirs = [root]
    for i in range(int(400 * scale)):
        d = rnd.choice(dirs[-50:] + dirs[:5]) / f"d{i:03d}"
        d.mkdir()
        dirs.append(d)
    counts = {"dirs": len(dirs) - 1, "files": 0, "symlinks": 0, "hardlinks": 0, "bytes": 0}
    files = []
    for i in range(int(8000 * scale)):
        size = int(min(64 << 10, rnd.expovariate(1 / 6000)))
        start = rnd.randrange(len(text) - size - 1)
        data = text[start : start + size] if rnd.random() < 0.8 else rnd.randbytes(size)
        path = rnd.choice(dirs) / f"f{i:05d}.{rnd.choice(['txt', 'so', 'py', 'h'])}"
        path.write_bytes(data)
        os.chmod(path, rnd.choice([0o644, 0o755, 0o600, 0o4755]))
        files.append(path)
        counts["files"] += 1
        counts["bytes"] += size
    for i in range(int(6 * scale) or 1):  # big files: half incompressible
        path = rnd.choice(dirs) / f"big{i}.bin"
        size = 16 << 20
        with open(path, "wb") as f:
            if i % 2:
                f.write(rnd.randbytes(size))
            else:
                for _ in range(size // len(text) + 1):
                    f.write(text)
                f.truncate(size)
        counts["files"] += 1
        counts["bytes"] += size
    for i in range(int(500 * scale)):
        where = rnd.choice(dirs)
        (where / f"l{i:04d}").symlink_to(os.path.relpath(rnd.choice(files), where))
        counts["symlinks"] += 1
    for i in range(int(100 * scale)):
        os.link(rnd.choice(files), rnd.choice(dirs) / f"h{i:04d}")
        counts["hardlinks"] += 1
    return counts


def make_oci_layout(layout: Path, layer_gz: Path, diff_id: str) -> None:
    """A one-layer OCI image layout tagged 'bench', for umoci."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> tuple[str, int]:
        hexd = hashlib.sha256(data).hexdigest()
        (blobs / hexd).write_bytes(data)
        return f"sha256:{hexd}", len(data)

    layer_data = layer_gz.read_bytes()
    layer_digest, layer_size = put(layer_data)
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    cfg_digest, cfg_size = put(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                           "size": cfg_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": layer_digest, "size": layer_size}]}
    man_digest, man_size = put(json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": man_digest, "size": man_size,
                                                "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def run(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time (s) of a command, and the peak RSS (KiB) it reports on stdout (0 if none)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with {proc.returncode}: {' '.join(argv)}")
    last = proc.stdout.strip().rsplit("\n", 1)[-1]
    return elapsed, int(last) if last.isdigit() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="layer size factor (1.0 ≈ 100 MB gzip)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--dir", default="/var/tmp", help="where the temp dir goes (same disk for all tools)")
    ap.add_argument("--compare-python", action="store_true",
                    help="also time the apply cases on the pure-Python path (DOCKYARD_TARFAST=0, no _tarfast)")
    ap.add_argument("--only", default="", help="comma-separated words: only the cases naming one (and their references)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-layer-", dir=args.dir))
    try:
        tree = work / "tree"
        tree.mkdir()
        counts = make_tree(tree, args.seed, args.scale)
        plain, gz = work / "layer.tar", work / "layer.tar.gz"
        subprocess.run(["tar", "--sort=name", "--numeric-owner", "-cf", str(plain), "-C", str(tree), "."], check=True)
        with open(plain, "rb") as src, gzip.GzipFile(gz, "wb", compresslevel=6, mtime=0) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        diff_id = "sha256:" + hashlib.file_digest(open(plain, "rb"), "sha256").hexdigest()
        print(f"layer: {counts['files']} files ({counts['bytes'] / 1e6:.0f} MB), {counts['dirs']} dirs, "
              f"{counts['symlinks']} symlinks, {counts['hardlinks']} hardlinks; "
              f"tar {plain.stat().st_size / 1e6:.0f} MB, gzip {gz.stat().st_size / 1e6:.0f} MB")
        umoci = shutil.which("umoci")
        if umoci:
            make_oci_layout(work / "oci", gz, diff_id)
        # each run gets a fresh output dir: deleting (ext4 + discard) would load the disk during the next
        cases = {
            "dockyard apply gzip": lambda out: [PYTHON, "-c", APPLY, str(gz), str(out)],
            "tar -xzf": lambda out: ["tar", "-xzf", str(gz), "-C", str(out)],
            "dockyard apply plain": lambda out: [PYTHON, "-c", APPLY, str(plain), str(out)],
            "tar -xf": lambda out: ["tar", "-xf", str(plain), "-C", str(out)],
            "dockyard write plain": lambda out: [PYTHON, "-c", WRITE, str(tree), str(out / "o.tar"), "none"],
            "tar -cf": lambda out: ["tar", "--sort=name", "-cf", str(out / "o.tar"), "-C", str(tree), "."],
            "dockyard write gzip": lambda out: [PYTHON, "-c", WRITE, str(tree), str(out / "o.tgz"), "gzip"],
            "tar -czf": lambda out: ["tar", "--sort=name", "-czf", str(out / "o.tgz"), "-C", str(tree), "."],
        }
        if args.compare_python:
            for kind in ("gzip", "plain"):
                with_c = cases[f"dockyard apply {kind}"]
                cases[f"dockyard apply {kind} py"] = lambda out, c=with_c: ["env", "DOCKYARD_TARFAST=0", *c(out)]
        if umoci:
            cases["umoci unpack"] = lambda out: [umoci, "unpack", "--image", f"{work / 'oci'}:bench", str(out / "bundle")]
        refs = {"dockyard apply gzip": "tar -xzf", "dockyard apply plain": "tar -xf", "umoci unpack": "tar -xzf",
                "dockyard apply gzip py": "tar -xzf", "dockyard apply plain py": "tar -xf",
                "dockyard write plain": "tar -cf", "dockyard write gzip": "tar -czf"}
        if args.only:
            keep = {n for n in cases if any(w in n for w in args.only.split(","))}
            keep |= {refs[n] for n in keep if n in refs}
            cases = {n: c for n, c in cases.items() if n in keep}
        times: dict[str, list[float]] = {name: [] for name in cases}
        rss: dict[str, int] = {}
        names = list(cases)
        for rnd in range(args.rounds + 1):  # round 0 warms the page cache and is discarded
            order = names[rnd % len(names):] + names[: rnd % len(names)]
            for name in order:
                out = work / f"out-{rnd}-{names.index(name)}"
                out.mkdir()
                os.sync()  # start each run with no dirty pages of the previous one
                elapsed, peak = run(cases[name](out), work)
                if rnd:
                    times[name].append(elapsed)
                    rss[name] = max(rss.get(name, 0), peak)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"\n{'':24} {'median s':>9} {'min s':>7} {'peak RSS MB':>12}   ratio")
        for name in names:
            ref = refs.get(name)
            ratio = f"{med[name] / med[ref]:.2f}x {ref}" if ref else ""
            peak = f"{rss[name] / 1024:12.1f}" if rss[name] else f"{'-':>12}"
            print(f"{name:24} {med[name]:9.3f} {min(times[name]):7.3f} {peak}   {ratio}")
        if "umoci unpack" in med and "dockyard apply gzip" in med:
            print(f"{'dockyard apply gzip':24} {'':9} {'':7} {'':12}   "
                  f"{med['dockyard apply gzip'] / med['umoci unpack']:.2f}x umoci unpack")
        print(f"\nrounds: {args.rounds} (+1 warm-up), interleaved, sync before each run; "
              "dockyard runs include python start-up and imports")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
