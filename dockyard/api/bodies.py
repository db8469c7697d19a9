"""Type checks of JSON request bodies, as dockerd's Go decoder applies them: a known field with a
value of the wrong JSON type is a 400 naming the field and the expected type; unknown fields are
ignored (newer clients send fields older daemons do not know); null is every field's zero value.
Docker's StrSlice fields (Cmd, Entrypoint) also take a single string, normalised to a list here."""

from __future__ import annotations

from typing import Any

from dockyard.api.errors import ApiError

# type codes: s string, b bool, i integer, f number, m object, ms object of strings, l array,
# ls array of strings, li array of integers, ss StrSlice (string or array of strings)
_GO_TYPES = {"s": "string", "b": "bool", "i": "int64", "f": "float64", "m": "map[string]interface {}",
             "ms": "map[string]string", "l": "[]interface {}", "ls": "[]string", "li": "[]int",
             "ss": "strslice.StrSlice"}

CONTAINER_CONFIG = {
    "Hostname": "s", "Domainname": "s", "User": "s", "AttachStdin": "b", "AttachStdout": "b", "AttachStderr": "b",
    "ExposedPorts": "m", "Tty": "b", "OpenStdin": "b", "StdinOnce": "b", "Env": "ls", "Cmd": "ss",
    "Healthcheck": "m", "ArgsEscaped": "b", "Image": "s", "Volumes": "m", "WorkingDir": "s", "Entrypoint": "ss",
    "NetworkDisabled": "b", "MacAddress": "s", "OnBuild": "ls", "Labels": "ms", "StopSignal": "s",
    "StopTimeout": "i", "Shell": "ls", "HostConfig": "m", "NetworkingConfig": "m",
}
HOST_CONFIG = {
    "Binds": "ls", "ContainerIDFile": "s", "LogConfig": "m", "NetworkMode": "s", "PortBindings": "m",
    "RestartPolicy": "m", "AutoRemove": "b", "VolumeDriver": "s", "VolumesFrom": "ls", "ConsoleSize": "li",
    "Annotations": "ms", "CapAdd": "ls", "CapDrop": "ls", "CgroupnsMode": "s", "Dns": "ls", "DnsOptions": "ls",
    "DnsSearch": "ls", "ExtraHosts": "ls", "GroupAdd": "ls", "IpcMode": "s", "Cgroup": "s", "Links": "ls",
    "OomScoreAdj": "i", "PidMode": "s", "Privileged": "b", "PublishAllPorts": "b", "ReadonlyRootfs": "b",
    "SecurityOpt": "ls", "StorageOpt": "ms", "Tmpfs": "ms", "UTSMode": "s", "UsernsMode": "s", "ShmSize": "i",
    "Sysctls": "ms", "Runtime": "s", "Isolation": "s", "CpuShares": "i", "Memory": "i", "NanoCpus": "i",
    "CgroupParent": "s", "BlkioWeight": "i", "BlkioWeightDevice": "l", "BlkioDeviceReadBps": "l",
    "BlkioDeviceWriteBps": "l", "BlkioDeviceReadIOps": "l", "BlkioDeviceWriteIOps": "l", "CpuPeriod": "i",
    "CpuQuota": "i", "CpuRealtimePeriod": "i", "CpuRealtimeRuntime": "i", "CpusetCpus": "s", "CpusetMems": "s",
    "Devices": "l", "DeviceCgroupRules": "ls", "DeviceRequests": "l", "KernelMemory": "i", "KernelMemoryTCP": "i",
    "MemoryReservation": "i", "MemorySwap": "i", "MemorySwappiness": "i", "OomKillDisable": "b",
    "PidsLimit": "i", "Ulimits": "l", "CpuCount": "i", "CpuPercent": "i", "IOMaximumIOps": "i",
    "IOMaximumBandwidth": "i", "Mounts": "l", "MaskedPaths": "ls", "ReadonlyPaths": "ls", "Init": "b",
}
EXEC_CONFIG = {
    "AttachStdin": "b", "AttachStdout": "b", "AttachStderr": "b", "DetachKeys": "s", "Tty": "b", "Env": "ls",
    "Cmd": "ls", "Privileged": "b", "User": "s", "WorkingDir": "s", "ConsoleSize": "li",
}
EXEC_START = {"Detach": "b", "Tty": "b", "ConsoleSize": "li"}
_NESTED = {
    "RestartPolicy": {"Name": "s", "MaximumRetryCount": "i"},
    "LogConfig": {"Type": "s", "Config": "ms"},
    "Healthcheck": {"Test": "ls", "Interval": "i", "Timeout": "i", "StartPeriod": "i", "StartInterval": "i",
                    "Retries": "i"},
}


