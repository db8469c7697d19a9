"""Service images over the Engine API: pulled (POST /images/create), built (POST /build with
the context as a tar, Docker's legacy builder protocol) or pushed."""

from __future__ import annotations

import fnmatch
import io
import json
import os
from typing import Any

from dockyard.client.api import APIError, Client
from dockyard.compose.errors import ComposeError
from dockyard.compose.progress import Progress


def image_id(client: Client, ref: str) -> str | None:
    """The image's ID, None if the daemon lacks it."""
    try:
        return client.inspect_image(ref)["Id"]
    except APIError as exc:
        if exc.status == 404:
            return None
        raise


def _split(ref: str) -> tuple[str, str]:
    name, _, digest = ref.partition("@")
    if digest:
        return name, digest
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "latest"


def _drain(resp: Any, what: str) -> None:
    try:
        for msg in resp.iter_json():
            if msg.get("error"):
                raise ComposeError(f"{what}: {msg['error']}")
    finally:
        resp.close()


def pull(client: Client, service: str, ref: str, progress: Progress) -> None:
    progress.event("", service, "Pulling")
    name, tag = _split(ref)
    try:
        _drain(client.call("POST", "/images/create", {"fromImage": name, "tag": tag}, stream=True), service)
    except APIError as exc:
        progress.event("", service, "Error")
        raise ComposeError(f"Error response from daemon: {exc.message}") from None
    progress.event("", service, "Pulled")


def push(client: Client, service: str, ref: str, progress: Progress) -> None:
    name, tag = _split(ref)
    progress.event("", service, "Pushing")
    _drain(client.call("POST", f"/images/{name}/push", {"tag": tag}, stream=True,
                       headers={"X-Registry-Auth": "e30="}), service)
    progress.event("", service, "Pushed")


def _ignored(directory: str) -> list[str]:
    try:
        with open(os.path.join(directory, ".dockerignore"), encoding="utf-8") as f:
            return [line.strip().strip("/") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def context_tar(directory: str, inline: tuple[str, str] | None = None) -> bytes:
    """The build context as a tar (.dockerignore patterns skipped); inline adds a Dockerfile."""
    import tarfile
    patterns = _ignored(directory)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for root, dirs, files in os.walk(directory):
            rel_root = os.path.relpath(root, directory)
            for entry in sorted(dirs + files):
                rel = os.path.normpath(os.path.join(rel_root, entry))
                if any(fnmatch.fnmatch(rel, p) or rel.startswith(p.rstrip("*") + "/") and p for p in patterns
                       if not p.startswith("!")):
                    if entry in dirs:
                        dirs.remove(entry)
                    continue
                tar.add(os.path.join(root, entry), rel, recursive=False)
        if inline:
            data = inline[1].encode()
            info = tarfile.TarInfo(inline[0])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_secrets(project: Any, build_conf: dict[str, Any]) -> dict[str, bytes]:
    """build.secrets → {id: value}: the id is the reference's target, else its source; the value
    the top-level secret's file or environment variable."""
    out = {}
    for ref in build_conf.get("secrets") or []:
        conf = (project.model.get("secrets") or {}).get(ref["source"]) or {}
        sid = ref.get("target") or ref["source"]
        if conf.get("file"):
            try:
                with open(conf["file"], "rb") as f:
                    out[sid] = f.read()
            except OSError as exc:
                raise ComposeError(f"failed to read secret {sid}: {exc.strerror}: {conf['file']}") from None
        elif conf.get("environment"):
            if conf["environment"] not in project.environment:
                raise ComposeError(f'environment variable "{conf["environment"]}" required by secret '
                                   f'"{ref["source"]}" is not set')
            out[sid] = project.environment[conf["environment"]].encode()
    return out


def build(client: Client, service: str, tag: str, build_conf: dict[str, Any], progress: Progress,
          no_cache: bool = False, pull_base: bool = False, secrets: dict[str, bytes] | None = None) -> str:
    """Build the service's image; its ID. Secrets travel in dockyardd's X-Dockyard-Build-Secrets
    header (the classic protocol has no session for them; other daemons ignore it)."""
    inline = build_conf.get("dockerfile_inline")
    dockerfile = ".dockyard-compose.Dockerfile" if inline else build_conf.get("dockerfile", "Dockerfile")
    context = build_conf["context"]
    if not os.path.isdir(context):
        raise ComposeError(f"unable to prepare context: path {context!r} not found")
    body = context_tar(context, (dockerfile, inline) if inline else None)
    query: dict[str, Any] = {"t": [tag, *(build_conf.get("tags") or [])], "dockerfile": dockerfile, "rm": 1,
                             "nocache": 1 if no_cache or build_conf.get("no_cache") else None,
                             "pull": 1 if pull_base or build_conf.get("pull") else None,
                             "target": build_conf.get("target")}
    if build_conf.get("args"):
        query["buildargs"] = json.dumps({k: v for k, v in build_conf["args"].items() if v is not None})
    if build_conf.get("cache_from"):
        query["cachefrom"] = json.dumps(build_conf["cache_from"])
    if build_conf.get("labels"):
        labels = build_conf["labels"]
        query["labels"] = json.dumps(labels if isinstance(labels, dict) else dict(x.split("=", 1) for x in labels))
    if build_conf.get("network"):
        query["networkmode"] = build_conf["network"]
    if build_conf.get("shm_size"):
        from dockyard.compose.units import size_bytes
        query["shmsize"] = size_bytes(build_conf["shm_size"])
    headers = {"Content-Type": "application/x-tar"}
    if secrets:
        import base64
        headers["X-Dockyard-Build-Secrets"] = base64.b64encode(json.dumps(
            {k: base64.b64encode(v).decode() for k, v in secrets.items()}).encode()).decode()
    if build_conf.get("ssh"):
        progress.line(f"WARN[0000] service {service!r}: build.ssh is ignored: the classic build protocol "
                      "cannot forward an SSH agent")
    progress.event("Service", service, "Building")
    try:
        resp = client.call("POST", "/build", query, body, headers, stream=True)
    except APIError as exc:
        if exc.status == 404:
            raise ComposeError(f"failed to build {service}: the daemon at {client.host} has no builder "
                               f"(POST /build: {exc.message})") from None
        raise ComposeError(f"failed to build {service}: {exc.message}") from None
    built = ""
    try:
        for msg in resp.iter_json():
            if msg.get("error"):
                raise ComposeError(f"failed to solve: {msg['error'].strip()}")
            for line in (msg.get("stream") or "").splitlines():
                if line.strip():
                    progress.line(f"#{service} {line.rstrip()}")
            if (msg.get("aux") or {}).get("ID"):
                built = msg["aux"]["ID"]
    finally:
        resp.close()
    progress.event("Service", service, "Built")
    return built or image_id(client, tag) or ""
