"""`dockyard build` (docker build's flags over the classic /build protocol) and `builder prune`."""

from __future__ import annotations

import io
import os
import sys
from types import SimpleNamespace

from dockyard.cli import buildflags as bf
from dockyard.cli.flags import BOOL, LIST, STR, Command, Flag, check_filter
from dockyard.cli.runner import Cli, CommandError
from dockyard.client.api import APIError
from dockyard.humanize import human_size
from dockyard.runtime import jsonfast as json

TYPE_CHECKING = False  # `typing` costs milliseconds at start-up; annotations are strings anyway
if TYPE_CHECKING:
    from typing import IO

CHUNK = 1 << 20


def _context(cli: Cli, opts: SimpleNamespace, path: str, spool: IO[bytes],
             named: dict[str, str]) -> tuple[str, str]:
    """Write the context tar to spool: (the Dockerfile's name inside it, the incremental context
    session or "" when the whole context is sent). named: --build-context directories (name →
    path), sent beside the context: `c/` holds the context and `n/<name>/` each of them."""
    from dockyard.build.context import EXTERNAL_DOCKERFILE, looks_like_tar, single_file_context
    if path == "-":
        if opts.file == "-":
            raise CommandError("invalid argument: can't use stdin for both build context and dockerfile", 1)
        if named:
            raise CommandError("build contexts from directories need a directory as the main context", 1)
        data = sys.stdin.buffer.read()
        spool.write(data if looks_like_tar(data[:512]) else single_file_context(data).getvalue())
        return opts.file or "Dockerfile", ""
    if "://" in path:
        raise CommandError(f"unable to prepare context: unsupported remote context {path}: "
                           "use a git or HTTP(S) URL", 1)
    if not os.path.isdir(path):
        raise CommandError(f"unable to prepare context: path {path!r} not found", 1)
    root = os.path.abspath(path)
    extra: tuple[str, bytes] | None = None
    if opts.file == "-":
        extra = (EXTERNAL_DOCKERFILE, sys.stdin.buffer.read())
    else:
        dockerfile = os.path.abspath(opts.file) if opts.file else os.path.join(root, "Dockerfile")
        if not opts.file and not os.path.isfile(dockerfile) and os.path.isfile(os.path.join(root, "dockerfile")):
            dockerfile = os.path.join(root, "dockerfile")
            opts.file = dockerfile
        if not os.path.isfile(dockerfile):
            raise CommandError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                               f"lstat {dockerfile}: no such file or directory", 1)
        rel = os.path.relpath(dockerfile, root)
        if rel.startswith(".."):
            with open(dockerfile, "rb") as f:
                extra = (EXTERNAL_DOCKERFILE, f.read())
    name = extra[0] if extra else os.path.relpath(os.path.abspath(opts.file), root) if opts.file else "Dockerfile"
    from dockyard.build.context import context_paths, ignore_patterns
    ignore_beside = os.path.abspath(opts.file) if opts.file and opts.file != "-" else os.path.join(root, name)
    trees = [("c/" if named else "", root, context_paths(root, name, ignore_patterns(root, ignore_beside)))]
    for label, directory in sorted(named.items()):
        trees.append((f"n/{label}/", directory, context_paths(directory)))
    if extra:
        extra = (trees[0][0] + extra[0], extra[1])
    from dockyard.cli.buildcontext import sync, write_tar
    try:
        session = sync(cli.client, trees, extra)
    except APIError as e:
        raise CommandError(f"Error response from daemon: {e}", 1) from None
    if session is None and named:
        raise CommandError("build contexts from directories need a dockyard daemon", 1)
    write_tar(spool, trees if session is None else session[1], extra)
    return name, session[0] if session else ""


def _registry_config() -> str:
    """The X-Registry-Config header of config.json's credentials (base images are pulled with
    them), as the docker CLI sends it; "" when there are none."""
    from dockyard.client import dockercfg
    try:
        auths = dockercfg.all_credentials()
    except dockercfg.CredentialsError as e:
        raise CommandError(str(e), 1) from None
    return dockercfg.registry_auth_header(auths) if auths else ""


class _Spool(io.BytesIO):
    """The context tar in memory, moved to a temporary file past 64 MiB."""

    LIMIT = 64 << 20

    def __init__(self) -> None:
        super().__init__()
        self.file: IO[bytes] | None = None

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.file is None and self.tell() + len(data) > self.LIMIT:
            import tempfile
            self.file = tempfile.TemporaryFile()
            self.file.write(self.getvalue())
        return self.file.write(data) if self.file is not None else super().write(data)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.file.seek(pos, whence) if self.file is not None else super().seek(pos, whence)

    def read(self, size: int | None = -1) -> bytes:
        return self.file.read(size) if self.file is not None else super().read(size)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


