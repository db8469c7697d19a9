"""cp, diff, export, commit: a container's files, both directions, as the docker CLI does them
(archives written by the image store's layer writer, unpacked by its safe layer applier)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
import threading
from types import SimpleNamespace

from dockyard.cli.commands.images import check_output_path, write_output
from dockyard.cli.flags import BOOL, LIST, STR, Command, Flag
from dockyard.cli.runner import Cli, CommandError
from dockyard.client.api import APIError

TYPE_CHECKING = False  # typing costs 5 ms to import; annotations only
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

GO_MODE_DIR = 1 << 31
KINDS = {0: "C", 1: "A", 2: "D"}


def split_cp_arg(arg: str) -> tuple[str, str]:
    """'CONTAINER:PATH' → (container, path); a local path (absolute, or starting with '.') → ('', arg)."""
    container, sep, path = arg.partition(":")
    if arg.startswith("/") or not sep or container.startswith("."):
        return "", arg
    return container, path


def path_stat(cli: Cli, container: str, path: str) -> dict[str, Any] | None:
    """The container path's stat (HEAD archive), None when it does not exist."""
    try:
        resp = cli.client.call("HEAD", f"/containers/{container}/archive", {"path": path}, stream=True)
    except APIError as exc:
        if exc.status == 404:
            return None
        raise
    resp.close()
    return json.loads(base64.b64decode(resp.headers.get("x-docker-container-path-stat", "") or "e30="))


def tar_chunks(path: str, name: str) -> Iterator[bytes]:
    """A tar of the local path (entries named name, name/...) produced in a thread."""
    from dockyard.image.layer_diff import write_tree

    read_fd, write_fd = os.pipe()

    def produce() -> None:
        with open(write_fd, "wb") as out:
            try:
                write_tree(path, out, name)
            except BrokenPipeError:
                pass

    threading.Thread(target=produce, daemon=True).start()
    with open(read_fd, "rb") as source:
        while data := source.read(65536):
            yield data


def copy_to(cli: Cli, opts: SimpleNamespace, src: str, container: str, dst: str) -> None:
    """Host (or a tar on stdin) → container."""
    query = {"noOverwriteDirNonDir": "true", "copyUIDGID": "true" if opts.archive else None}
    if src == "-":
        body = iter(lambda: sys.stdin.buffer.read(65536), b"")
        cli.client.call("PUT", f"/containers/{container}/archive", {"path": dst, **query}, body,
                        {"Content-Type": "application/x-tar"})
        return
    local = os.path.realpath(src) if opts.follow_link else src
    if not os.path.lexists(local):
        raise CommandError(f"lstat {os.path.abspath(src)}: no such file or directory")
    is_dir = os.path.isdir(local) and not os.path.islink(local)
    found = path_stat(cli, container, dst)
    if found and found.get("linkTarget"):
        dst = found["linkTarget"]
        found = path_stat(cli, container, dst)
    if found is None:
        if dst.endswith("/") and not is_dir:  # a directory is copied under the new name (the PUT names a missing container)
            raise CommandError("no such directory")
        target, name = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst.rstrip("/"))
    elif found["mode"] & GO_MODE_DIR:
        target, name = dst, "." if src.endswith("/.") else os.path.basename(os.path.abspath(src))
    elif is_dir:
        raise CommandError("cannot copy directory")
    else:
        target, name = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst)
    cli.client.call("PUT", f"/containers/{container}/archive", {"path": target, **query}, tar_chunks(local, name),
                    {"Content-Type": "application/x-tar"})