def _matches(value: Any, code: str) -> bool:
    if value is None:
        return True
    if code == "s":
        return isinstance(value, str)
    if code == "b":
        return isinstance(value, bool)
    if code == "i":
        return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if code == "f":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if code == "m":
        return isinstance(value, dict)
    if code == "ms":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if code == "l":
        return isinstance(value, list)
    if code == "ls":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if code == "li":
        return isinstance(value, list) and all(_matches(v, "i") for v in value)
    if code == "ss":
        return isinstance(value, str) or _matches(value, "ls")
    raise ValueError(f"unknown type code {code!r}")


def _json_kind(value: Any) -> str:
    """The JSON kind Go's decoder names in its error ("number", "string", ...)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _mismatch(value: Any, code: str) -> tuple[str, str]:
    """(JSON kind, Go type) for the error about a value that does not match code: the offending
    element's, when a list or object of the right kind holds a wrong element (as Go reports it)."""
    elements = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    element_code = {"ms": "s", "ls": "s", "li": "i", "ss": "s"}.get(code)
    if elements is not None and element_code and _matches(value, "m" if isinstance(value, dict) else "l"):
        bad = next(v for v in elements if not _matches(v, element_code))
        return _json_kind(bad), _GO_TYPES[element_code]
    return _json_kind(value), _GO_TYPES[code]


def _fold_names(body: dict[str, Any], fields: dict[str, str]) -> None:
    """Rename keys that match a known field but for case to that field (Go's decoder matches
    names case-insensitively: docker-py sends `detachKeys`); an exact match wins."""
    known = {name.lower(): name for name in fields}
    for key in [k for k in body if k not in fields and k.lower() in known]:
        value = body.pop(key)
        body.setdefault(known[key.lower()], value)


def check_fields(body: dict[str, Any], fields: dict[str, str], struct: str) -> None:
    """Raise 400 for the first known field of body whose value has the wrong type (field names
    folded to their known case first)."""
    _fold_names(body, fields)
    for name, code in fields.items():
        value = body.get(name)
        if not _matches(value, code):
            kind, go_type = _mismatch(value, code)
            raise ApiError(400, f"json: cannot unmarshal {kind} into Go struct field {struct}.{name} of type {go_type}")
        if name in _NESTED and isinstance(value, dict):
            check_fields(value, _NESTED[name], f"{struct}.{name}")


def container_create(body: Any) -> dict[str, Any]:
    """The POST /containers/create body, type-checked, with StrSlice fields normalised to lists."""
    if not isinstance(body, dict):
        raise ApiError(400, "Config cannot be empty in order to create a container")
    check_fields(body, CONTAINER_CONFIG, "ContainerConfigWrapper")
    if body.get("HostConfig") is not None:
        check_fields(body["HostConfig"], HOST_CONFIG, "ContainerConfigWrapper.HostConfig")
    for name in ("Cmd", "Entrypoint"):
        if isinstance(body.get(name), str):
            body[name] = [body[name]]
    return body


def exec_create(body: Any) -> dict[str, Any]:
    """The POST /containers/{id}/exec body, type-checked."""
    if not isinstance(body, dict):
        raise ApiError(400, "No exec command specified")
    check_fields(body, EXEC_CONFIG, "ExecConfig")
    return body


def exec_start(body: Any) -> dict[str, Any]:
    """The POST /exec/{id}/start body (may be empty), type-checked."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "json: cannot unmarshal into Go value of type container.ExecStartOptions")
    check_fields(body, EXEC_START, "ExecStartCheck")
    return body


def container_update(body: Any) -> dict[str, Any]:
    """The POST /containers/{id}/update body (resources and restart policy), type-checked."""
    if not isinstance(body, dict):
        raise ApiError(400, "json: cannot unmarshal into Go value of type container.UpdateConfig")
    check_fields(body, HOST_CONFIG, "UpdateConfig")
    return body
