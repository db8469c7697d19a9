"""One function per `dockyard compose` command: `cmd_<name>(ctx, opts, args)` → exit code."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from types import SimpleNamespace
from typing import Any

from dockyard.client.api import APIError, Client
from dockyard.compose import convert, images, injected, loader, output
from dockyard.compose.engine import Engine, name_of, number
from dockyard.compose.errors import ComposeError
from dockyard.compose.progress import Progress


class Context:
    """The global options; the project and the engine, loaded on first use."""

    def __init__(self, gopts: SimpleNamespace, host: str) -> None:
        self.gopts = gopts
        self.host = host

    def options(self) -> loader.Options:
        g = self.gopts
        return loader.Options(files=g.file, project_name=g.project_name, project_directory=g.project_directory,
                              env_files=g.env_file, profiles=g.profile)

    def raw(self, interpolate: bool, resolve_paths: bool, normalize: bool) -> loader.Options:
        """Options for `config --no-interpolate`, `--no-path-resolution`, `--no-normalize`."""
        opts = self.options()
        opts.interpolate, opts.resolve_paths, opts.normalize = interpolate, resolve_paths, normalize
        return opts

    def project(self, services: list[str] | None = None, fileless: bool = False) -> loader.Project:
        """The loaded project; with fileless (`down -p NAME` elsewhere), an empty one when no
        compose file is found but a project name is given."""
        try:
            return loader.load(self.options(), services)
        except ComposeError as exc:
            name = self.gopts.project_name or os.environ.get("COMPOSE_PROJECT_NAME")
            if not (fileless and name and not self.gopts.file and str(exc).startswith("no configuration file")):
                raise
            return loader.Project(name, os.getcwd(), [], {"name": name, "services": {}}, {})

    def engine(self, services: list[str] | None = None, quiet: bool = False, fileless: bool = False) -> Engine:
        quiet = quiet or self.gopts.progress == "quiet"
        if self.gopts.dry_run:
            from dockyard.compose.dryrun import PREFIX, DryRunClient
            return Engine(DryRunClient(self.host), self.project(services, fileless), Progress(quiet=quiet, prefix=PREFIX))
        return Engine(Client(self.host), self.project(services, fileless), Progress(quiet=quiet))

    def colour(self, no_color: bool) -> bool:
        if no_color or self.gopts.ansi == "never" or os.environ.get("NO_COLOR"):
            return False
        return self.gopts.ansi == "always" or sys.stdout.isatty()


def cmd_config(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    if opts.no_interpolate or opts.no_path_resolution or opts.no_normalize:
        project = loader.load(ctx.raw(not opts.no_interpolate, not opts.no_path_resolution, not opts.no_normalize), args)
    else:
        project = ctx.project(args)
    model = project.model
    if args:
        model = {**model, "services": {n: s for n, s in model["services"].items() if n in args}}
    if opts.services:
        text = "".join(f"{n}\n" for n in sorted(model["services"]))
    elif opts.volumes:
        text = "".join(f"{n}\n" for n in sorted(model.get("volumes") or {}))
    elif opts.networks:
        text = "".join(f"{n}\n" for n in sorted(model.get("networks") or {}))
    elif opts.images:
        text = "".join(f"{convert.image_name(project.name, n, s)}\n" for n, s in model["services"].items())
    elif opts.profiles:
        names = {p for s in {**model["services"], **project.disabled}.values() for p in s.get("profiles") or []}
        text = "".join(f"{p}\n" for p in sorted(names))
    elif opts.hash is not None:
        chosen = model["services"] if opts.hash == "*" else {n: model["services"][n] for n in opts.hash.split(",")}
        text = "".join(f"{n} {convert.config_hash(s)}\n" for n, s in chosen.items())
    elif opts.format == "json":
        text = output.to_json(model)
    elif opts.format == "yaml":
        text = output.to_yaml(model)
    else:
        raise ComposeError(f"unsupported format {opts.format!r}")
    if opts.quiet:
        return 0
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _scale(values: list[str]) -> dict[str, int]:
    out = {}
    for v in values:
        name, _, n = v.partition("=")
        if not n.isdigit():
            raise ComposeError(f"invalid --scale value {v!r}: expected SERVICE=NUM")
        out[name] = int(n)
    return out


def cmd_up(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine(args)
    eng.renew_anonymous = opts.renew_anon_volumes
    services = eng.up(args or None, build=opts.build, force_recreate=opts.force_recreate,
                      no_recreate=opts.no_recreate, no_deps=opts.no_deps, remove_orphans=opts.remove_orphans,
                      scale=_scale(opts.scale), start=not opts.no_start, timeout=opts.timeout,
                      pull=opts.pull, no_build=opts.no_build)
    if opts.wait:
        eng.wait_running(services, opts.wait_timeout)
        return 0
    if opts.detach or opts.no_start:
        return 0
    return _attached(ctx, eng, opts, [s for s in services if s in (opts.attach or services)
                                      and s not in opts.no_attach])


def cmd_create(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    ctx.engine(args).up(args or None, build=opts.build, force_recreate=opts.force_recreate,
                        no_recreate=opts.no_recreate, remove_orphans=opts.remove_orphans,
                        scale=_scale(opts.scale), start=False, pull=opts.pull, no_build=opts.no_build)
    return 0


def cmd_scale(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    scale = _scale(args)
    ctx.engine(list(scale)).up(list(scale), no_deps=opts.no_deps, scale=scale)
    return 0


def _attached(ctx: Context, eng: Engine, opts: SimpleNamespace, services: list[str]) -> int:
    """Stream the containers' output until they all exit (or one does, with --abort-on-container-exit
    / --exit-code-from); Ctrl-C stops the project."""
    import threading

    from dockyard.compose import logs
    containers = eng.containers(services)
    labels = [logs.short_name(eng.project.name, c) for c in containers]
    printer = logs.Printer(labels, ctx.colour(opts.no_color), not opts.no_log_prefix)
    printer.message("Attaching to " + ", ".join(labels))
    abort_on_exit = opts.abort_on_container_exit or bool(opts.exit_code_from)
    codes: dict[str, int] = {}
    finished = threading.Event()

    def exited(c: dict[str, Any], label: str) -> None:
        state = eng.client.inspect_container(c["Id"])["State"]
        if state.get("Running"):
            return
        codes[c["Labels"][convert.LABEL_SERVICE]] = code = int(state.get("ExitCode") or 0)
        printer.message(f"{label} exited with code {code}")
        if abort_on_exit:
            finished.set()

    def follow() -> None:
        logs.follow_all(eng.client, eng.project.name, containers, printer,
                        {"follow": 1, "timestamps": 1 if opts.timestamps else None}, on_exit=exited)
        finished.set()
    threading.Thread(target=follow, daemon=True).start()
    try:
        while not finished.wait(0.2):
            pass
    except KeyboardInterrupt:
        sys.stderr.write("Gracefully stopping... (press Ctrl+C again to force)\n")
        eng.stop(None, opts.timeout)
        return 130
    if abort_on_exit:
        sys.stderr.write("Aborting on container exit...\n")
        eng.stop(None, opts.timeout)
    if opts.exit_code_from:
        return codes.get(opts.exit_code_from, 0)
    return next(iter(codes.values()), 0) if opts.abort_on_container_exit else 0


def cmd_down(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine(fileless=True)
    eng.down(opts.volumes, opts.rmi, opts.remove_orphans or not eng.project.files, opts.timeout, args)
    return 0


def _ps_row(c: dict[str, Any]) -> dict[str, Any]:
    from dockyard.cli import format as fmt
    from dockyard.cli.commands.containers import ports_text
    labels = c.get("Labels") or {}
    return {"ID": c["Id"], "Name": name_of(c), "Image": c.get("Image", ""), "Command": c.get("Command", ""),
            "Project": labels.get(convert.LABEL_PROJECT, ""), "Service": labels.get(convert.LABEL_SERVICE, ""),
            "Created": c.get("Created", 0), "State": c.get("State", ""), "Status": c.get("Status", ""),
            "Health": health.group(1).removeprefix("health: ") if (health := re.search(r"\((healthy|unhealthy|health: starting)\)",
                                                              c.get("Status", ""))) else "",
            "ExitCode": int(code.group(1)) if (code := re.match(r"Exited \((\d+)\)", c.get("Status", ""))) else 0,
            "RunningFor": fmt.since(c.get("Created") or 0),
            "Ports": ports_text(c.get("Ports") or []),
            "Publishers": [{"URL": p.get("IP", ""), "TargetPort": p.get("PrivatePort", 0),
                            "PublishedPort": p.get("PublicPort", 0), "Protocol": p.get("Type", "tcp")}
                           for p in c.get("Ports") or []],
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items())}


def cmd_ps(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.cli import format as fmt
    eng = ctx.engine(fileless=True)
    names = eng.service_names(args or None) if eng.project.files else None
    status = set(opts.status) | {f.split("=", 1)[1] for f in opts.filter if f.startswith("status=")}
    containers = [c for c in eng.containers(names, all=opts.all or bool(status), oneoff=None)
                  if not status or c.get("State") in status]
    if opts.services:
        sys.stdout.write("".join(f"{s}\n" for s in dict.fromkeys(c["Labels"][convert.LABEL_SERVICE]
                                                                  for c in containers)))
        return 0
    if opts.quiet:
        sys.stdout.write("".join(f"{c['Id'] if opts.no_trunc else c['Id'][:12]}\n" for c in containers))
        return 0
    rows = [_ps_row(c) for c in containers]
    if opts.format == "json":
        sys.stdout.write("".join(json.dumps(r) + "\n" for r in rows))
        return 0
    if opts.format and opts.format != "table":
        fmt.print_objects(rows, opts.format, "", {"RunningFor": "CREATED", "Ports": "PORTS"}, sys.stdout.write)
        return 0
    table = [["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]]
    for r in rows:
        command = r["Command"] if opts.no_trunc else fmt.ellipsis(r["Command"], 20)
        table.append([r["Name"], r["Image"], json.dumps(command, ensure_ascii=False), r["Service"],
                      r["RunningFor"], r["Status"], r["Ports"]])
    sys.stdout.write(fmt.tabwrite(table))
    return 0


def cmd_logs(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.compose import logs
    eng = ctx.engine(fileless=True)
    containers = eng.containers(eng.service_names(args or None) if eng.project.files else None, oneoff=None)
    if opts.index:
        containers = [c for c in containers if number(c) == opts.index]
    labels = [logs.short_name(eng.project.name, c) for c in containers]
    printer = logs.Printer(labels, ctx.colour(opts.no_color), not opts.no_log_prefix)
    logs.follow_all(eng.client, eng.project.name, containers, printer, {
        "follow": 1 if opts.follow else None, "tail": opts.tail, "timestamps": 1 if opts.timestamps else None,
        "since": opts.since, "until": opts.until})
    return 0


def _legacy(ctx: Context) -> Any:
    """The dockyard.cli context that its stream helpers take: a client and a command name."""
    from dockyard.cli.runner import Cli
    return Cli(ctx.host, "compose")


def cmd_exec(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.cli.stream import Detached, RawTerminal, copy_streams
    eng = ctx.engine()
    container = eng.find(args[0], opts.index)
    tty = not opts.no_TTY and opts.tty and sys.stdin.isatty()
    env = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in opts.env]
    body = {"User": opts.user or "", "Privileged": opts.privileged, "Tty": tty,
            "AttachStdin": opts.interactive and not opts.detach, "AttachStdout": not opts.detach,
            "AttachStderr": not opts.detach, "Env": env, "WorkingDir": opts.workdir or "", "Cmd": args[1:]}
    client = eng.client
    exec_id = client.exec_create(container["Id"], body)["Id"]
    if opts.detach:
        client.exec_start(exec_id, tty, True)
        return 0
    resp = client.exec_start(exec_id, tty, False)
    assert resp is not None
    stdin = opts.interactive and not sys.stdin.closed and (tty or not sys.stdin.isatty())
    try:
        if tty:
            with RawTerminal(lambda h, w: client.resize("exec", exec_id, h, w)) as term:
                term.send_size()
                copy_streams(resp, True, stdin)
        else:
            copy_streams(resp, False, stdin)
    except Detached:
        return 0
    return int(client.exec_inspect(exec_id).get("ExitCode") or 0)


def cmd_run(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    import secrets
    eng = ctx.engine(args[:1])
    service = args[0]
    eng.service_names([service])
    svc = dict(eng.project.services[service])
    if not opts.no_deps:
        deps = [d for d in eng.with_dependencies([service]) if d != service]
        if deps:
            eng.up(deps)
            for dep, cond in eng.dependencies(service).items():
                eng.wait_condition(dep, cond)
    image_id = eng.ensure_image(service, opts.build)
    if len(args) > 1:
        svc["command"] = args[1:]
    if opts.entrypoint is not None:
        from dockyard.compose.normalize import split_command
        svc["entrypoint"] = split_command(opts.entrypoint)
    if not opts.service_ports:
        svc.pop("ports", None)
    if opts.publish:
        from dockyard.compose.normalize import ports
        svc["ports"] = ports(opts.publish, "--publish")
    if opts.env:
        env = dict(svc.get("environment") or {})
        for e in opts.env:
            k, sep, v = e.partition("=")
            env[k] = v if sep else os.environ.get(k)
        svc["environment"] = env
    for key, value in (("user", opts.user), ("working_dir", opts.workdir)):
        if value:
            svc[key] = value
    if opts.label:
        svc["labels"] = {**(svc.get("labels") or {}), **dict(x.partition("=")[::2] for x in opts.label)}
    if opts.volume:
        from dockyard.compose.normalize import volume
        svc["volumes"] = [*(svc.get("volumes") or []), *(volume(v, "--volume") for v in opts.volume)]
    svc.pop("container_name", None)
    tty = not opts.no_TTY and opts.tty and sys.stdin.isatty() and not opts.detach
    svc["tty"] = tty
    svc["stdin_open"] = opts.interactive and not opts.detach
    svc.pop("restart", None)
    body = convert.create_body(eng.project, service, svc, 1, image_id, oneoff=True,
                               links=eng.links(service, oneoff=True))
    body["AttachStdin"] = svc["stdin_open"]
    body["HostConfig"]["AutoRemove"] = opts.rm
    name = opts.name or f"{eng.project.name}-{service}-run-{secrets.token_hex(6)}"
    files = injected.files(eng.project, svc)
    cid = eng.client.create_container(body, name)["Id"]
    injected.inject(eng.client, cid, files)
    if opts.detach:
        eng.client.start(cid)
        print(name)
        return 0
    if ctx.gopts.dry_run:
        raise ComposeError("interactive run is not supported in dry-run mode")
    from dockyard.cli.commands.run import stream_container
    return stream_container(_legacy(ctx), cid, tty, svc["stdin_open"] and not sys.stdin.closed, True,
                            "removed" if opts.rm else "next-exit")


def cmd_build(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine(args, quiet=opts.quiet)
    names = eng.service_names(args or None)
    if opts.with_dependencies:
        names = eng.with_dependencies(names)
    extra = dict(x.partition("=")[::2] for x in opts.build_arg)
    ssh = [f"{sid}={os.path.abspath(path)}" if path else sid
           for sid, _, path in (item.partition("=") for item in (opts.ssh or "").split(",") if item)]
    for n in names:
        svc = eng.project.services[n]
        if "build" not in svc or n in eng.built:  # built already: another's additional context
            continue
        conf = {**svc["build"], "args": {**(svc["build"].get("args") or {}), **extra}}
        if ssh:  # --ssh adds to each service's build.ssh
            conf["ssh"] = [*images.ssh_items(svc["build"], eng.project.directory), *ssh]
        eng.build(n, conf, opts.no_cache, opts.pull)
    return 0


def cmd_pull(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine(args, quiet=opts.quiet)
    names = eng.service_names(args or None)
    if opts.include_deps:
        names = eng.with_dependencies(names)
    failed = None
    for n in names:
        svc = eng.project.services[n]
        if not svc.get("image") or ("build" in svc and opts.ignore_buildable):
            continue
        try:
            images.pull(eng.client, n, svc["image"], eng.progress)
        except ComposeError as exc:
            if not opts.ignore_pull_failures and "build" not in svc:
                failed = failed or exc
    if failed:
        raise failed
    return 0


def cmd_push(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine(args, quiet=opts.quiet)
    for n in eng.service_names(args or None):
        svc = eng.project.services[n]
        if not svc.get("image"):
            continue
        try:
            images.push(eng.client, n, svc["image"], eng.progress)
        except (ComposeError, APIError):
            if not opts.ignore_push_failures:
                raise
    return 0


def cmd_start(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    ctx.engine().action(args or None, "start", "Started", states=("created", "exited"))
    return 0


def cmd_stop(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    ctx.engine().stop(args or None, opts.timeout)
    return 0


def cmd_restart(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    ctx.engine().action(args or None, "restart", "Started", {"t": opts.timeout})
    return 0


def cmd_kill(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    ctx.engine().action(args or None, "kill", "Killed", {"signal": opts.signal}, states=("running",))
    return 0


def cmd_pause(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    ctx.engine().action(args or None, "pause", "Paused", states=("running",))
    return 0


def cmd_unpause(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    ctx.engine().action(args or None, "unpause", "Unpaused", states=("paused",))
    return 0


def cmd_rm(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine()
    if not eng.remove_stopped(args or None, opts.volumes, opts.stop):
        sys.stderr.write("No stopped containers\n")
    return 0


def cmd_images(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.cli import format as fmt
    from dockyard.cli.commands.images import split_reference
    from dockyard.humanize import human_size
    eng = ctx.engine()
    rows = []
    for c in eng.containers(eng.service_names(args or None), oneoff=None):
        info = eng.client.inspect_image(c["ImageID"] if c.get("ImageID") else c["Image"])
        repo, tag = split_reference((info.get("RepoTags") or [c["Image"]])[0])
        rows.append({"ContainerName": name_of(c), "Repository": repo, "Tag": tag, "ID": info["Id"],
                     "Size": info.get("Size", 0)})
    if opts.quiet:
        sys.stdout.write("".join(dict.fromkeys(fmt.short_id(r["ID"]) + "\n" for r in rows)))
    elif opts.format == "json":
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        table = [["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]]
        table += [[r["ContainerName"], r["Repository"], r["Tag"], fmt.short_id(r["ID"]), human_size(r["Size"])]
                  for r in rows]
        sys.stdout.write(fmt.tabwrite(table))
    return 0


def cmd_top(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.cli import format as fmt
    eng = ctx.engine()
    for c in eng.containers(eng.service_names(args or None), all=False, oneoff=None):
        top = eng.client.top(c["Id"], None)
        sys.stdout.write(f"{name_of(c)}\n" + fmt.tabwrite([top["Titles"], *top["Processes"]]) + "\n")
    return 0


def cmd_port(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine()
    container = eng.find(args[0], opts.index)
    info = eng.client.inspect_container(container["Id"])
    port = args[1] if "/" in args[1] else f"{args[1]}/{opts.protocol}"
    bindings = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(port) or []
    if not bindings:
        raise ComposeError(f"no port {port} for container {name_of(container)}")
    print(f"{bindings[0].get('HostIp') or '0.0.0.0'}:{bindings[0]['HostPort']}")
    return 0


def cmd_events(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    eng = ctx.engine()
    names = set(eng.service_names(args or None))
    resp = eng.client.events(filters={"label": [f"{convert.LABEL_PROJECT}={eng.project.name}"],
                                      "type": ["container"]})
    try:
        for ev in resp.iter_json():
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            service = attrs.get(convert.LABEL_SERVICE, "")
            if service not in names:
                continue
            stamp = ev.get("timeNano", int(ev.get("time", 0)) * 10**9)
            shown = {k: v for k, v in attrs.items() if k in ("image", "name")}
            if opts.json:
                print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp / 1e9))
                                  + f".{stamp % 10**9:09d}Z", "type": "container", "action": ev.get("Action"),
                                  "id": (ev.get("Actor") or {}).get("ID"), "service": service,
                                  "attributes": shown}), flush=True)
            else:
                text = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
                print(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp / 1e9))
                      + f".{stamp % 10**9 // 1000:06d} container {ev.get('Action')} "
                      f"{(ev.get('Actor') or {}).get('ID')} ({text})", flush=True)
    finally:
        resp.close()
    return 0


def cmd_watch(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.compose import watch
    eng = ctx.engine(args)
    if not opts.no_up:
        eng.up(args or None)
    return watch.run(eng, eng.service_names(args or None))


def cmd_ls(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.cli import format as fmt
    client = Client(ctx.host)
    projects: dict[str, dict[str, Any]] = {}
    for c in client.containers(all=True, filters={"label": [convert.LABEL_PROJECT]}):
        labels = c.get("Labels") or {}
        p = projects.setdefault(labels[convert.LABEL_PROJECT], {"states": {}, "files": ""})
        p["states"][c.get("State", "")] = p["states"].get(c.get("State", ""), 0) + 1
        p["files"] = labels.get(convert.LABEL_FILES, p["files"])
    names = []
    for f in opts.filter:
        key, _, value = f.partition("=")
        if key != "name":
            raise ComposeError(f'invalid filter "{key}"')
        names.append(value)
    rows = []
    for name, p in sorted(projects.items()):
        if not opts.all and "running" not in p["states"] or names and not any(n in name for n in names):
            continue
        status = ", ".join(f"{s}({n})" for s, n in sorted(p["states"].items()))
        rows.append({"Name": name, "Status": status, "ConfigFiles": p["files"]})
    if opts.quiet:
        sys.stdout.write("".join(r["Name"] + "\n" for r in rows))
    elif opts.format == "json":
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        sys.stdout.write(fmt.tabwrite([["NAME", "STATUS", "CONFIG FILES"],
                                       *([r["Name"], r["Status"], r["ConfigFiles"]] for r in rows)]))
    return 0


def cmd_version(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    if opts.format == "json":
        print(json.dumps({"version": f"v{convert.COMPOSE_VERSION}"}, separators=(",", ":")))
    elif opts.format not in (None, "", "pretty"):
        raise ComposeError(f"ERROR: Invalid format type {opts.format!r}")
    else:
        print(convert.COMPOSE_VERSION if opts.short else f"Dockyard Compose version v{convert.COMPOSE_VERSION}")
    return 0


def cmd_attach(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.cli.commands.run import attach
    eng = ctx.engine()
    container = eng.find(args[0], opts.index)
    return attach(_legacy(ctx), SimpleNamespace(no_stdin=opts.no_stdin or not sys.stdin or sys.stdin.closed),
                  [container["Id"]])


def cmd_cp(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    """Docker Compose's cp: from the service's first (or --index) container, or to all of its
    containers (or the --index one); the copy itself is the dockyard CLI's."""
    from dockyard.cli.commands.files import copy_from, copy_to, split_cp_arg
    (src_service, src), (dst_service, dst) = split_cp_arg(args[0]), split_cp_arg(args[1])
    if src_service and dst_service:
        raise ComposeError("copying between services is not supported")
    if not src_service and not dst_service:
        raise ComposeError("unknown copy direction")
    eng = ctx.engine()
    service = src_service or dst_service
    eng.service_names([service])
    containers = [c for c in eng.containers([service], all=True, oneoff=None if opts.all else False)
                  if not opts.index or number(c) == opts.index]
    if not containers:
        raise ComposeError(f'service "{service}" is not running container #{opts.index}' if opts.index
                           else f'no container found for service "{service}"')
    cli = _legacy(ctx)
    flags = SimpleNamespace(archive=opts.archive, follow_link=opts.follow_link, quiet=True)
    for c in containers[:1] if src_service else containers:
        name = name_of(c)
        what = f"{name}:{src} to {dst}" if src_service else f"{src} to {name}:{dst}"
        eng.progress.event("Container", name, f"Copying {what}")
        if src_service:
            copy_from(cli, flags, c["Id"], src, dst)
        else:
            copy_to(cli, flags, src, c["Id"], dst)
        eng.progress.event("Container", name, f"Copied {what}")
    return 0


