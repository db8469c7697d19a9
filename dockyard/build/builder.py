"""Executes a Dockerfile: stages in dependency order (independent ones in parallel), each step
committed as an image (its parent the previous step), steps looked up in the build cache first."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dockyard.build import classic, fsops
from dockyard.build.cache import BuildCache, explain
from dockyard.build.cacheio import (
    CacheIOError,
    export_local,
    import_inline,
    import_local,
    inline_records,
    parse_spec,
)
from dockyard.build.context import drop_ignored, hidden_from_copies
from dockyard.build.executor import STDERR_END, STDERR_START, Executor, RunRequest
from dockyard.build.imageconfig import (
    DEFAULT_PATH,
    INLINE_CACHE_FIELD,
    add_history,
    child_config,
    env_dict,
    env_list_set,
    scratch_config,
    timestamp,
)
from dockyard.build.mounts import mount_spec, oci_mount
from dockyard.build.parser import Command, ParseError, parse, parse_heredoc
from dockyard.build.remote import RemoteError
from dockyard.build.shell import Lex, ShellError
from dockyard.build.sources import SourceSet, add_sources
from dockyard.build.stages import (
    PREDEFINED_ARGS,
    Plan,
    Stage,
    duration_ns,
    find_stage,
    parse_flags,
    plan,
    split_arg,
)
from dockyard.image.bootstrap_busybox import host_platform
from dockyard.image.commit import EMPTY_LAYER_DIFF_ID, encode_config
from dockyard.image.errors import NoSuchImage
from dockyard.image.snapshot import mount_all, unmount
from dockyard.image.store import ImageStore, Layer

DEFAULT_SHELL = ["/bin/sh", "-c"]
CACHE_KEY_LABEL = "dockyard.build.cache-key"  # store metadata of step images: --cache-from matches it


class BuildError(Exception):
    """A failed build: message as Docker prints it, the exit code for the CLI (a RUN's code)."""

    def __init__(self, message: str, code: int = 1, early: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.early = early  # before any step (no parse, no such target): dockerd answers an HTTP error


@dataclass
class NamedContext:
    """A --build-context: an image reference (docker-image://), or a directory of files on this
    host with the sha256 of its files where known. It replaces the stage or image of its name."""

    image: str = ""
    directory: str = ""
    digests: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildOptions:
    """What `docker build` passes besides the context."""

    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    no_cache_filter: list[str] = field(default_factory=list)
    cache_from: list[str] = field(default_factory=list)  # references, or type=local,src=DIR / type=registry,ref=R
    cache_to: list[dict[str, str]] = field(default_factory=list)  # {"type": "local", "dest", "mode"} / inline
    network: str = "default"
    platform: str = ""
    secrets: dict[str, bytes] = field(default_factory=dict)
    ssh: dict[str, str] = field(default_factory=dict)  # --ssh id → agent socket path on this host
    source_date_epoch: int | None = None
    pull: Callable[[str], str] | None = None  # resolves a missing base image (registry hook)
    contexts: dict[str, NamedContext] = field(default_factory=dict)  # by lower-cased name
    extra_hosts: list[str] = field(default_factory=list)  # "name:ip" entries for RUN's /etc/hosts
    shm_size: int = 0  # bytes of RUN's /dev/shm (0: the runtime's default, 64 MiB)
    always_pull: bool = False  # `--pull`: Dockerfile base images pulled even when present (not named contexts)
    # dockerd's classic builder's rules (an uploaded context, not dockyard's CLI): drop_ignored once
    # the Dockerfile is read, cache_from images, when given, are the only cache, every stage up to
    # the target runs, one after the other, and history texts and progress are the classic ones
    classic: bool = False


@dataclass
class StageResult:
    """The final image of a stage and its config."""

    image: str | None
    doc: dict[str, Any]
    history_fixes: dict[int, str] = field(default_factory=dict)


@dataclass
class _State:
    stage: Stage
    image: str | None
    doc: dict[str, Any]
    layers: list[Layer] | None  # None: those of image, read when a step needs them
    args: dict[str, str]
    step_slot: int = 0
    declared: list[str] = field(default_factory=list)  # ARG names in declaration order
    history_fixes: dict[int, str] = field(default_factory=dict)  # ARG history texts of this build
    quiet: bool = False  # running ONBUILD triggers: steps print no image IDs

    @property
    def cfg(self) -> dict[str, Any]:
        return self.doc.setdefault("config", {})

    @property
    def env(self) -> dict[str, str]:
        return env_dict(self.cfg.get("Env") or [])

    def expansion_env(self) -> dict[str, str]:
        return {**self.args, **self.env}


def platform_check(platform: str) -> None:
    """Only the host platform can be built (no emulation): a clear error for others."""
    if not platform:
        return
    arch, variant = host_platform()
    wanted = platform.lower().split("/")
    ok = wanted[0] == "linux" and len(wanted) >= 2 and wanted[1] == arch and (
        len(wanted) < 3 or wanted[2] == variant)
    if not ok:
        host = "/".join(p for p in ("linux", arch, variant) if p)
        raise BuildError(f"platform {platform} is not supported: this builder runs {host} only (no emulation)")


class Builder:
    """One build at a time per instance; stages run on threads."""

    def __init__(self, store: ImageStore, executor: Executor, cache: BuildCache, work_root: str,
                 emit: Callable[[str], None]) -> None:
        self.store = store
        self.executor = executor
        self.cache = cache
        self._work_root = work_root
        self.emit = emit
        self._emit_lock = threading.Lock()
        self.used_args: set[str] = set()
        self.steps: list[tuple[int, str, str]] = []  # (stage index, cache key, image) as each step ends

    @property
    def work_root(self) -> str:
        """The build's scratch directory, created when a step first needs it (a fully cached
        build never does)."""
        os.makedirs(self._work_root, mode=0o700, exist_ok=True)
        return self._work_root

    def say(self, text: str) -> None:
        """Send progress text (whole lines)."""
        with self._emit_lock:
            self.emit(text)

    # -- the whole build -------------------------------------------------------------------------

    def build(self, context: str, opts: BuildOptions, digests: dict[str, str] | None = None) -> str:
        """Build the Dockerfile at opts.dockerfile in the unpacked context; the image ID.
        digests: sha256 of context files already known (computed while unpacking)."""
        platform_check(opts.platform)
        self.opts = opts
        self.context = context
        self.context_digests = digests or {}
        text = self._read_dockerfile(context, opts.dockerfile)
        if opts.classic:
            drop_ignored(context, opts.dockerfile)
        self.hidden = [] if opts.classic else hidden_from_copies(context, opts.dockerfile)
        try:
            df = parse(text)
            self.plan = plan(df, opts.build_args, platform=not opts.classic)
        except ParseError as e:
            raise BuildError(str(e), early=True) from None
        self.lex = Lex(df.escape)
        if df.warnings:
            self._warn(df.warnings)
        self.cache_from = self._cache_from_keys(opts.cache_from)
        target = self._target_stage(self.plan, opts.target)
        labels = opts.labels
        if opts.classic:  # --label: LABEL steps at the end of the target, as the classic builder adds them
            target.commands.extend(_label_step(k, v, df.escape) for k, v in sorted(labels.items()))
            labels = {}
        needed = (self.plan.stages[:target.index + 1] if opts.classic else self._needed(self.plan, target))
        self.numbers = self._number_steps(needed)
        for i, meta in enumerate(self.plan.meta, 1):
            self.say(f"Step {i}/{self.total} : {meta.original}\n")
        futures: dict[int, Future[StageResult]] = {}
        if opts.classic:
            result = self._run_in_order(needed, futures)
        else:
            others = [s for s in needed if s is not target]  # the target runs here, the others beside it
            with ThreadPoolExecutor(max_workers=max(1, len(others)), thread_name_prefix="build-stage") as pool:
                for stage in others:
                    futures[stage.index] = pool.submit(self._run_stage, stage, futures)
                try:
                    result = self._run_stage(target, futures)
                except BaseException:
                    for f in futures.values():
                        f.cancel()
                    raise
        consumed = self.used_args | self.plan.declared | set(PREDEFINED_ARGS) | {"SOURCE_DATE_EPOCH"}
        unused = sorted(k for k in opts.build_args if k not in consumed)
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        image = result.image
        history = result.doc.get("history") or []
        stale = {i: t for i, t in result.history_fixes.items() if i < len(history) and history[i].get(
            "created_by") != t}
        inline = any(c.get("type") == "inline" for c in opts.cache_to)
        if labels or image is None or stale or inline:
            image = self._final_image(result, labels, stale, self._chain(target) if inline else None)
        for spec in opts.cache_to:
            if spec.get("type") == "local":
                steps = self._chain(target) if spec.get("mode", "min") == "min" else [
                    (key, step) for _i, key, step in self.steps]
                try:
                    export_local(self.store, steps, spec.get("dest") or "")
                except CacheIOError as e:
                    raise BuildError(str(e)) from None
        return image  # type: ignore[return-value]

    def _warn(self, warnings: list[str]) -> None:
        """The parser's warnings; the classic builder writes them to its stderr (red), each
        offending line on a line of its own."""
        lines = [*warnings, "Empty continuation lines will become errors in a future release."]
        if self.opts.classic:
            text = "".join(f"[WARNING]: {w.replace('found in: ', 'found in:' + chr(10) + '    ')}\n" for w in lines)
            self.say(f"{STDERR_START.decode()}{text}{STDERR_END.decode()}")
        else:
            self.say("".join(f"[WARNING]: {w}\n" for w in lines))

    def _chain(self, target: Stage) -> list[tuple[str, str]]:
        """(cache key, image) of the steps the target's image is made of, bottom first: its
        stage's and those of the stages it is FROM."""
        stages = {target.index}
        stage: Stage | None = target
        while stage is not None and (stage := self.stage_named(stage.base, stage.index)) is not None:
            stages.add(stage.index)
        ordered = sorted(((i, n), key, image) for n, (i, key, image) in enumerate(self.steps) if i in stages)
        return [(key, image) for _order, key, image in ordered]

    def _cache_from_keys(self, specs: list[str]) -> dict[str, str]:
        """--cache-from: step key → image, from local cache layouts, and from images (pulled
        when missing): the keys recorded on them and their parents, and their inline cache."""
        found: dict[str, str] = {}
        for spec in specs:
            source = parse_spec(spec)
            if source["type"] == "local":
                try:
                    found = {**import_local(self.store, source.get("src") or ""), **found}
                except CacheIOError as e:
                    self.say(f"[Warning] cache source {spec} ignored: {e}\n")
                continue
            if source["type"] != "registry" or not source.get("ref"):
                self.say(f"[Warning] cache source {spec} ignored: unsupported type {source['type']}\n")
                continue
            ref = source["ref"]
            try:
                image: str | None = self.store.resolve(ref)
            except (NoSuchImage, ValueError):
                try:  # pulled like a base image when a registry has it, as BuildKit does
                    image = self.pull(ref)
                except BuildError as e:
                    self.say(f"[Warning] cache source {ref} not found, ignored: {e.message}\n")
                    continue
            found = {**import_inline(self.store, image), **found}
            while image:
                key = self.store.record(image).labels.get(CACHE_KEY_LABEL)
                if key:
                    found.setdefault(key, image)
                image = self.store.parent(image)
        return found

    def _read_dockerfile(self, context: str, name: str) -> bytes:
        candidates = [name, "dockerfile"] if name == "Dockerfile" else [name]  # as dockerd falls back
        for candidate in candidates:
            try:
                with open(fsops.resolve(context, candidate), "rb") as f:
                    return f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
        raise BuildError(f"Cannot locate specified Dockerfile: {name}")

    def _target_stage(self, p: Plan, target: str) -> Stage:
        if not target:
            return p.stages[-1]
        found = find_stage(p.stages, target, len(p.stages)) if not target.isdigit() else None
        if found is None:
            raise BuildError(f"failed to reach build target {target} in Dockerfile", early=True)
        return found

    def stage_named(self, ref: str, before: int) -> Stage | None:
        """The earlier stage a FROM / --from reference names, unless a --build-context replaces it."""
        if ref.lower() in self.opts.contexts:
            return None
        return find_stage(self.plan.stages, ref, before)

    def resolve_image(self, ref: str, always_pull: bool = False) -> str:
        """A local image's ID, or the image pulled (the registry hook) when it is missing or
        always_pull says so (`--pull`: a newer one; an image pinned by digest is not pulled again)."""
        try:
            image = self.store.resolve(ref)
        except (NoSuchImage, ValueError):
            return self.pull(ref)
        if always_pull and "@" not in ref and self.opts.pull is not None:
            return self.pull(ref)
        return image

    def _deps(self, stage: Stage) -> set[int]:
        deps = set()
        if (base := self.stage_named(stage.base, stage.index)) is not None:
            deps.add(base.index)
        for cmd in stage.commands:
            refs = []
            for flag in cmd.flags:
                if flag.startswith("--from="):
                    refs.append(flag[7:])
                elif flag.startswith("--mount="):
                    for part in flag[8:].split(","):
                        if part.startswith("from="):
                            refs.append(part[5:])
            for ref in refs:
                try:
                    ref = self.lex.process_word(ref, self.plan.global_args)
                except ShellError:
                    continue
                if (dep := self.stage_named(ref, stage.index)) is not None:
                    deps.add(dep.index)
        return deps

    def _needed(self, p: Plan, target: Stage) -> list[Stage]:
        needed: set[int] = set()
        todo = [target.index]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            todo.extend(self._deps(p.stages[i]))
        return [s for s in p.stages if s.index in needed]

    def _number_steps(self, stages: list[Stage]) -> dict[tuple[int, int], int]:
        """Step numbers as the classic builder counts them: the ARGs before FROM first."""
        numbers: dict[tuple[int, int], int] = {}
        n = len(self.plan.meta)
        for s in stages:
            n += 1
            numbers[(s.index, -1)] = n
            for i in range(len(s.commands)):
                n += 1
                numbers[(s.index, i)] = n
        self.total = n
        return numbers

    def _step(self, stage: Stage, i: int, text: str) -> None:
        self.say(f"Step {self.numbers[(stage.index, i)]}/{self.total} : {text}\n")

    # -- stages ----------------------------------------------------------------------------------

    def _run_in_order(self, stages: list[Stage], futures: dict[int, Future[StageResult]]) -> StageResult:
        """The classic builder's way: each stage in Dockerfile order; the last one's result."""
        for stage in stages:
            futures[stage.index] = done = Future()
            done.set_result(result := self._run_stage(stage, futures))
        return result

    def _run_stage(self, stage: Stage, futures: dict[int, Future[StageResult]]) -> StageResult:
        for dep in self._deps(stage):
            futures[dep].result()
        self._step(stage, -1, stage.original)
        self.futures = futures
        state = self._from(stage, futures)
        for i, cmd in enumerate(stage.commands):
            self._step(stage, i, cmd.original.split("\n", 1)[0] if cmd.original else "")
            state.step_slot = i
            try:
                self._dispatch(state, cmd)
            except (ParseError, ShellError, fsops.CopyError, RemoteError) as e:
                bare = e.message if isinstance(e, ParseError) else str(e)
                raise BuildError(bare if self.opts.classic else _at_line(cmd, str(e))) from None
        return StageResult(state.image, state.doc, state.history_fixes)

    def _from(self, stage: Stage, futures: dict[int, Future[StageResult]]) -> _State:
        platform_check(stage.platform)
        if not stage.base:
            written = [w for w in stage.original.split()[1:] if not w.startswith("--")][:1]
            raise BuildError(f"base name ({''.join(written)}) should not be blank")
        dep = self.stage_named(stage.base, stage.index)
        if dep is not None:
            res = futures[dep.index].result()
            state = _State(stage, res.image, child_config(res.doc), None, {}, history_fixes=dict(res.history_fixes))
            return self._triggers(state, res.doc)
        named = self.opts.contexts.get(stage.base.lower())
        if named is not None and not named.image:
            raise BuildError(f"build context {stage.base!r} is a directory: FROM needs an image "
                             "(docker-image://REF)")
        if named is None and stage.base.lower() == "scratch":
            arch, variant = host_platform()
            self.say(" ---> \n")
            return _State(stage, None, scratch_config(arch, variant), [], {})
        image = (self.resolve_image(named.image) if named is not None
                 else self.resolve_image(stage.base, self.opts.always_pull))
        base = self.store.config(image)
        return self._triggers(_State(stage, image, child_config(base), None, {}), base)

    def _triggers(self, state: _State, base: dict[str, Any]) -> _State:
        """Run the ONBUILD triggers of the base (an image or a stage) on a new stage, whose
        steps print no IDs: the FROM's is the last one's."""
        triggers = list((base.get("config") or {}).get("OnBuild") or [])
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            state.quiet = True
            for trigger in triggers:
                try:
                    for cmd in parse(trigger.encode()).commands:
                        if (cmd.cmd or "").lower() in ("onbuild", "from", "maintainer"):
                            raise BuildError(f"{cmd.cmd} isn't allowed as an ONBUILD trigger")
                        self._dispatch(state, cmd)
                except ParseError as e:
                    raise BuildError(f"failed to parse ONBUILD trigger: {e}") from None
            state.quiet = False
        self.say(f" ---> {_short(state.image)}\n")
        return state

    def pull(self, name: str) -> str:
        """A base image missing locally, through the registry hook, else Docker's error."""
        if self.opts.pull is not None:
            try:
                return self.opts.pull(name)
            except LookupError:
                pass
        repo = name.split("@")[0].rsplit(":", 1)[0] if "/" in name or ":" in name else name
        raise BuildError(f"pull access denied for {repo}, repository does not exist or may require "
                         "'docker login': image not found locally and no registry is configured")

    # -- instructions ----------------------------------------------------------------------------

    def expand(self, state: _State, word: str) -> str:
        """A word with the stage's env and args substituted."""
        return self.lex.process_word(word, state.expansion_env())

    def _dispatch(self, state: _State, cmd: Command) -> None:
        kind = (cmd.cmd or "").lower()
        handler = getattr(self, f"_do_{kind}", None)
        if handler is None:
            raise ParseError(f"unknown instruction: {(cmd.cmd or '').upper()}", cmd.start_line, cmd.end_line)
        handler(state, cmd)

    def _meta(self, state: _State, cmd: Command, created_by: str, change: Callable[[dict[str, Any]], None],
              key_text: str = "", classic_text: str = "") -> None:
        """A metadata-only step: config changed, no layer; key_text replaces created_by in the key
        (the classic builder's history text, classic_text or created_by after `#(nop) `, keys it)."""
        if self.opts.classic:
            key_text = classic_text or created_by
        detail = {"parent": state.image, "instruction": key_text or created_by, "args": {}}
        key = self._keyed(detail)
        hit = self._lookup(state, key)
        if hit:
            return
        change(state.cfg)
        if self.opts.classic:
            created_by = classic.nop(self._shell(state), classic_text or created_by)
        self._commit(state, created_by, None, key, detail)

    def _lookup(self, state: _State, key: str, detail: dict | None = None) -> bool:
        stage = state.stage
        no_cache = self.opts.no_cache or (stage.name and stage.name in self.opts.no_cache_filter) or \
            str(stage.index) in self.opts.no_cache_filter
        if no_cache:
            return False
        if self.opts.classic and self.opts.cache_from:  # only they serve (none found: no cache)
            image = self.cache_from.get(key)
        else:
            image = self.cache.get(key) or self.cache_from.get(key)
        if image is None:
            if detail is not None and not self.opts.classic:
                self.say(f" ---> Cache miss: {explain(self.cache.previous(self._slot(state)), detail)}\n")
            return False
        try:
            self.store.resolve(image)  # the image itself, not only its config blob (kept until gc)
            doc = self.store.config(image)
        except (NoSuchImage, LookupError, KeyError):
            self.cache.drop(key)
            return False
        self.say(" ---> Using cache\n" if state.quiet else f" ---> Using cache\n ---> {_short(image)}\n")
        self.steps.append((stage.index, key, image))
        state.image = image
        state.doc = doc
        state.layers = None
        return True

    def _keyed(self, detail: dict) -> str:
        """A step's cache key; the classic builder's steps (other history texts) key apart."""
        if self.opts.classic:
            detail["builder"] = "classic"
        return _key(detail)

    def _shell(self, state: _State) -> list[str]:
        return list(state.cfg.get("Shell") or DEFAULT_SHELL)

    def _slot(self, state: _State) -> str:
        return f"{state.stage.index}:{state.stage.name}:{state.step_slot}"

    def _commit(self, state: _State, created_by: str, layer: Layer | None, key: str, detail: dict,
                container: bool = True) -> None:
        """Record the step's image. The classic builder commits metadata and WORKDIR steps
        through a container too (container): its progress names one."""
        if self.opts.classic and container:
            run_id = uuid.uuid4().hex[:12]
            self.say(f" ---> Running in {run_id}\n ---> Removed intermediate container {run_id}\n")
        created = timestamp(self.opts.source_date_epoch)
        if state.layers is None:
            state.layers = self.store.layers(state.image) if state.image else []
        if layer is not None:
            state.layers.append(layer)
        state.doc["rootfs"] = {"type": "layers", "diff_ids": [ly.diff_id for ly in state.layers]}
        add_history(state.doc, created, created_by, layer is None, buildkit=not self.opts.classic)
        image = self.store.add_image(encode_config(state.doc), state.layers, parent=state.image,
                                     labels={CACHE_KEY_LABEL: key})
        state.image = image
        state.doc = self.store.config(image)
        self.cache.put(key, image, self._slot(state), detail)
        self.steps.append((state.stage.index, key, image))
        if not state.quiet:
            self.say(f" ---> {_short(image)}\n")

    def _do_env(self, state: _State, cmd: Command) -> None:
        pairs = []
        env = state.expansion_env()
        for i in range(0, len(cmd.value), 2):  # every value sees the env from before the instruction
            pairs.append((self.lex.process_word(cmd.value[i], env), self.lex.process_word(cmd.value[i + 1], env)))
        text = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)

        def change(cfg: dict[str, Any]) -> None:
            lst = cfg.get("Env") or []
            for k, v in pairs:
                lst = env_list_set(lst, k, v)
            cfg["Env"] = lst
        self._meta(state, cmd, text, change)

    def _do_label(self, state: _State, cmd: Command) -> None:
        env = state.expansion_env()
        pairs = [(self.lex.process_word(cmd.value[i], env), self.lex.process_word(cmd.value[i + 1], env))
                 for i in range(0, len(cmd.value), 2)]
        text = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        self._meta(state, cmd, text, lambda cfg: cfg.__setitem__("Labels", {**(cfg.get("Labels") or {}),
                                                                           **dict(pairs)}))

    def _do_arg(self, state: _State, cmd: Command) -> None:
        declared = []  # the classic builder's history shows the declarations, not the values
        for word in cmd.value:
            name, default = split_arg(word)
            declared.append(name if default is None else f"{name}={self.expand(state, default)}")
            self.used_args.add(name)
            if name not in state.declared:
                state.declared.append(name)
            given = self.opts.build_args.get(name)
            if given is not None:
                state.args[name] = given
            elif name in self.plan.global_args and default is None:
                state.args[name] = self.plan.global_args[name]
            elif default is not None:
                state.args[name] = self.expand(state, default)
        shown = " ".join(f"{k}={state.args[k]}" if k in state.args else k
                         for k in (split_arg(w)[0] for w in cmd.value))
        index = len(state.doc.get("history") or [])
        self._meta(state, cmd, f"ARG {shown}", lambda cfg: None,
                   key_text="ARG " + " ".join(split_arg(w)[0] for w in cmd.value),
                   classic_text="ARG " + " ".join(declared))
        if not self.opts.classic:
            state.history_fixes[index] = f"ARG {shown}"

    def _do_workdir(self, state: _State, cmd: Command) -> None:
        if not cmd.value:
            raise ParseError("WORKDIR requires exactly one argument", cmd.start_line)
        path = self.expand(state, cmd.value[0])
        current = state.cfg.get("WorkingDir") or "/"
        if self.opts.classic and path.startswith("/"):
            new = path  # the classic builder keeps an absolute WORKDIR as written (`/app/`)
        else:
            new = "/" + posixpath.normpath(posixpath.join(current, path)).lstrip("/")
        created_by = f"WORKDIR {new}"
        detail = {"parent": state.image, "instruction": created_by, "args": {}}
        key = self._keyed(detail)
        if self._lookup(state, key):
            return
        state.cfg["WorkingDir"] = new
        user = "" if self.opts.classic else state.cfg.get("User") or ""

        def mkdir(root: str) -> None:  # created for the current USER as BuildKit does (classic: root)
            uid, gid = self._chown(root, user) if user else (0, 0)
            fsops.make_dirs(root, new, fsops.Ownership(uid, gid))
        layer = self._in_rootfs(state, mkdir)
        if self.opts.classic:
            created_by = classic.nop_string(self._shell(state), created_by)
        self._commit(state, created_by, layer, key, detail)

    def _do_user(self, state: _State, cmd: Command) -> None:
        user = self.expand(state, cmd.value[0]) if cmd.value else ""
        self._meta(state, cmd, f"USER {user}", lambda cfg: cfg.__setitem__("User", user))

    def _do_expose(self, state: _State, cmd: Command) -> None:
        ports = []
        for word in cmd.value:
            p = self.expand(state, word)
            ports.append(p if "/" in p else p + "/tcp")
        text = "EXPOSE [" + " ".join(ports) + "]"
        exposed = {port: {} for spec in ports for port in _port_range(spec, cmd)}
        self._meta(state, cmd, text, lambda cfg: cfg.__setitem__(
            "ExposedPorts", {**(cfg.get("ExposedPorts") or {}), **exposed}),
            classic_text=classic.expose_text([self.expand(state, w) for w in sorted(cmd.value)]))

    def _do_volume(self, state: _State, cmd: Command) -> None:
        vols = [self.expand(state, v) for v in cmd.value if v]
        if not vols:
            raise ParseError("VOLUME specified can not be an empty string", cmd.start_line)
        self._meta(state, cmd, "VOLUME [" + " ".join(vols) + "]",
                   lambda cfg: cfg.__setitem__("Volumes", {**(cfg.get("Volumes") or {}), **{v: {} for v in vols}}))

    def _do_stopsignal(self, state: _State, cmd: Command) -> None:
        sig = self.expand(state, cmd.value[0]) if cmd.value else ""
        self._meta(state, cmd, f"STOPSIGNAL {sig}", lambda cfg: cfg.__setitem__("StopSignal", sig))

    def _command_form(self, state: _State, cmd: Command) -> list[str]:
        if cmd.json:
            return list(cmd.value)
        shell = state.cfg.get("Shell") or DEFAULT_SHELL
        return [*shell, cmd.value[0]] if cmd.value else []

    def _do_cmd(self, state: _State, cmd: Command) -> None:
        args = self._command_form(state, cmd)
        self._meta(state, cmd, f"CMD {_go_list(args)}", lambda cfg: cfg.__setitem__("Cmd", args))

    def _do_entrypoint(self, state: _State, cmd: Command) -> None:
        args = self._command_form(state, cmd)

        def change(cfg: dict[str, Any]) -> None:
            cfg["Entrypoint"] = args
            cfg.pop("Cmd", None)  # an ENTRYPOINT resets the CMD it inherited
        self._meta(state, cmd, f"ENTRYPOINT {_go_list(args)}", change)

    def _do_shell(self, state: _State, cmd: Command) -> None:
        if not cmd.json:
            raise ParseError("SHELL requires the arguments to be in JSON form", cmd.start_line)
        args = list(cmd.value)
        self._meta(state, cmd, "SHELL [" + " ".join(args) + "]", lambda cfg: cfg.__setitem__("Shell", args))

    def _do_maintainer(self, state: _State, cmd: Command) -> None:
        name = self.expand(state, cmd.value[0]) if cmd.value else ""
        self._meta(state, cmd, f"MAINTAINER {name}", lambda cfg: state.doc.__setitem__("author", name))

    def _do_onbuild(self, state: _State, cmd: Command) -> None:
        original = (cmd.original or "").split("\n", 1)[0]
        trigger = original.strip()[len(cmd.cmd or ""):].strip()
        self._meta(state, cmd, f"ONBUILD {trigger}", lambda cfg: cfg.__setitem__(
            "OnBuild", [*(cfg.get("OnBuild") or []), trigger]))

    def _do_healthcheck(self, state: _State, cmd: Command) -> None:
        flags = parse_flags(cmd, ("interval", "timeout", "start-period", "start-interval", "retries"))
        if not cmd.value:
            raise ParseError("HEALTHCHECK requires an argument", cmd.start_line)
        kind = cmd.value[0].upper()
        if kind == "NONE":
            if len(cmd.value) > 1 or flags:
                raise ParseError("HEALTHCHECK NONE takes no arguments", cmd.start_line)
            check: dict[str, Any] = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = list(cmd.value[1:])
            if not rest:
                raise ParseError("Missing command after HEALTHCHECK CMD", cmd.start_line)
            check = {"Test": ["CMD", *rest] if cmd.json else ["CMD-SHELL", rest[0]]}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in flags:
                    check[key] = duration_ns(flags[flag][-1], cmd)
            if "retries" in flags:
                try:
                    check["Retries"] = int(flags["retries"][-1])
                except ValueError:
                    raise ParseError(f"invalid retries value {flags['retries'][-1]!r}", cmd.start_line) from None
        else:
            raise ParseError(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)", cmd.start_line)
        fields = " ".join(f"{k}:{_go_duration(check.get(k, 0))}" for k in
                          ("Interval", "Timeout", "StartPeriod", "StartInterval"))
        test = "[" + " ".join(check["Test"]) + "]"
        text = f"HEALTHCHECK {{Test:{test} {fields} Retries:{check.get('Retries', 0)}}}"
        before = (state.cfg.get("Healthcheck") or {}).get("Test") or []
        if self.opts.classic and before and before[0] != "NONE":  # cached or not
            self.say(f"Note: overriding previous HEALTHCHECK: [{' '.join(before)}]\n")

        def change(cfg: dict[str, Any]) -> None:
            cfg["Healthcheck"] = classic.inherit_healthcheck(check, cfg.get("Healthcheck")) \
                if self.opts.classic else check
        self._meta(state, cmd, text, change, classic_text=classic.healthcheck_text(check, _go_duration))

    # -- RUN -------------------------------------------------------------------------------------

    def _do_run(self, state: _State, cmd: Command) -> None:
        flags = parse_flags(cmd, ("mount", "network", "security"))
        heredoc_file: tuple[str, str] | None = None
        if cmd.json:
            args = list(cmd.value)
            shown = json.dumps(args)
        else:
            script = cmd.value[0] if cmd.value else ""
            shell = state.cfg.get("Shell") or DEFAULT_SHELL
            sole = parse_heredoc(script.strip()) if len(cmd.heredocs) == 1 else None
            if sole is not None and sole[0] == cmd.heredocs[0].name:
                # `RUN <<EOF`: the here-document is the script
                body = cmd.heredocs[0].content
                if sole[2]:
                    body = "\n".join(line.lstrip("\t") for line in body.split("\n"))
                args = [*shell, body]
                shown = " ".join([*shell, script])
                if body.startswith("#!"):  # a script with its own interpreter runs as a file
                    args = [f"/dev/pipes/{sole[0]}"]
                    heredoc_file = (args[0], body)
            else:
                if cmd.heredocs:  # the shell reads the here-documents itself
                    script = "\n".join([script, *(h.content + h.name for h in cmd.heredocs)]) + "\n"
                args = [*shell, script]
                shown = " ".join(args)
        network = (flags.get("network") or [self.opts.network])[-1]
        if flags.get("network") and network not in ("default", "host", "none"):  # (the build's own: any)
            raise ParseError(f"unsupported network mode {network!r}", cmd.start_line)
        mounts: list[dict[str, Any]] = []
        if heredoc_file is not None:
            mounts.append({"type": "file", "target": heredoc_file[0], "content": heredoc_file[1], "key": "file"})
        try:
            for m in flags.get("mount", []):
                mounts.append(mount_spec(self, state, m, cmd, sum(1 for x in mounts if x["type"] == "ssh")))
            self._run(state, cmd, args, shown, network, mounts)
        finally:
            for m in mounts:
                if "release" in m:
                    m["release"]()

    def _run(self, state: _State, cmd: Command, args: list[str], shown: str, network: str,
             mounts: list[dict[str, Any]]) -> None:
        args_in_scope = dict(sorted(state.args.items()))
        env_now = state.env
        declared = [f"{k}={env_now.get(k, state.args.get(k, ''))}" for k in state.declared]
        prefix = f"|{len(declared)} " + " ".join(declared) + " " if declared else ""
        created_by = f"RUN {prefix}{shown} # buildkit"
        if self.opts.classic:
            created_by = classic.run_text(args if cmd.json else [shown],
                                          {k: v for k, v in state.args.items() if k not in env_now})
        detail = {"parent": state.image, "instruction": f"RUN {shown}" + "".join(
            h.content for h in cmd.heredocs) + "".join(
            f" --mount={m['key']}" for m in mounts) + f" network={network}", "args": args_in_scope}
        key = self._keyed(detail)
        if self._lookup(state, key, detail):
            return
        env = state.cfg.get("Env") or [DEFAULT_PATH]
        run_env = list(env)
        for k, v in state.args.items():
            if k not in env_dict(env):
                run_env.append(f"{k}={v}")
        for k in PREDEFINED_ARGS:  # proxy args reach RUN without an ARG (and stay out of history)
            value = self.opts.build_args.get(k)
            if value is not None and k not in state.args:
                run_env.append(f"{k}={value}")
        for m in mounts:  # secrets asked for as environment variables (never recorded)
            if m["type"] == "secret" and m["env"]:
                run_env.append(f"{m['env']}={self.opts.secrets.get(m['id'], b'').decode('utf-8', 'replace')}")
        agents = [m["target"] for m in mounts if m["type"] == "ssh" and m["file"]]
        if agents and not any(e.startswith("SSH_AUTH_SOCK=") for e in run_env):
            run_env.append(f"SSH_AUTH_SOCK={agents[0]}")
        user = state.cfg.get("User") or ""
        cwd = state.cfg.get("WorkingDir") or "/"
        code_box: list[int] = []

        def run(root: str) -> None:
            fsops.make_dirs(root, cwd, fsops.Ownership())
            oci_mounts = [oci_mount(self, m) for m in mounts if m.get("file", True)]
            stubs = _absent(root, [m["destination"] for m in oci_mounts] + ["/etc/resolv.conf", "/etc/hosts",
                                                                          "/etc/hostname"])
            volumes = self._volumes(state, root) if self.opts.classic else []  # as dockerd's RUN has them
            oci_mounts += volumes
            try:
                last = [b"\n"]

                def output(data: bytes) -> None:
                    if data:
                        last[0] = data.removesuffix(STDERR_END)[-1:]
                        self.say(data.decode("utf-8", "replace"))
                request = RunRequest(root, args, run_env, cwd, user, network, oci_mounts,
                                     extra_hosts=self.opts.extra_hosts, shm_size=self.opts.shm_size)
                code_box.append(self.executor.run(request, output))
                if last[0] != b"\n":
                    self.say("\n")
            finally:
                for m in mounts:
                    if m.get("cleanup"):
                        shutil.rmtree(m["cleanup"], ignore_errors=True)
                for m in volumes:
                    shutil.rmtree(m["source"], ignore_errors=True)
                _remove_stubs(root, stubs)
            return stubs
        run_id = uuid.uuid4().hex[:12]
        self.say(f" ---> Running in {run_id}\n")
        layer = self._in_rootfs(state, run, keep=lambda: bool(code_box) and code_box[0] == 0)
        if code_box and code_box[0] == 0:
            self.say(f" ---> Removed intermediate container {run_id}\n")
        if code_box and code_box[0] != 0:
            raise BuildError(f"The command '{' '.join(args) if cmd.json else shown}' returned a non-zero code: "
                             f"{code_box[0]}", code_box[0])
        self._commit(state, created_by, layer, key, detail, container=False)

    def _volumes(self, state: _State, root: str) -> list[dict[str, Any]]:
        """Throwaway anonymous volumes for the image's VOLUMEs, filled from the image like
        dockerd's: what a RUN writes there is gone, the mount points stay in the layer."""
        found = []
        for path in sorted(state.cfg.get("Volumes") or {}):
            tmp = tempfile.mkdtemp(prefix="volume-", dir=self.work_root)
            found.append({"destination": path, "type": "bind", "source": tmp, "options": ["rbind", "rw"]})
            host = fsops.resolve(root, path)
            if not os.path.isdir(host):
                fsops.make_dirs(root, path, fsops.Ownership())
            shutil.copytree(host, tmp, symlinks=True, dirs_exist_ok=True)
            for top, dirs, files in os.walk(host):  # owners too, as dockerd's volume copy keeps them
                for name in ["", *dirs, *files]:
                    st = os.lstat(os.path.join(top, name))
                    os.lchown(os.path.join(tmp, os.path.relpath(os.path.join(top, name), host)), st.st_uid, st.st_gid)
            shutil.copystat(host, tmp)
        return found

    # -- COPY / ADD ------------------------------------------------------------------------------

    def _do_copy(self, state: _State, cmd: Command) -> None:
        self._copy(state, cmd, add=False)

    def _do_add(self, state: _State, cmd: Command) -> None:
        self._copy(state, cmd, add=True)

    def _copy(self, state: _State, cmd: Command, add: bool) -> None:
        allowed = ("chown", "chmod", "link", "parents", "exclude") + (
            ("checksum", "keep-git-dir", "unpack") if add else ("from",))
        flags = parse_flags(cmd, allowed)
        env = state.expansion_env()
        words = [self.lex.process_word(w, env) for w in cmd.value]
        if len(words) < 2 and not cmd.heredocs:
            raise ParseError(f"{(cmd.cmd or '').upper()} requires at least two arguments, but only one was "
                             "provided. Destination could not be determined.", cmd.start_line)
        dest = words[-1]
        srcs = words[:-1]
        frm = self.lex.process_word(flags["from"][-1], env) if "from" in flags else ""
        chown = self.lex.process_word(flags["chown"][-1], env) if "chown" in flags else ""
        chmod = flags.get("chmod", [""])[-1]
        excludes = [self.lex.process_word(e, env) for e in flags.get("exclude", [])]
        workdir = state.cfg.get("WorkingDir") or "/"
        sources = SourceSet.prepare(self, state, frm, srcs, cmd, add, flags)
        if self.hidden and sources.from_context and any(posixpath.normpath("/" + s) == "/" for s in srcs):
            excludes = [*excludes, *self.hidden]  # the context's root: its paths are the patterns' own
        try:
            files = sources.digest(excludes)
            name = (cmd.cmd or "").upper()
            parts = [name]  # BuildKit's history text: some flags, the sources, the destination
            if "parents" in flags:
                parts.append("--parents")
            if chown:
                parts.append(f"--chown={chown}")
            if chmod:
                parts.append(f"--chmod={chmod}")
            parts += [f"<<{h.name}" for h in cmd.heredocs] or srcs
            created_by = " ".join([*parts, dest]) + " # buildkit"
            detail = {"parent": state.image, "instruction": f"{name} {cmd.flags} {words}", "args": {},
                      "files": files, "source": "context" if sources.from_context else "generated" if \
                      sources.identity == "generated" else "image"}
            key = self._keyed(detail)
            if self._lookup(state, key, detail):
                return
            mode = None
            if chmod:
                try:
                    mode = int(chmod, 8)
                except ValueError:
                    raise ParseError(f"invalid chmod parameter {chmod!r}", cmd.start_line) from None

            def work(root: str) -> None:  # the classic builder owns everything to root or --chown
                keep = frm and not self.opts.classic
                owner = fsops.Ownership(None, None, mode) if keep else fsops.Ownership(0, 0, mode)
                if chown:
                    owner.uid, owner.gid = self._chown(root, chown)
                add_sources(sources, root, dest, workdir, owner, excludes, "parents" in flags, add, cmd,
                            classic=self.opts.classic)
            layer = self._in_rootfs(state, work)
            if self.opts.classic:
                flag = f"--chown={chown}" if chown else ""  # glued to the hash, as dockerd writes it
                downloaded = sources.identity == "generated"
                created_by = classic.nop_string(self._shell(state), f"{name} {flag}"
                                                f"{classic.source_hash(sources.matches(excludes), downloaded)} in {dest} ")
            self._commit(state, created_by, layer, key, detail, container=False)
        finally:
            sources.close()

    def _chown(self, root: str, spec: str) -> tuple[int, int]:
        user, _, group = spec.partition(":")
        if user.isdigit() and (not group or group.isdigit()):
            return int(user), int(group) if group else int(user)
        try:
            uid, gid = self.executor.resolve_user(root, spec)
        except (LookupError, ValueError) as e:
            raise fsops.CopyError(f"unable to convert uid/gid chown string to host mapping: {e}") from None
        return uid, gid

    # -- snapshots -------------------------------------------------------------------------------

    def _in_rootfs(self, state: _State, fn: Callable[[str], Any],
                   keep: Callable[[], bool] = lambda: True) -> Layer | None:
        """Run fn on a writable rootfs of the current image; the layer of its changes. fn may
        return the mount stubs it removed: directories copied up only to hold them are dropped."""
        key = f"build-{uuid.uuid4().hex}"
        snapshots = self.store.snapshots
        rootfs = os.path.join(self.work_root, key)
        os.makedirs(rootfs)
        try:
            self.store.prepare_rootfs(key, state.image)
            mount_all(snapshots.mounts(key), rootfs)
            try:
                stubs = fn(rootfs)
            finally:
                unmount(rootfs)
            if not keep():
                return None
            mode = snapshots.diff_mode()
            if stubs and mode == "overlay":
                _drop_stub_parents(snapshots.layer_dir(key), stubs)
            layer = self.store.write_layer(snapshots.layer_dir(key), mode=mode,
                                           parent=snapshots.parent_dir(key) if mode == "compare" else None,
                                           source_date_epoch=self.opts.source_date_epoch, compression="none")
        finally:
            self.store.remove_rootfs(key)
            os.rmdir(rootfs)
        return None if layer.diff_id == EMPTY_LAYER_DIFF_ID else layer

    def _final_image(self, result: StageResult, labels: dict[str, str], history_fixes: dict[int, str],
                     inline: list[tuple[str, str]] | None = None) -> str:
        """The target's image with --label applied and the ARG history texts of this build (a
        cached ARG step may carry another value's text: ARG values only key RUN steps), and
        the inline cache of its steps when asked for."""
        doc = copy.deepcopy(result.doc)
        if inline is not None:
            doc[INLINE_CACHE_FIELD] = inline_records(self.store, inline)
        for i, text in history_fixes.items():
            doc["history"][i]["created_by"] = text
        cfg = doc.setdefault("config", {})
        if labels:
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **labels}
        layers = self.store.layers(result.image) if result.image else []
        doc["rootfs"] = {"type": "layers", "diff_ids": [ly.diff_id for ly in layers]}
        return self.store.add_image(encode_config(doc), layers, parent=result.image)


