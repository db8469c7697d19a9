#!/usr/bin/env bash
# The main job: a private dockyardd, a busybox image built offline, and a container workflow
# driven through the dockyard CLI (the same commands work with `docker` pointed at the socket).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(pwd)/.venv/bin"
work=$(mktemp -d /tmp/dockyard-demo.XXXXXX)
sock="$work/dockyard.sock"
dy() { echo "\$ dockyard $*"; "$BIN/dockyard" -H "unix://$sock" "$@"; }
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then
    "$BIN/dockyard" -H "unix://$sock" rm -f web >/dev/null 2>&1 || true
    "$BIN/dockyard" -H "unix://$sock" volume rm -f demo-data >/dev/null 2>&1 || true
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== bootstrapping busybox from Debian's busybox-static (offline)"
"$BIN/dockyard-image" --root "$work/data/image-store" bootstrap busybox >/dev/null

echo "== starting dockyardd on $sock"
"$BIN/dockyardd" -H "unix://$sock" --data-root "$work/data" --exec-root "$work/run" \
  --pidfile "$work/dockyardd.pid" >"$work/dockyardd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { cat "$work/dockyardd.log"; exit 1; }

dy version
dy images
dy run --rm busybox sh -c 'echo "hello from $(hostname), pid $$, uid $(id -u)"'
set +e; dy run --rm busybox sh -c 'exit 3'; echo "exit code: $?"; set -e
dy run -d --name web busybox sh -c 'while true; do echo tick; sleep 0.2; done'
dy ps
sleep 0.5
dy logs --tail 2 web
dy exec web sh -c 'echo "exec sees pid 1: $(cat /proc/1/comm)"'
dy stop -t 1 web
dy ps -a
dy rm web
echo "== a named volume outlives the containers that use it"
dy volume create demo-data
dy run --rm -v demo-data:/data busybox sh -c 'echo "written at $(date +%T)" > /data/note'
dy run --rm -v demo-data:/data:ro busybox cat /data/note
dy volume ls
dy volume rm demo-data
echo "== done"
