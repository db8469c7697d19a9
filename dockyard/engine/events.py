"""The engine's event bus (GET /events): services publish from any thread, subscribers are
asyncio queues. The last BACKLOG events are kept for `since`, as dockerd keeps a ring of them.

Events have Docker's shape: Type, Action, Actor {ID, Attributes}, scope, time, timeNano, plus
the deprecated status/id/from fields that API versions before 1.52 still carry."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.image import filters as flt
from dockyard.image import reference

BACKLOG = 256
QUEUE_LIMIT = 1024


@dataclass(frozen=True)
class Event:
    """One engine event."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str]
    time_nano: int
    scope: str = "local"

    def to_api(self) -> dict[str, Any]:
        """The JSON object GET /events sends."""
        doc: dict[str, Any] = {}
        if self.type in ("container", "image"):
            doc = {"status": self.action, **({"id": self.actor_id} if self.actor_id else {})}
            if "image" in self.attributes and self.type == "container":
                doc["from"] = self.attributes["image"]
        doc.update({"Type": self.type, "Action": self.action,
                    "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
                    "scope": self.scope, "time": self.time_nano // 1_000_000_000, "timeNano": self.time_nano})
        return doc


@dataclass
class Subscription:
    """A subscriber's queue; None in it means the bus closed (or this subscriber fell behind)."""

    queue: asyncio.Queue[Event | None]
    loop: asyncio.AbstractEventLoop
    backlog: list[Event] = field(default_factory=list)
    closed: bool = False

    async def get(self) -> Event | None:
        """The next event; None once the subscription ended."""
        if self.closed and self.queue.empty():
            return None
        return await self.queue.get()


class EventBus:
    """Publish/subscribe for engine events, safe to publish from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backlog: deque[Event] = deque(maxlen=BACKLOG)
        self._subscribers: list[Subscription] = []

    def publish(self, type: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None,
                scope: str = "local") -> Event:
        """Record an event and hand it to every subscriber."""
        event = Event(type, action, actor_id, dict(attributes or {}), time.time_ns(), scope)
        with self._lock:
            self._backlog.append(event)
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.loop.call_soon_threadsafe(self._deliver, sub, event)
        return event

    def publish_many(self, type: str, items: Iterable[tuple[str, str, Mapping[str, str]]]) -> None:
        """Publish (action, actor ID, attributes) items of one type in order."""
        for action, actor_id, attributes in items:
            self.publish(type, action, actor_id, attributes)

    def _deliver(self, sub: Subscription, event: Event | None) -> None:
        if sub.closed:
            return
        if event is None or sub.queue.full():
            sub.closed = True
            self.unsubscribe(sub)
            if not sub.queue.full():
                sub.queue.put_nowait(None)
            return
        sub.queue.put_nowait(event)

    def subscribe(self) -> Subscription:
        """A new subscription (call from the event loop), with the backlog as it stood at this
        instant: together they miss and repeat nothing."""
        sub = Subscription(asyncio.Queue(maxsize=QUEUE_LIMIT), asyncio.get_running_loop())
        with self._lock:
            sub.backlog = list(self._backlog)
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to sub (no error if it is already gone)."""
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def listeners(self) -> int:
        """How many subscribers there are (/info NEventsListener)."""
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """End every subscription (daemon shutdown)."""
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            sub.loop.call_soon_threadsafe(self._deliver, sub, None)


FILTER_KEYS = frozenset({"config", "container", "daemon", "event", "image", "label", "network", "node",
                         "plugin", "scope", "secret", "service", "type", "volume"})
_NAMED = ("config", "container", "daemon", "network", "node", "plugin", "secret", "service", "volume")


class EventFilter:
    """GET /events filters, matched as dockerd matches them: every given key must match."""

    def __init__(self, filters: Mapping[str, object] | None) -> None:
        self.wanted = flt.normalize(filters, FILTER_KEYS)

    def __call__(self, event: Event) -> bool:
        w = self.wanted
        if "type" in w and event.type not in w["type"]:
            return False
        if "event" in w and event.action not in w["event"]:
            return False
        if "scope" in w and event.scope not in w["scope"]:
            return False
        name = event.attributes.get("name", "")
        for key in _NAMED:
            if key in w and (event.type != key or not any(
                    event.actor_id.startswith(v) or name.startswith(v) for v in w[key])):
                return False
        if "image" in w and not _image_matches(w["image"], event):
            return False
        return "label" not in w or flt.labels_match(w["label"], event.attributes)


def _image_matches(values: list[str], event: Event) -> bool:
    name = event.attributes.get("name" if event.type == "image" else "image", "")
    candidates = {event.actor_id, name, _strip_tag(name)}
    return any(v in candidates for v in values)


def _strip_tag(name: str) -> str:
    """A tagged image name without its tag ("busybox:latest" → "busybox"), else the name."""
    try:
        ref = reference.parse_normalized(name)
    except reference.InvalidReference:
        return name
    return ref.familiar_name() if ref.tag and not ref.digest else name
