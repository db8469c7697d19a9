#!/usr/bin/env bash
# Replace pip's console scripts for the hot-path commands with launchers that start Python in
# isolated mode without site processing (-I -S): dockyard-runtime runs once per container
# operation, so interpreter start-up is most of its latency. They import dockyard straight
# from this checkout (the editable install), and nothing from site-packages.
# dockyard-runtime's launcher first installs the runtime's code cache (one file with the
# compiled code of every module it imports: dockyard/runtime/codecache.py), built here too.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py="$root/.venv/bin/python"
write_launcher() {  # name module function [code cache file]
  local tmp=".venv/bin/.$1.tmp"
  {
    printf '#!%s -IS\nimport sys\nsys.path.insert(0, "%s")\n' "$py" "$root"
    [ -z "${4:-}" ] || printf 'from dockyard.runtime.codecache import install\ninstall("%s/%s")\n' "$root" "$4"
    printf 'from %s import %s\nsys.exit(%s())\n' "$2" "$3" "$3"
  } > "$tmp"
  chmod 755 "$tmp"
  mv "$tmp" ".venv/bin/$1"
}
"$py" -m dockyard.runtime.codecache build .venv/dockyard-runtime.code >/dev/null
write_launcher dockyard-runtime dockyard.runtime.cli main_and_exit .venv/dockyard-runtime.code
write_launcher dockyard dockyard.cli.main main_and_exit
