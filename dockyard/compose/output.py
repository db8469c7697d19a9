"""`compose config` output: the resolved model as YAML (keys in Docker Compose's order) or JSON."""

from __future__ import annotations

import io
import json
import re
from typing import Any

_QUOTED = re.compile(r"((?:^|: |- ))'((?:[^'\n]|'')*)'$", re.M)
_TOP = ("name", "services", "networks", "volumes", "secrets", "configs", "models")
# compose-go's struct field order, which `docker compose config` follows
_SERVICE = """profiles annotations attach build develop blkio_config cap_add cap_drop cgroup_parent cgroup
cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpus cpuset cpu_shares command configs
container_name credential_spec depends_on deploy device_cgroup_rules devices dns dns_opt dns_search dockerfile
domainname entrypoint environment env_file expose extends external_links extra_hosts group_add gpus hostname
healthcheck image init ipc isolation labels label_file links logging mem_limit mem_reservation memswap_limit
mem_swappiness mac_address network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform ports
privileged pull_policy read_only restart runtime scale secrets security_opt shm_size stdin_open
stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits user userns_mode uts volume_driver volumes
volumes_from working_dir post_start pre_stop""".split()
_BUILD = """context dockerfile dockerfile_inline entitlements args ssh labels cache_from cache_to no_cache
additional_contexts pull extra_hosts isolation network target secrets tags ulimits platforms privileged
shm_size""".split()
_HEALTH = "test timeout interval retries start_period start_interval disable".split()


def _by(order: list[str], mapping: dict[str, Any]) -> dict[str, Any]:
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(mapping.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def _ordered(model: dict[str, Any]) -> dict[str, Any]:
    out = {k: model[k] for k in _TOP if k in model}
    out["services"] = {n: _service(s) for n, s in sorted(model.get("services", {}).items())}
    for k in _TOP[2:]:
        if k in out:
            out[k] = dict(sorted(out[k].items()))
    out.update({k: v for k, v in model.items() if k not in out})  # x- extensions
    return out


def _service(svc: dict[str, Any]) -> dict[str, Any]:
    s = _by(_SERVICE, svc)
    if isinstance(s.get("build"), dict):
        s["build"] = _by(_BUILD, s["build"])
        if isinstance(s["build"].get("extra_hosts"), dict):
            s["build"]["extra_hosts"] = [f"{h}={ip}" for h, ip in s["build"]["extra_hosts"].items()]
    if isinstance(s.get("healthcheck"), dict):
        s["healthcheck"] = _by(_HEALTH, s["healthcheck"])
    if "extra_hosts" in s:
        s["extra_hosts"] = [f"{h}={ip}" for h, ip in s["extra_hosts"].items()]
    if "environment" in s:
        s["environment"] = dict(sorted(s["environment"].items()))
    return s


def to_json(model: dict[str, Any]) -> str:
    return json.dumps(_ordered(model), indent=2) + "\n"


def to_yaml(model: dict[str, Any]) -> str:
    from ruamel.yaml import YAML
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(_ordered(model), buf)
    return _QUOTED.sub(_double, buf.getvalue())


def _double(m: re.Match[str]) -> str:
    """yaml.v3 (compose-go) quotes ambiguous scalars with double quotes; ruamel uses single."""
    text = m.group(2).replace("''", "'")
    if '"' in text or "\\" in text:
        return m.group(0)
    return f'{m.group(1)}"{text}"'

