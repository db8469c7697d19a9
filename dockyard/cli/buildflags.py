"""Values of `dockyard build`'s flags turned into what the daemon is sent: --build-arg/--label
pairs, --secret and --ssh sources (read here, on the client), --cache-from/--cache-to specs and
--build-context sources (local paths made absolute: the daemon reads them on the same host)."""

from __future__ import annotations

import binascii
import os

from dockyard.cli.runner import CommandError

REMOTE_PREFIXES = ("http://", "https://", "git://", "git@", "ssh://")  # contexts the daemon fetches


def key_values(items: list[str], flag: str, env_fallback: bool = False) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise CommandError(f"invalid argument {item!r} for \"--{flag}\" flag", 125)
        out[key] = value if eq else (os.environ.get(key) if env_fallback else "")
    return out


def b64(data: bytes) -> str:
    """Standard base64 text (binascii: the base64 module imports re)."""
    return binascii.b2a_base64(data, newline=False).decode()


def secrets(items: list[str]) -> dict[str, str]:
    """--secret id=x[,src=file|,env=VAR] → {id: base64 value}."""
    out = {}
    for item in items:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        sid = fields.get("id", "")
        if not sid:
            raise CommandError(f"invalid secret {item!r}: an id is required", 125)
        if "env" in fields:
            value = os.environ.get(fields["env"], "").encode()
        else:
            path = fields.get("src") or fields.get("source") or ""
            if not path:
                if sid in os.environ:
                    value = os.environ[sid].encode()
                else:
                    raise CommandError(f"invalid secret {item!r}: src or env is required", 125)
            else:
                try:
                    with open(os.path.expanduser(path), "rb") as f:
                        value = f.read()
                except OSError as e:
                    raise CommandError(f"failed to read secret {sid}: {e.strerror}", 1) from None
        out[sid] = b64(value)
    return out


def ssh_sources(items: list[str]) -> dict[str, dict]:
    """--ssh default|ID[=SOCKET|KEY[,KEY]] → id → {"socket": agent socket (the daemon binds it:
    same host)} or {"keys": [base64 private keys]} (the daemon runs an agent holding them)."""
    import stat
    out: dict[str, dict] = {}
    for item in items:
        sid, eq, paths = item.partition("=")
        if not sid:
            raise CommandError(f"invalid --ssh value {item!r}: use default|ID[=SOCKET|KEY[,KEY...]]", 125)
        if not eq:
            paths = os.environ.get("SSH_AUTH_SOCK", "")
            if not paths:
                raise CommandError(f"--ssh {sid}: SSH_AUTH_SOCK is not set: give a socket or key files", 1)
        keys = []
        for path in paths.split(","):
            path = os.path.abspath(os.path.expanduser(path))
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    out[sid] = {"socket": path}
                    break
                with open(path, "rb") as f:
                    keys.append(b64(f.read()))
            except OSError as e:
                raise CommandError(f"--ssh {sid}: {path}: {e.strerror}", 1) from None
        else:
            out[sid] = {"keys": keys}
    return out


def _cache_fields(spec: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in spec.split(",") if part)


def cache_from(spec: str) -> str:
    """A --cache-from value for the daemon: an image reference, type=registry,ref=R, or
    type=local,src=DIR (made absolute: the daemon reads it)."""
    if "=" not in spec.split(",", 1)[0]:
        return spec
    fields = _cache_fields(spec)
    kind = fields.get("type", "local")
    if kind == "local":
        if not fields.get("src"):
            raise CommandError(f"invalid --cache-from {spec!r}: type=local needs src=DIR", 1)
        return f"type=local,src={os.path.abspath(fields['src'])}"
    if kind != "registry" or not fields.get("ref"):
        raise CommandError(f"unsupported --cache-from {spec!r}: use an image, type=registry,ref=R or "
                           "type=local,src=DIR", 1)
    return spec


def cache_to(spec: str) -> dict[str, str]:
    """A --cache-to value: type=local,dest=DIR[,mode=min|max] or type=inline."""
    fields = _cache_fields(spec)
    kind = fields.get("type", "local")
    if kind == "inline":
        return {"type": "inline"}
    if kind != "local":
        raise CommandError(f"unsupported --cache-to {spec!r}: use type=local,dest=DIR or type=inline "
                           "(then push the image)", 1)
    if not fields.get("dest"):
        raise CommandError(f"invalid --cache-to {spec!r}: type=local needs dest=DIR", 1)
    mode = fields.get("mode", "min")
    if mode not in ("min", "max"):
        raise CommandError(f"invalid --cache-to {spec!r}: mode is min or max", 1)
    return {"type": "local", "dest": os.path.abspath(fields["dest"]), "mode": mode}


def build_contexts(items: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """--build-context name=docker-image://REF|git URL|directory: (name → source for the
    daemon, "local" for directories; name → directory)."""
    contexts: dict[str, str] = {}
    named: dict[str, str] = {}
    for item in items:
        label, eq, source = item.partition("=")
        if not eq or not label or not source or "/" in label or label.startswith("."):
            raise CommandError(f"invalid --build-context value {item!r}: use name=source", 125)
        if source.startswith(("docker-image://", *REMOTE_PREFIXES)):
            contexts[label] = source
        elif source.startswith("oci-layout://"):  # read by the daemon: same host
            contexts[label] = "oci-layout://" + os.path.abspath(source.removeprefix("oci-layout://"))
        elif "://" in source:
            raise CommandError(f"unsupported build context source {source!r}: use a directory, "
                               "docker-image://REF, oci-layout://PATH[:TAG] or a git URL", 1)
        elif not os.path.isdir(source):
            raise CommandError(f"build context {label}: directory {source!r} not found", 1)
        else:
            contexts[label] = "local"
            named[label] = os.path.abspath(source)
    return contexts, named
