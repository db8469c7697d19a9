"""images / image ls, image inspect, history, tag, rmi, image prune, save, load, import."""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace

from dockyard.cli import format as fmt
from dockyard.cli.flags import BOOL, LIST, STR, Command, Flag, check_filter, parse_filters
from dockyard.cli.runner import Cli, CommandError
from dockyard.client.api import APIError
from dockyard.client.http import Response

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds to import; annotations only
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

FORMAT = Flag("", "format", STR, "Format output using a custom template")
QUIET = Flag("q", "quiet", BOOL, "Only show image IDs")
NO_TRUNC = Flag("", "no-trunc", BOOL, "Don't truncate output")
FORCE = Flag("f", "force", BOOL, "Do not prompt for confirmation")
LS_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
              "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
              "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "SIZE"}
CHUNK = 256 * 1024


def go_time(stamp: float) -> str:
    """Go's time.Time.String() in local time: '2026-05-07 20:33:45 +0000 UTC'."""
    local = time.localtime(stamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)


def rfc3339(stamp: float) -> str:
    """Go's RFC 3339 in local time: '2026-05-07T20:33:45Z' (UTC) or '...+02:00'."""
    local = time.localtime(stamp)
    offset = local.tm_gmtoff // 60
    zone = "Z" if not offset else f"{'+' if offset > 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def _size_or_na(value: int | None) -> str:
    return "N/A" if value is None or value < 0 else fmt.human_size(value)


def image_rows(image: dict[str, Any], no_trunc: bool) -> Iterator[dict[str, str]]:
    """docker's rows for one image: one per repo:tag (digest matched by repository), else <none>."""
    digests = {d.rpartition("@")[0]: d.rpartition("@")[2] for d in image.get("RepoDigests") or []}
    pairs = []
    for ref in image.get("RepoTags") or []:
        if ref == "<none>:<none>":
            continue
        slash = ref.rfind("/")
        colon = ref.rfind(":")
        repo, tag = (ref[:colon], ref[colon + 1:]) if colon > slash else (ref, "<none>")
        pairs.append((repo, tag, digests.get(repo, "<none>")))
    tagged = {repo for repo, _, _ in pairs}
    pairs += [(repo, "<none>", digest) for repo, digest in digests.items() if repo not in tagged]
    if not pairs:
        pairs = [("<none>", "<none>", "<none>")]
    created = image.get("Created") or 0
    for repo, tag, digest in pairs:
        yield {"Containers": "N/A" if image.get("Containers", -1) < 0 else str(image["Containers"]),
               "CreatedAt": go_time(created), "CreatedSince": fmt.since(created), "Digest": digest,
               "ID": image["Id"] if no_trunc else fmt.short_id(image["Id"]), "Repository": repo,
               "SharedSize": _size_or_na(image.get("SharedSize")), "Size": fmt.human_size(image.get("Size") or 0),
               "Tag": tag, "UniqueSize": _size_or_na(image["Size"] - image["SharedSize"])
               if image.get("SharedSize", -1) >= 0 else "N/A",
               "VirtualSize": fmt.human_size(image.get("VirtualSize", image.get("Size") or 0), 4)}


