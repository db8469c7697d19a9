"""Run docker-py's own integration tests against a private dockyardd.

    .venv/bin/python scripts/dockerpy_suite.py [MODULE ...] [-- PYTEST ARGS]

The tests come from docker-py's repository at the tag of the installed docker-py (HEAD when the
snapshot lacks that tag; DOCKERPY_REPO names the bare git dir). Everything runs in a network
namespace of its own holding only loopback (`unshare --net --mount`), so neither the daemon nor the tests
can reach beyond the machine; tests that would pull from Docker Hub are deselected as well, each
with its reason below. The daemon gets busybox offline, tagged under the names the tests use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from client_suite import ROOT, extract_tests, finish_daemon, isolate_network, load_images, reexec_isolated

REPO = os.environ.get("DOCKERPY_REPO", "/work/.mirror/docker+docker-py/repo")

# The modules that apply to one engine (no swarm, services, secrets, configs, plugins, nodes,
# contexts or credential helpers).
MODULES = [
    "api_container_test", "api_exec_test", "api_image_test", "api_volume_test", "api_healthcheck_test",
    "api_build_test", "api_client_test", "client_test", "errors_test", "models_containers_test",
    "models_images_test", "models_volumes_test", "models_resources_test", "regression_test",
    "api_network_test", "models_networks_test",
]

# Image names the tests expect to find locally: busybox as itself, and as alpine with what the
# tests rely on in alpine's image beyond busybox (its `postgres` account, /var/opt).
IMAGE_NAMES = ["busybox:latest", "busybox:buildroot-2014.02"]
ALPINE_NAMES = ["alpine:3.10", "alpine:latest"]
ALPINE_DOCKERFILE = b"""FROM busybox:latest
RUN echo 'postgres:x:70:70::/var/lib/postgresql:/bin/sh' >> /etc/passwd && echo 'postgres:x:70:' >> /etc/group \\
    && mkdir -p /var/opt
"""

# The daemon also listens here, inside the private network namespace, and the tests use it, as
# docker-py's own CI does (over tcp://): websocket-client reaches attach/ws only by a ws:// URL.
TCP_HOST = "tcp://127.0.0.1:2375"

# Tests that need the internet, never run here.
NEEDS_INTERNET = {
    "api_image_test.py::PullImageTest::test_pull": "pulls hello-world from Docker Hub",
    "api_image_test.py::PullImageTest::test_pull_streaming": "pulls hello-world from Docker Hub",
    "api_image_test.py::PullImageTest::test_pull_invalid_platform": "pulls hello-world from Docker Hub",
    "api_image_test.py::ImportImageTest::test_get_load_image": "pulls hello-world from Docker Hub",
    "api_image_test.py::PruneImagesTest::test_prune_images": "pulls hello-world from Docker Hub",
    "api_image_test.py::InspectDistributionTest::test_inspect_distribution": "asks Docker Hub for busybox's manifest",
    "models_images_test.py::ImageCollectionTest::test_list": "pulls alpine from Docker Hub",
    "models_images_test.py::ImageCollectionTest::test_list_with_repository": "pulls alpine from Docker Hub",
    "models_images_test.py::ImageCollectionTest::test_pull": "pulls alpine from Docker Hub",
    "models_images_test.py::ImageCollectionTest::test_pull_with_tag": "pulls alpine from Docker Hub",
    "models_images_test.py::ImageCollectionTest::test_pull_with_sha": "pulls hello-world from Docker Hub",
    "models_images_test.py::ImageCollectionTest::test_pull_multiple": "pulls hello-world from Docker Hub",
    "models_images_test.py::ImageTest::test_tag_and_remove": "pulls alpine from Docker Hub",
    "api_build_test.py::BuildTest::test_build_streaming": "ADD of a URL on the internet",
    "api_build_test.py::BuildTest::test_build_from_stringio": "ADD of a URL on the internet",
    "models_containers_test.py::ContainerCollectionTest::test_run_with_image_that_does_not_exist":
        "pulls a missing image from Docker Hub",
}

# Tests that need a swarm (dockyard is one engine: /swarm/init answers 503, as outside a swarm).
NEEDS_SWARM = {
    "api_network_test.py::TestNetworks::test_create_inspect_network_with_scope": "swarm-scoped networks",
    "api_network_test.py::TestNetworks::test_create_network_attachable": "attachable overlay networks",
    "api_network_test.py::TestNetworks::test_create_network_ingress": "the swarm's ingress network",
}


def run_suite(modules: list[str], pytest_args: list[str]) -> int:
    """Inside the private namespaces: daemon up, images in, pytest, daemon down."""
    isolate_network()
    sys.path.insert(0, str(ROOT))
    from tests.daemon import Dockyardd

    with tempfile.TemporaryDirectory(prefix="dockerpy-") as tmp:
        work = Path(tmp)
        ref = extract_tests(REPO, [f"refs/tags/{version('docker')}"], ["tests", "pytest.ini"], work)
        print(f"docker-py tests at {ref}", flush=True)
        daemon = Dockyardd("-H", TCP_HOST)
        try:
            daemon.start()
            load_images(daemon, work, IMAGE_NAMES, {ALPINE_DOCKERFILE: ALPINE_NAMES})
            env = {**os.environ, "DOCKER_HOST": TCP_HOST, "DOCKER_CONFIG": str(daemon.docker_config)}
            env.pop("DOCKER_TLS_VERIFY", None)
            argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--timeout=180", "--rootdir", str(work),
                    *(f"tests/integration/{m}.py" for m in modules)]
            argv += [f"--deselect=tests/integration/{t}" for t in {**NEEDS_INTERNET, **NEEDS_SWARM}]
            code = subprocess.run([*argv, *pytest_args], cwd=work, env=env).returncode
        finally:
            finish_daemon(daemon, "DOCKERPY_DAEMON_LOG")
        return code


def main() -> int:
    args = sys.argv[1:]
    pytest_args = args[args.index("--") + 1:] if "--" in args else []
    modules = [a.removesuffix(".py") for a in (args[:args.index("--")] if "--" in args else args)] or MODULES
    # what docker-py's tests need beyond dockyard's own: paramiko (their helpers import it),
    # websocket-client (attach over a WebSocket), pytest-timeout (a hung test fails, not stalls)
    code = reexec_isolated(__file__, {"paramiko": "paramiko", "pytest-timeout": "pytest_timeout",
                                      "websocket-client": "websocket"})
    return run_suite(modules, pytest_args) if code is None else code


if __name__ == "__main__":
    sys.exit(main())
