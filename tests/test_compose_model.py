"""The compose model without a daemon: file lookup, project name, .env and interpolation, merge of
several files, extends, include, profiles, YAML 1.2 scalars and anchors, normalised `config`
output, and precise errors for the malformed files of tests/data/compose/invalid."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.compose import interpolation, loader
from dockyard.compose.errors import ComposeError

DATA = Path(__file__).parent / "data" / "compose"
DOCKYARD = str(Path(sys.executable).parent / "dockyard")


def load(directory: Path, *files: str, env: dict[str, str] | None = None, **kw: object) -> loader.Project:
    opts = loader.Options(files=[str(directory / f) for f in files], environ=env or {}, **kw)  # type: ignore[arg-type]
    if not files:
        opts.project_directory = str(directory)
    return loader.load(opts)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def compose(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKYARD, "compose", *args], cwd=cwd, capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], **(env or {})})


@pytest.mark.parametrize("name", sorted(p.name for p in (DATA / "invalid").glob("*.yaml")))
def test_invalid_files_name_file_line_and_key(name: str) -> None:
    path = DATA / "invalid" / name
    expected = path.read_text().splitlines()[0].removeprefix("# error: ").replace("{file}", str(path))
    with pytest.raises(ComposeError) as info:
        load(path.parent, name)
    assert str(info.value).startswith(expected), str(info.value)


def test_invalid_file_through_the_cli_exits_1_with_the_message(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  web:\n    image: busybox\n    imag: x\n")
    proc = compose(tmp_path, "config")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"validating {tmp_path}/compose.yaml: line 4: "
                                   "services.web additional properties 'imag' not allowed")


def test_lookup_order_parents_and_override(tmp_path: Path) -> None:
    write(tmp_path, "docker-compose.yml", "services:\n  old: {image: busybox}\n")
    write(tmp_path, "compose.yaml", "services:\n  web: {image: busybox}\n")
    write(tmp_path, "compose.override.yaml", "services:\n  web: {command: [echo, override]}\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert loader.find_files(str(sub)) == [str(tmp_path / "compose.yaml"), str(tmp_path / "compose.override.yaml")]
    project = load(tmp_path)
    assert list(project.services) == ["web"]
    assert project.services["web"]["command"] == ["echo", "override"]
    assert project.name == loader.normalize_name(tmp_path.name)
    with pytest.raises(ComposeError, match="no configuration file provided: not found"):
        loader.find_files("/proc/self")


def test_project_name_precedence_and_validation(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "name: fromfile\nservices:\n  web: {image: busybox}\n")
    assert load(tmp_path, "compose.yaml").name == "fromfile"
    assert load(tmp_path, "compose.yaml", env={"COMPOSE_PROJECT_NAME": "fromenv"}).name == "fromenv"
    assert load(tmp_path, "compose.yaml", env={"COMPOSE_PROJECT_NAME": "fromenv"}, project_name="flag").name == "flag"
    with pytest.raises(ComposeError, match="invalid project name 'Bad!'"):
        load(tmp_path, "compose.yaml", project_name="Bad!")
    assert loader.normalize_name("My.App_1") == "myapp_1"


def test_compose_file_variable_and_env_file(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", "services:\n  web: {image: 'busybox:${TAG}'}\n")
    write(tmp_path, ".env", "COMPOSE_FILE=one.yaml\nTAG=fromdotenv\n")
    write(tmp_path, "other.env", "TAG=fromother\n")
    assert load(tmp_path).services["web"]["image"] == "busybox:fromdotenv"
    assert load(tmp_path, env={"TAG": "fromenviron"}).services["web"]["image"] == "busybox:fromenviron"
    project = load(tmp_path, "one.yaml", env_files=[str(tmp_path / "other.env")])
    assert project.services["web"]["image"] == "busybox:fromother"


@pytest.mark.parametrize(("text", "want"), [
    ("${SET}", "value"), ("$SET", "value"), ("${UNSET}", ""), ("${UNSET:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""), ("${UNSET-dflt}", "dflt"), ("${SET:+alt}", "alt"), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("${UNSET+alt}", ""), ("$$SET", "$SET"), ("a$${x}b", "a${x}b"),
    ("${UNSET:-${SET}}", "value"), ("${UNSET:-a ${SET} b}", "a value b"), ("${SET:?boom}", "value"),
    ("${EMPTY?boom}", ""), ("pre-$SET-post", "pre-value-post"),
])
def test_interpolation(text: str, want: str) -> None:
    env = {"SET": "value", "EMPTY": ""}
    assert interpolation.substitute(text, env.get, "k") == want


@pytest.mark.parametrize(("text", "message"), [
    ("${EMPTY:?must be set}", "required variable EMPTY is missing a value: must be set"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
    ("${UNSET", "invalid interpolation format for k"), ("${}", "invalid interpolation format for k"),
    ("${A B}", "invalid interpolation format for k"),
])
def test_interpolation_errors(text: str, message: str) -> None:
    with pytest.raises(ComposeError) as info:
        interpolation.substitute(text, {"EMPTY": ""}.get, "k")
    assert str(info.value).startswith(message)


def test_yaml_12_scalars_anchors_and_merge_keys() -> None:
    project = load(DATA / "valid", "anchors.yaml")
    one, two = project.services["one"], project.services["two"]
    assert one["image"] == two["image"] == "busybox"
    assert one["restart"] == "unless-stopped"
    assert one["ports"] == [{"mode": "ingress", "target": 22, "published": "22", "protocol": "tcp"}]
    assert two["environment"] == {"A": "1", "B": "2"}
    assert two["labels"] == {"time": "22:22", "flag": "yes"}


def test_merge_of_several_files(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", """
services:
  web:
    image: busybox
    command: [echo, base]
    environment: [A=1, B=2]
    ports: ["80:80"]
    volumes: ["./a:/data", "logs:/logs"]
    labels: {x: "1"}
    depends_on: [db]
  db: {image: busybox}
