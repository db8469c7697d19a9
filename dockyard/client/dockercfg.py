"""Registry credentials in docker's client config (``$DOCKER_CONFIG/config.json``, default
``~/.docker/config.json``): "auths" entries (base64 user:password), or the credential helper
programs named by "credsStore" and "credHelpers" (``docker-credential-<name> get|store|erase|list``).
Reading goes through runtime.jsonfast and imports subprocess only to run a helper: `dockyard build`
reads this file on every run."""

from __future__ import annotations

import binascii  # base64 imports re (~6 ms of the CLI's start-up)
import os

from dockyard.runtime import jsonfast

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class CredentialsError(Exception):
    """A credential helper that failed, or a config file that cannot be read or written."""


def config_path() -> str:
    """The config.json in use."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def server_key(domain: str) -> str:
    """The "auths" key of a registry domain (Docker Hub has its legacy index URL)."""
    return DOCKER_HUB_KEY if domain in ("docker.io", "index.docker.io", "registry-1.docker.io", "") else domain


def load() -> dict:
    """The config document ({} when there is none)."""
    try:
        with open(config_path(), encoding="utf-8") as f:
            doc = jsonfast.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CredentialsError(f"loading config file {config_path()}: {err}") from None
    return doc if isinstance(doc, dict) else {}


def save(doc: dict) -> None:
    """Write the config document atomically (mode 0600)."""
    import json
    import tempfile
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".config.json.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent="\t")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _helper(doc: dict, key: str) -> str:
    helpers = doc.get("credHelpers") or {}
    return helpers.get(key) or helpers.get(key.removeprefix("https://").split("/")[0]) or doc.get("credsStore") or ""


def _run_helper(helper: str, action: str, data: str) -> str:
    import subprocess
    try:
        proc = subprocess.run([f"docker-credential-{helper}", action], input=data.encode(), capture_output=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CredentialsError(f"error getting credentials - err: {err}") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        raise CredentialsError(out or proc.stderr.decode(errors="replace").strip())
    return out


def get(key: str, doc: dict | None = None) -> dict:
    """The AuthConfig (username, password, serveraddress[, identitytoken]) stored for key; {} if none."""
    doc = load() if doc is None else doc
    helper = _helper(doc, key)
    if helper:
        try:
            found = jsonfast.loads(_run_helper(helper, "get", key))
        except CredentialsError as err:
            if "credentials not found" in str(err).lower():
                return {}
            raise
        except ValueError:
            return {}
        if found.get("Username") == "<token>":
            return {"identitytoken": found.get("Secret", ""), "serveraddress": key}
        return {"username": found.get("Username", ""), "password": found.get("Secret", ""), "serveraddress": key}
    entry = (doc.get("auths") or {}).get(key) or {}
    out = {"serveraddress": key}
    if entry.get("auth"):
        try:
            user, _, password = binascii.a2b_base64(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise CredentialsError(f"invalid auth configuration file: {config_path()}") from None
        out.update(username=user, password=password)
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    return out if len(out) > 1 else {}


def store(key: str, username: str, password: str) -> None:
    """Remember credentials for key (in the helper when one is configured)."""
    doc = load()
    helper = _helper(doc, key)
    if helper:
        _run_helper(helper, "store", jsonfast.dumps({"ServerURL": key, "Username": username, "Secret": password}))
        doc.setdefault("auths", {})[key] = {}
    else:
        doc.setdefault("auths", {})[key] = {"auth": _b64(f"{username}:{password}".encode())}
    save(doc)


def erase(key: str) -> bool:
    """Forget key's credentials; whether there were any."""
    doc = load()
    auths = doc.get("auths") or {}
    helper = _helper(doc, key)
    had = key in auths
    if helper:
        try:
            _run_helper(helper, "erase", key)
            had = True
        except CredentialsError:
            pass
    if key in auths:
        del auths[key]
        save(doc)
    return had


def registry_auth_header(auth: dict) -> str:
    """The X-Registry-Auth value for an AuthConfig (base64url JSON; "e30=" for none)."""
    return _b64(jsonfast.dumps(auth).encode(), urlsafe=True)


def _b64(data: bytes, urlsafe: bool = False) -> str:
    encoded = binascii.b2a_base64(data, newline=False)
    return (encoded.translate(_URLSAFE) if urlsafe else encoded).decode()


def all_credentials() -> dict[str, dict]:
    """Every stored AuthConfig by server address (what the docker CLI sends with a build as
    X-Registry-Config): "auths" entries, the credsStore helper's list, each credHelpers entry."""
    if not os.path.exists(config_path()):
        return {}
    doc = load()
    keys = set(doc.get("auths") or {}) | set(doc.get("credHelpers") or {})
    if doc.get("credsStore"):
        try:
            keys |= set(jsonfast.loads(_run_helper(doc["credsStore"], "list", "")) or {})
        except (CredentialsError, ValueError):
            pass
    out = {}
    for key in sorted(keys):
        try:
            found = get(key, doc)
        except CredentialsError:
            continue
        if found:
            out[key] = found
    return out
