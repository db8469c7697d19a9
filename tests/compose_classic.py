"""The classic web + database example, run by Debian's docker-compose (v1, a Python Engine API
client) against any daemon: shared by the dockerd compat tests and, once dockyardd has networks,
healthchecks and a builder, the dockyardd ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

CLASSIC = """
services:
  web:
    build: ./web
    ports: ["18080:8000"]
    stop_signal: SIGKILL
    depends_on:
      db: {condition: service_healthy}
  db:
    image: busybox
    stop_signal: SIGKILL
    command: sh -c 'echo db booting; sleep 2; touch /data/ready; echo db ready; exec sleep 1000'
    healthcheck:
      test: ["CMD", "test", "-f", "/data/ready"]
      interval: 300ms
      retries: 30
    volumes: [dbdata:/data]
volumes:
  dbdata:
"""

V1 = shutil.which("docker-compose")


def write_classic(directory: Path) -> Path:
    """The example's files under directory/classic; that directory."""
    app = directory / "classic"
    (app / "web").mkdir(parents=True, exist_ok=True)
    (app / "web" / "Dockerfile").write_text(
        'FROM busybox\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8000", "-h", "/www"]\n')
    (app / "web" / "index.html").write_text("hello\n")
    (app / "compose.yaml").write_text(CLASSIC)
    return app


def run_classic_with_v1(app: Path, env: dict[str, str]) -> None:
    """up -d (web only after db is healthy), exec, data kept across down/up, down -v."""
    def v1(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([V1 or "docker-compose", "-f", "compose.yaml", *args], cwd=app, env=env,
                              capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def inspect(name: str) -> dict:
        proc = subprocess.run(["docker", "inspect", name], env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)[0]
    try:
        v1("up", "-d")
        db, web = inspect("classic_db_1"), inspect("classic_web_1")
        healthy_at = min(e["End"] for e in db["State"]["Health"]["Log"] if e["ExitCode"] == 0)
        assert web["State"]["StartedAt"] > healthy_at
        assert v1("exec", "-T", "web", "cat", "/www/index.html").stdout == "hello\n"
        v1("exec", "-T", "db", "sh", "-c", "echo kept > /data/kept")
        v1("down")
        v1("up", "-d")
        assert v1("exec", "-T", "db", "cat", "/data/kept").stdout == "kept\n"
    finally:
        v1("down", "-v", "--rmi", "local")