def _key(detail: dict) -> str:
    return hashlib.sha256(json.dumps(detail, sort_keys=True).encode()).hexdigest()


def _short(image: str | None) -> str:
    return (image or "").removeprefix("sha256:")[:12]


def _at_line(cmd: Command, message: str) -> str:
    return f"dockerfile line {cmd.start_line}: {(cmd.original or '').splitlines()[0] if cmd.original else ''}: " \
           f"{message}"


def _go_list(items: list[str]) -> str:
    """A string list as Go's %q prints it: ["a" "b"]."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def _go_duration(ns: int) -> str:
    """time.Duration's String(): 0s, 500ms, 5s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    seconds = ns / 1e9
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{secs:g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{out}"
    return f"{int(minutes)}m{out}" if minutes else out


def _label_step(key: str, value: str, escape: str) -> Command:
    """A --label as a LABEL instruction whose words are taken literally (no expansion)."""
    def literal(word: str) -> str:
        return "".join(escape + c if c in ("\\", "$", '"', "'", escape) or c.isspace() else c for c in word)
    return Command("LABEL", None, False, f"LABEL {key}={value}", 0, 0, (), (literal(key), literal(value)), ())


def _port_range(spec: str, cmd: Command) -> list[str]:
    """An EXPOSE word as the ports it names: `8000-8002/UDP` → 8000/udp 8001/udp 8002/udp."""
    port, _, proto = spec.partition("/")
    first, _, last = port.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise ParseError(f"invalid containerPort: {port}", cmd.start_line) from None
    if end < start:
        raise ParseError(f"invalid range specified for containerPort: {port}", cmd.start_line)
    return [f"{n}/{proto.lower()}" for n in range(start, end + 1)]


def _absent(root: str, paths: list[str]) -> list[str]:
    """Those of paths (inside root) that do not exist yet: mount stubs to remove after a RUN."""
    return [p for p in paths if not os.path.lexists(fsops.resolve(root, p, follow_last=False))]


def _drop_stub_parents(upper: str, stubs: list[str]) -> None:
    """Remove from an overlay upper dir the empty directories copied up for mount stubs."""
    parents = {posixpath.dirname(p.rstrip("/")) for p in stubs}
    for parent in sorted(parents, key=len, reverse=True):
        while parent not in ("", "/"):
            host = os.path.join(upper, parent.lstrip("/"))
            try:
                if os.path.islink(host) or os.listdir(host) or os.getxattr(
                        host, "trusted.overlay.opaque", follow_symlinks=False):
                    break
            except OSError:
                pass
            try:
                os.rmdir(host)
            except OSError:
                break
            parent = posixpath.dirname(parent)


def _remove_stubs(root: str, stubs: list[str]) -> None:
    for p in sorted(stubs, key=len, reverse=True):
        host = fsops.resolve(root, p, follow_last=False)
        try:
            if os.path.isdir(host) and not os.path.islink(host):
                os.rmdir(host)
            else:
                os.unlink(host)
        except OSError:
            pass
