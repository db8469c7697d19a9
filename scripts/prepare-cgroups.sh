#!/usr/bin/env bash
# On hybrid cgroup hosts (v1 controllers plus a cgroup2 mount), crun 1.8 refuses to run while
# the cgroup2 hierarchy holds any controller. Move such controllers (here: hugetlb) to v1
# hierarchies of their own. Idempotent; does nothing on pure v1 or pure v2 hosts.
set -euo pipefail
unified=/sys/fs/cgroup/unified
[ -f "$unified/cgroup.controllers" ] || exit 0
for c in $(cat "$unified/cgroup.controllers"); do
  dir=/sys/fs/cgroup/$c
  if mountpoint -q "$dir"; then continue; fi
  mkdir -p "$dir"
  if ! mount -t cgroup -o "$c" cgroup "$dir"; then
    echo "prepare-cgroups: could not move controller $c to cgroup v1; crun may refuse this host" >&2
  fi
done
