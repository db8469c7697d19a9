"""dockyard-image: a temporary command line over the image store, until the daemon serves these
operations. Output and errors follow the docker CLI; exit status 0, or 1 on any error."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from dockyard.humanize import human_duration, human_size
from dockyard.image import digest as digests
from dockyard.image.store import DEFAULT_ROOT, ImageStore


def created_ago(created: int, now: float | None = None) -> str:
    """The CREATED column: "N/A" for an unknown time, else "<duration> ago"."""
    if created <= 0:
        return "N/A"
    return human_duration((time.time() if now is None else now) - created) + " ago"


def table(rows: list[list[str]]) -> str:
    """Columns padded like the docker CLI's tabwriter (3 spaces between columns)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("".join(cell.ljust(w + 3) for cell, w in zip(row[:-1], widths, strict=False)) + row[-1]
                     for row in rows)


def ellipsis(text: str, width: int) -> str:
    """Truncate to width characters, the last one "…" (docker's formatter.Ellipsis)."""
    return text if len(text) <= width else text[:width - 1] + "…"


# -- commands ------------------------------------------------------------------------------------

def cmd_bootstrap(store: ImageStore, args: argparse.Namespace) -> None:
    kind, _, suite = args.image.partition(":")
    if kind == "busybox":
        from dockyard.image.bootstrap import bootstrap_busybox

        image_id = bootstrap_busybox(store, args.tag or "busybox:latest")
    elif kind == "debian":
        from dockyard.image.bootstrap_debian import bootstrap_debian

        image_id = bootstrap_debian(store, suite or "bookworm", args.tag)
    else:
        raise ValueError(f"unknown bootstrap image {args.image!r}: expected busybox or debian[:suite]")
    print(image_id)


def cmd_images(store: ImageStore, args: argparse.Namespace) -> None:
    images = store.list(all=args.all, filters=_filters(args.filter))
    if args.quiet:
        seen: dict[str, None] = {}
        for image in images:
            seen.setdefault(digests.short_id(image["Id"]))
        if seen:
            print("\n".join(seen))
        return
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for image in images:
        short, created, size = digests.short_id(image["Id"]), created_ago(image["Created"]), human_size(image["Size"])
        pairs = [tag.rpartition(":")[::2] for tag in image["RepoTags"]] or [
            (d.partition("@")[0], "<none>") for d in image["RepoDigests"][:1]] or [("<none>", "<none>")]
        rows += [[repo, tag, short, created, size] for repo, tag in pairs]
    print(table(rows))


def cmd_inspect(store: ImageStore, args: argparse.Namespace) -> None:
    results, failed = [], None
    for ref in args.refs:
        try:
            results.append(store.inspect(ref))
        except LookupError as err:
            failed = err
    print(json.dumps(results, indent=4))
    if failed is not None:
        raise failed


def cmd_history(store: ImageStore, args: argparse.Namespace) -> None:
    rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for entry in store.history(args.ref):
        image = entry["Id"] if entry["Id"] == "<missing>" else digests.short_id(entry["Id"])
        created_by = entry["CreatedBy"].replace("\t", " ")
        rows.append([image, created_ago(entry["Created"]), created_by if args.no_trunc else ellipsis(created_by, 45),
                     human_size(entry["Size"]), entry["Comment"]])
    print(table(rows))


def cmd_tag(store: ImageStore, args: argparse.Namespace) -> None:
    store.tag(args.source, args.target)


def cmd_rmi(store: ImageStore, args: argparse.Namespace) -> None:
    failed = None
    for ref in args.refs:
        try:
            for item in store.remove(ref, force=args.force, prune_children=not args.no_prune):
                print(f"Untagged: {item['Untagged']}" if "Untagged" in item else f"Deleted: {item['Deleted']}")
        except Exception as err:
            _error(err)
            failed = err
    if failed is not None:
        raise SystemExit(1)


