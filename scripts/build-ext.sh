#!/usr/bin/env bash
# Build the optional C accelerators in place, next to their sources, when a source is newer than
# its built module: the runtime's system calls (dockyard/runtime/_linux.c) and layer apply's tar
# header parser and file writer (dockyard/image/_tarfast.c), the userland proxy's splice loop
# (dockyard/network/_splice.c). Without a compiler or Python's headers it says so and leaves the
# runtime on its ctypes fallback (dockyard/runtime/syscalls_ctypes.py), layer apply on its
# pure-Python code and the proxy on its threads.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
read -r suffix include < <("$py" -c 'import sysconfig as s; print(s.get_config_var("EXT_SUFFIX"), s.get_paths()["include"])')
build() {  # build <source.c> [libs...]: next to the source, if the source is newer than the module
  local src=$1 out="${1%.c}$suffix"
  shift
  if [ -f "$out" ] && [ "$out" -nt "$src" ]; then
    return 0
  fi
  local tmp="$out.$$.tmp"
  gcc -O2 -Wall -shared -fPIC -I"$include" -o "$tmp" "$src" "$@"
  mv "$tmp" "$out"  # a running process keeps the old file mapped
}
if ! command -v gcc >/dev/null || [ ! -f "$include/Python.h" ]; then
  echo "setup: no gcc or Python.h: dockyard-runtime uses its ctypes fallback, layer apply its Python parser," \
    "the userland proxy its threads" >&2
  exit 0
fi
build dockyard/runtime/_linux.c -ldl
build dockyard/image/_tarfast.c -O3  # -O3: the checksum loop is vectorized
build dockyard/network/_splice.c
