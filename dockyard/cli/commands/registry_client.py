"""pull, push, login, logout: registry commands through the daemon, with the credentials of
docker's config.json sent as X-Registry-Auth."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from dockyard.cli.commands.images import display_messages
from dockyard.cli.flags import BOOL, STR, Command, Flag
from dockyard.cli.runner import Cli, CommandError
from dockyard.client import dockercfg
from dockyard.client.http import Response
from dockyard.image import reference

QUIET = Flag("q", "quiet", BOOL, "Suppress verbose output")
ALL_TAGS = Flag("a", "all-tags", BOOL, "Download or push all tagged images in the repository")


def parse_reference(name: str) -> reference.Reference:
    """name normalised as docker does (CommandError for a bad one)."""
    try:
        return reference.parse_normalized(name)
    except reference.InvalidReference as err:
        raise CommandError(f"invalid reference format: {err}" if "format" not in str(err) else str(err)) from None


def auth_header(ref: reference.Reference) -> dict[str, str]:
    """X-Registry-Auth with config.json's credentials for ref's registry."""
    try:
        auth = dockercfg.get(dockercfg.server_key(ref.domain))
    except dockercfg.CredentialsError as err:
        raise CommandError(str(err)) from None
    return {"X-Registry-Auth": dockercfg.registry_auth_header(auth)}


class _Silent:
    """A Cli stand-in for --quiet: progress is read (errors still raise) but not shown."""

    def write(self, text: str) -> None:
        """Drop the text."""


def _stream(cli: Cli, resp: Response, quiet: bool) -> None:
    display_messages(_Silent() if quiet else cli, resp)  # type: ignore[arg-type]


def pull(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    ref = parse_reference(args[0])
    if opts.all_tags and not ref.is_name_only:
        raise CommandError("tag can't be used with --all-tags/-a")
    if ref.is_name_only and not opts.all_tags:
        cli.write("Using default tag: latest\n")
        ref = reference.with_default_tag(ref)
    query = {"fromImage": str(ref.trim()), "tag": ref.digest or ref.tag, "platform": opts.platform or None}
    resp = cli.client.call("POST", "/images/create", query, headers=auth_header(ref), stream=True)
    _stream(cli, resp, opts.quiet)
    cli.write(f"{ref}\n")
    return 0


def push(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    ref = parse_reference(args[0])
    if opts.all_tags and not ref.is_name_only:
        raise CommandError("tag can't be used with --all-tags/-a")
    if ref.is_name_only and not opts.all_tags:
        cli.write("Using default tag: latest\n")
        ref = reference.with_default_tag(ref)
    resp = cli.client.call("POST", f"/images/{ref.trim()}/push", {"tag": ref.tag},
                           headers=auth_header(ref), stream=True)
    _stream(cli, resp, opts.quiet)
    return 0


def _server(args: list[str]) -> str:
    """The config key (and address sent to the daemon) of login/logout's SERVER argument."""
    server = args[0] if args else ""
    return dockercfg.server_key(server.split("://", 1)[-1].split("/", 1)[0] if server else "docker.io")


def login(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    key = _server(args)
    username, password = opts.username or "", opts.password or ""
    if opts.password_stdin:
        if password:
            raise CommandError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise CommandError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        cli.error("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    if not username or not password:
        if not sys.stdin.isatty():
            raise CommandError("Error: Cannot perform an interactive login from a non TTY device")
        import getpass
        username = username or input("Username: ").strip()
        password = password or getpass.getpass("Password: ")
    if not username or not password:
        raise CommandError("Error: Non-null Username Required" if not username else "Error: Password Required")
    cli.client.call("POST", "/auth", body={"username": username, "password": password, "serveraddress": key})
    try:
        dockercfg.store(key, username, password)
    except (dockercfg.CredentialsError, OSError) as err:
        raise CommandError(f"Error saving credentials: {err}") from None
    cli.write("Login Succeeded\n")
    return 0


def logout(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    key = _server(args)
    try:
        had = dockercfg.erase(key)
    except (dockercfg.CredentialsError, OSError) as err:
        raise CommandError(str(err)) from None
    cli.write(f"Removing login credentials for {key}\n" if had else f"Not logged in to {key}\n")
    return 0


def manifest_inspect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    """Like `docker manifest inspect`, this asks the registry directly (with config.json's credentials)."""
    from dockyard.registry.client.auth import Credentials
    from dockyard.registry.client.endpoint import RegistryConfig
    from dockyard.registry.client.inspect import pretty, raw_manifest
    from dockyard.registry.client.pull import PullError
    ref = parse_reference(args[0])
    try:
        auth = dockercfg.get(dockercfg.server_key(ref.domain))
        data, _, _ = raw_manifest(str(ref), Credentials.from_dict(auth),
                                  RegistryConfig(insecure=(ref.domain,) if opts.insecure else ()))
    except (PullError, dockercfg.CredentialsError) as err:
        raise CommandError(str(err)) from None
    cli.write(pretty(data) + "\n")
    return 0


COMMANDS = {
    "pull": Command("[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry",
                    [ALL_TAGS, Flag("", "platform", STR, "Set platform if server is multi-platform capable"),
                     QUIET, Flag("", "disable-content-trust", BOOL, "Skip image verification")], pull, 1, 1),
    "push": Command("[OPTIONS] NAME[:TAG]", "Upload an image to a registry",
                    [ALL_TAGS, QUIET, Flag("", "disable-content-trust", BOOL, "Skip image signing")], push, 1, 1),
    "login": Command("[OPTIONS] [SERVER]", "Authenticate to a registry",
                     [Flag("p", "password", STR, "Password"),
                      Flag("", "password-stdin", BOOL, "Take the password from stdin"),
                      Flag("u", "username", STR, "Username")], login, 0, 1),
    "logout": Command("[SERVER]", "Log out from a registry", [], logout, 0, 1),
    "manifest-inspect": Command("[OPTIONS] [MANIFEST_LIST] MANIFEST", "Display an image manifest, or manifest list",
                                [Flag("", "insecure", BOOL, "Allow communication with an insecure registry")],
                                manifest_inspect, 1, 1),
}