volumes: {logs: {}}
""")
    write(tmp_path, "over.yaml", """
services:
  web:
    image: busybox:2
    command: echo over
    environment: {B: "3", C: "4"}
    ports: ["81:81"]
    volumes: ["./b:/data"]
    labels: [y=2]
    depends_on:
      cache: {condition: service_started, required: false}
""")
    web = load(tmp_path, "base.yaml", "over.yaml").services["web"]
    assert web["image"] == "busybox:2"
    assert web["command"] == ["echo", "over"]
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert [p["target"] for p in web["ports"]] == [80, 81]
    assert [(v.get("source"), v["target"]) for v in web["volumes"]] == [(str(tmp_path / "b"), "/data"), ("logs", "/logs")]
    assert web["labels"] == {"x": "1", "y": "2"}
    assert web["depends_on"] == {"db": {"condition": "service_started", "required": True},
                                 "cache": {"condition": "service_started", "required": False}}


def test_extends_same_file_other_file_and_cycles(tmp_path: Path) -> None:
    write(tmp_path, "common/base.yaml", """
services:
  base:
    image: busybox
    env_file: base.env
    volumes: ["./data:/data"]
    environment: {FROM: base}
""")
    write(tmp_path, "common/base.env", "BASEFILE=1\n")
    write(tmp_path, "compose.yaml", """
services:
  app:
    extends: {file: common/base.yaml, service: base}
    environment: {OWN: "1"}
  app2:
    extends: app
    command: ["true"]
""")
    project = load(tmp_path, "compose.yaml")
    app, app2 = project.services["app"], project.services["app2"]
    assert app["environment"] == {"BASEFILE": "1", "FROM": "base", "OWN": "1"}
    assert app["volumes"][0]["source"] == str(tmp_path / "common" / "data")
    assert app2["command"] == ["true"] and app2["image"] == "busybox"
    write(tmp_path, "cycle.yaml", "services:\n  a: {extends: b, image: x}\n  b: {extends: a}\n")
    with pytest.raises(ComposeError, match="circular reference with extends"):
        load(tmp_path, "cycle.yaml")


def test_include(tmp_path: Path) -> None:
    write(tmp_path, "sub/compose.yaml", """
services:
  db:
    image: "busybox:${DBTAG}"
    volumes: ["./init:/init"]
volumes: {dbdata: {}}
""")
    write(tmp_path, "sub/.env", "DBTAG=sub\n")
    write(tmp_path, "compose.yaml", "include: [sub/compose.yaml]\nservices:\n  web: {image: busybox, depends_on: [db]}\n")
    project = load(tmp_path, "compose.yaml")
    assert project.services["db"]["image"] == "busybox:sub"
    assert project.services["db"]["volumes"][0]["source"] == str(tmp_path / "sub" / "init")
    assert project.model["volumes"]["dbdata"]["name"] == f"{project.name}_dbdata"
    write(tmp_path, "clash.yaml", "include: [sub/compose.yaml]\nservices:\n  db: {image: busybox}\n")
    with pytest.raises(ComposeError, match="services.db conflicts with imported resource"):
        load(tmp_path, "clash.yaml")


def test_profiles(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", """
services:
  web: {image: busybox}
  debug: {image: busybox, profiles: [debug]}
  tools: {image: busybox, profiles: [tools], depends_on: [helper]}
  helper: {image: busybox, profiles: [tools-helper]}