def ls(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    filters = parse_filters(opts.filter)
    if args:
        filters.setdefault("reference", {})[args[0]] = True
    images = cli.client.images(opts.all, filters, opts.digests)
    if opts.quiet:
        rows = [row["ID"] for image in images for row in image_rows(image, opts.no_trunc)]  # one per tag, as docker
        cli.write("".join(f"{i}\n" for i in rows))
        return 0
    rows = [row for image in images for row in image_rows(image, opts.no_trunc)]
    default = "{{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if opts.digests else "") + \
        "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    fmt.print_objects(rows, opts.format or "", default, LS_HEADERS, cli.write)
    return 0


def inspect(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    """`image inspect`: the generic inspect restricted to images."""
    from dockyard.cli.commands.inspect import inspect as inspect_objects

    return inspect_objects(cli, SimpleNamespace(type="image", size=False, format=opts.format), args)


def history(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    entries = cli.client.history(args[0])
    if opts.quiet:
        cli.write("".join(f"{e['Id'] if opts.no_trunc else fmt.short_id(e['Id'])}\n" for e in entries))
        return 0
    rows = []
    for entry in entries:
        created_by = entry.get("CreatedBy", "").replace("\t", " ")
        image_id = entry["Id"] if opts.no_trunc or entry["Id"] == "<missing>" else fmt.short_id(entry["Id"])
        created = entry.get("Created") or 0
        rows.append({"ID": image_id, "CreatedBy": created_by if opts.no_trunc else fmt.ellipsis(created_by, 45),
                     "CreatedSince": fmt.since(created) if opts.human else rfc3339(created),
                     "CreatedAt": rfc3339(created),
                     "Size": fmt.human_size(entry.get("Size") or 0) if opts.human else str(entry.get("Size") or 0),
                     "Comment": entry.get("Comment", "")})
    headers = {"ID": "IMAGE", "CreatedSince": "CREATED" if opts.human else "CREATED AT", "CreatedAt": "CREATED AT",
               "CreatedBy": "CREATED BY",
               "Size": "SIZE", "Comment": "COMMENT"}
    fmt.print_objects(rows, opts.format or "", "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
                      headers, cli.write)
    return 0


def split_reference(ref: str) -> tuple[str, str]:
    """'repo[:tag]' → (repo, tag); the tag defaults to 'latest'."""
    if "@" in ref:
        raise CommandError("refusing to create a tag with a digest reference")
    slash, colon = ref.rfind("/"), ref.rfind(":")
    return (ref[:colon], ref[colon + 1:]) if colon > slash else (ref, "latest")


def tag(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    from dockyard.image.reference import InvalidReference, parse_normalized
    try:
        parse_normalized(args[1])
    except InvalidReference as exc:
        raise CommandError(f'Error parsing reference: "{args[1]}" is not a valid repository/tag: {exc}') from None
    repo, tag_name = split_reference(args[1])
    cli.client.tag(args[0], repo, tag_name)
    return 0


def rm(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    errors, fatal = [], False
    for name in args:
        try:
            deleted = cli.client.remove_image(name, opts.force, opts.no_prune)
        except APIError as exc:
            fatal = fatal or exc.status != 404
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        for item in deleted or []:
            cli.write("".join(f"{key}: {value}\n" for key, value in item.items()))
    if errors:
        if not opts.force or fatal:
            raise CommandError("\n".join(errors))
        cli.error("\n".join(errors))
    return 0


def confirm(cli: Cli, warning: str) -> bool:
    """docker's prompt: the warning, then 'Are you sure you want to continue? [y/N] '."""
    cli.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    cli.out.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def print_pruned(cli: Cli, title: str, lines: list[str], reclaimed: int) -> None:
    """'Deleted Images:' + lines, then 'Total reclaimed space: ...' as docker prints it."""
    if lines:
        cli.write(f"{title}\n" + "".join(f"{line}\n" for line in lines) + "\n")
    cli.write(f"Total reclaimed space: {fmt.human_size(reclaimed, 4)}\n")


def prune(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    filters = parse_filters(opts.filter)
    filters["dangling"] = {"false" if opts.all else "true": True}
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if opts.all else "WARNING! This will remove all dangling images.")
    if not opts.force and not confirm(cli, warning):
        return 0
    report = cli.client.prune_images(filters)
    lines = [f"{key.lower()}: {value}" for item in report.get("ImagesDeleted") or [] for key, value in item.items()]
    print_pruned(cli, "Deleted Images:", lines, report.get("SpaceReclaimed") or 0)
    return 0


def check_output_path(output: str | None, failure: str) -> None:
    """docker's check of -o before anything is asked of the daemon: its directory must exist, and
    the path must not be a directory."""
    if not output:
        return
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.exists(directory):
        raise CommandError(f"{failure}: invalid output path: stat {directory}: no such file or directory")
    if not os.path.isdir(directory):
        raise CommandError(f'{failure}: invalid output path: "{directory}" must be a directory')
    if os.path.isdir(output):
        raise CommandError(f'{failure}: invalid output path: "{output}" is a directory')


def write_output(resp: Response, output: str | None, failure: str) -> None:
    """A streamed body to stdout, or to the file output (through a temporary file beside it)."""
    try:
        if not output:
            out = sys.stdout.buffer
            for data in resp.iter_raw():
                out.write(data)
            out.flush()
            return
        directory = os.path.dirname(os.path.abspath(output))
        tmp = os.path.join(directory, f".docker_temp_{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                for data in resp.iter_raw():
                    out.write(data)
            os.replace(tmp, output)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise CommandError(f"{failure}: {exc.strerror}: {output}") from None
    finally:
        resp.close()


def save(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if not opts.output and sys.stdout.isatty():
        raise CommandError("Cowardly refusing to save to a terminal. Use the -o flag or redirect")
    check_output_path(opts.output, "failed to save image")
    write_output(cli.client.save(args), opts.output, "failed to save image")
    return 0


def read_chunks(path: str | None) -> Iterator[bytes]:
    """The bytes of a file ('-' or None: stdin) in pieces."""
    if path in (None, "-"):
        stream = sys.stdin.buffer
        yield from iter(lambda: stream.read1(CHUNK), b"")
        return
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(CHUNK), b"")


def display_messages(cli: Cli, resp: Response, write: Callable[[str], Any] | None = None) -> None:
    """A JSON message stream (load, import, pull): stream text and status lines (to write, stdout
    by default); errors raise."""
    write = write or cli.write
    try:
        for message in resp.iter_json():
            if message.get("errorDetail") or message.get("error"):
                raise CommandError((message.get("errorDetail") or {}).get("message") or message["error"])
            if message.get("stream"):
                write(message["stream"])
            elif message.get("status"):
                prefix = f"{message['id']}: " if message.get("id") else ""
                write(f"{prefix}{message['status']} {message.get('progress') or ''}".rstrip() + "\n")
    finally:
        resp.close()


def load(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if not opts.input and sys.stdin.isatty():
        raise CommandError("requested load from stdin, but stdin is empty")
    try:
        chunks = read_chunks(opts.input)
        first = next(chunks, b"")
    except OSError as exc:
        raise CommandError(f"open {opts.input}: {exc.strerror.lower() if exc.strerror else exc}") from None
    quiet = opts.quiet or not sys.stdout.isatty()
    display_messages(cli, cli.client.load(_prepend(first, chunks), quiet))
    return 0


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def import_(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    source = args[0]
    repo, tag_name = split_reference(args[1]) if len(args) > 1 else (None, None)
    remote = "://" in source
    if not remote and source != "-" and not os.path.exists(source):
        raise CommandError(f"open {source}: no such file or directory")
    data = None if remote else read_chunks(source)
    resp = cli.client.import_image(data, source if remote else "-", repo, tag_name, opts.message, opts.change)
    display_messages(cli, resp)
    return 0


COMMANDS = {
    "ls": Command("[OPTIONS] [REPOSITORY[:TAG]]", "List images",
                  [Flag("a", "all", BOOL, "Show all images (default hides intermediate images)"),
                   Flag("", "digests", BOOL, "Show digests"),
                   Flag("f", "filter", LIST, "Filter output based on conditions provided", check=check_filter),
                   FORMAT, NO_TRUNC, QUIET], ls, 0, 1),
    "inspect": Command("[OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images",
                       [Flag("f", "format", STR, "Format output using a custom template")], inspect, 1),
    "history": Command("[OPTIONS] IMAGE", "Show the history of an image",
                       [FORMAT, Flag("H", "human", BOOL, "Print sizes and dates in human readable format", True),
                        NO_TRUNC, QUIET], history, 1, 1),
    "tag": Command("SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                   "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", [], tag, 2, 2, interspersed=False),
    "rm": Command("[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images",
                  [Flag("f", "force", BOOL, "Force removal of the image"),
                   Flag("", "no-prune", BOOL, "Do not delete untagged parents")], rm, 1),
    "prune": Command("[OPTIONS]", "Remove unused images",
                     [Flag("a", "all", BOOL, "Remove all unused images, not just dangling ones"),
                      Flag("", "filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\")", check=check_filter), FORCE],
                     prune, 0, 0),
    "save": Command("[OPTIONS] IMAGE [IMAGE...]",
                    "Save one or more images to a tar archive (streamed to STDOUT by default)",
                    [Flag("o", "output", STR, "Write to a file, instead of STDOUT")], save, 1),
    "load": Command("[OPTIONS]", "Load an image from a tar archive or STDIN",
                    [Flag("i", "input", STR, "Read from tar archive file, instead of STDIN"),
                     Flag("q", "quiet", BOOL, "Suppress the load output")], load, 0, 0),
    "import": Command("[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                      "Import the contents from a tarball to create a filesystem image",
                      [Flag("c", "change", LIST, "Apply Dockerfile instruction to the created image"),
                       Flag("m", "message", STR, "Set commit message for imported image"),
                       Flag("", "platform", STR, "Set platform if server is multi-platform capable")],
                      import_, 1, 2),
}
