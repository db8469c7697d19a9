"""dockyardd's server core and system endpoints, driven by the real docker CLI, docker-py and
raw HTTP on a private daemon (tests/daemon.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import DOCKYARDD, Dockyardd, daemon_children_only  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Dockyardd]:
    with Dockyardd() as d:
        yield d


def test_docker_version_negotiates_down(daemon: Dockyardd) -> None:
    proc = daemon.docker("version")
    assert proc.returncode == 0, proc.stderr
    assert "API version:       1.45 (downgraded from 1.50)" in proc.stdout
    assert "1.45 (minimum version 1.24)" in proc.stdout


def test_docker_info(daemon: Dockyardd) -> None:
    proc = daemon.docker("info")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stdout
    assert f"Docker Root Dir: {daemon.data_root}" in proc.stdout
    assert "Cgroup Driver: cgroupfs" in proc.stdout
    doc = json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)
    assert doc["ServerVersion"] and doc["Driver"] in ("overlay", "vfs")
    assert doc["NCPU"] == os.cpu_count() and doc["MemTotal"] > 0
    assert doc["CgroupVersion"] in ("1", "2") and doc["OSType"] == "linux"


def test_docker_py_version_and_info(daemon: Dockyardd) -> None:
    client = daemon.client()
    try:
        version = client.version()
        assert version["ApiVersion"] == "1.45" and version["MinAPIVersion"] == "1.24"
        assert [c["Name"] for c in version["Components"]][0] == "Engine"
        info = client.info()
        assert info["DockerRootDir"] == str(daemon.data_root) and info["Images"] >= 0
    finally:
        client.close()


def test_ping_headers(daemon: Dockyardd) -> None:
    for method, body in (("HEAD", b""), ("GET", b"OK")):
        status, headers, data = daemon.request(method, "/_ping")
        assert (status, data) == (200, body)
        assert headers["Api-Version"] == "1.45" and headers["Ostype"] == "linux"
        assert headers["Docker-Experimental"] == "false"
        assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate" and headers["Pragma"] == "no-cache"
        assert headers["Server"].startswith("Docker/") and headers["Server"].endswith(" (linux)")


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.41", "/v1.45"])
def test_versioned_and_unversioned_paths(daemon: Dockyardd, prefix: str) -> None:
    status, headers, body = daemon.request("GET", f"{prefix}/version")
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.45"
    assert headers["Content-Type"] == "application/json" and headers["Server"].startswith("Docker/")


def test_version_out_of_range(daemon: Dockyardd) -> None:
    status, headers, body = daemon.request("GET", "/v1.99/version")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"message": "client version 1.99 is too new. Maximum supported API version is 1.45"}
    status, _, body = daemon.request("GET", "/v1.12/version")
    assert status == 400 and "client version 1.12 is too old. Minimum supported API version is 1.24" in \
        json.loads(body)["message"]


def test_unknown_route_is_json_404(daemon: Dockyardd) -> None:
    status, headers, body = daemon.request("GET", "/v1.45/no/such/route")
    assert status == 404 and headers["Content-Type"] == "application/json" and "Server" in headers
    assert json.loads(body) == {"message": "page not found"}


def test_malformed_json_body(daemon: Dockyardd) -> None:
    status, _, body = daemon.request("POST", "/v1.45/commit?container=x", b"{not json",
                                     {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["message"].startswith("invalid JSON:")
    status, _, body = daemon.request("POST", "/v1.45/commit?container=x", b"{}", {"Content-Type": "text/plain"})
    assert status == 400 and "Content-Type" in json.loads(body)["message"]
    status, _, body = daemon.request("POST", "/v1.45/commit?container=x", b" " + b"0" * (5 << 20),
                                     {"Content-Type": "application/json"})
    assert status == 413 and json.loads(body)["message"]
    status, _, body = daemon.request("POST", "/v1.45/commit?container=x", b"{}", {"Content-Type": "application/json"})
    assert status == 404 and json.loads(body)["message"] == "No such container: x"


def test_system_df(daemon: Dockyardd) -> None:
    proc = daemon.docker("system", "df")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split()[:2] == ["TYPE", "TOTAL"]
    assert "Containers" in proc.stdout and "Local Volumes" in proc.stdout


def test_two_daemons_side_by_side() -> None:
    with Dockyardd() as a, Dockyardd() as b:
        ids = [json.loads(d.request("GET", "/info")[2])["ID"] for d in (a, b)]
        assert ids[0] != ids[1]
        assert a.docker("version").returncode == 0 and b.docker("version").returncode == 0


def test_sigterm_cleanup_and_socket_mode() -> None:
    d = Dockyardd().start()
    try:
        assert (d.socket.stat().st_mode & 0o777) == 0o660
        assert int(d.pidfile.read_text()) == d.proc.pid  # type: ignore[union-attr]
        assert d.stop() == 0  # stop() checks that the socket and the pidfile are gone
    finally:
        d.cleanup()


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKYARDD, *args], capture_output=True, text=True, timeout=timeout)


def test_pidfile_and_root_refuse_a_second_daemon() -> None:
    with Dockyardd() as first:
        second = Dockyardd(tmp=str(first.tmp / "second"))
        second.data_root, second.pidfile = first.data_root, first.pidfile
        proc = _run(*second.argv()[1:])
        assert proc.returncode == 1 and "in use by another dockyardd" in proc.stderr
        third = Dockyardd(tmp=str(first.tmp / "third"))
        third.pidfile = first.pidfile
        proc = _run(*third.argv()[1:])
        assert proc.returncode == 1 and f"pid file found, ensure dockyardd is not running or delete {first.pidfile}" \
            in proc.stderr
        assert first.pidfile.exists() and first.request("GET", "/_ping")[0] == 200


def test_tcp_without_tls_refused(tmp_path: Path) -> None:
    proc = _run("-H", "tcp://0.0.0.0:2375", "--data-root", str(tmp_path / "d"), "--exec-root", str(tmp_path / "r"))
    assert proc.returncode == 1 and "refusing to listen on tcp://0.0.0.0:2375 without TLS" in proc.stderr
    assert not (tmp_path / "d").exists()


def test_tcp_loopback_allowed(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Dockyardd("-H", f"tcp://127.0.0.1:{port}") as d:
        env = {**d.env(), "DOCKER_HOST": f"tcp://127.0.0.1:{port}"}
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], capture_output=True,
                              text=True, env=env, timeout=30)
        assert proc.stdout.strip() == "1.45", proc.stderr


def test_daemon_json_unknown_key_and_conflict(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"data-root": str(tmp_path / "d"), "bogus": 1, "other": True}))
    proc = _run("--config-file", str(config))
    assert proc.returncode == 1
    assert f"unable to configure the dockyard daemon with file {config}: the following directives don't match " \
           "any configuration option: bogus, other" in proc.stderr
    config.write_text(json.dumps({"debug": False}))
    proc = _run("--config-file", str(config), "-D")
    assert proc.returncode == 1
    assert "the following directives are specified both as a flag and in the configuration file: " \
           "debug: (from flag: true, from file: false)" in proc.stderr


def test_daemon_json_settings_apply(tmp_path: Path) -> None:
    d = Dockyardd()
    config = d.tmp / "daemon.json"
    config.write_text(json.dumps({"log-driver": "json-file", "live-restore": False, "default-runtime": "runc",
                                  "insecure-registries": ["127.0.0.1:5000"]}))
    d.extra_args = ["--config-file", str(config)]
    with d:
        info = json.loads(d.request("GET", "/info")[2])
        assert info["DefaultRuntime"] == "runc" and info["LiveRestoreEnabled"] is False


def test_version_flag() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("Dockyard version ")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(tmp: Path) -> None:
    """ca.pem, a server cert for 127.0.0.1 (server-*.pem) and a client cert (cert.pem, key.pem)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=test-ca", cwd=tmp)
    (tmp / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (tmp / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "san.cnf"), ("client", "client.cnf")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=tmp)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=tmp)
    (tmp / "cert.pem").write_bytes((tmp / "client.pem").read_bytes())
    (tmp / "key.pem").write_bytes((tmp / "client-key.pem").read_bytes())


