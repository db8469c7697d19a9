"""Run testcontainers-python's own core tests against a private dockyardd.

    .venv/bin/python scripts/testcontainers_suite.py [TEST FILE ...] [-- PYTEST ARGS]

The tests (tests/core) come from testcontainers-python's repository at the tag of the installed
testcontainers (HEAD when the snapshot lacks it; TESTCONTAINERS_REPO names the bare git dir). As
dockerpy_suite.py: a network namespace holding only loopback, so nothing reaches beyond the
machine, and a daemon of its own with busybox loaded offline. Ryuk (the reaper container) is
disabled: its image is a Go program we cannot have offline; each test removes its containers.
`docker compose` (testcontainers' DockerCompose) is dockyard compose, installed as the docker CLI's
compose plugin in the daemon's private DOCKER_CONFIG.

Images the tests name, and what stands for each (built FROM busybox where busybox alone would
not do what the test relies on the image for):
  alpine, alpine:latest, ubuntu  busybox (the tests run sleep, tail, env, ping, wget in them)
  hello-world                    busybox printing the first lines of hello-world's greeting
  nginx:*                        busybox httpd serving nginx's welcome page on port 80 (as `nginx`)
  bash                           busybox with a `bash` running busybox's sh (`bash -c ...`)
  busybox:buildroot-2014.02      busybox (image_fixtures/busybox builds FROM it)
Tests needing the internet or an image we cannot have are deselected, each with its reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from client_suite import ROOT, extract_tests, finish_daemon, isolate_network, load_images, reexec_isolated

REPO = os.environ.get("TESTCONTAINERS_REPO", "/work/.mirror/testcontainers+testcontainers-python/repo")

IMAGE_NAMES = ["alpine:latest", "ubuntu:latest", "busybox:buildroot-2014.02"]
STAND_INS = {
    b"""FROM busybox:latest
CMD ["echo", "\\nHello from Docker!\\nThis message shows that your installation appears to be working correctly.\\n"]
""": ["hello-world:latest"],
    b"""FROM busybox:latest
RUN mkdir -p /usr/share/nginx/html /usr/sbin /etc/nginx/conf.d \\
    && echo '<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>' \\
       > /usr/share/nginx/html/index.html \\
    && printf '#!/bin/sh\\nexec httpd -f -p 80 -h /usr/share/nginx/html\\n' > /usr/sbin/nginx && chmod 755 /usr/sbin/nginx
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
""": ["nginx:latest", "nginx:alpine", "nginx:alpine-slim", "nginx:1.25.4-alpine-slim"],
    b"""FROM busybox:latest
RUN mkdir -p /usr/local/bin && printf '#!/bin/sh\\nexec sh "$@"\\n' > /usr/local/bin/bash && chmod 755 /usr/local/bin/bash
CMD ["bash"]
""": ["bash:latest"],
}

DESELECTED = {
    "test_core.py::test_garbage_collection_is_defensive": "runs postgres:latest",
    "test_core_registry.py": "runs the registry:2 image (and needs bcrypt)",
    "test_docker_in_docker.py": "builds a Python image with pip from PyPI; runs docker:dind and alpine/socat",
    "test_ryuk.py": "runs testcontainers/ryuk, a Go program we cannot have offline",
    "test_socat.py": "runs testcontainers/helloworld and alpine/socat",
    "test_compose.py::test_compose_multiple_containers_and_ports":
        "needs nginx itself (server blocks on ports 81 and 82 answering 202 and 204)",
    "test_community_definition.py": "checks the layout of the repository's sources, not Docker",
    "test_legacy_module_imports.py": "imports the community modules' client libraries (redis, minio...)",
    "test_docker_client.py::test_run_uses_found_network": "needs DOCKER_HOST unset (the suite names its daemon by it)",
    "test_utils.py::test_inside_container": "asserts /.dockerenv is absent: these machines are containers",
}


COMPOSE_PLUGIN = """#!/bin/sh
# `docker compose` as a docker CLI plugin: dockyard compose
if [ "$1" = docker-cli-plugin-metadata ]; then
    echo '{"SchemaVersion": "0.1.0", "Vendor": "dockyard", "Version": "v2.0.0", "ShortDescription": "dockyard compose"}'
    exit 0
fi
shift
exec {dockyard} compose "$@"
"""


def install_compose_plugin(docker_config: Path) -> None:
    """`docker compose` (which testcontainers' DockerCompose runs) as dockyard compose, a CLI
    plugin in the daemon's private DOCKER_CONFIG: the docker CLI here has no compose plugin."""
    plugin = docker_config / "cli-plugins" / "docker-compose"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(COMPOSE_PLUGIN.replace("{dockyard}", str(Path(sys.executable).parent / "dockyard")))
    plugin.chmod(0o755)


def run_suite(files: list[str], pytest_args: list[str]) -> int:
    """Inside the private namespaces: daemon up, images in, pytest, daemon down."""
    isolate_network()
    sys.path.insert(0, str(ROOT))
    from tests.daemon import Dockyardd

    with tempfile.TemporaryDirectory(prefix="testcontainers-") as tmp:
        work = Path(tmp)
        ref = extract_tests(REPO, [f"refs/tags/testcontainers-v{version('testcontainers')}"],
                            ["tests/core", "pyproject.toml"], work)
        print(f"testcontainers-python tests at {ref}", flush=True)
        daemon = Dockyardd()
        try:
            daemon.start()
            load_images(daemon, work, IMAGE_NAMES, STAND_INS)
            install_compose_plugin(daemon.docker_config)
            env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.docker_config),
                   "TESTCONTAINERS_RYUK_DISABLED": "true"}
            for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "TESTCONTAINERS_HOST_OVERRIDE",
                         "TC_HOST", "TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE"):
                env.pop(name, None)
            # whole files deselected are not collected (their imports may fail); test_config.py goes
            # last: it sets TESTCONTAINERS_RYUK_DISABLED=false in os.environ for good
            files = files or sorted((p.name for p in (work / "tests/core").glob("test_*.py") if p.name not in DESELECTED),
                                    key=lambda name: (name == "test_config.py", name))
            argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--timeout=180", "--rootdir", str(work),
                    "--log-cli-level=WARNING", *(f"tests/core/{f}" for f in files)]
            argv += [f"--deselect=tests/core/{t}" for t in DESELECTED if "::" in t]
            code = subprocess.run([*argv, *pytest_args], cwd=work, env=env).returncode
        finally:
            finish_daemon(daemon, "TESTCONTAINERS_DAEMON_LOG")
        return code


def main() -> int:
    args = sys.argv[1:]
    pytest_args = args[args.index("--") + 1:] if "--" in args else []
    files = args[:args.index("--")] if "--" in args else args
    # what the core tests need beyond dockyard's own: testcontainers itself, pytest-mock and
    # paramiko (some of its unit tests), pytest-timeout (a hung test fails, not stalls)
    code = reexec_isolated(__file__, {"testcontainers": "testcontainers", "pytest-mock": "pytest_mock",
                                      "paramiko": "paramiko", "pytest-timeout": "pytest_timeout"})
    return run_suite(files, pytest_args) if code is None else code


if __name__ == "__main__":
    sys.exit(main())
