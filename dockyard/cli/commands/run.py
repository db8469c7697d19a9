"""run, create, start, attach, exec: the commands that build a container or stream its stdio."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from dockyard.cli.flags import BOOL, INT, LIST, STR, Command, Flag, UsageError, go_parse_int, ram_in_bytes
from dockyard.cli.mounts import parse_mount, split_volumes
from dockyard.cli.runner import Cli, CommandError
from dockyard.cli.stream import Detached, RawTerminal, copy_streams, terminal_size
from dockyard.client.api import APIError

TYPE_CHECKING = False  # typing costs 5 ms to import; annotations only
if TYPE_CHECKING:
    from typing import Any

ERROR_CODES = {"run": 125}
ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack"}


def ram_bytes(value: str) -> int:
    """go-units RAMInBytes: '512m' → 536870912 (UsageError with its text)."""
    try:
        return ram_in_bytes(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def nano_cpus(value: str) -> int:
    """--cpus (a rational number of CPUs) → NanoCpus, as docker's NanoCPUs flag."""
    from fractions import Fraction

    try:
        nano = Fraction(value) * 10 ** 9
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {value} as a rational number") from None
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


def parse_env(values: list[str], files: list[str]) -> list[str]:
    """--env-file lines, then -e values; 'VAR' alone takes the caller's value if set."""
    env = []
    for item in read_line_files(files) + values:
        if "=" in item:
            env.append(item)
        elif item in os.environ:
            env.append(f"{item}={os.environ[item]}")
    return env


