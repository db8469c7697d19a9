"""The engine's registry operations: docker pull, push and login over the registry client, with
Docker's JSON progress messages and image events."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from dockyard.engine.events import EventBus
from dockyard.image import reference
from dockyard.image.store import ImageStore
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.endpoint import RegistryConfig
from dockyard.registry.client.inspect import distribution_info, list_tags
from dockyard.registry.client.login import login
from dockyard.registry.client.progress import Progress
from dockyard.registry.client.pull import Resolved, fetch, resolve
from dockyard.registry.client.push import push, tags_to_push

Sink = Callable[[dict[str, Any]], None]


def pull_name(from_image: str, tag: str) -> str:
    """The reference /images/create?fromImage&tag means (a digest in tag is a digest; neither
    tag nor digest: every tag)."""
    if not tag:
        return from_image
    return f"{from_image}@{tag}" if ":" in tag else f"{from_image}:{tag}"


class RegistryService:
    """Pull, push and login for dockyardd; blocking methods, called through the image service's pool."""

    def __init__(self, store: ImageStore, events: EventBus, config: RegistryConfig,
                 write_lock: AbstractContextManager[Any]) -> None:
        self.store = store
        self.events = events
        self.config = config
        self.write_lock = write_lock

    def resolve(self, name: str, credentials: Credentials, platform: str | None) -> list[Resolved]:
        """Find the manifests to pull: name's, or every tag's for a name without tag or digest
        (docker pull -a). PullError before any progress is streamed."""
        ref = reference.parse_normalized(name)
        names = [f"{ref}:{tag}" for tag in list_tags(name, credentials, self.config)] if ref.is_name_only \
            else [name]
        return [resolve(n, credentials, self.config, platform or None) for n in names]

    def fetch(self, plan: list[Resolved], sink: Sink) -> None:
        """Download and record resolved images with docker's messages."""
        progress = Progress(sink)
        newer = False
        for resolved in plan:
            ref = resolved.ref
            progress.status(f"Pulling from {ref.path}", ref.tag or ref.digest or "")
            _, new = fetch(self.store, resolved, progress, write_lock=self.write_lock)
            newer = newer or new
            progress.status(f"Digest: {resolved.digest}")
            if len(plan) == 1:
                progress.status(f"Status: {'Downloaded newer image' if new else 'Image is up to date'} "
                                f"for {ref.familiar()}")
            self._event("pull", ref)
        if len(plan) > 1:
            name = plan[0].ref.trim().familiar()
            progress.status(f"Status: {'Downloaded newer image' if newer else 'Image is up to date'} for {name}")

    def check_push(self, name: str) -> None:
        """NoSuchImage-like PushError before streaming when there is nothing to push."""
        tags_to_push(self.store, name)

    def push(self, name: str, credentials: Credentials, sink: Sink) -> None:
        """Push with docker's messages."""
        repo = reference.parse_normalized(name).trim()
        for pushed in push(self.store, name, credentials, self.config, Progress(sink), self.write_lock):
            self._event("push", repo.with_tag(pushed.tag))

    def _event(self, action: str, ref: reference.Reference) -> None:
        """An image event as dockerd sends it for pull and push: the familiar reference as ID,
        the image's labels and the familiar repository name as attributes."""
        labels: dict[str, str] = {}
        try:
            labels = (self.store.config(self.store.resolve(str(ref))).get("config") or {}).get("Labels") or {}
        except (LookupError, ValueError):
            pass
        self.events.publish("image", action, ref.familiar(), {**labels, "name": ref.trim().familiar()})

    def distribution(self, name: str, credentials: Credentials) -> dict[str, Any]:
        """GET /distribution/{name}/json."""
        return distribution_info(name, credentials, self.config)

    def login(self, body: dict[str, Any]) -> dict[str, str]:
        """POST /auth: check the credentials; docker's answer."""
        login(str(body.get("serveraddress") or ""), Credentials.from_dict(body), self.config)
        return {"Status": "Login Succeeded", "IdentityToken": ""}