def cmd_stats(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    """docker stats over the project's (running, or with -a all) containers."""
    from dockyard.cli.commands.stats import stats
    eng = ctx.engine()
    ids = [c["Id"][:12] for c in eng.containers(eng.service_names(args or None), all=opts.all, oneoff=None)]
    if not ids:
        return 0
    return stats(_legacy(ctx), opts, ids)


def cmd_wait(ctx: Context, opts: SimpleNamespace, args: list[str]) -> int:
    """Block until the services' running containers exit; each one's status is printed and the
    last becomes the exit code. --down-project then takes the project down."""
    import threading
    eng = ctx.engine()
    containers = eng.containers(eng.service_names(args), all=False, oneoff=None)
    if not containers:
        raise ComposeError(f'no containers for project "{eng.project.name}"')
    codes: list[int] = []
    lock = threading.Lock()

    def wait_one(c: dict[str, Any]) -> None:
        resp = eng.client.wait(c["Id"])
        try:
            code = int((resp.json() or {}).get("StatusCode", 0))
        finally:
            resp.close()
        with lock:
            print(f'container "{c["Id"]}" exited with status code {code}', flush=True)
            codes.append(code)
    eng.each(containers, wait_one)
    if opts.down_project:
        eng.down(remove_orphans=True)
    return codes[-1]