""")
    assert list(load(tmp_path, "compose.yaml").services) == ["web"]
    assert list(load(tmp_path, "compose.yaml", profiles=["debug"]).services) == ["web", "debug"]
    assert sorted(load(tmp_path, "compose.yaml", env={"COMPOSE_PROFILES": "*"}).services) == [
        "debug", "helper", "tools", "web"]
    wanted = loader.load(loader.Options(files=[str(tmp_path / "compose.yaml")], environ={}), ["tools"])
    assert sorted(wanted.services) == ["helper", "tools", "web"]
    with pytest.raises(ComposeError, match='service "tools" depends on undefined service "helper"'):
        load(tmp_path, "compose.yaml", profiles=["tools"])


def test_normalised_forms(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", """
services:
  web:
    build: ./app
    command: sh -c 'echo "a b"'
    ports: ["127.0.0.1:8000-8001:80-81/udp", {target: 443, published: 8443}]
    expose: [9000]
    environment: [KEY=v, FROM_ENV, MISSING]
    volumes: ["/abs:/x:ro", "named:/y:nocopy", "/anon"]
    healthcheck: {test: curl -f localhost, interval: 90s, timeout: 500ms, retries: "3"}
    deploy: {replicas: "2"}
    read_only: "true"
    stop_grace_period: 1m
    secrets: [token]
volumes: {named: {}, ext: {external: true}}
secrets: {token: {file: ./token.txt}}
networks: {front: {}}
""")
    project = load(tmp_path, "compose.yaml", env={"FROM_ENV": "e"})
    web = project.services["web"]
    assert web["build"] == {"context": str(tmp_path / "app"), "dockerfile": "Dockerfile"}
    assert web["command"] == ["sh", "-c", 'echo "a b"']
    assert web["ports"][0] == {"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "published": "8000",
                               "protocol": "udp"}
    assert web["ports"][2] == {"mode": "ingress", "target": 443, "published": "8443", "protocol": "tcp"}
    assert web["expose"] == ["9000"]
    assert web["environment"] == {"KEY": "v", "FROM_ENV": "e", "MISSING": None}
    assert web["volumes"] == [
        {"type": "bind", "source": "/abs", "target": "/x", "read_only": True, "bind": {"create_host_path": True}},
        {"type": "volume", "source": "named", "target": "/y", "volume": {"nocopy": True}},
        {"type": "volume", "target": "/anon", "volume": {}}]
    assert web["healthcheck"] == {"test": ["CMD-SHELL", "curl -f localhost"], "interval": "1m30s",
                                  "timeout": "500ms", "retries": 3}
    assert web["deploy"] == {"replicas": 2} and web["read_only"] is True
    assert web["stop_grace_period"] == "1m0s"
    assert web["networks"] == {"default": None}
    model = project.model
    assert model["networks"] == {"default": {"name": f"{project.name}_default"},
                                 "front": {"name": f"{project.name}_front"}}
    assert model["volumes"]["ext"] == {"external": True, "name": "ext"}
    assert model["secrets"]["token"]["file"] == str(tmp_path / "token.txt")


def test_config_command_outputs(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", """
services:
  web: {image: "busybox:${TAG:-1}", ports: ["8080:80"], volumes: ["data:/d"]}
  db: {image: busybox, profiles: [x]}
