#!/usr/bin/env bash
# Idempotent machine and project set-up for dockyard (Debian 12, as root).
# Installs the system packages dockyard needs or tests against, prepares cgroups so that
# crun accepts the host, and builds .venv with an editable install of dockyard.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(busybox-static tini git openssh-client libseccomp2 runc crun python3-venv python3-dev build-essential iproute2 iptables procps mmdebstrap skopeo umoci docker-registry apache2-utils docker-compose)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

scripts/prepare-cgroups.sh

PY=/usr/bin/python3
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
stamp=.venv/.dockyard-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
  touch "$stamp"
fi
scripts/build-ext.sh  # before the launchers: their code cache imports the built modules
scripts/fast-launchers.sh
.venv/bin/python -m compileall -q dockyard >/dev/null
echo "setup: ready (.venv/bin/dockyard-runtime, .venv/bin/dockyard-shim)"
