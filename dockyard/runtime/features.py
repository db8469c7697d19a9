"""`dockyard-runtime features`: what this runtime implements, in runc's document shape."""

from __future__ import annotations

from dockyard.runtime.caps import CAPABILITIES
from dockyard.runtime.config import HOOK_KINDS, NAMESPACE_TYPES
from dockyard.runtime.mountopts import FLAGS, PROPAGATION

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    from dockyard.runtime.seccomp import features as seccomp_features

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted([*FLAGS, *PROPAGATION]),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": seccomp_features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"io.github.dockyard.runtime.version": "0.1.0"},
    }