volumes: {data: {}}
""")
    proc = compose(tmp_path, "-p", "demo", "config")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("name: demo\nservices:\n  web:\n")
    assert '        published: "8080"\n' in proc.stdout
    assert "volumes:\n  data:\n    name: demo_data\n" in proc.stdout
    assert compose(tmp_path, "config", "--services").stdout == "web\n"
    assert compose(tmp_path, "--profile", "x", "config", "--services").stdout == "db\nweb\n"
    assert compose(tmp_path, "config", "--volumes").stdout == "data\n"
    doc = json.loads(compose(tmp_path, "-p", "demo", "config", "--format", "json").stdout)
    assert doc["services"]["web"]["image"] == "busybox:1"
    assert compose(tmp_path, "config", "-q", env={"TAG": "2"}).stdout == ""
    (tmp_path / "empty").mkdir()
    missing = compose(tmp_path / "empty", "-f", "nothere.yaml", "config")
    assert missing.returncode == 1 and "nothere.yaml: no such file or directory" in missing.stderr


def test_env_file_syntax(tmp_path: Path) -> None:
    from dockyard.compose import dotenv
    text = ("# comment\nexport A=1\nB='single $A'\nC=\"double ${A}\\n\"\nD=plain # trailing\nE=\nF=\"multi\nline\"\n"
            "G=${UNSET:-dflt}\n")
    assert dotenv.parse(text, "x.env", {}.get) == {
        "A": "1", "B": "single $A", "C": "double 1\n", "D": "plain", "E": "", "F": "multi\nline", "G": "dflt"}
    with pytest.raises(ComposeError, match="line 1: unexpected character"):
        dotenv.parse("bad key=1\n", "x.env")


def test_version_is_obsolete_and_services_need_an_image(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "version: '3.8'\nservices:\n  web: {image: busybox}\n")
    proc = compose(tmp_path, "config", "--services")
    assert proc.stdout == "web\n"
    assert f"{tmp_path}/compose.yaml: the attribute `version` is obsolete" in proc.stderr
    write(tmp_path, "compose.yaml", "services:\n  web: {command: [echo]}\n")
    proc = compose(tmp_path, "config")
    assert proc.returncode == 1
    assert 'service "web" has neither an image nor a build context specified' in proc.stderr


def test_dollar_without_a_name_stays_literal() -> None:
    assert interpolation.substitute("cost $5 or $ or 100$", {}.get, "k") == "cost $5 or $ or 100$"


def test_stdin_file_and_project_directory(tmp_path: Path) -> None:
    write(tmp_path, "proj/.env", "TAG=dir\n")
    proc = subprocess.run([DOCKYARD, "compose", "-f", "-", "--project-directory", "proj", "config", "--format", "json"],
                          cwd=tmp_path, input="services:\n  web: {image: 'busybox:${TAG}', build: ./ctx}\n",
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["name"] == "proj" and doc["services"]["web"]["image"] == "busybox:dir"
    assert doc["services"]["web"]["build"]["context"] == str(tmp_path / "proj" / "ctx")


def test_network_mode_and_networks_exclude_each_other(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  web: {image: busybox, network_mode: host, networks: [default]}\n")
    with pytest.raises(ComposeError, match="mutually exclusive `network_mode` and `networks`"):
        load(tmp_path, "compose.yaml")


def test_create_body_of_a_service(tmp_path: Path) -> None:
    from dockyard.compose import convert
    write(tmp_path, "compose.yaml", """
name: demo
services:
  db: {image: busybox}
  web:
    build: .
    ports: ["127.0.0.1:8080:80", "9090:90/udp"]
    expose: ["7000"]
    healthcheck: {test: [CMD, "true"], interval: 2s, timeout: 1s, retries: 4, start_period: 1m}
    restart: on-failure:3
    deploy: {resources: {limits: {memory: 64m, cpus: "0.5", pids: 50}}}
    networks:
      back: {aliases: [api], ipv4_address: 172.30.0.5, priority: 10}
      default: {}
    depends_on: {db: {condition: service_healthy}}
    logging: {driver: json-file, options: {max-size: 1m}}
    volumes: [data:/data:ro, {type: volume, source: data, target: /nocopy, volume: {nocopy: true}}]
