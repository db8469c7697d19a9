"""Orchestration over the Engine API (Docker Compose's model): a project's containers found by
their labels; `up` converges each service (create, recreate when its config hash or image
changed, start, scale) in dependency order with depends_on conditions; `down` and the
per-container commands."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from dockyard.client.api import APIError, Client
from dockyard.compose import convert, images, injected, resources
from dockyard.compose.convert import (
    LABEL_HASH,
    LABEL_IMAGE,
    LABEL_NUMBER,
    LABEL_ONEOFF,
    LABEL_PROJECT,
    LABEL_SERVICE,
)
from dockyard.compose.errors import ComposeError
from dockyard.compose.loader import Project
from dockyard.compose.progress import Progress

T = TypeVar("T")


def number(container: dict[str, Any]) -> int:
    return int((container.get("Labels") or {}).get(LABEL_NUMBER, "0") or 0)


def name_of(container: dict[str, Any]) -> str:
    return (container.get("Names") or ["/?"])[0].lstrip("/")


class Engine:
    """One project against one daemon."""

    def __init__(self, client: Client, project: Project, progress: Progress | None = None) -> None:
        self.client = client
        self.project = project
        self.progress = progress or Progress()
        self.recreated: set[str] = set()  # services whose containers `up` recreated
        self.renew_anonymous = False  # up -V: recreated containers get new anonymous volumes
        self.existing: dict[str, list[dict[str, Any]]] = {}  # `up`: the services' containers found at its start
        self._image_ids: dict[str, str | None] = {}  # image reference → ID (None: absent), looked up once
        self.built: set[str] = set()  # services this engine built (a build dependency is built once)
        self._building: list[str] = []  # the services being built, dependencies last (cycle detection)

    # listing
    def containers(self, services: Iterable[str] | None = None, all: bool = True,
                   oneoff: bool | None = False) -> list[dict[str, Any]]:
        """The project's containers (by label), sorted by service and number."""
        labels = [f"{LABEL_PROJECT}={self.project.name}"]
        if oneoff is not None:
            labels.append(f"{LABEL_ONEOFF}={'True' if oneoff else 'False'}")
        found = self.client.containers(all=all, filters={"label": labels})
        wanted = set(services) if services is not None else None
        found = [c for c in found if wanted is None or c["Labels"].get(LABEL_SERVICE) in wanted]
        return sorted(found, key=lambda c: (c["Labels"].get(LABEL_SERVICE, ""), number(c), name_of(c)))

    def service_names(self, names: list[str] | None) -> list[str]:
        """The named services (all when none), checked to exist."""
        if not names:
            return list(self.project.services)
        for n in names:
            if n not in self.project.services:
                if n in self.project.disabled:
                    raise ComposeError(f"service {n!r} has profiles that are not active")
                raise ComposeError(f"no such service: {n}")
        return names

    def dependencies(self, name: str) -> dict[str, dict[str, Any]]:
        """depends_on, plus the services named by `network_mode: service:x` and `volumes_from`
        (which must be started first), limited to the project's enabled services."""
        svc = self.project.services[name]
        deps = dict(svc.get("depends_on") or {})
        mode = svc.get("network_mode", "")
        implicit = [mode[8:]] if mode.startswith("service:") else []
        implicit += [v.split(":")[0] for v in svc.get("volumes_from") or [] if not v.startswith("container:")]
        for other in implicit:
            deps.setdefault(other, {"condition": "service_started", "required": True})
        return {d: c for d, c in deps.items() if d in self.project.services}

    def with_dependencies(self, names: list[str]) -> list[str]:
        """names plus what they depend on, dependencies first."""
        order: list[str] = []

        def visit(n: str) -> None:
            if n in order:
                return
            for d in self.dependencies(n):
                visit(d)
            order.append(n)
        for n in names:
            visit(n)
        return order

    def with_dependents(self, names: list[str]) -> set[str]:
        """names plus the services that depend on them, transitively (what `down NAMES` removes)."""
        chosen = set(names)
        while grown := {n for n in self.project.services if n not in chosen and chosen & set(self.dependencies(n))}:
            chosen |= grown
        return chosen

    # resources
    def prepare(self, services: list[str], found: list[dict[str, Any]] | None = None) -> None:
        """Networks and volumes the services use, created unless the daemon has them. One
        concurrent round of reads (the project's networks and volumes by label, each image
        reference, and, into found, the project's containers), then one of creates."""
        model = self.project.model
        nets = {n for s in services for n in (self.project.services[s].get("networks") or {})
                if not self.project.services[s].get("network_mode")}
        vols = {v["source"] for s in services for v in self.project.services[s].get("volumes") or []
                if v["type"] == "volume" and v.get("source")}
        known: dict[str, dict[str, dict[str, Any]]] = {}
        refs = {convert.image_name(self.project.name, n, self.project.services[n]) for n in services}
        reads: list[Callable[[], None]] = [partial(self._look_up_image, ref) for ref in sorted(refs - set(self._image_ids))]

        def list_kind(kind: str) -> None:
            known[kind] = resources.labelled(self.client, self.project.name, kind)
        reads += [partial(list_kind, kind) for kind, wanted in (("networks", nets), ("volumes", vols)) if wanted]
        if found is not None:
            reads.append(lambda: found.extend(self.containers()))
        self.each(reads, lambda job: job())
        jobs = [partial(resources.ensure_network, self.client, self.project.name, key, model["networks"][key],
                        self.progress, known.get("networks", {})) for key in sorted(nets)]
        jobs += [partial(resources.ensure_volume, self.client, self.project.name, key, model["volumes"][key],
                         self.progress, known.get("volumes", {})) for key in sorted(vols)]
        self.each(jobs, lambda job: job())

    def _look_up_image(self, ref: str) -> None:
        self._image_ids[ref] = images.image_id(self.client, ref)

    def ensure_image(self, name: str, build: bool = False, policy: str | None = None, no_build: bool = False) -> str:
        """The service's image ID: built when asked or missing (with a build section, unless
        no_build), else pulled if missing or the pull policy says always."""
        svc = self.project.services[name]
        ref = convert.image_name(self.project.name, name, svc)
        policy = policy or svc.get("pull_policy") or "missing"
        if ref not in self._image_ids:
            self._look_up_image(ref)
        found = self._image_ids[ref]
        if name in self.built:
            return found or ""
        if "build" in svc and not no_build and (build or policy == "build" or found is None):
            return self.build(name)
        if found is None or policy == "always":
            if policy == "never" and found is None:
                raise ComposeError(f"image {ref} not found and pull_policy is never")
            images.pull(self.client, name, ref, self.progress)
            found = self._image_ids[ref] = images.image_id(self.client, ref)
        return found or ""

    def build(self, name: str, conf: dict[str, Any] | None = None, no_cache: bool = False,
              pull: bool = False) -> str:
        """Build the service's image (conf: its build section, changed); its ID, remembered for
        the next `up` of this engine (watch rebuilds, then converges). The services its
        additional contexts name (`service:NAME`) are built first, once per engine."""
        svc = self.project.services[name]
        conf = conf or svc["build"]
        ref = convert.image_name(self.project.name, name, svc)
        refs = {}
        self._building.append(name)
        try:
            for dep in images.service_contexts(conf):
                if dep not in self.project.services:
                    raise ComposeError(f"service {name!r} build: additional context service:{dep} names an "
                                       "unknown or disabled service")
                if dep in self._building:
                    raise ComposeError("build dependency cycle: " + " -> ".join([*self._building, dep]))
                if dep not in self.built:
                    if "build" in self.project.services[dep]:
                        self.build(dep, no_cache=no_cache, pull=pull)
                    else:
                        self.ensure_image(dep)
                refs[dep] = convert.image_name(self.project.name, dep, self.project.services[dep])
        finally:
            self._building.pop()
        built = images.build(self.client, name, ref, conf, self.progress, no_cache, pull,
                             images.build_secrets(self.project, conf), self.project.directory, refs,
                             svc.get("platform"))
        self._image_ids[ref] = built
        self.built.add(name)
        return built

    # up
    def up(self, names: list[str] | None = None, *, build: bool = False, force_recreate: bool = False,
           no_recreate: bool = False, no_deps: bool = False, remove_orphans: bool = False,
           scale: dict[str, int] | None = None, start: bool = True, timeout: int | None = None,
           pull: str | None = None, no_build: bool = False) -> list[str]:
        """Converge the services (and their dependencies unless no_deps); the services touched."""
        targets = self.service_names(names)
        services = targets if no_deps else self.with_dependencies(targets)
        found: list[dict[str, Any]] = []
        self.prepare(services, found)
        self._orphans(found, remove_orphans)
        image_ids = {n: self.ensure_image(n, build, pull, no_build) for n in services}
        self.existing = {}
        for c in found:
            self.existing.setdefault(c["Labels"].get(LABEL_SERVICE, ""), []).append(c)
        futures: dict[str, Future[None]] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
            for n in services:
                deps = {d: c for d, c in self.dependencies(n).items() if d in services}
                futures[n] = pool.submit(self._converge_after, n, deps, futures, image_ids[n],
                                         (scale or {}).get(n), force_recreate and n in targets,
                                         no_recreate, start, timeout)
            errors = [f.exception() for f in futures.values() if f.exception() is not None]
        if errors:
            raise errors[0]
        return services

    def _converge_after(self, name: str, deps: dict[str, dict[str, Any]], futures: dict[str, Future[None]],
                        image_id: str, scale: int | None, force: bool, no_recreate: bool, start: bool,
                        timeout: int | None) -> None:
        for dep in deps:
            while dep not in futures:
                time.sleep(0.01)
            futures[dep].result()
        containers = self._converge(name, image_id, scale, force, no_recreate, timeout)
        if start:
            for dep, cond in deps.items():
                self.wait_condition(dep, cond)
            restart = name not in self.recreated and any(
                cond.get("restart") and dep in self.recreated for dep, cond in deps.items())
            for c, running in containers:
                if restart and running:  # depends_on.restart: a recreated dependency restarts its dependents
                    self.progress.event("Container", c, "Restarting")
                    self.client.container_action(c, "restart", {"t": timeout})
                    self.progress.event("Container", c, "Started")
                elif not running:
                    self._start(c)

    def _converge(self, name: str, image_id: str, scale: int | None, force: bool, no_recreate: bool,
                  timeout: int | None) -> list[tuple[str, bool]]:
        """Create/recreate/remove the service's containers; (name, running) of each to keep."""
        svc = self.project.services[name]
        want = convert.replicas(svc) if scale is None else scale
        if want > 1 and svc.get("container_name"):
            raise ComposeError(f'service "{name}" can\'t be scaled when a container_name is set')
        digest = convert.config_hash(svc)
        result: list[tuple[str, bool]] = []
        have: set[int] = set()
        for c in self.existing.get(name, []):
            n = number(c)
            labels = c.get("Labels") or {}
            if n > want or n in have:
                self._remove(c, timeout)
                continue
            have.add(n)
            stale = labels.get(LABEL_HASH) != digest or (image_id and labels.get(LABEL_IMAGE) != image_id)
            running = c.get("State") == "running"
            if force or (stale and not no_recreate):
                self._recreate(name, c, n, image_id, timeout)
                running = False
            elif running:
                self.progress.event("Container", name_of(c), "Running")
            result.append((self._display(name, n), running))
        for n in range(1, want + 1):
            if n not in have:
                self._create(name, n, image_id)
                result.append((self._display(name, n), False))
        return result

    def _display(self, service: str, n: int) -> str:
        return convert.container_name(self.project.name, service, self.project.services[service], n)

    def _create(self, service: str, n: int, image_id: str, kept: list[dict[str, Any]] | None = None) -> str:
        """Create container n of the service; kept: anonymous volumes of the container it replaces."""
        svc = self.project.services[service]
        cname = self._display(service, n)
        self.progress.event("Container", cname, "Creating")
        links = self.links(service)
        body = convert.create_body(self.project, service, svc, n, image_id, links=links)
        files = injected.files(self.project, svc)
        if kept:
            hc = body["HostConfig"]
            hc["Mounts"] = [*(hc.get("Mounts") or []), *kept]
            for m in kept:
                (body.get("Volumes") or {}).pop(m["Target"], None)
        try:
            cid = self.client.create_container(body, cname)["Id"]
        except APIError as exc:
            raise ComposeError(f"Error response from daemon: {exc.message}") from None
        injected.inject(self.client, cid, files)
        self._connect_extra_networks(service, svc, cid, n, links)
        self.progress.event("Container", cname, "Created")
        return cid

    def links(self, service: str, oneoff: bool = False) -> list[str]:
        """HostConfig.Links of a service's new container, as Docker Compose makes them: each
        container of a linked service under the link's alias, `<service>-<n>` and
        `<project>-<service>-<n>`; a one-off container also links its own service's containers;
        external_links as written."""
        svc = self.project.services[service]
        wanted = [str(raw).partition(":") for raw in svc.get("links") or []]
        if oneoff:
            wanted.append((service, "", service))
        out: list[str] = []
        for linked, _, alias in wanted:
            for c in self.containers([linked]):
                cname, n = name_of(c), number(c)
                out += [f"{cname}:{alias or linked}", f"{cname}:{linked}-{n}",
                        f"{cname}:{self.project.name}-{linked}-{n}"]
        for raw in svc.get("external_links") or []:
            name, _, alias = str(raw).partition(":")
            out.append(f"{name}:{alias or name}")
        return list(dict.fromkeys(out))

    def _connect_extra_networks(self, service: str, svc: dict[str, Any], cid: str, n: int,
                                links: list[str]) -> None:
        if svc.get("network_mode"):
            return
        for net in convert.network_names(self.project.model, svc)[1:]:
            conf = self.project.model["networks"][net]
            self.client.call("POST", f"/networks/{conf['name']}/connect", None,
                             {"Container": cid, "EndpointConfig": convert.endpoint(self.project, service, svc, net, n, links)})

    def _recreate(self, service: str, old: dict[str, Any], n: int, image_id: str, timeout: int | None) -> None:
        cname = name_of(old)
        self.recreated.add(service)
        self.progress.event("Container", cname, "Recreate")
        kept = [] if self.renew_anonymous else self._anonymous_volumes(old["Id"])
        self._stop_id(old["Id"], timeout)
        self.client.remove_container(old["Id"], force=True, volumes=self.renew_anonymous)
        self._create(service, n, image_id, kept)
        self.progress.event("Container", cname, "Recreated")

    def _anonymous_volumes(self, cid: str) -> list[dict[str, Any]]:
        """The container's anonymous volumes as Mounts entries, so that its replacement keeps
        their data (as Docker Compose does, unless -V)."""
        named = {v["name"] for v in (self.project.model.get("volumes") or {}).values()}
        mounts = self.client.inspect_container(cid).get("Mounts") or []
        return [{"Type": "volume", "Source": m["Name"], "Target": m["Destination"], "ReadOnly": not m.get("RW", True)}
                for m in mounts if m.get("Type") == "volume" and m.get("Name") and m["Name"] not in named]

    def _start(self, cname: str) -> None:
        self.progress.event("Container", cname, "Starting")
        try:
            self.client.start(cname)
        except APIError as exc:
            raise ComposeError(f"Error response from daemon: {exc.message}") from None
        self.progress.event("Container", cname, "Started")

    def _orphans(self, found: list[dict[str, Any]], remove: bool) -> None:
        orphans = [c for c in found if c["Labels"].get(LABEL_SERVICE) not in self.project.services
                   and c["Labels"].get(LABEL_SERVICE) not in self.project.disabled]
        if not orphans:
            return
        if remove:
            for c in orphans:
                self._remove(c, None)
            return
        names = ", ".join(name_of(c) for c in orphans)
        self.progress.line(f"WARN[0000] Found orphan containers ([{names}]) for this project. If you removed or "
                           "renamed this service in your compose file, you can run this command with the "
                           "--remove-orphans flag to clean it up.")

    # dependency conditions
    def wait_condition(self, service: str, cond: dict[str, Any], timeout: float | None = None) -> None:
        """Block until the service's containers meet the depends_on condition."""
        condition = cond.get("condition", "service_started")
        if condition == "service_started":
            return
        containers = self.containers([service])
        deadline = time.monotonic() + timeout if timeout else None
        for c in containers:
            cname = name_of(c)
            self.progress.event("Container", cname, "Waiting")
            try:
                self._wait_one(service, cname, condition, deadline)
            except ComposeError:
                self.progress.event("Container", cname, "Error")
                if cond.get("required", True):
                    raise
                continue
            self.progress.event("Container", cname, "Healthy" if condition == "service_healthy" else "Exited")

    def _wait_one(self, service: str, cname: str, condition: str, deadline: float | None) -> None:
        while True:
            info = self.client.inspect_container(cname)
            state = info["State"]
            if condition == "service_completed_successfully":
                if state.get("Status") in ("exited", "dead"):
                    if state.get("ExitCode"):
                        raise ComposeError(f'service "{service}" didn\'t complete successfully: '
                                           f"exit {state['ExitCode']}")
                    return
            else:
                health = (state.get("Health") or {}).get("Status")
                if health is None and state.get("Running"):
                    if ((info.get("Config") or {}).get("Healthcheck") or {}).get("Test", ["NONE"])[0] == "NONE":
                        raise ComposeError(f"dependency failed to start: container {cname} has no healthcheck configured")
                    raise ComposeError(f"dependency failed to start: container {cname} has a healthcheck but the "
                                       "daemon reports no health status (State.Health)")
                if health == "healthy":
                    return
                if health == "unhealthy":
                    raise ComposeError(f"dependency failed to start: container {cname} is unhealthy")
                if state.get("Status") in ("exited", "dead"):
                    raise ComposeError(f"dependency failed to start: container {cname} exited ({state.get('ExitCode')})")
            if deadline is not None and time.monotonic() > deadline:
                raise ComposeError(f"timeout waiting for {cname}")
            time.sleep(0.1)

    def wait_running(self, services: list[str], timeout: float | None = None) -> None:
        """`up --wait`: every container running (and healthy if it has a healthcheck)."""
        deadline = time.monotonic() + timeout if timeout else None
        for c in self.containers(services):
            cname = name_of(c)
            while True:
                state = self.client.inspect_container(cname)["State"]
                health = (state.get("Health") or {}).get("Status")
                if state.get("Status") in ("exited", "dead"):
                    if state.get("ExitCode"):
                        raise ComposeError(f"container {cname} exited ({state.get('ExitCode')})")
                    break
                if state.get("Running") and health in (None, "", "healthy"):
                    self.progress.event("Container", cname, "Healthy" if health else "Running")
                    break
                if health == "unhealthy":
                    raise ComposeError(f"container {cname} is unhealthy")
                if deadline is not None and time.monotonic() > deadline:
                    raise ComposeError(f"timeout waiting for {cname}")
                time.sleep(0.1)

    # stopping and removing
    def _stop_id(self, cid: str, timeout: int | None) -> None:
        try:
            self.client.container_action(cid, "stop", {"t": timeout} if timeout is not None else None)
        except APIError as exc:
            if exc.status not in (304, 404):
                raise

    def _remove(self, c: dict[str, Any], timeout: int | None, volumes: bool = False) -> None:
        cname = name_of(c)
        if c.get("State") in ("running", "paused", "restarting"):
            self.progress.event("Container", cname, "Stopping")
            self._stop_id(c["Id"], timeout)
            self.progress.event("Container", cname, "Stopped")
        self.progress.event("Container", cname, "Removing")
        try:
            self.client.remove_container(c["Id"], force=True, volumes=volumes)
        except APIError as exc:
            if exc.status != 404:
                raise
        self.progress.event("Container", cname, "Removed")

    def each(self, items: list[T], action: Callable[[T], None]) -> None:
        """Run action on the items (containers, resources) in parallel; the first error is raised."""
        if len(items) == 1:
            action(items[0])
        if len(items) <= 1:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
            for f in [pool.submit(action, c) for c in items]:
                f.result()

    def stop(self, names: list[str] | None, timeout: int | None = None) -> None:
        """Stop containers, dependents before their dependencies."""
        for layer in self._reverse_layers(self.service_names(names)):
            def stop_one(c: dict[str, Any]) -> None:
                self.progress.event("Container", name_of(c), "Stopping")
                self._stop_id(c["Id"], timeout)
                self.progress.event("Container", name_of(c), "Stopped")
            self.each([c for c in self.containers(layer) if c.get("State") == "running"], stop_one)

    def _reverse_layers(self, services: list[str]) -> list[list[str]]:
        """Services grouped so that each group's dependents come in earlier groups."""
        order = self.with_dependencies(services)
        depth: dict[str, int] = {}
        for n in order:
            deps = [d for d in self.dependencies(n) if d in depth]
            depth[n] = 1 + max((depth[d] for d in deps), default=0)
        chosen = set(services)
        top = max(depth.values(), default=0)
        layers = [[n for n in order if depth[n] == level and n in chosen] for level in range(top, 0, -1)]
        return [layer for layer in layers if layer]

    def down(self, remove_volumes: bool = False, rmi: str | None = None, remove_orphans: bool = False,
             timeout: int | None = None, services: list[str] | None = None) -> None:
        """Stop and remove the project's containers (of services and their dependents when named),
        then its networks and volumes unless containers remain on them (and images)."""
        known = set(self.project.services) | set(self.project.disabled)
        chosen = self.with_dependents(self.service_names(services)) if services else known
        found: dict[str, Any] = {}  # containers, networks and volumes, read in one concurrent round

        def read(kind: str) -> None:
            found[kind] = (self.containers(oneoff=None) if kind == "containers"
                           else resources.labelled(self.client, self.project.name, kind))
        self.each(["containers", "networks", *(["volumes"] if remove_volumes else [])], read)
        everything = found["containers"]
        targets = [c for c in everything if c["Labels"].get(LABEL_SERVICE) in chosen
                   or (remove_orphans and c["Labels"].get(LABEL_SERVICE) not in known)]
        services_order = self._reverse_layers(list(self.project.services))
        done: set[str] = set()
        for layer in services_order:
            batch = [c for c in targets if c["Labels"].get(LABEL_SERVICE) in layer]
            self.each(batch, lambda c: self._remove(c, timeout, remove_volumes))
            done |= {c["Id"] for c in batch}
        self.each([c for c in targets if c["Id"] not in done], lambda c: self._remove(c, timeout, remove_volumes))
        left = [c for c in everything if c not in targets]
        orphans = [c for c in left if c["Labels"].get(LABEL_SERVICE) not in known]
        if orphans:
            names = ", ".join(name_of(c) for c in orphans)
            self.progress.line(f"WARN[0000] Found orphan containers ([{names}]) for this project. If you removed "
                               "or renamed this service in your compose file, you can run this command with the "
                               "--remove-orphans flag to clean it up.")
        jobs = [] if left else [(resources.remove_network, conf) for conf in self._resources("networks", found)]
        if remove_volumes and not (services and left):  # (the other services' containers use them)
            jobs += [(resources.remove_volume, conf) for conf in self._resources("volumes", found)]
        self.each(jobs, lambda job: job[0](self.client, job[1], self.progress))
        if rmi:
            self._remove_images(rmi)

    def _resources(self, kind: str, found: dict[str, Any]) -> list[dict[str, Any]]:
        """The model's networks or volumes, plus those found with the project's label
        (resources of services since removed from the file, or `down -p NAME` without a file)."""
        confs = list((self.project.model.get(kind) or {}).values())
        known = {c["name"] for c in confs}
        return confs + [{"name": name} for name in found[kind] if name not in known]

    def _remove_images(self, mode: str) -> None:
        if mode not in ("all", "local"):
            raise ComposeError(f"invalid --rmi value {mode!r}: must be 'local' or 'all'")
        for name, svc in self.project.services.items():
            if mode == "local" and svc.get("image") and "build" not in svc:
                continue
            ref = convert.image_name(self.project.name, name, svc)
            try:
                self.client.remove_image(ref)
                self.progress.event("Image", ref, "Removed")
            except APIError as exc:
                if exc.status != 404:
                    self.progress.line(f"WARN[0000] {exc.message}")

    def remove_stopped(self, names: list[str] | None, volumes: bool = False, stop: bool = False) -> list[dict[str, Any]]:
        """`rm`: the stopped containers of the services (with stop, all of them, stopped first), removed."""
        found = self.containers(self.service_names(names))
        if stop:
            self.stop(names)
        chosen = [{**c, "State": "exited"} for c in found if stop or c.get("State") != "running"]
        self.each(chosen, lambda c: self._remove(c, None, volumes))
        return chosen

    def action(self, names: list[str] | None, verb: str, done: str, query: dict[str, Any] | None = None,
               states: tuple[str, ...] | None = None) -> None:
        """A container verb (start, restart, kill, pause, unpause) on the services' containers."""
        services = self.service_names(names)
        for layer in ([[s] for s in self.with_dependencies(services) if s in services] if verb == "start"
                      else [services]):
            chosen = [c for c in self.containers(layer) if states is None or c.get("State") in states]

            def act(c: dict[str, Any]) -> None:
                self.progress.event("Container", name_of(c), verb.capitalize().rstrip("e") + "ing")
                self.client.container_action(c["Id"], verb, query)
                self.progress.event("Container", name_of(c), done)
            self.each(chosen, act)
            if verb == "start":
                for s in layer:
                    for dep, cond in self.dependencies(s).items():
                        self.wait_condition(dep, cond)

    def find(self, service: str, index: int = 0) -> dict[str, Any]:
        """The running container number `index` of a service (0: its lowest-numbered one)."""
        self.service_names([service])
        for c in self.containers([service], all=False):
            if index in (0, number(c)):
                return c
        if index:
            raise ComposeError(f'service "{service}" is not running container #{index}')
        raise ComposeError(f'service "{service}" is not running')

