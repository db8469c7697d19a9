"""Service images over the Engine API: pulled (POST /images/create), built (POST /build: the
classic builder protocol, with dockyardd's extensions when the daemon is one) or pushed."""

from __future__ import annotations

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


REMOTE_PREFIXES = ("http://", "https://", "git://", "git@", "ssh://")  # contexts the daemon fetches
INLINE_DOCKERFILE = ".dockyard-compose.Dockerfile"  # dockerfile_inline, or a Dockerfile outside the context


def is_remote(context: str) -> bool:
    return context.startswith(REMOTE_PREFIXES)


def additional_contexts(build_conf: dict[str, Any]) -> dict[str, str]:
    """build.additional_contexts as a mapping (the list form is `name=source`)."""
    value = build_conf.get("additional_contexts") or {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {k: v for k, _, v in (str(item).partition("=") for item in value)}


def service_contexts(build_conf: dict[str, Any]) -> list[str]:
    """The services whose images build.additional_contexts names (`service:NAME`): built first."""
    return [v.removeprefix("service:") for v in additional_contexts(build_conf).values() if v.startswith("service:")]


def ssh_items(build_conf: dict[str, Any], base: str) -> list[str]:
    """build.ssh (a list of `default` / `id=path`, or a mapping) as --ssh values, relative key
    paths made absolute against base (the project directory)."""
    value = build_conf.get("ssh") or []
    pairs = list(value.items()) if isinstance(value, dict) else [str(x).partition("=")[::2] for x in value]
    out = []
    for sid, path in pairs:
        if path:
            path = os.path.join(base, os.path.expanduser(str(path)))
        out.append(f"{sid}={path}" if path else str(sid))
    return out


def _build_flag(what: str, call: Any, *args: Any) -> Any:
    """A dockyard CLI flag helper's value (cli/buildflags.py), its error as compose's."""
    from dockyard.cli.runner import CommandError
    try:
        return call(*args)
    except CommandError as exc:
        raise ComposeError(f"{what}: {exc}") from None


class _Request:
    """One service's /build request: query, headers and body, decided by what the daemon can do."""

    def __init__(self, client: Client, service: str, build_conf: dict[str, Any], project_dir: str,
                 progress: Progress) -> None:
        self.client = client
        self.service = service
        self.conf = build_conf
        self.base = project_dir
        self.progress = progress
        self.query: dict[str, Any] = {}
        self.headers: dict[str, str] = {"Content-Type": "application/x-tar"}
        self.body: bytes | None = None
        self.dockyardd = False  # the daemon keeps incremental contexts (dockyardd's extensions apply)

    def warn(self, text: str) -> None:
        self.progress.line(f"WARN[0000] service {self.service!r}: {text}")

    def context(self, named: dict[str, str]) -> str:
        """The context: sent as a tar (to dockyardd incrementally, with the named directories
        beside it), or a remote one the daemon fetches; the Dockerfile's name for the daemon."""
        context = self.conf["context"]
        inline = self.conf.get("dockerfile_inline")
        dockerfile = self.conf.get("dockerfile") or "Dockerfile"
        if is_remote(context):
            if inline:
                raise ComposeError(f"failed to build {self.service}: dockerfile_inline needs a local context")
            if named:
                raise ComposeError(f"failed to build {self.service}: additional contexts from directories "
                                   "need a local build context")
            self.query["remote"] = context
            self.dockyardd = True  # the daemon fetches it; dockerd ignores dockyardd's parameters
            return dockerfile
        if not os.path.isdir(context):
            raise ComposeError(f"unable to prepare context: path {context!r} not found")
        from dockyard.build.context import context_paths, ignore_patterns
        from dockyard.cli.buildcontext import sync, write_tar
        extra: tuple[str, bytes] | None = None
        if inline:
            extra, name = (INLINE_DOCKERFILE, inline.encode()), INLINE_DOCKERFILE
        else:
            path = os.path.join(context, dockerfile)
            name = os.path.relpath(path, context)
            if name.startswith(".."):
                try:
                    with open(path, "rb") as f:
                        extra, name = (INLINE_DOCKERFILE, f.read()), INLINE_DOCKERFILE
                except OSError as exc:
                    raise ComposeError(f"failed to read dockerfile: {exc.strerror}: {path}") from None
        trees = [("c/" if named else "", context, context_paths(context, name, ignore_patterns(
            context, os.path.join(context, name))))]
        trees += [(f"n/{label}/", directory, context_paths(directory)) for label, directory in sorted(named.items())]
        if extra:
            extra = (trees[0][0] + extra[0], extra[1])
        try:
            session = sync(self.client, trees, extra)
        except APIError as exc:
            raise ComposeError(f"failed to build {self.service}: {exc.message}") from None
        if session is None:
            if named:
                raise ComposeError(f"failed to build {self.service}: the classic builder doesn't support "
                                   "additional contexts from directories (the daemon is not a dockyardd)")
        else:
            self.dockyardd = True
            self.headers["X-Dockyard-Context"] = session[0]
        spool = io.BytesIO()
        write_tar(spool, trees if session is None else session[1], extra)
        self.body = spool.getvalue()
        return name

    def named_contexts(self, images: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """build.additional_contexts: (name → source for the daemon's buildcontexts, "local" for
        directories; name → directory). images: service name → its image reference."""
        contexts: dict[str, str] = {}
        named: dict[str, str] = {}
        for label, source in additional_contexts(self.conf).items():
            if source.startswith("service:"):
                contexts[label] = "docker-image://" + images[source.removeprefix("service:")]
            elif source.startswith(("docker-image://", *REMOTE_PREFIXES)):
                contexts[label] = source
            elif source.startswith("oci-layout://"):  # read by the daemon: same host
                path = os.path.join(self.base, source.removeprefix("oci-layout://"))
                contexts[label] = "oci-layout://" + path
            elif "://" in source:
                raise ComposeError(f"failed to build {self.service}: unsupported additional context "
                                   f"{label}={source}: use a directory, docker-image://, oci-layout://, a git "
                                   "URL or service:NAME")
            else:
                directory = os.path.join(self.base, source)
                if not os.path.isdir(directory):
                    raise ComposeError(f"failed to build {self.service}: additional context {label}: "
                                       f"directory {directory!r} not found")
                contexts[label] = "local"
                named[label] = directory
        return contexts, named


def _platform(service: str, build_conf: dict[str, Any], platform: str | None) -> str | None:
    """The one platform to build for: build.platforms (a single entry: no multi-platform
    builds), else the service's platform, which must be among build.platforms."""
    platforms = [str(p) for p in build_conf.get("platforms") or []]
    if len(platforms) > 1:
        raise ComposeError(f"failed to build {service}: multi-platform builds are not supported "
                           f"(build.platforms: {', '.join(platforms)}): build one platform, the host's")
    if platform and platforms and platform not in platforms:
        raise ComposeError(f'service.build.platforms MUST include service.platform "{platform}"')
    return platforms[0] if platforms else platform or None


def build(client: Client, service: str, tag: str, build_conf: dict[str, Any], progress: Progress,
          no_cache: bool = False, pull_base: bool = False, secrets: dict[str, bytes] | None = None,
          project_dir: str = ".", images: dict[str, str] | None = None, platform: str | None = None) -> str:
    """Build the service's image; its ID. To a dockyardd (it answers POST /build/context) the
    context goes incrementally, and what the classic protocol cannot carry travels in its
    extensions: secrets and ssh in X-Dockyard-Build-* headers, additional contexts as
    buildcontexts, cache exports as cacheto. Other daemons get the classic protocol's tar and
    ignore those (build.ssh and cache_to with a warning; directories as contexts are refused).
    images: the service → image references additional contexts `service:NAME` stand for."""
    req = _Request(client, service, build_conf, os.path.abspath(project_dir), progress)
    contexts, named = req.named_contexts(images or {})
    dockerfile = req.context(named)
    query: dict[str, Any] = {"t": [tag, *(build_conf.get("tags") or [])], "dockerfile": dockerfile, "rm": 1,
                             "nocache": 1 if no_cache or build_conf.get("no_cache") else None,
                             "pull": 1 if pull_base or build_conf.get("pull") else None,
                             "target": build_conf.get("target"),
                             "platform": _platform(service, build_conf, platform)}
    query.update(req.query)
    if build_conf.get("args"):
        query["buildargs"] = json.dumps({k: v for k, v in build_conf["args"].items() if v is not None})
    cache_from = [str(c) for c in build_conf.get("cache_from") or []]
    if cache_from:
        if req.dockyardd:  # type=local sources relative to the project directory
            from dockyard.cli import buildflags
            cache_from = [_build_flag("build.cache_from", buildflags.cache_from, _under(req.base, c, "src"))
                          for c in cache_from]
        query["cachefrom"] = json.dumps(cache_from)
    cache_to = [str(c) for c in build_conf.get("cache_to") or []]
    if cache_to and req.dockyardd:
        from dockyard.cli import buildflags
        query["cacheto"] = json.dumps([_build_flag("build.cache_to", buildflags.cache_to, _under(req.base, c, "dest"))
                                       for c in cache_to])
    elif cache_to:
        req.warn("build.cache_to is ignored: the classic builder cannot export build cache")
    if build_conf.get("labels"):
        labels = build_conf["labels"]
        query["labels"] = json.dumps(labels if isinstance(labels, dict) else dict(x.split("=", 1) for x in labels))
    if build_conf.get("network"):
        query["networkmode"] = build_conf["network"]
    if build_conf.get("extra_hosts"):
        from dockyard.compose.merge import hosts_mapping
        query["extrahosts"] = [f"{h}:{ip}" for h, ips in hosts_mapping(build_conf["extra_hosts"]).items()
                               for ip in (ips if isinstance(ips, list) else [ips])]
    if build_conf.get("shm_size"):
        from dockyard.compose.units import size_bytes
        query["shmsize"] = size_bytes(build_conf["shm_size"])
    if contexts:
        query["buildcontexts"] = json.dumps(contexts)
    headers = req.headers
    auths = _registry_config()
    if auths:
        headers["X-Registry-Config"] = auths
    if secrets:
        import base64
        headers["X-Dockyard-Build-Secrets"] = base64.b64encode(json.dumps(
            {k: base64.b64encode(v).decode() for k, v in secrets.items()}).encode()).decode()
    ssh = ssh_items(build_conf, req.base)
    if ssh and req.dockyardd:
        from dockyard.cli import buildflags
        sources = _build_flag("build.ssh", buildflags.ssh_sources, ssh)
        headers["X-Dockyard-Build-Ssh"] = buildflags.b64(json.dumps(sources).encode())
    elif ssh:
        req.warn("build.ssh is ignored: the classic build protocol cannot forward an SSH agent")
    progress.event("Service", service, "Building")
    try:
        resp = client.call("POST", "/build", query, req.body, headers, stream=True)
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


def _under(base: str, spec: str, key: str) -> str:
    """A type=local cache spec with its key's relative path made absolute against base."""
    if "=" not in spec.split(",", 1)[0]:
        return spec  # an image reference
    parts = []
    for part in spec.split(","):
        k, eq, v = part.partition("=")
        parts.append(f"{k}={os.path.join(base, os.path.expanduser(v))}" if eq and k == key and v else part)
    return ",".join(parts)


def _registry_config() -> str:
    """config.json's credentials as the X-Registry-Config header (base images are pulled with
    them), as Docker Compose sends them; "" when there are none or they cannot be read."""
    from dockyard.client import dockercfg
    try:
        auths = dockercfg.all_credentials()
    except dockercfg.CredentialsError:
        return ""
    return dockercfg.registry_auth_header(auths) if auths else ""
