"""Loading a project: file lookup, project name and directory, `.env`/--env-file, each file
parsed → `include`d → interpolated → validated → `extends` applied, files merged, profiles
applied, the model normalised and its references checked."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from dockyard.compose import dotenv, interpolation, merge, normalize, schema, yamlsrc
from dockyard.compose.errors import ComposeError, InvalidValue

FILENAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
             "docker-compose.override.yaml")
_NAME_OK = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass
class Options:
    """What the command line says about the project."""

    files: list[str] = field(default_factory=list)
    project_name: str | None = None
    project_directory: str | None = None
    env_files: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    interpolate: bool = True
    resolve_paths: bool = True  # relative host paths made absolute (`config --no-path-resolution`: as written)
    normalize: bool = True  # implicit defaults added: default network, resource names (`config --no-normalize`)


@dataclass
class Project:
    """A resolved compose model."""

    name: str
    directory: str
    files: list[str]
    model: dict[str, Any]
    environment: dict[str, str]
    disabled: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.model["services"]


def find_files(directory: str) -> list[str]:
    """The default compose file in directory or its parents, plus its override file."""
    d = os.path.abspath(directory)
    while True:
        found = [os.path.join(d, n) for n in FILENAMES if os.path.isfile(os.path.join(d, n))]
        if found:
            overrides = [os.path.join(d, n) for n in OVERRIDES if os.path.isfile(os.path.join(d, n))]
            return found[:1] + overrides[:1]
        parent = os.path.dirname(d)
        if parent == d:
            raise ComposeError("no configuration file provided: not found")
        d = parent


def normalize_name(name: str) -> str:
    """Lower case, keep only [a-z0-9_-], no leading separator (Docker Compose's rule)."""
    return re.sub(r"^[_-]+", "", re.sub(r"[^a-z0-9_-]", "", name.lower()))


def _check_name(name: str) -> str:
    if not _NAME_OK.fullmatch(name):
        raise ComposeError(f"invalid project name {name!r}: must consist only of lowercase alphanumeric "
                           "characters, hyphens, and underscores as well as start with a letter or number")
    return name


def _environment(opts: Options, directory: str) -> dict[str, str]:
    """os.environ over the .env file (or the --env-file ones)."""
    dot: dict[str, str] = {}
    files = [os.path.abspath(f) for f in opts.env_files] or [os.path.join(directory, ".env")]
    for f in files:
        if os.path.isdir(f):
            continue
        dot.update(dotenv.read(f, dotenv.chain(opts.environ, dot), required=bool(opts.env_files)))
    return {**dot, **opts.environ}


def load(opts: Options, services: list[str] | None = None) -> Project:
    """Load the project the options describe; services enables those (and their dependencies)
    even when their profiles are inactive."""
    workdir = os.path.abspath(opts.project_directory or os.getcwd())
    env = _environment(opts, workdir)
    files = [os.path.abspath(f) if f != "-" else f for f in opts.files]  # -f: against the current directory
    if not files and env.get("COMPOSE_FILE"):  # COMPOSE_FILE: against the working directory
        files = [os.path.join(workdir, f) for f in env["COMPOSE_FILE"].split(env.get("COMPOSE_PATH_SEPARATOR", os.pathsep))]
    files = files or find_files(workdir)
    if opts.project_directory or files[0] == "-":
        directory = workdir
    else:
        directory = os.path.dirname(files[0])
    if directory != workdir:
        env = _environment(opts, directory)
    doc: dict[str, Any] = {}
    given = opts.project_name or env.get("COMPOSE_PROJECT_NAME")
    file_env = {**env, "COMPOSE_PROJECT_NAME": given or normalize_name(os.path.basename(directory))}
    for f in files:
        doc = merge.merge_documents(doc, _load_file(f, file_env if opts.interpolate else None, directory, set(),
                                                    opts.resolve_paths))
    if given:
        name = _check_name(given)
    elif doc.get("name"):
        name = _check_name(str(doc["name"]))
    else:
        name = normalize_name(os.path.basename(directory))
    doc = merge.strip_tags(doc)
    doc["name"] = name
    env.setdefault("COMPOSE_PROJECT_NAME", name)
    doc.pop("version", None)
    doc.setdefault("services", {})
    lookup = dotenv.chain(env)
    doc["services"] = {n: normalize.service(n, s or {}, lookup, directory, opts.normalize)
                       for n, s in doc["services"].items()}
    profiles = opts.profiles or [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p]
    disabled = _apply_profiles(doc, profiles, services or [])
    if opts.normalize:
        normalize.top_level(doc, name)
    _check_references(doc)
    return Project(name, directory, files, doc, env, disabled)


def _load_file(filename: str, env: dict[str, str] | None, base_dir: str, seen: set[str],
               resolve: bool = True) -> dict[str, Any]:
    """One file: parsed, includes merged in, interpolated (unless env is None), validated,
    extends applied, paths resolved against base_dir (unless not resolve)."""
    if filename == "-":
        source = yamlsrc.parse("-", sys.stdin.read())
    else:
        source = yamlsrc.read(filename)
    data = source.data if env is None else interpolation.interpolate(source.data, dotenv.chain(env))
    schema.validate(source, merge.strip_tags(data))
    if "version" in data:
        sys.stderr.write(f"WARN[0000] {filename}: the attribute `version` is obsolete, it will be ignored, "
                         "please remove it to avoid potential confusion\n")
    _check_values(source, data)
    if resolve:
        normalize.resolve_paths(data, base_dir)
    services = data.get("services") or {}
    resolved: dict[str, Any] = {}
    for name in services:
        resolved[name] = _extend(name, services, filename, env, base_dir, source, [], resolve)
    if services:
        data["services"] = resolved
    for entry in data.pop("include", None) or []:
        included = _include(entry, env, os.path.dirname(filename) if filename != "-" else base_dir, seen, resolve)
        for kind in ("services", "networks", "volumes", "secrets", "configs"):
            for key, value in (included.get(kind) or {}).items():
                if key in (data.get(kind) or {}):
                    raise ComposeError(f"{kind}.{key} conflicts with imported resource")
                data.setdefault(kind, {})[key] = value
    return data


def _check_values(source: yamlsrc.Source, data: dict[str, Any]) -> None:
    """Values that pass the schema but not the model (ports, durations, sizes...), with file and line."""
    for name, svc in (data.get("services") or {}).items():
        if not isinstance(svc, dict):
            continue
        try:
            normalize.check(name, svc)
        except InvalidValue as exc:
            path = tuple(int(p) if p.isdigit() else p for p in exc.key.split("."))
            line = source.line(path)
            where = f"line {line}: " if line else ""
            raise ComposeError(f"{source.filename}: {where}{exc}") from None


def _include(entry: Any, env: dict[str, str] | None, base: str, seen: set[str], resolve: bool) -> dict[str, Any]:
    if isinstance(entry, str):
        entry = {"path": entry}
    paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
    paths = [os.path.normpath(os.path.join(base, p)) for p in paths]
    directory = os.path.normpath(os.path.join(base, entry.get("project_directory") or os.path.dirname(paths[0])))
    env_files = entry.get("env_file")
    env_files = [env_files] if isinstance(env_files, str) else env_files or [os.path.join(directory, ".env")]
    sub_env: dict[str, str] | None = None
    if env is not None:
        sub_env = {}
        for f in env_files:
            sub_env.update(dotenv.read(os.path.join(base, f), dotenv.chain(env, sub_env),
                                       required=entry.get("env_file") is not None))
        sub_env.update(env)
    doc: dict[str, Any] = {}
    for p in paths:
        if p in seen:
            raise ComposeError(f"include cycle detected: {p}")
        doc = merge.merge_documents(doc, _load_file(p, sub_env, directory, seen | {p}, resolve))
    return doc


def _extend(name: str, services: dict[str, Any], filename: str, env: dict[str, str] | None, base_dir: str,
            source: yamlsrc.Source, chain: list[tuple[str, str]], resolve: bool = True) -> dict[str, Any]:
    svc = services[name] or {}
    if not isinstance(svc, dict):  # a service `!reset` in an override file
        return svc
    ext = svc.get("extends")
    if ext is None:
        return svc
    if (filename, name) in chain:
        raise ComposeError(f"circular reference with extends: {name}")
    ext = {"service": ext} if isinstance(ext, str) else ext
    target = ext["service"]
    if ext.get("file"):
        other = os.path.join(base_dir, ext["file"])  # (absolute already when resolved)
        src = yamlsrc.read(other)
        data = src.data if env is None else interpolation.interpolate(src.data, dotenv.chain(env))
        schema.validate(src, merge.strip_tags(data))
        if resolve:
            normalize.resolve_paths(data, os.path.dirname(other))
        pool, where, where_src, where_dir = data.get("services") or {}, other, src, os.path.dirname(other)
    else:
        pool, where, where_src, where_dir = services, filename, source, base_dir
    if target not in pool:
        line = source.line(("services", name, "extends"))
        at = f" (line {line})" if line else ""
        raise ComposeError(f"cannot extend service {name!r} in {filename}{at}: service {target!r} not found")
    base = _extend(target, pool, where, env, where_dir, where_src, [*chain, (filename, name)], resolve)
    local = {k: v for k, v in svc.items() if k != "extends"}
    return merge.merge_mappings({k: v for k, v in base.items() if k != "extends"}, local, ("services", name))


def _apply_profiles(doc: dict[str, Any], profiles: list[str], wanted: list[str]) -> dict[str, dict[str, Any]]:
    """Drop services whose profiles are all inactive, unless named (or needed by one named)."""
    services = doc["services"]
    enabled = {n for n, s in services.items()
               if not s.get("profiles") or "*" in profiles or set(s["profiles"]) & set(profiles)}
    todo = [w for w in wanted if w in services]
    while todo:
        n = todo.pop()
        if n not in enabled:
            enabled.add(n)
        todo += [d for d in (services[n].get("depends_on") or {}) if d in services and d not in enabled]
    disabled = {n: s for n, s in services.items() if n not in enabled}
    doc["services"] = {n: s for n, s in services.items() if n in enabled}
    return disabled


def _check_references(doc: dict[str, Any]) -> None:
    services = doc["services"]
    for name, svc in services.items():
        if not svc.get("image") and "build" not in svc:
            raise ComposeError(f'service "{name}" has neither an image nor a build context specified: '
                               "invalid compose project")
        for source in svc.get("volumes_from") or []:
            other = source.split(":")[0]
            if not source.startswith("container:") and other not in services:
                raise ComposeError(f'service "{name}" depends on undefined service "{other}": invalid compose project')
        if svc.get("network_mode") and "networks" in svc:
            raise ComposeError(f'service "{name}" declares mutually exclusive `network_mode` and `networks`: '
                               "invalid compose project")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services and cond.get("required", True):
                raise ComposeError(f'service "{name}" depends on undefined service "{dep}": invalid compose project')
        for net in svc.get("networks") or {}:
            if net not in (doc.get("networks") or {}):
                raise ComposeError(f'service "{name}" refers to undefined network {net}: invalid compose project')
        for vol in svc.get("volumes") or []:
            if vol["type"] == "volume" and vol.get("source") and vol["source"] not in (doc.get("volumes") or {}):
                raise ComposeError(f'service "{name}" refers to undefined volume {vol["source"]}: '
                                   "invalid compose project")
        for kind, items in (("secrets", svc.get("secrets")), ("configs", svc.get("configs")),
                            ("secrets", (svc.get("build") or {}).get("secrets"))):
            for item in items or []:
                if item["source"] not in (doc.get(kind) or {}):
                    raise ComposeError(f'service "{name}" refers to undefined {kind[:-1]} {item["source"]}: '
                                       "invalid compose project")
        mode = svc.get("network_mode", "")
        if mode.startswith("service:") and mode[8:] not in services:
            raise ComposeError(f'service "{name}" depends on undefined service "{mode[8:]}": invalid compose project')
    _check_cycles(services)


def _check_cycles(services: dict[str, Any]) -> None:
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise ComposeError(f"dependency cycle detected: {' -> '.join(stack[stack.index(n):] + [n])}")
        state[n] = 1
        for d in services[n].get("depends_on") or {}:
            if d in services:
                visit(d, [*stack, n])
        state[n] = 2
    for n in services:
        visit(n, [])
