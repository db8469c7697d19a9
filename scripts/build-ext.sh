#!/usr/bin/env bash
# Build the runtime's optional C accelerator (dockyard/runtime/_linux.c) in place, next to its
# source, when the source is newer than the built module. Without a compiler or Python's headers
# it says so and leaves the runtime on its ctypes fallback (dockyard/runtime/syscalls_ctypes.py).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
read -r suffix include < <("$py" -c 'import sysconfig as s; print(s.get_config_var("EXT_SUFFIX"), s.get_paths()["include"])')
src=dockyard/runtime/_linux.c
out="dockyard/runtime/_linux$suffix"
if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
  exit 0
fi
if ! command -v gcc >/dev/null || [ ! -f "$include/Python.h" ]; then
  echo "setup: no gcc or Python.h: dockyard-runtime uses its ctypes fallback" >&2
  exit 0
fi
tmp="$out.$$.tmp"
gcc -O2 -Wall -shared -fPIC -I"$include" -o "$tmp" "$src" -ldl
mv "$tmp" "$out"  # a running runtime keeps the old file mapped