def build(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if opts.platform:
        import platform as host
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
        if opts.platform.split(",")[0] not in (f"linux/{arch}", "linux/" + arch + "/"):
            raise CommandError(f"platform {opts.platform} is not supported: dockyard builds for linux/{arch} only "
                               "(no emulation)", 1)
    contexts, named = bf.build_contexts(opts.build_context)
    outputs = [dict(p.partition("=")[::2] for p in o.split(",")) for o in opts.output]
    for out in outputs:
        if out.get("type", "local") not in ("local", "tar", "oci", "docker"):
            raise CommandError(f"unsupported output type {out.get('type')!r}", 1)
    spool = _Spool()
    remote = args[0] if args[0].startswith(bf.REMOTE_PREFIXES) else ""
    if remote:  # the daemon fetches it (docker build's remote= parameter)
        if named:
            raise CommandError("build contexts from directories need a local main context", 1)
        if opts.file == "-":
            raise CommandError("unable to prepare context: a Dockerfile from stdin needs a local context", 1)
        name, session = opts.file or "Dockerfile", ""
    else:
        name, session = _context(cli, opts, args[0], spool, named)
        spool.seek(0)
        extras = [flag for flag, used in (("--build-context", contexts), ("--cache-to", opts.cache_to),
                                          ("--ssh", opts.ssh)) if used]
        if not session and args[0] != "-" and extras:  # a daemon without /build/context would ignore them
            raise CommandError(f"{', '.join(extras)}: this daemon is not a dockyardd: the classic /build "
                               "protocol has no such options", 1)
    query = {"t": opts.tag or None, "dockerfile": name, "q": 1 if opts.quiet else None,
             "nocache": 1 if opts.no_cache else None, "target": opts.target or None,
             "buildargs": json.dumps(bf.key_values(opts.build_arg, "build-arg", True)) if opts.build_arg else None,
             "labels": json.dumps(bf.key_values(opts.label, "label")) if opts.label else None,
             "cachefrom": json.dumps([bf.cache_from(c) for c in opts.cache_from]) if opts.cache_from else None,
             "cacheto": json.dumps([bf.cache_to(c) for c in opts.cache_to]) if opts.cache_to else None,
             "networkmode": opts.network or None, "platform": opts.platform or None,
             "nocachefilter": json.dumps(opts.no_cache_filter) if opts.no_cache_filter else None,
             "remote": remote or None, "buildcontexts": json.dumps(contexts) if contexts else None,
             "pull": 1 if opts.pull else None, "extrahosts": opts.add_host or None}
    if opts.shm_size:
        from dockyard.cli.commands.run import ram_bytes
        query["shmsize"] = ram_bytes(opts.shm_size)
    headers = {"Content-Type": "application/x-tar"}
    if session:
        headers["X-Dockyard-Context"] = session
    auths = _registry_config()
    if auths:
        headers["X-Registry-Config"] = auths
    if opts.ssh:
        headers["X-Dockyard-Build-Ssh"] = bf.b64(json.dumps(bf.ssh_sources(opts.ssh)).encode())
    if opts.secret:
        headers["X-Dockyard-Build-Secrets"] = bf.b64(json.dumps(bf.secrets(opts.secret)).encode())
    progress = opts.progress or "auto"
    if progress not in ("auto", "plain", "tty", "quiet", "rawjson"):
        raise CommandError(f"invalid progress mode {progress!r}: use auto, plain or tty", 125)
    view = None
    if not opts.quiet and (progress == "tty" or (progress == "auto" and sys.stdout.isatty())):
        from dockyard.cli.buildview import LiveView
        view = LiveView()
    write = view.write if view is not None else cli.write
    body = None if remote else iter(lambda: spool.read(CHUNK), b"")
    resp = cli.client.call("POST", "/build", query, body, headers, stream=True)
    image = ""
    try:
        for message in resp.iter_json():
            if message.get("errorDetail") or message.get("error"):
                detail = message.get("errorDetail") or {}
                raise CommandError(detail.get("message") or message["error"], detail.get("code") or 1)
            if "aux" in message:
                image = (message["aux"] or {}).get("ID", image)
            elif message.get("stream") and not opts.quiet and progress != "quiet":
                write(message["stream"])
    finally:
        resp.close()
        spool.close()
        if view is not None:
            view.close(bool(image))
    if opts.quiet:
        cli.write(image + "\n")
    if opts.iidfile:
        with open(opts.iidfile, "w") as f:
            f.write(image)
    if opts.metadata_file:
        import json as indented
        with open(opts.metadata_file, "w") as f:
            indented.dump({"containerimage.config.digest": image, "containerimage.digest": image,
                       "image.name": ",".join(opts.tag)}, f, indent=2)
    for out in outputs:
        _export(cli, image, out)
    return 0


def _export(cli: Cli, image: str, out: dict[str, str]) -> None:
    """--output: the image archive (oci, docker) or its flattened filesystem (local, tar)."""
    kind = out.get("type", "local")
    dest = out.get("dest", "")
    if not dest:
        raise CommandError(f"--output type={kind} requires dest=", 1)
    resp = cli.client.call("GET", "/images/get", {"names": [image]}, stream=True)
    import tempfile
    with tempfile.TemporaryFile() as archive:
        try:
            for chunk in resp.iter_raw():
                archive.write(chunk)
        finally:
            resp.close()
        archive.seek(0)
        if kind in ("oci", "docker"):
            with open(dest, "wb") as f:
                while chunk := archive.read(CHUNK):
                    f.write(chunk)
            return
        from dockyard.cli.flatten import flatten
        flatten(archive, dest, as_tar=(kind == "tar"))


def prune(cli: Cli, opts: SimpleNamespace, args: list[str]) -> int:
    if not opts.force:
        cli.write("WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ")
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = cli.client.call("POST", "/build/prune", {"all": 1 if opts.all else None})
    deleted = result.get("CachesDeleted") or []
    if deleted:
        cli.write("Deleted build cache objects:\n" + "".join(f"{k}\n" for k in deleted))
    cli.write(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
    return 0


COMMANDS = {
    "build": Command("[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
                     [Flag("t", "tag", LIST, "Name and optionally a tag (format: \"name:tag\")"),
                      Flag("f", "file", STR, "Name of the Dockerfile (default: \"PATH/Dockerfile\")"),
                      Flag("", "build-arg", LIST, "Set build-time variables"),
                      Flag("", "target", STR, "Set the target build stage to build"),
                      Flag("", "label", LIST, "Set metadata for an image"),
                      Flag("", "no-cache", BOOL, "Do not use cache when building the image"),
                      Flag("", "no-cache-filter", LIST, "Do not cache specified stages"),
                      Flag("", "cache-from", LIST, "External cache sources (an image, \"type=local,src=DIR\")"),
                      Flag("", "network", STR, "Set the networking mode for the RUN instructions during build"),
                      Flag("", "platform", STR, "Set target platform for build"),
                      Flag("q", "quiet", BOOL, "Suppress the build output and print image ID on success"),
                      Flag("", "iidfile", STR, "Write the image ID to the file"),
                      Flag("", "secret", LIST, "Secret to expose to the build (format: \"id=x,src=file\")"),
                      Flag("o", "output", LIST, "Output destination (format: \"type=local,dest=path\")"),
                      Flag("", "progress", STR, "Set type of progress output (\"auto\", \"plain\", \"tty\")"),
                      Flag("", "pull", BOOL, "Always attempt to pull all referenced images"),
                      Flag("", "rm", BOOL, "Remove intermediate containers after a successful build"),
                      Flag("", "force-rm", BOOL, "Always remove intermediate containers"),
                      Flag("", "metadata-file", STR, "Write build result metadata to a file"),
                      Flag("", "load", BOOL, "Shorthand for \"--output=type=docker\" (images always land here)"),
                      Flag("", "add-host", LIST, "Add a custom host-to-IP mapping (\"host:ip\")"),
                      Flag("", "cache-to", LIST, "Cache export destinations (\"type=local,dest=DIR\", "
                                                 "\"type=inline\")"),
                      Flag("", "provenance", STR, "Provenance attestation (not produced)"),
                      Flag("", "sbom", STR, "SBOM attestation (not produced)"),
                      Flag("", "ssh", LIST, "SSH agent socket or keys to expose to the build "
                                                       "(format: \"default|<id>[=<socket>|<key>[,<key>]]\")"),
                      Flag("", "build-context", LIST, "Additional build contexts (name=DIR|docker-image://REF|"
                                                                 "oci-layout://PATH[:TAG]|git URL)"),
                      Flag("", "shm-size", STR, "Size of /dev/shm"),
                      Flag("m", "memory", STR, "Memory limit"),
                      Flag("", "cgroup-parent", STR, "Set the parent cgroup for RUN instructions"),
                      Flag("", "ulimit", LIST, "Ulimit options"),
                      Flag("", "compress", BOOL, "Compress the build context using gzip")],
                     build, 1, 1),
    "prune": Command("[OPTIONS]", "Remove build cache",
                     [Flag("a", "all", BOOL, "Remove all unused build cache, not just dangling ones"),
                      Flag("f", "force", BOOL, "Do not prompt for confirmation"),
                      Flag("", "filter", LIST, "Provide filter values", check=check_filter),
                      Flag("", "keep-storage", STR, "Amount of disk space to keep for cache")], prune, 0, 0),
}