volumes: {data: {}}
networks: {back: {}}
""")
    project = load(tmp_path, "compose.yaml")
    body = convert.create_body(project, "web", project.services["web"], 2, "sha256:abc")
    assert body["Image"] == "demo-web"
    labels = body["Labels"]
    assert labels["com.docker.compose.container-number"] == "2" and labels["com.docker.compose.image"] == "sha256:abc"
    assert labels["com.docker.compose.depends_on"] == "db:service_healthy:false"
    assert body["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}, "7000/tcp": {}}
    hc = body["HostConfig"]
    assert hc["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                  "90/udp": [{"HostIp": "", "HostPort": "9090"}]}
    assert body["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 2 * 10**9, "Timeout": 10**9,
                                   "StartPeriod": 60 * 10**9, "Retries": 4}
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (64 * 2**20, 5 * 10**8, 50)
    assert hc["NetworkMode"] == "demo_back"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"demo_back": {
        "Aliases": ["web", "api"], "IPAMConfig": {"IPv4Address": "172.30.0.5"}}}}
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert hc["Mounts"] == [{"Type": "volume", "Source": "demo_data", "Target": "/data", "ReadOnly": True},
                            {"Type": "volume", "Source": "demo_data", "Target": "/nocopy", "ReadOnly": False,
                             "VolumeOptions": {"NoCopy": True}}]
    assert convert.network_names(project.model, project.services["web"]) == ["back", "default"]
    same = load(tmp_path, "compose.yaml").services["web"]
    assert convert.config_hash(same) == labels["com.docker.compose.config-hash"]
    assert convert.config_hash({**same, "scale": 3}) == labels["com.docker.compose.config-hash"]
    assert convert.config_hash({**same, "user": "1"}) != labels["com.docker.compose.config-hash"]


def test_a_realistic_three_tier_file() -> None:
    directory = DATA / "valid" / "webapp"
    project = load(directory)
    assert project.name == "webapp" and sorted(project.services) == ["backend", "db", "proxy"]
    backend, db, proxy = (project.services[n] for n in ("backend", "db", "proxy"))
    assert proxy["ports"][0]["published"] == "8080" and proxy["ports"][1]["mode"] == "host"
    assert proxy["volumes"][0]["source"] == str(directory / "nginx.conf")
    assert proxy["logging"]["options"] == {"max-size": "10m", "max-file": "3"}
    assert backend["environment"] == {"LOG_LEVEL": "info", "DEBUG": "false",
                                      "DATABASE_URL": "postgres://postgres:example@db:5432/app"}
    assert backend["depends_on"]["db"] == {"condition": "service_healthy", "restart": True, "required": True}
    assert backend["build"]["dockerfile"] == "Dockerfile.prod" and backend["deploy"]["replicas"] == 2
    assert db["healthcheck"]["test"] == ["CMD-SHELL", "pg_isready -U postgres"]
    assert db["stop_grace_period"] == "1m30s" and db["sysctls"] == {"net.core.somaxconn": "1024"}
    assert project.model["networks"]["private"]["internal"] is True
    assert project.model["volumes"]["db-data"]["name"] == "webapp_db-data"
    assert "frontend" in project.disabled
    with pytest.raises(ComposeError, match="required variable POSTGRES_PASSWORD is missing a value: set the password"):
        load(directory, env_files=[str(directory / ".env.backend")])
    proc = compose(directory, "--profile", "ui", "config")
    assert proc.returncode == 0, proc.stderr
    assert "  frontend:\n    profiles:\n      - ui\n    build:\n      context: " in proc.stdout


def test_config_no_interpolate(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  web: {image: 'busybox:${TAG:-1}', command: echo $$HOME}\n")
    proc = compose(tmp_path, "config", "--no-interpolate", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    web = json.loads(proc.stdout)["services"]["web"]
    assert web["image"] == "busybox:${TAG:-1}" and web["command"] == ["echo", "$$HOME"]


def test_config_no_path_resolution_and_no_normalize(tmp_path: Path) -> None:
    """`config --no-path-resolution` keeps relative host paths as written; `--no-normalize` adds
    no implicit default network, build defaults or resource names (testcontainers' raw
    get_config sends both)."""
    write(tmp_path, "compose.yaml", "services:\n  web: {image: busybox, build: ./app, volumes: ['./data:/data', 'v:/v']}\n"
                                    "volumes:\n  v: {}\n")
    proc = compose(tmp_path, "config", "--format", "json", "--no-path-resolution", "--no-normalize")
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(proc.stdout)
    assert raw["services"]["web"]["build"] == {"context": "./app"} and "networks" not in raw["services"]["web"]
    assert raw["services"]["web"]["volumes"][0]["source"] == "./data"
    assert "networks" not in raw and raw["volumes"] == {"v": {}}
    full = json.loads(compose(tmp_path, "config", "--format", "json").stdout)
    assert full["services"]["web"]["build"] == {"context": str(tmp_path / "app"), "dockerfile": "Dockerfile"}
    assert full["services"]["web"]["volumes"][0]["source"] == str(tmp_path / "data")
    assert full["networks"] == {"default": {"name": f"{tmp_path.name.lower()}_default"}}


def test_reset_and_override_tags(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", """
services:
  web:
    image: busybox
    ports: ["80:80"]
    environment: {A: "1", B: "2"}
    volumes: ["./a:/a"]
    command: [echo, base]
  debug: {image: busybox}
""")
    write(tmp_path, "override.yaml", """
