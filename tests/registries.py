"""Registries for tests, each on a free loopback port with a temporary root, started as a
subprocess and stopped by its PID: our `dockyard registry serve` and Debian's distribution 2.8
(`docker-registry`, with a temporary config; a system service of the package is never used).
Also raw HTTP helpers and small generated images."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
DISTRIBUTION = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificates(directory: Path, names: str = "DNS:registry.test,IP:127.0.0.1") -> dict[str, Path]:
    """A CA and a server certificate it signed for names (openssl): paths of ca.crt, server.crt, server.key."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=dockyard test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=registry.test")
    (directory / "ext.cnf").write_text(f"subjectAltName={names}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": directory / "ca.crt", "cert": directory / "server.crt", "key": directory / "server.key"}


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    """An htpasswd file of bcrypt entries."""
    import bcrypt
    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                            for u, p in users.items()))
    return path


class Registry:
    """A registry process on 127.0.0.1:<port> over a temporary directory."""

    name = "registry"

    def __init__(self, tmp: Path | None = None) -> None:
        self.tmp = Path(tmp or tempfile.mkdtemp(prefix="reg-"))
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.root = self.tmp / "root"
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log = self.tmp / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls = False

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 20) -> Registry:
        """Start and wait until /v2/ answers."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                self.request("GET", "/v2/")
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.name} did not answer: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request: (status, headers, body)."""
        if self.tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=30, context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], Any]:
        status, hdrs, data = self.request(method, path, body, headers)
        return status, hdrs, json.loads(data) if data else None


class Dockyard(Registry):
    """`dockyard registry serve`."""

    name = "dockyard-registry"

    def __init__(self, *extra: str, tmp: Path | None = None) -> None:
        super().__init__(tmp)
        self.extra = list(extra)
        self.tls = "--tls-cert" in extra

    def argv(self) -> list[str]:
        return [DOCKYARD, "registry", "serve", "--addr", self.addr, "--root", str(self.root), *self.extra]


class Distribution(Registry):
    """distribution 2.8 (`docker-registry serve CONFIG`)."""

    name = "distribution"

    def __init__(self, htpasswd: Path | None = None, tmp: Path | None = None) -> None:
        super().__init__(tmp)
        self.htpasswd = htpasswd

    def argv(self) -> list[str]:
        config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                  "storage": {"filesystem": {"rootdirectory": str(self.root)}, "delete": {"enabled": True}},
                  "http": {"addr": self.addr, "secret": "dockyard-tests"}}
        if self.htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(self.htpasswd)}}
        path = self.tmp / "config.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        return [DISTRIBUTION, "serve", str(path)]

    def blob_file(self, digest: str) -> Path:
        """Where distribution keeps a blob's bytes."""
        algo, hexpart = digest.split(":")
        return self.root / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"


def generated_image(store: Any, tag: str, layers: list[dict[str, bytes]]) -> str:
    """An image of gzip layers holding the given files (name → content), tagged; its ID."""
    diffs, descs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        parent = None
        for i, files in enumerate(layers):
            d = Path(tmp) / f"l{i}"
            if parent is not None:
                shutil.copytree(parent, d, symlinks=True)
            else:
                d.mkdir()
            for name, data in files.items():
                (d / name).write_bytes(data)
            layer = store.write_layer(str(d), parent=str(parent) if parent else None, source_date_epoch=0)
            diffs.append(layer.diff_id)
            descs.append(layer)
            parent = d
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    return store.add_image(config, descs, tags=[tag])
