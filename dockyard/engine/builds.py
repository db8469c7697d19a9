"""The daemon's builder service: contexts unpacked, the library's Builder run with a RUN
executor made of dockyard-runtime bundles (no shim: a RUN is a foreground process), results
tagged, the cache pruned."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from dockyard.build.builder import Builder, BuildError, BuildOptions, NamedContext
from dockyard.build.cache import BuildCache
from dockyard.build.cacheio import CacheIOError, layout_image
from dockyard.build.context import ContextError, extract, looks_like_tar, single_file_context
from dockyard.build.contextsync import ContextStore
from dockyard.build.executor import STDERR_END, STDERR_START, RunRequest
from dockyard.build.remote import RemoteError, download, git_clone, is_git_url
from dockyard.build.sshagent import AgentError, start_agent
from dockyard.engine.containers.errors import ContainerError
from dockyard.engine.containers.etcfiles import extra_host_lines
from dockyard.engine.containers.security import DEFAULT_CAPS, seccomp_config
from dockyard.engine.containers.users import resolve_user
from dockyard.engine.registry import RegistryService
from dockyard.image import reference
from dockyard.image.snapshot import unmount
from dockyard.image.snapshot.mount import mounts_under
from dockyard.image.store import ImageStore
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.endpoint import credentials_for
from dockyard.registry.client.pull import PullError, pull
from dockyard.runtime.spec_template import default_spec
from dockyard.shim.client import is_own_runtime
from dockyard.shim.forkserver import ForkServer, ForkServerUnavailable

CGROUP_PARENT_ENV = "DOCKYARD_BUILD_CGROUP_PARENT"


class RuntimeExecutor:
    """RUN steps as `dockyard-runtime run` of a bundle whose root is the step's mounted rootfs."""

    def __init__(self, runtime: str, runtime_root: str, work_root: str) -> None:
        self.runtime = runtime
        self.runtime_root = runtime_root
        self.work_root = work_root
        self.cgroup_parent = os.environ.get(CGROUP_PARENT_ENV, "/dockyard-build")
        self.forkserver: ForkServer | None = None  # the daemon's: RUN steps are forks of it
        # a step's sandbox on a user-defined network: (network, step ID, hostname, files dir, extra
        # hosts) → (netns path, hosts path, resolv.conf path); the engine's ContainerService.build_sandbox
        self.sandboxes: Callable[[str, str, str, str, list[str]],
                                 contextlib.AbstractContextManager[tuple[str, str, str]]] | None = None

    def resolve_user(self, rootfs: str, user: str) -> tuple[int, int]:
        """USER / --chown names looked up in the rootfs's passwd and group files."""
        try:
            found = resolve_user(rootfs, user)
        except ContainerError as e:
            raise LookupError(str(e)) from None
        return found["uid"], found["gid"]

    def _sandbox(self, req: RunRequest, cid: str,
                 bundle: str) -> contextlib.AbstractContextManager[tuple[str, str, str] | None]:
        """The step's sandbox when its network is a user-defined one (None: the host's or none)."""
        if req.network in ("default", "host", "none"):
            return contextlib.nullcontext()
        if self.sandboxes is None:
            raise BuildError(f"network mode {req.network!r} is not supported for builds")
        return self.sandboxes(req.network, cid, req.hostname, bundle, list(req.extra_hosts))

    def _spec(self, req: RunRequest, cid: str, bundle: str, sandbox: tuple[str, str, str] | None) -> dict:
        spec = default_spec(req.args, terminal=False, rootfs=req.rootfs, hostname=req.hostname)
        process = spec["process"]
        process["env"] = list(req.env)
        process["cwd"] = req.cwd
        try:
            found = resolve_user(req.rootfs, req.user)
        except ContainerError as e:
            raise BuildError(str(e)) from None
        process["user"] = {k: found[k] for k in ("uid", "gid", "additionalGids") if k in found}
        process["capabilities"] = {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")}
        process["noNewPrivileges"] = False
        spec["root"] = {"path": req.rootfs, "readonly": False}
        linux = spec["linux"]
        linux["seccomp"] = seccomp_config(None, DEFAULT_CAPS, False)  # Docker's default profile, as BuildKit
        linux["cgroupsPath"] = f"{self.cgroup_parent.rstrip('/')}/{cid}"
        if req.network in ("default", "host"):
            linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
            for name in ("resolv.conf", "hosts"):
                if os.path.exists(f"/etc/{name}") and not (name == "hosts" and req.extra_hosts):
                    spec["mounts"].append({"destination": f"/etc/{name}", "type": "bind",
                                           "source": os.path.realpath(f"/etc/{name}"), "options": ["rbind", "ro"]})
        if sandbox is not None:
            netns_path, hosts, resolv_conf = sandbox
            linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"] + [
                {"type": "network", "path": netns_path}]
            spec["mounts"] += [{"destination": f"/etc/{name}", "type": "bind", "source": source,
                                "options": ["rbind", "ro"]} for name, source in (("hosts", hosts),
                                                                                ("resolv.conf", resolv_conf))]
        elif req.extra_hosts:
            spec["mounts"].append({"destination": "/etc/hosts", "type": "bind", "options": ["rbind", "ro"],
                                   "source": self._hosts_file(req, bundle)})
        if req.shm_size > 0:
            for mount in spec["mounts"]:
                if mount["destination"] == "/dev/shm":
                    mount["options"] = [o for o in mount["options"] if not o.startswith("size=")] + [
                        f"size={req.shm_size}"]
        spec["mounts"].extend(req.mounts)
        return spec

    @staticmethod
    def _hosts_file(req: RunRequest, bundle: str) -> str:
        """/etc/hosts for a step with extra hosts: the host's (its network) or localhost's lines,
        then the entries."""
        base = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        if req.network in ("default", "host"):
            with contextlib.suppress(OSError), open("/etc/hosts") as f:
                base = f.read()
        path = os.path.join(bundle, "hosts")
        with open(path, "w") as f:
            f.write(base.rstrip("\n") + "\n" + "".join(line + "\n" for line in extra_host_lines(req.extra_hosts)))
        return path

    def _run_forked(self, argv: list[str], output: Callable[[bytes], None]) -> int:
        """`runtime run` forked by the fork server (dockyard-runtime in a fork of its interpreter)."""
        assert self.forkserver is not None
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                spawned = self.forkserver.spawn(argv, null, out_w, err_w,
                                                is_own_runtime(self.runtime, sys.executable))
            finally:
                for fd in (out_w, err_w, null):  # the child's ends: EOF once it is done
                    os.close(fd)
            _copy_output(out_r, err_r, output)
        finally:
            os.close(out_r)
            os.close(err_r)
        return spawned.wait()

    def run(self, req: RunRequest, output: Callable[[bytes], None]) -> int:
        """Run the step's process in the foreground; its output streamed to output."""
        cid = "build-" + uuid.uuid4().hex[:20]
        bundle = tempfile.mkdtemp(prefix="bundle-", dir=self.work_root)
        try:
            with self._sandbox(req, cid, bundle) as sandbox:
                with open(os.path.join(bundle, "config.json"), "w") as f:
                    json.dump(self._spec(req, cid, bundle, sandbox), f)
                argv = [self.runtime, "--root", self.runtime_root, "run", "--bundle", bundle, cid]
                if self.forkserver is not None:
                    with contextlib.suppress(ForkServerUnavailable):
                        return self._run_forked(argv, output)
                with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE) as proc:
                    assert proc.stdout is not None and proc.stderr is not None
                    _copy_output(proc.stdout.fileno(), proc.stderr.fileno(), output)
                    return proc.wait()
        finally:
            if os.path.exists(os.path.join(self.runtime_root, cid)):  # `run` deletes it unless it failed
                subprocess.run([self.runtime, "--root", self.runtime_root, "delete", "--force", cid],
                               capture_output=True, check=False)
            shutil.rmtree(bundle, ignore_errors=True)