def copy_from(cli: Cli, opts: SimpleNamespace, container: str, src: str, dst: str) -> None:
    """Container → host (or a tar on stdout)."""
    from dockyard.image.layer_apply import LayerApplyError, apply_layer

    if dst != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(dst)) or "/"):
        raise CommandError(f'invalid output path: directory "{os.path.dirname(os.path.abspath(dst))}" does not exist')
    path, name = src, os.path.basename(src.rstrip("/")) or "/"
    if opts.follow_link:
        found = path_stat(cli, container, src)
        if found and found.get("linkTarget"):
            path = found["linkTarget"]
    resp = cli.client.call("GET", f"/containers/{container}/archive", {"path": path}, stream=True)
    try:
        if dst == "-":
            write_output(resp, None, "failed to copy")
            return
        stat = json.loads(base64.b64decode(resp.headers.get("x-docker-container-path-stat", "") or "e30="))
        src_dir = bool(stat.get("mode", 0) & GO_MODE_DIR)
        into = os.path.isdir(dst)
        if not into and os.path.exists(dst) and src_dir:
            raise CommandError("cannot copy directory")
        if dst.endswith("/") and not into:
            raise CommandError(f'destination "{dst}" must be a directory' if not src_dir else "no such directory")
        if into and path == src and (src.endswith("/.") or not src.strip("/") or not src_dir or not os.path.lexists(os.path.join(dst, name))):
            apply_layer(_Stream(resp.iter_raw()), os.path.realpath(dst), whiteouts="naive", same_owner=opts.archive)
            return
        final = os.path.join(dst, name) if into else dst
        if src.endswith("/.") or not src.strip("/"):  # the directory's contents (the daemon names them "."), into final
            os.makedirs(final, exist_ok=True)
            apply_layer(_Stream(resp.iter_raw()), os.path.realpath(final), whiteouts="naive",
                        same_owner=opts.archive)
            return
        staging = tempfile.mkdtemp(prefix=".dockyard-cp-", dir=os.path.dirname(os.path.abspath(final)))
        try:
            apply_layer(_Stream(resp.iter_raw()), staging, whiteouts="naive", same_owner=opts.archive)
            (top,) = os.listdir(staging)
            if os.path.isdir(final) and not os.path.islink(final):
                shutil.copytree(os.path.join(staging, top), final, symlinks=True, dirs_exist_ok=True)
            else:
                os.replace(os.path.join(staging, top), final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except LayerApplyError as exc:
        raise CommandError(str(exc)) from None
    finally:
        resp.close()


class _Stream:
    """A read()-able file over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            data = next(self._chunks, b"")
            if not data:
                break
            self._buf += data
        out, self._buf = (self._buf, b"") if size < 0 else (self._buf[:size], self._buf[size:])
        return out


def cp(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    (src_container, src), (dst_container, dst) = split_cp_arg(args[0]), split_cp_arg(args[1])
    if src_container and dst_container:
        raise CommandError("copying between containers is not supported")
    if not src_container and not dst_container:
        raise CommandError("must specify at least one container source")
    if src_container:
        copy_from(cli, opts, src_container, src, dst)
    else:
        copy_to(cli, opts, src, dst_container, dst)
    return 0


def diff(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    changes = cli.client.call("GET", f"/containers/{args[0]}/changes") or []
    cli.write("".join(f"{KINDS.get(c['Kind'], '?')} {c['Path']}\n" for c in changes))
    return 0


def export(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if not opts.output and sys.stdout.isatty():
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    check_output_path(opts.output, "failed to export container")
    write_output(cli.client.call("GET", f"/containers/{args[0]}/export", stream=True), opts.output,
                 "failed to export container")
    return 0


def commit(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    repo, tag = "", ""
    if len(args) > 1:
        from dockyard.image.reference import InvalidReference, parse_normalized
        try:
            parse_normalized(args[1])
        except InvalidReference as exc:
            raise CommandError(str(exc)) from None
        repo, _, tag = args[1].rpartition(":") if ":" in args[1].rsplit("/", 1)[-1] else (args[1], "", "")
    query = {"container": args[0], "repo": repo or None, "tag": tag or None, "comment": opts.message or None,
             "author": opts.author or None, "pause": "1" if opts.pause else "0", "changes": opts.change or None}
    cli.write(cli.client.call("POST", "/commit", query, {})["Id"] + "\n")
    return 0


COMMANDS = {
    "cp": Command("[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
                  "Copy files/folders between a container and the local filesystem",
                  [Flag("a", "archive", BOOL, "Archive mode (copy all uid/gid information)"),
                   Flag("L", "follow-link", BOOL, "Always follow symbol link in SRC_PATH"),
                   Flag("q", "quiet", BOOL, "Suppress progress output during copy")], cp, 2, 2),
    "diff": Command("CONTAINER", "Inspect changes to files or directories on a container's filesystem", [], diff, 1, 1),
    "export": Command("[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive",
                      [Flag("o", "output", STR, "Write to a file, instead of STDOUT")], export, 1, 1),
    "commit": Command("[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes",
                      [Flag("a", "author", STR, 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
                       Flag("c", "change", LIST, "Apply Dockerfile instruction to the created image"),
                       Flag("m", "message", STR, "Commit message"),
                       Flag("p", "pause", BOOL, "Pause container during commit", True)], commit, 1, 2),
}