@contextlib.contextmanager
def _tls_daemon() -> Iterator[tuple[Dockyardd, str, Path]]:
    """A daemon listening on tcp://127.0.0.1:PORT with TLS client verification: (daemon, host,
    the directory of its CA and of a client certificate, see _certificates)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = Dockyardd()
    try:
        certs = d.tmp / "certs"
        certs.mkdir()
        _certificates(certs)
        d.extra_args = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                        "--tlscert", str(certs / "server.pem"), "--tlskey", str(certs / "server-key.pem")]
        d.start()
        yield d, f"tcp://127.0.0.1:{port}", certs
    finally:
        d.cleanup()


def test_tcp_with_tls_verify() -> None:
    with _tls_daemon() as (d, host, certs):
        env = {**d.env(), "DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"], capture_output=True,
                              text=True, env=env, timeout=30)
        assert proc.stdout.strip() == "1.45", proc.stderr
        del env["DOCKER_TLS_VERIFY"], env["DOCKER_CERT_PATH"]
        proc = subprocess.run(["docker", "version"], capture_output=True, text=True, env=env, timeout=30)
        assert proc.returncode != 0


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The dockyard CLI with TLS variables only from env."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
    return subprocess.run([str(Path(sys.executable).parent / "dockyard"), *args], capture_output=True, text=True,
                          timeout=30, env={**clean, "DOCKYARD_NO_AUTOSTART": "1", **(env or {})})


def test_dockyard_cli_over_tcp_with_tls() -> None:
    """The dockyard CLI speaks TLS as the docker CLI does: --tlsverify with --tlscacert/--tlscert/
    --tlskey, or DOCKER_TLS_VERIFY with DOCKER_CERT_PATH; without a client certificate the daemon
    refuses it, and a server signed by another CA is refused by the client."""
    with _tls_daemon() as (d, host, certs):
        other = d.tmp / "other"
        other.mkdir()
        _certificates(other)
        flags = ["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "cert.pem"),
                 "--tlskey", str(certs / "key.pem")]
        proc = _cli("-H", host, *flags, "version", "--format", "{{.Server.APIVersion}}")
        assert proc.returncode == 0 and proc.stdout.strip() == "1.45", proc.stderr
        env = {"DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
        proc = _cli("images", "-q", env=env)
        assert proc.returncode == 0, proc.stderr
        assert _cli("-H", host, "--tlsverify", "--tlscacert", str(certs / "ca.pem"), "version").returncode != 0
        assert _cli("-H", host, "--tlsverify", "--tlscacert", str(other / "ca.pem"), "--tlscert",
                    str(certs / "cert.pem"), "--tlskey", str(certs / "key.pem"), "version").returncode != 0
        assert _cli("-H", host, "version").returncode != 0  # plain HTTP to a TLS port