@dataclass
class BuildInputs:
    """Where a build's inputs come from besides the request body.

    session: the incremental context reference (X-Dockyard-Context); auth: the credentials base
    images are pulled with (X-Registry-Config: server address → credentials); remote: a git URL,
    or a tar or Dockerfile over HTTP(S); contexts: --build-context name → docker-image://REF, a
    git URL, or "local" (in the session's context: `c/` holds the main context, `n/<name>/`
    each named one); ssh: --ssh id → {"socket": path on this host} or {"keys": [private keys]}.
    """

    session: str = ""
    auth: dict[str, Credentials] = field(default_factory=dict)
    remote: str = ""
    contexts: dict[str, str] = field(default_factory=dict)
    ssh: dict[str, dict[str, Any]] = field(default_factory=dict)


class BuildService:
    """Builds for the API: one context directory per build under <data-root>/builder/tmp."""

    def __init__(self, data_root: str, store: ImageStore, runtime: str, exec_root: str,
                 registry: RegistryService | None = None) -> None:
        self.registry = registry  # a base image missing locally is pulled (anonymously) when set
        self.root = os.path.join(data_root, "builder")
        self.tmp = os.path.join(self.root, "tmp")
        self.store = store
        self.executor = RuntimeExecutor(runtime, os.path.join(exec_root, "build-runtime"), self.tmp)
        self._repair()
        os.makedirs(self.tmp, mode=0o700, exist_ok=True)
        self.cache = BuildCache(self.root)
        self._prune_lock = threading.Lock()
        self.contexts = ContextStore(os.path.join(self.root, "contexts"))

    def _repair(self) -> None:
        """What a killed daemon's builds left: RUN containers, mounts and work dirs under tmp,
        step snapshots."""
        runtime_root = self.executor.runtime_root
        for cid in os.listdir(runtime_root) if os.path.isdir(runtime_root) else []:
            subprocess.run([self.executor.runtime, "--root", runtime_root, "delete", "--force", cid],
                           capture_output=True, check=False)
        for point in reversed(mounts_under(self.tmp)):
            unmount(point)
        shutil.rmtree(self.tmp, ignore_errors=True)
        for info in list(self.store.snapshots.walk()):
            if info.key.startswith("build-") and info.kind == "active":
                self.store.remove_rootfs(info.key)

    def close(self) -> None:
        """Close the cache database."""
        self.cache.close()

    def context_need(self, session: str, entries: list[list[Any]]) -> tuple[str, list[str]]:
        """Incremental contexts (dockyard's CLI): the manifest of the next build of session; the
        reference its /build passes and the files it must send."""
        try:
            return self.contexts.need(session, entries)
        except ContextError as e:
            raise BuildError(str(e)) from None

    def build(self, body: IO[bytes], opts: BuildOptions, emit: Callable[[str], None],
              inputs: BuildInputs | None = None) -> str:
        """Build from the context in body (or as inputs say: a session's mirror, a remote
        context), tag; the image ID. BuildError on failure."""
        inputs = inputs or BuildInputs()
        if opts.pull is None and self.registry is not None:
            opts.pull = lambda name: self._pull(name, inputs.auth)
        work = os.path.join(self.tmp, f"build-{uuid.uuid4().hex}")  # created when a step needs it
        local = [name for name, source in inputs.contexts.items() if source == "local"]
        stops: list[Callable[[], None]] = []
        try:
            if local and not inputs.session:
                raise BuildError("build contexts from local directories need dockyard's incremental context")
            opts.contexts = self._named(work, {k: v for k, v in inputs.contexts.items() if v != "local"})
            opts.ssh = self._agents(work, inputs.ssh, stops)
            if inputs.session:
                try:
                    with self.contexts.use(inputs.session, body) as (context, digests):
                        if local:
                            context, digests = self._split(context, digests, local, opts)
                        return self._build(work, context, digests, opts, emit)
                except ContextError as e:
                    raise BuildError(str(e)) from None
            os.makedirs(work, mode=0o700, exist_ok=True)
            if inputs.remote:
                return self._build_remote(work, inputs.remote, opts, emit)
            return self._build_from(work, body, opts, emit)
        finally:
            for stop in stops:
                stop()
            shutil.rmtree(work, ignore_errors=True)

    def _build_remote(self, work: str, remote: str, opts: BuildOptions, emit: Callable[[str], None]) -> str:
        """A remote context: a git URL, or a tar or Dockerfile over HTTP(S)."""
        try:
            if is_git_url(remote):
                context = git_clone(remote, os.path.join(work, "git"))[0]
                return self._build(work, context, {}, opts, emit)
            if not remote.startswith(("http://", "https://")):
                raise RemoteError(f"unsupported remote context {remote!r}: a git or HTTP(S) URL is needed")
            with open(os.path.join(work, download(remote, work)), "rb") as fetched:
                return self._build_from(work, fetched, opts, emit)
        except RemoteError as e:
            raise BuildError(f"unable to prepare context: {e}") from None

    @staticmethod
    def _agents(work: str, ssh: dict[str, dict[str, Any]], stops: list[Callable[[], None]]) -> dict[str, str]:
        """--ssh id → agent socket: a forwarded one as is, or an ssh-agent started for sent keys."""
        out = {}
        for sid, source in ssh.items():
            if source.get("socket"):
                out[sid] = source["socket"]
                continue
            try:
                out[sid], stop = start_agent(source.get("keys") or [], os.path.join(work, "agents"))
            except AgentError as e:
                raise BuildError(f"--ssh {sid}: {e}") from None
            stops.append(stop)
        return out

    def _named(self, work: str, contexts: dict[str, str]) -> dict[str, NamedContext]:
        """--build-context sources the daemon resolves: images by reference or from an OCI
        layout on this host, git checkouts."""
        out = {}
        for name, source in contexts.items():
            if source.startswith("docker-image://"):
                out[name.lower()] = NamedContext(image=source.removeprefix("docker-image://"))
            elif source.startswith("oci-layout://"):
                try:
                    out[name.lower()] = NamedContext(image=layout_image(self.store, source))
                except CacheIOError as e:
                    raise BuildError(f"build context {name}: {e}") from None
            elif is_git_url(source):
                try:
                    checkout = git_clone(source, os.path.join(work, f"named-{len(out)}"))[0]
                except RemoteError as e:
                    raise BuildError(f"build context {name}: {e}") from None
                out[name.lower()] = NamedContext(directory=checkout)
            else:
                raise BuildError(f"build context {name}: unsupported source {source!r} (a directory, "
                                 "docker-image://REF, oci-layout://PATH[:TAG] or a git URL)")
        return out

    @staticmethod
    def _split(files: str, digests: dict[str, str], local: list[str],
               opts: BuildOptions) -> tuple[str, dict[str, str]]:
        """A session context holding named contexts: the main context's directory and digests;
        each named directory into opts.contexts."""
        def under(prefix: str) -> dict[str, str]:
            return {k[len(prefix):]: v for k, v in digests.items() if k.startswith(prefix)}
        for name in local:
            directory = os.path.join(files, "n", name)
            if not os.path.isdir(directory):
                raise BuildError(f"build context {name} was not sent")
            opts.contexts[name.lower()] = NamedContext(directory=directory, digests=under(f"n/{name}/"))
        return os.path.join(files, "c"), under("c/")

    def _build_from(self, work: str, body: IO[bytes], opts: BuildOptions, emit: Callable[[str], None]) -> str:
        """Build a context tar (plain or compressed) or a bare Dockerfile read from body."""
        opts.classic = True  # an uploaded context: dockerd's classic builder's rules
        context = os.path.join(work, "context")
        os.mkdir(context, mode=0o700)
        stream = _peekable(body)
        head = stream.peek(512)
        digests: dict[str, str] = {}
        try:
            if head and not looks_like_tar(head):
                extract(single_file_context(stream.read()), context, digests=digests)
                opts.dockerfile = "Dockerfile"
            else:
                extract(stream, context, digests=digests)
        except ContextError as e:
            raise BuildError(str(e)) from None
        return self._build(work, context, digests, opts, emit)

    def _build(self, work: str, context: str, digests: dict[str, str], opts: BuildOptions,
               emit: Callable[[str], None]) -> str:
        builder = Builder(self.store, self.executor, self.cache, work, emit)
        image = builder.build(context, opts, digests)
        for tag in opts.tags:
            self.store.tag(image, tag)
        return image

    def _pull(self, name: str, auth: dict[str, Credentials]) -> str:
        """A FROM or --cache-from image missing locally, from its registry with the build's
        credentials for it (docker's texts on failure)."""
        assert self.registry is not None
        try:
            domain = reference.parse_normalized(name).domain
        except ValueError:
            raise BuildError(f"invalid reference format: {name}") from None
        try:
            return pull(self.store, name, credentials_for(auth, domain), self.registry.config,
                        write_lock=self.registry.write_lock)
        except PullError as e:
            raise BuildError(str(e)) from None

    def disk_usage(self) -> list[dict]:
        """/system/df's BuildCache: one record per cached step (its image holds the data)."""
        out = []
        for key, image, created, used in self.cache.records():
            out.append({"ID": key[:25], "Parents": [], "Type": "regular", "Description": f"step image {image[:19]}",
                        "InUse": False, "Shared": True, "Size": 0, "CreatedAt": _rfc3339(created),
                        "LastUsedAt": _rfc3339(used), "UsageCount": 1})
        return out

    def prune(self, all_: bool = False) -> dict:
        """POST /build/prune: the cache records and cache mounts go; intermediate images stay
        until image prune, as with the classic builder."""
        with self._prune_lock:
            keys, freed = self.cache.prune()
            freed += self.contexts.prune()
        return {"CachesDeleted": keys, "SpaceReclaimed": freed}


def _copy_output(out_fd: int, err_fd: int, output: Callable[[bytes], None]) -> None:
    """A step's stdout and stderr pipes to output until both end; stderr chunks coloured."""
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ, False)
        sel.register(err_fd, selectors.EVENT_READ, True)
        while sel.get_map():
            for key, _ in sel.select():
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                else:
                    output(STDERR_START + chunk + STDERR_END if key.data else chunk)


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class _peekable:
    """A readable with peek() over any binary stream (the request body)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.buf = b""

    def peek(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.raw.read(n - len(self.buf))
            if not chunk:
                break
            self.buf += chunk
        return self.buf[:n]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            data = self.buf + self.raw.read()
            self.buf = b""
            return data
        if self.buf:
            data, self.buf = self.buf[:n], self.buf[n:]
            return data
        return self.raw.read(n)

    def readable(self) -> bool:
        return True