def parse_ports(values: list[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """-p [ip:][hostPort[-range]:]containerPort[-range][/proto] → (ExposedPorts, PortBindings); a
    container range maps onto a host range of the same length, one port each."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for value in values:
        spec, _, proto = value.partition("/")
        parts = spec.rsplit(":", 2)
        low, _, high = parts[-1].partition("-")
        host_port = parts[-2] if len(parts) > 1 else ""
        host_ip = parts[0].strip("[]") if len(parts) > 2 else ""
        if not _port_range(parts[-1]):
            raise UsageError(f"invalid containerPort: {parts[-1]}")
        if host_port and not _port_range(host_port):
            raise UsageError(f"invalid hostPort: {host_port}")
        container = range(int(low), int(high or low) + 1)
        host_low, _, host_high = host_port.partition("-")
        for i, number in enumerate(container):
            key = f"{number}/{proto or 'tcp'}"
            exposed[key] = {}
            port = str(int(host_low) + i) if len(container) > 1 and host_low.isdigit() else host_port
            if len(container) > 1 and host_high and int(host_high) - int(host_low) + 1 != len(container):
                port = host_port
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": port})
    return exposed, bindings


def swap_bytes(value: str) -> int:
    """--memory-swap: a size, or -1 for unlimited swap."""
    return -1 if value == "-1" else ram_in_bytes(value)


def parse_device(value: str) -> dict[str, str]:
    """--device host[:container][:permissions] → a HostConfig.Devices entry."""
    parts = value.split(":")
    if not parts[0] or len(parts) > 3:
        raise UsageError(f"bad format for path: {value}")
    permissions = "rwm"
    if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm") and not parts[-1].startswith("/"):
        permissions = parts.pop()
    return {"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
            "CgroupPermissions": permissions}


def check_device_cgroup_rule(value: str) -> str:
    """--device-cgroup-rule "TYPE MAJOR:MINOR ACCESS" (TYPE a, b or c; "*" for any number)."""
    kind, _, rest = value.partition(" ")
    numbers, _, access = rest.partition(" ")
    major, colon, minor = numbers.partition(":")
    if not (kind in ("a", "b", "c") and colon and all(n == "*" or (n.isascii() and n.isdigit()) for n in (major, minor))
            and 1 <= len(access) <= 3 and set(access) <= set("rwm")):
        raise ValueError(f"invalid device cgroup format '{value}'")
    return value


def check_sysctl(value: str) -> str:
    """--sysctl name=value."""
    if "=" not in value:
        raise ValueError(f"sysctl '{value}' is not allowed")
    return value


def read_line_files(paths: list[str]) -> list[str]:
    """The lines of --env-file / --label-file files (blank lines and comments skipped)."""
    labels = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                labels += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        except OSError as exc:
            raise UsageError(f"open {path}: {(exc.strerror or '').lower()}") from None
    return labels


def _port_range(text: str) -> bool:
    """Whether text is a port or a low-high range of ports (0-65535), as nat.ParsePortRange."""
    low, _, high = text.partition("-")
    return all(p.isdigit() and int(p) <= 65535 for p in (low, high or low)) and int(low) <= int(high or low)


def parse_ulimit(value: str) -> dict[str, Any]:
    """name=soft[:hard] → a HostConfig.Ulimits entry (go-units ParseUlimit's checks and texts)."""
    name, eq, limits = value.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {value}")
    if name not in ULIMITS:
        raise ValueError(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise ValueError(f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`")
    soft = go_parse_int(parts[0])
    hard = go_parse_int(parts[1]) if len(parts) == 2 else soft
    if soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}


def parse_restart(value: str) -> dict[str, Any]:
    """--restart name[:count] → HostConfig.RestartPolicy (the daemon judges the name)."""
    name, colon, count = value.partition(":")
    if colon and not name:
        raise UsageError("invalid restart policy format: no policy provided before colon")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise UsageError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": retries}


def _pairs(values: list[str]) -> dict[str, str]:
    return dict((v.split("=", 1) + [""])[:2] for v in values)


HEALTH_DURATIONS = (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                    ("health_start_period", "StartPeriod"), ("health_start_interval", "StartInterval"))


def health_config(opts: SimpleNamespace) -> dict[str, Any] | None:
    """Config.Healthcheck from --health-* / --no-healthcheck (None: the image's applies)."""
    given = [name for name, _ in HEALTH_DURATIONS if getattr(opts, name)] + \
        [name for name in ("health_cmd", "health_retries") if getattr(opts, name)]
    if opts.no_healthcheck:
        if given:
            raise CommandError("--no-healthcheck conflicts with --health-* options", 125)
        return {"Test": ["NONE"]}
    if not given:
        return None
    from dockyard.image.archive.changes import ChangeError, parse_duration

    out: dict[str, Any] = {"Test": ["CMD-SHELL", opts.health_cmd] if opts.health_cmd else None}
    for name, key in HEALTH_DURATIONS:
        flag = "--" + name.replace("_", "-")
        try:
            out[key] = parse_duration(getattr(opts, name)) if getattr(opts, name) else 0
        except ChangeError as exc:
            raise CommandError(f'invalid argument "{getattr(opts, name)}" for "{flag}" flag: {exc}', 125) from None
        if out[key] < 0:
            raise CommandError(f"{flag} cannot be negative", 125)
    if (opts.health_retries or 0) < 0:
        raise CommandError("--health-retries cannot be negative", 125)
    out["Retries"] = opts.health_retries or 0
    return out


def create_body(opts: SimpleNamespace, image: str, cmd: list[str], attach: bool) -> dict[str, Any]:
    """The POST /containers/create body for run/create flags."""
    if opts.pull not in ("always", "missing", "never"):
        raise UsageError(f"invalid pull option: '{opts.pull}': must be one of \"always\", \"missing\" or \"never\"")
    if opts.rm and opts.restart and opts.restart != "no":
        raise UsageError("conflicting options: cannot specify both --restart and --rm")
    exposed, bindings = parse_ports(opts.publish)
    binds, anonymous = split_volumes(opts.volume)
    network = opts.network or opts.net or "default"
    for value in opts.expose:
        number, _, proto = value.partition("/")
        exposed[f"{number}/{proto or 'tcp'}"] = {}
    host: dict[str, Any] = {
        "Binds": binds or None, "Mounts": [parse_mount(m, ram_bytes) for m in opts.mount] or None,
        "VolumesFrom": opts.volumes_from or None, "VolumeDriver": opts.volume_driver or "", "AutoRemove": opts.rm, "Init": opts.init or None,
        "ReadonlyRootfs": opts.read_only, "Privileged": opts.privileged, "CapAdd": opts.cap_add or None,
        "CapDrop": opts.cap_drop or None, "Memory": opts.memory or 0,
        "NanoCpus": opts.cpus or 0, "CpuShares": opts.cpu_shares or 0, "PidsLimit": opts.pids_limit,
        "Ulimits": opts.ulimit or None,
        "Tmpfs": {t.partition(":")[0]: t.partition(":")[2] for t in opts.tmpfs} or None,
        "ExtraHosts": opts.add_host or None, "PortBindings": bindings or None,
        "LogConfig": {"Type": opts.log_driver or "", "Config": _pairs(opts.log_opt)},
        "RestartPolicy": parse_restart(opts.restart or "no"), "NetworkMode": network,
        "PublishAllPorts": opts.publish_all, "Links": opts.link or None, "Dns": opts.dns or None, "DnsSearch": opts.dns_search or None,
        "DnsOptions": opts.dns_option or None,
        "SecurityOpt": opts.security_opt or None, "Runtime": opts.runtime or None,
        "MemorySwap": opts.memory_swap or 0, "MemoryReservation": opts.memory_reservation or 0,
        "ShmSize": opts.shm_size or 0, "CpusetCpus": opts.cpuset_cpus or "", "CpusetMems": opts.cpuset_mems or "",
        "CpuPeriod": opts.cpu_period or 0, "CpuQuota": opts.cpu_quota or 0,
        "CpuRealtimePeriod": opts.cpu_rt_period or 0, "CpuRealtimeRuntime": opts.cpu_rt_runtime or 0,
        "MemorySwappiness": opts.memory_swappiness if opts.memory_swappiness != -1 else None, "BlkioWeight": opts.blkio_weight or 0,
        "PidMode": opts.pid or "", "IpcMode": opts.ipc or "", "UTSMode": opts.uts or "",
        "UsernsMode": opts.userns or "", "CgroupnsMode": opts.cgroupns or "", "CgroupParent": opts.cgroup_parent or "",
        "Sysctls": _pairs(opts.sysctl) or None, "Devices": [parse_device(d) for d in opts.device] or None,
        "DeviceCgroupRules": opts.device_cgroup_rule or None, "GroupAdd": opts.group_add or None,
        "OomKillDisable": opts.oom_kill_disable or None, "OomScoreAdj": opts.oom_score_adj or 0,
        "Annotations": _pairs(opts.annotation) or None,
    }
    streams = {s.lower() for s in opts.attach}
    if streams - {"stdin", "stdout", "stderr"}:
        raise UsageError(f"invalid argument \"{opts.attach[0]}\" for \"-a, --attach\" flag: valid streams are STDIN, "
                         "STDOUT and STDERR")
    stdin = opts.interactive or "stdin" in streams
    attach_out, attach_err = (attach and ("stdout" in streams or not streams), attach and ("stderr" in streams or not streams))
    body: dict[str, Any] = {
        "Hostname": opts.hostname or "", "User": opts.user or "", "Env": parse_env(opts.env, opts.env_file),
        "Cmd": cmd or None, "Image": image, "WorkingDir": opts.workdir or "",
        "Labels": _pairs(read_line_files(opts.label_file) + opts.label), "Domainname": opts.domainname or "",
        "Tty": opts.tty, "OpenStdin": stdin, "StdinOnce": stdin and attach, "AttachStdin": stdin and attach,
        "AttachStdout": attach_out, "AttachStderr": attach_err, "ExposedPorts": exposed or None,
        "StopSignal": opts.stop_signal, "StopTimeout": opts.stop_timeout, "Volumes": anonymous or None,
        "HostConfig": host,
    }
    if (healthcheck := health_config(opts)) is not None:
        body["Healthcheck"] = healthcheck
    endpoint: dict[str, Any] = {}
    if opts.ip or opts.ip6:
        endpoint["IPAMConfig"] = {"IPv4Address": opts.ip or "", "IPv6Address": opts.ip6 or ""}
    if opts.network_alias:
        endpoint["Aliases"] = opts.network_alias
    if opts.mac_address:
        endpoint["MacAddress"] = opts.mac_address
    body["NetworkingConfig"] = {"EndpointsConfig": {network: endpoint}}
    if opts.entrypoint is not None:
        body["Entrypoint"] = [opts.entrypoint] if opts.entrypoint else [""]
    if opts.tty and sys.stdout.isatty():
        body["HostConfig"]["ConsoleSize"] = list(terminal_size())
    return body


def create_container(cli: Cli, opts: SimpleNamespace, args: list[str], attach: bool) -> str:
    """Create (pulling a missing image unless --pull never); the new ID (written to --cidfile);
    warnings to stderr."""
    if opts.cidfile and os.path.exists(opts.cidfile):
        raise UsageError(f"container ID file found, make sure the other container isn't running or delete "
                         f"{opts.cidfile}")
    body = create_body(opts, args[0], args[1:], attach)
    try:
        result = cli.client.create_container(body, opts.name)
    except APIError as exc:
        if exc.status != 404 or "image" not in exc.message.lower() or opts.pull == "never":
            raise
        ref = args[0] if ":" in args[0].rpartition("/")[2] or "@" in args[0] else args[0] + ":latest"
        cli.error(f"Unable to find image '{ref}' locally")
        from dockyard.cli.commands.images import display_messages
        from dockyard.cli.commands.registry_client import auth_header, parse_reference
        display_messages(cli, cli.client.call("POST", "/images/create", {"fromImage": ref},
                                              headers=auth_header(parse_reference(ref)), stream=True),
                         (lambda _: None) if opts.quiet else cli.err.write)  # docker pulls to stderr
        result = cli.client.create_container(body, opts.name)
    for warning in result.get("Warnings") or []:
        cli.error(f"WARNING: {warning}")
    if opts.cidfile:
        with open(opts.cidfile, "w", encoding="ascii") as f:
            f.write(result["Id"])
    return result["Id"]


def start_error_code(message: str) -> int:
    """docker's code for a failed start: 127 not found, 126 cannot invoke, else 125."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def create(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    cli.write(create_container(cli, opts, args, attach=False) + "\n")
    return 0


def stream_container(cli: Cli, container: str, tty: bool, stdin: bool, start: bool,
                     condition: str | None, streams: tuple[bool, bool] = (True, True),
                     detach_keys: str | None = None) -> int:
    """Attach (streams: stdout, stderr; the daemon watches stdin for detach_keys), wait (own
    connection), optionally start, copy stdio; the container's exit code. The wait's answer is
    read once the output ended (it waits in its connection meanwhile): no thread."""
    from dockyard.cli.commands.containers import wait_result

    resp = cli.client.attach(container, stdin, stdout=streams[0], stderr=streams[1], detach_keys=detach_keys)
    waiting = cli.client.wait(container, condition)  # registered before the start, as docker does
    try:
        if start:
            try:
                cli.client.start(container)
            except APIError as exc:
                resp.close()
                raise CommandError(f"dockyard: Error response from daemon: {exc.message}\n\n"
                                   f"Run 'dockyard {cli.name} --help' for more information",
                                   start_error_code(exc.message)) from None
        try:
            if tty and sys.stdin.isatty():
                with RawTerminal(lambda h, w: cli.client.resize("containers", container, h, w)) as term:
                    term.send_size()
                    copy_streams(resp, tty, stdin)
            else:
                copy_streams(resp, tty, stdin)
        except Detached:
            return 0
        return wait_result(waiting)
    finally:
        waiting.close()


def run(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    container = create_container(cli, opts, args, attach=not opts.detach)
    if opts.detach:
        try:
            cli.client.start(container)
        except APIError as exc:
            raise CommandError(f"dockyard: Error response from daemon: {exc.message}\n\n"
                               "Run 'dockyard run --help' for more information",
                               start_error_code(exc.message)) from None
        cli.write(container + "\n")
        return 0
    streams = {s.lower() for s in opts.attach}
    return stream_container(cli, container, opts.tty, opts.interactive or "stdin" in streams, True,
                            "removed" if opts.rm else "next-exit",
                            (not streams or "stdout" in streams, not streams or "stderr" in streams), opts.detach_keys)


def start(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise CommandError("you cannot start and attach multiple containers at once")
        info = cli.client.inspect_container(args[0])
        condition = "removed" if (info.get("HostConfig") or {}).get("AutoRemove") else "next-exit"
        return stream_container(cli, info["Id"], bool(info["Config"].get("Tty")), opts.interactive, True, condition,
                                detach_keys=opts.detach_keys)
    errors, failed = [], []
    for name in args:
        try:
            cli.client.start(name)
            cli.write(name + "\n")
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
            failed.append(name)
    if errors:
        raise CommandError("\n".join(errors + ["Error: failed to start containers: " + ", ".join(failed)]))
    return 0


def attach(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    info = cli.client.inspect_container(args[0])
    if not (info.get("State") or {}).get("Running"):
        raise CommandError("You cannot attach to a stopped container, start it first")
    return stream_container(cli, info["Id"], bool(info["Config"].get("Tty")), not opts.no_stdin, False, None,
                            detach_keys=opts.detach_keys)


def exec_(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    """docker exec: create, start (attached unless -d), then the exit code from inspect; the
    daemon refuses a container that is not running (one round trip less than inspecting first)."""
    body = {"User": opts.user or "", "Privileged": opts.privileged, "Tty": opts.tty,
            "AttachStdin": opts.interactive and not opts.detach, "AttachStdout": not opts.detach,
            "AttachStderr": not opts.detach, "Env": parse_env(opts.env, opts.env_file),
            "WorkingDir": opts.workdir or "", "Cmd": args[1:], "DetachKeys": opts.detach_keys or ""}
    exec_id = cli.client.exec_create(args[0], body)["Id"]
    if opts.detach:
        cli.client.exec_start(exec_id, opts.tty, True)
        return 0
    resp = cli.client.exec_start(exec_id, opts.tty, False)
    assert resp is not None
    try:
        if opts.tty and sys.stdin.isatty():
            with RawTerminal(lambda h, w: cli.client.resize("exec", exec_id, h, w)) as term:
                term.send_size()
                copy_streams(resp, True, opts.interactive)
        else:
            copy_streams(resp, opts.tty, opts.interactive)
    except Detached:
        return 0
    return int(cli.client.exec_inspect(exec_id).get("ExitCode") or 0)


ENV = Flag("e", "env", LIST, "Set environment variables")
ENV_FILE = Flag("", "env-file", LIST, "Read in a file of environment variables")
INTERACTIVE = Flag("i", "interactive", BOOL, "Keep STDIN open even if not attached")
TTY = Flag("t", "tty", BOOL, "Allocate a pseudo-TTY")
USER = Flag("u", "user", STR, "Username or UID (format: <name|uid>[:<group|gid>])")
WORKDIR = Flag("w", "workdir", STR, "Working directory inside the container")
PRIVILEGED = Flag("", "privileged", BOOL, "Give extended privileges to the command")
DETACH_KEYS = Flag("", "detach-keys", STR, "Override the key sequence for detaching a container")
CREATE_FLAGS = [
    Flag("", "add-host", LIST, "Add a custom host-to-IP mapping (host:ip)"),
    Flag("a", "attach", LIST, "Attach to STDIN, STDOUT or STDERR"),
    Flag("", "annotation", LIST, "Add an annotation to the container (passed through to the OCI runtime)"),
    Flag("", "blkio-weight", INT, "Block IO (relative weight), between 10 and 1000, or 0 to disable"),
    Flag("", "cgroup-parent", STR, "Optional parent cgroup for the container"),
    Flag("", "cgroupns", STR, "Cgroup namespace to use (host|private)"),
    Flag("", "cidfile", STR, "Write the container ID to the file"),
    Flag("", "cpu-period", INT, "Limit CPU CFS (Completely Fair Scheduler) period"),
    Flag("", "cpu-rt-period", INT, "Limit CPU real-time period in microseconds"),
    Flag("", "cpu-rt-runtime", INT, "Limit CPU real-time runtime in microseconds"),
    Flag("", "cpu-quota", INT, "Limit CPU CFS (Completely Fair Scheduler) quota"),
    Flag("", "cpuset-cpus", STR, "CPUs in which to allow execution (0-3, 0,1)"),
    Flag("", "cpuset-mems", STR, "MEMs in which to allow execution (0-3, 0,1)"),
    Flag("", "device", LIST, "Add a host device to the container"),
    Flag("", "device-cgroup-rule", LIST, "Add a rule to the cgroup allowed devices list",
         check=check_device_cgroup_rule),
    Flag("", "domainname", STR, "Container NIS domain name"),
    Flag("", "group-add", LIST, "Add additional groups to join"),
    Flag("", "ipc", STR, "IPC mode to use"),
    Flag("", "label-file", LIST, "Read in a line delimited file of labels"),
    Flag("", "memory-reservation", STR, "Memory soft limit", check=ram_in_bytes),
    Flag("", "memory-swappiness", INT, "Tune container memory swappiness (0 to 100)", -1),
    Flag("", "memory-swap", STR, "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
         check=swap_bytes),
    Flag("", "oom-kill-disable", BOOL, "Disable OOM Killer"),
    Flag("", "oom-score-adj", INT, "Tune host's OOM preferences (-1000 to 1000)"),
    Flag("", "pid", STR, "PID namespace to use"),
    Flag("", "shm-size", STR, "Size of /dev/shm", check=ram_in_bytes),
    Flag("", "sysctl", LIST, "Sysctl options", check=check_sysctl),
    Flag("", "userns", STR, "User namespace to use"),
    Flag("", "uts", STR, "UTS namespace to use"),
    Flag("q", "quiet", BOOL, "Suppress the pull output"),
    Flag("", "cap-add", LIST, "Add Linux capabilities"), Flag("", "cap-drop", LIST, "Drop Linux capabilities"),
    Flag("c", "cpu-shares", INT, "CPU shares (relative weight)"),
    Flag("", "cpus", STR, "Number of CPUs", check=nano_cpus), Flag("", "dns", LIST, "Set custom DNS servers"),
    Flag("", "dns-option", LIST, "Set DNS options"), Flag("", "dns-search", LIST, "Set custom DNS search domains"),
    Flag("", "expose", LIST, "Expose a port or a range of ports"), ENV, ENV_FILE, Flag("", "entrypoint", STR, "Overwrite the default ENTRYPOINT"),
    Flag("", "health-cmd", STR, "Command to run to check health"),
    Flag("", "health-interval", STR, "Time between running the check (ms|s|m|h) (default 0s)"),
    Flag("", "health-retries", INT, "Consecutive failures needed to report unhealthy"),
    Flag("", "health-start-interval", STR, "Time between running the check during the start period (ms|s|m|h)"),
    Flag("", "health-start-period", STR, "Start period for the container to initialize before starting health-retries "
                                         "countdown (ms|s|m|h) (default 0s)"),
    Flag("", "health-timeout", STR, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)"),
    Flag("", "no-healthcheck", BOOL, "Disable any container-specified HEALTHCHECK"),
    Flag("h", "hostname", STR, "Container host name"),
    Flag("", "init", BOOL, "Run an init inside the container that forwards signals and reaps processes"),
    INTERACTIVE, Flag("", "ip", STR, "IPv4 address (e.g., 172.30.100.104)"),
    Flag("", "ip6", STR, "IPv6 address (e.g., 2001:db8::33)"),
    Flag("l", "label", LIST, "Set meta data on a container"), Flag("", "link", LIST, "Add link to another container"),
    Flag("", "log-driver", STR, "Logging driver for the container"), Flag("", "log-opt", LIST, "Log driver options"),
    Flag("", "mac-address", STR, "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Flag("m", "memory", STR, "Memory limit", check=ram_in_bytes), Flag("", "mount", LIST, "Attach a filesystem mount to the container"), Flag("", "name", STR, "Assign a name to the container"),
    Flag("", "network", STR, "Connect a container to a network"), Flag("", "net", STR, "Alias of --network"),
    Flag("", "network-alias", LIST, "Add network-scoped alias for the container"),
    Flag("", "pids-limit", INT, "Tune container pids limit (set -1 for unlimited)"), PRIVILEGED,
    Flag("p", "publish", LIST, "Publish a container's port(s) to the host"),
    Flag("P", "publish-all", BOOL, "Publish all exposed ports to random ports"),
    Flag("", "pull", STR, "Pull image before running (\"always\", \"missing\", \"never\")", "missing"),
    Flag("", "read-only", BOOL, "Mount the container's root filesystem as read only"),
    Flag("", "restart", STR, "Restart policy to apply when a container exits"),
    Flag("", "rm", BOOL, "Automatically remove the container and its associated anonymous volumes when it exits"),
    Flag("", "runtime", STR, "Runtime to use for this container"),
    Flag("", "security-opt", LIST, "Security Options"),
    Flag("", "stop-signal", STR, "Signal to stop the container"),
    Flag("", "stop-timeout", INT, "Timeout (in seconds) to stop a container"),
    Flag("", "tmpfs", LIST, "Mount a tmpfs directory"), TTY,
    Flag("", "ulimit", LIST, "Ulimit options", check=parse_ulimit), USER, Flag("v", "volume", LIST, "Bind mount a volume"),
    Flag("", "volume-driver", STR, "Optional volume driver for the container"),
    Flag("", "volumes-from", LIST, "Mount volumes from the specified container(s)"), WORKDIR,
]
COMMANDS = {
    "run": Command("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
                   [*CREATE_FLAGS, Flag("d", "detach", BOOL, "Run container in background and print container ID"),
                    DETACH_KEYS],
                   run, 1, interspersed=False),
    "create": Command("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", CREATE_FLAGS, create, 1,
                      interspersed=False),
    "start": Command("[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers",
                     [Flag("a", "attach", BOOL, "Attach STDOUT/STDERR and forward signals"), DETACH_KEYS,
                      Flag("i", "interactive", BOOL, "Attach container's STDIN")], start, 1),
    "attach": Command("[OPTIONS] CONTAINER", "Attach local standard input, output, and error streams to a running container",
                      [DETACH_KEYS, Flag("", "no-stdin", BOOL, "Do not attach STDIN")], attach, 1, 1),
    "exec": Command("[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
                    [Flag("d", "detach", BOOL, "Detached mode: run command in the background"), ENV, ENV_FILE,
                     DETACH_KEYS, INTERACTIVE, PRIVILEGED, TTY, USER, WORKDIR], exec_, 2, interspersed=False),
}