def cmd_prune(store: ImageStore, args: argparse.Namespace) -> None:
    if not args.force:
        what = "all images without at least one container associated to them" if args.all else "all dangling images"
        sys.stdout.write(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return
    report = store.prune(dangling_only=not args.all, filters=_filters(args.filter))
    deleted = report["ImagesDeleted"] or []
    if deleted:
        print("Deleted Images:")
        for item in deleted:
            print(f"untagged: {item['Untagged']}" if "Untagged" in item else f"deleted: {item['Deleted']}")
        print()
    print(f"Total reclaimed space: {human_size(report['SpaceReclaimed'], 4)}")


def _archive(module_name: str, name: str) -> Callable[..., Any]:
    """A function of the archive package (written in parallel), or a clear error without it."""
    try:
        module = importlib.import_module(f"dockyard.image.archive.{module_name}")
    except ImportError:
        module = None
    function = getattr(module, name, None)
    if function is None:
        raise RuntimeError(f"dockyard.image.archive.{module_name}.{name} is not available in this build")
    return function


def cmd_save(store: ImageStore, args: argparse.Namespace) -> None:
    if sys.stdout.isatty() and not args.output:
        raise RuntimeError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    save = _archive("docker_archive", "save")
    if args.output:
        with open(args.output, "wb") as out:
            save(store, args.refs, out)
    else:
        save(store, args.refs, sys.stdout.buffer)


def cmd_load(store: ImageStore, args: argparse.Namespace) -> None:
    load = _archive("docker_archive", "load")
    if args.input:
        with open(args.input, "rb") as source:
            messages = load(store, source)
    else:
        messages = load(store, sys.stdin.buffer)
    for line in messages or []:
        print(line)


def cmd_import(store: ImageStore, args: argparse.Namespace) -> None:
    import_tarball = _archive("importer", "import_tarball")
    options = {"changes": args.change or [], "message": args.message or None}
    if args.file == "-":
        print(import_tarball(store, sys.stdin.buffer, args.ref, source="-", **options))
    else:
        with open(args.file, "rb") as source:
            print(import_tarball(store, source, args.ref, source=args.file, **options))


def _filters(values: list[str] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep:
            raise ValueError(f"bad format of filter (expected name=value): {value}")
        out.setdefault(key, []).append(rest)
    return out


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="dockyard-image", description="dockyard image store (temporary CLI)")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"image store root (default {DEFAULT_ROOT})")
    p.add_argument("--snapshotter", default="overlay", choices=("overlay", "vfs"))
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[ImageStore, argparse.Namespace], None], **kw: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, **kw)
        sp.set_defaults(handler=handler)
        return sp

    sp = add("bootstrap", cmd_bootstrap, help="build an offline base image: busybox or debian[:suite]")
    sp.add_argument("image")
    sp.add_argument("--tag", "-t")
    sp = add("images", cmd_images, help="list images")
    sp.add_argument("-a", "--all", action="store_true")
    sp.add_argument("-q", "--quiet", action="store_true")
    sp.add_argument("-f", "--filter", action="append")
    sp = add("inspect", cmd_inspect, help="display detailed information on images")
    sp.add_argument("refs", nargs="+")
    sp = add("history", cmd_history, help="show the history of an image")
    sp.add_argument("--no-trunc", action="store_true")
    sp.add_argument("ref")
    sp = add("tag", cmd_tag, help="create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    sp.add_argument("source")
    sp.add_argument("target")
    sp = add("rmi", cmd_rmi, help="remove images")
    sp.add_argument("-f", "--force", action="store_true")
    sp.add_argument("--no-prune", action="store_true")
    sp.add_argument("refs", nargs="+")
    sp = add("prune", cmd_prune, help="remove unused images")
    sp.add_argument("-a", "--all", action="store_true")
    sp.add_argument("-f", "--force", action="store_true")
    sp.add_argument("--filter", action="append")
    sp = add("save", cmd_save, help="save images to a tar archive")
    sp.add_argument("-o", "--output")
    sp.add_argument("refs", nargs="+")
    sp = add("load", cmd_load, help="load images from a tar archive")
    sp.add_argument("-i", "--input")
    sp = add("import", cmd_import, help="import a root filesystem tarball as an image")
    sp.add_argument("-c", "--change", action="append")
    sp.add_argument("-m", "--message", default="")
    sp.add_argument("file")
    sp.add_argument("ref", nargs="?")
    return p


def _error(err: BaseException) -> None:
    print(f"Error response from daemon: {err.args[0] if err.args else err}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of dockyard-image."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 1
    try:
        store = ImageStore(args.root, args.snapshotter)
    except OSError as err:
        _error(err)
        return 1
    try:
        args.handler(store, args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as err:  # every failure is reported as docker reports daemon errors
        _error(err)
        return 1
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