services:
  web:
    ports: !reset []
    environment: !override {C: "3"}
    volumes: !override ["./b:/b"]
    command: !reset null
  debug: !reset
""")
    project = load(tmp_path, "compose.yaml", "override.yaml")
    web = project.services["web"]
    assert "ports" not in web and "command" not in web and list(project.services) == ["web"]
    assert web["environment"] == {"C": "3"}
    assert [(v["source"], v["target"]) for v in web["volumes"]] == [(str(tmp_path / "b"), "/b")]


def _mutations(doc: object, rng: random.Random) -> object:
    """doc with one value somewhere replaced by another type, a key renamed or an item duplicated."""
    doc = copy.deepcopy(doc)
    node, steps = doc, rng.randint(1, 6)
    for _ in range(steps):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        children = [(k, v) for k, v in children if isinstance(v, (dict, list))]
        if not children:
            break
        _, node = rng.choice(children)
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if not keys:
        return doc
    key = rng.choice(keys)
    choice = rng.randrange(4)
    if choice == 0:
        node[key] = rng.choice([1, 1.5, True, None, "x", [], {}, ["a", "a"], {"k": 1}, -1, 70000])
    elif choice == 1 and isinstance(node, dict):
        node[key + "x"] = node.pop(key)
    elif choice == 2 and isinstance(node, list):
        node.append(copy.deepcopy(node[key]))
    elif isinstance(node, dict):
        node["x-extra" if rng.random() < 0.5 else "extra"] = node[key]
    return doc


def test_fast_schema_check_agrees_with_jsonschema() -> None:
    import jsonschema

    from dockyard.compose import schema, yamlsrc
    validator = jsonschema.Draft7Validator(schema._schema())
    bases = [yamlsrc.read(str(p)).data for p in [DATA / "valid" / "webapp" / "compose.yaml",
                                                   DATA / "valid" / "anchors.yaml", *(DATA / "invalid").glob("*.yaml")]
             if p.name not in ("syntax.yaml", "duplicate-key.yaml")]
    bases = [json.loads(json.dumps(b)) for b in bases]
    rng = random.Random(9)
    checked = {True: 0, False: 0}
    for _ in range(3000):
        doc = _mutations(rng.choice(bases), rng)
        valid = not any(True for _ in validator.iter_errors(doc))
        try:
            fast = schema.conforms(doc)
        except schema._Unsure:
            fast = False
        assert fast == valid, json.dumps(doc)
        checked[valid] += 1
    assert min(checked.values()) > 300, checked


def test_secret_modes_are_octal_as_in_docker_compose(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  a:\n    image: busybox\n    secrets:\n"
          "      - {source: s, mode: 0440}\n      - {source: s, mode: '0400', target: b}\n"
          "      - {source: s, mode: 0o600, target: c}\n      - {source: s, mode: 256, target: d}\n"
          "secrets:\n  s: {environment: X}\n")
    modes = [r["mode"] for r in load(tmp_path).services["a"]["secrets"]]
    assert modes == ["0440", "0400", "0600", "0400"]
    write(tmp_path, "compose.yaml", "services:\n  a:\n    image: busybox\n    secrets:\n"
          "      - {source: s, mode: '9'}\nsecrets:\n  s: {environment: X}\n")
    with pytest.raises(ComposeError, match="line 5: services.a.secrets.0.mode: invalid file mode '9': must be octal"):
        load(tmp_path)


def test_links_are_dependencies(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  db: {image: busybox}\n"
          "  web: {image: busybox, links: ['db:database'], depends_on: {db: {condition: service_healthy}}}\n"
          "  api: {image: busybox, links: [db]}\n")
    services = load(tmp_path).services
    assert services["api"]["depends_on"] == {"db": {"condition": "service_started", "restart": True,
                                                    "required": True}}
    assert services["web"]["depends_on"]["db"]["condition"] == "service_healthy"  # an explicit one stays
    write(tmp_path, "compose.yaml", "services:\n  web: {image: busybox, links: [nope]}\n")
    with pytest.raises(ComposeError, match='service "web" depends on undefined service "nope"'):
        load(tmp_path)


def test_version_formats(tmp_path: Path) -> None:
    assert compose(tmp_path, "version", "--format", "json").stdout == '{"version":"v2.29.0"}\n'
    assert compose(tmp_path, "version", "--short").stdout == "2.29.0\n"
    bad = compose(tmp_path, "version", "-f", "yaml")
    assert (bad.returncode, bad.stderr) == (1, "ERROR: Invalid format type 'yaml'\n")
