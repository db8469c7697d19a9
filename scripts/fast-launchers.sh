#!/usr/bin/env bash
# Replace pip's console scripts for the hot-path commands with launchers that start Python in
# isolated mode without site processing (-I -S): dockyard-runtime runs once per container
# operation, so interpreter start-up is most of its latency. They import dockyard straight
# from this checkout (the editable install), and nothing from site-packages.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py="$root/.venv/bin/python"
write_launcher() {  # name module function
  local tmp=".venv/bin/.$1.tmp"
  cat > "$tmp" <<LAUNCHER
#!$py -IS
import sys
sys.path.insert(0, "$root")
from $2 import $3
sys.exit($3())
LAUNCHER
  chmod 755 "$tmp"
  mv "$tmp" ".venv/bin/$1"
}
write_launcher dockyard-runtime dockyard.runtime.cli main_and_exit
write_launcher dockyard dockyard.cli.main main_and_exit
