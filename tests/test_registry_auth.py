"""Credentials and challenges: WWW-Authenticate parsing, X-Registry-Auth decoding, Docker Hub's
names, and docker's config.json with "auths", "credsStore" and "credHelpers" (a real helper
program on PATH, speaking the docker-credential protocol)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from dockyard.client import dockercfg
from dockyard.registry.client.auth import Credentials, parse_challenges
from dockyard.registry.client.endpoint import api_host, auth_key
from dockyard.registry.client.login import registry_domain

HELPER = """#!/bin/sh
# a docker-credential helper keeping one file per server under $STORE
key=$(cat)
case "$1" in
  store) server=$(printf '%s' "$key" | sed 's/.*"ServerURL": *"\\([^"]*\\)".*/\\1/')
         printf '%s' "$key" > "$STORE/$(printf '%s' "$server" | tr '/:' '__')" ;;
  get)   f="$STORE/$(printf '%s' "$key" | tr '/:' '__')"
         [ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }
         cat "$f" ;;
  erase) rm -f "$STORE/$(printf '%s' "$key" | tr '/:' '__')" ;;
esac
"""


def test_challenges() -> None:
    [bearer] = parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                'scope="repository:library/busybox:pull,push"')
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                             "scope": "repository:library/busybox:pull,push"}
    basic, other = parse_challenges('Basic realm="a \\"quoted\\" realm", Bearer realm=http://x/t')
    assert basic.params["realm"] == 'a "quoted" realm' and other.params["realm"] == "http://x/t"
    assert parse_challenges("") == []


def test_registry_auth_header() -> None:
    encoded = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p"}).encode()).decode().rstrip("=")
    assert Credentials.from_header(encoded) == Credentials("u", "p")
    assert Credentials.from_header("e30=").empty
    assert Credentials.from_header("!!garbage!!").empty
    assert Credentials.from_header(base64.b64encode(b"[1]").decode()).empty


def test_docker_hub_names() -> None:
    assert api_host("docker.io") == "registry-1.docker.io" and api_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert auth_key("docker.io") == "https://index.docker.io/v1/"
    assert registry_domain("https://index.docker.io/v1/") == "docker.io"
    assert registry_domain("http://127.0.0.1:5000/") == "127.0.0.1:5000" and registry_domain("") == "docker.io"


def test_config_auths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    assert dockercfg.get("127.0.0.1:5000") == {}
    dockercfg.store("127.0.0.1:5000", "me", "pw:with:colons")
    doc = json.loads((tmp_path / "cfg/config.json").read_text())
    assert base64.b64decode(doc["auths"]["127.0.0.1:5000"]["auth"]) == b"me:pw:with:colons"
    assert dockercfg.get("127.0.0.1:5000") == {"serveraddress": "127.0.0.1:5000", "username": "me",
                                               "password": "pw:with:colons"}
    assert dockercfg.erase("127.0.0.1:5000") and not dockercfg.erase("127.0.0.1:5000")
    (tmp_path / "cfg/config.json").write_text("{broken")
    with pytest.raises(dockercfg.CredentialsError):
        dockercfg.get("x")


def test_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, store = tmp_path / "bin", tmp_path / "store"
    bin_dir.mkdir()
    store.mkdir()
    helper = bin_dir / "docker-credential-dytest"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STORE", str(store))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    dockercfg.save({"credHelpers": {"127.0.0.1:5000": "dytest"}})
    dockercfg.store("127.0.0.1:5000", "helped", "secret")
    assert dockercfg.get("127.0.0.1:5000")["username"] == "helped"
    assert json.loads((tmp_path / "cfg/config.json").read_text())["auths"]["127.0.0.1:5000"] == {}
    assert dockercfg.get("127.0.0.1:6000") == {}  # no helper for it, no entry
    dockercfg.save({"credsStore": "dytest"})
    assert dockercfg.get("127.0.0.1:6000") == {}  # the helper has nothing for it
    assert dockercfg.erase("127.0.0.1:5000")
    assert list(store.iterdir()) == []
