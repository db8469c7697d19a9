#!/usr/bin/env bash
# The main job until the engine exists: a busybox container run by dockyard-runtime.
#   1. build a busybox root filesystem from Debian's busybox-static (no network needed)
#   2. write a bundle config with `dockyard-runtime spec`, then adjust it (limits, hostname)
#   3. run a container in the foreground, then create/start one in the background, exec into it,
#      look at it with state/ps, and delete it.
set -euo pipefail
cd "$(dirname "$0")/.."
RT=".venv/bin/dockyard-runtime"
PY=".venv/bin/python"
work=$(mktemp -d /tmp/dockyard-demo.XXXXXX)
state="$work/state"
cleanup() {
  "$RT" --root "$state" delete --force demo-bg >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building a busybox root filesystem in $work/bundle/rootfs (from busybox-static)"
"$PY" -c 'import sys; from dockyard.image.bootstrap_busybox import build_rootfs; build_rootfs(sys.argv[1])' \
  "$work/bundle/rootfs"

echo "== dockyard-runtime spec (runc's default config), then a 64 MiB memory and 32-pid limit"
"$RT" spec --bundle "$work/bundle"
"$PY" - "$work/bundle/config.json" <<'PYEOF'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c",
    "echo \"hello from $(hostname), pid $$, uid $(id -u)\"; "
    "echo \"memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)\"; "
    "echo \"capabilities: $(grep CapEff /proc/self/status)\"; "
    "touch /readonly-root 2>/dev/null || echo 'root filesystem is read-only'; exit 7"]
config["hostname"] = "dockyard-demo"
config["linux"]["cgroupsPath"] = "/dockyard-demo/demo"
config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 32},
                                "devices": config["linux"]["resources"]["devices"]}
json.dump(config, open(path, "w"), indent=2)
PYEOF

echo "== dockyard-runtime run (foreground; the exit code is the container's)"
set +e
"$RT" --root "$state" run --bundle "$work/bundle" demo-fg
code=$?
set -e
echo "container exited with $code"

echo "== create + start in the background, exec into it, inspect, delete"
"$PY" - "$work/bundle/config.json" <<'PYEOF'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["args"] = ["sleep", "300"]
config["linux"]["cgroupsPath"] = "/dockyard-demo/demo-bg"
json.dump(config, open(path, "w"), indent=2)
PYEOF
"$RT" --root "$state" create --bundle "$work/bundle" demo-bg </dev/null >/dev/null 2>&1
"$RT" --root "$state" start demo-bg
"$RT" --root "$state" state demo-bg
"$RT" --root "$state" exec demo-bg sh -c 'echo "exec sees: $(ps | wc -l) lines of ps, pid 1 is $(cat /proc/1/comm)"'
"$RT" --root "$state" ps demo-bg
"$RT" --root "$state" list
"$RT" --root "$state" delete --force demo-bg
rmdir /sys/fs/cgroup/*/dockyard-demo 2>/dev/null || true
echo "== done"
