"""Shared watches: one store watch per resource, however many clients watch it.

Every informer of every controller and agent watches, so a change to a pod used to be
read from etcd, decoded and encoded once per watcher. A `Feed` follows one resource's
whole key prefix and hands each change to all its `Subscriber`s. The JSON line a watcher
sends is built once per event and type (`Delivery.line`), from the stored bytes with the
resourceVersion spliced in, and shared by every watcher that sends the same thing; the
object is decoded only for a subscriber with selectors (once, shared: nobody may modify
it). Each subscriber filters by its namespace prefix and selectors.

A feed keeps its last `BACKLOG` events, so a client resuming from a recent
resourceVersion (the usual re-watch after a timeout) joins it, unless etcd has compacted
that version: then it is `Expired` as a store watch from there would be. One resuming
from before the feed's memory gets a store watch of its own. A feed ends when its last
subscriber leaves or when the store watch fails; then every subscriber gets the failure
and clients re-watch. A subscriber that falls `MAX_PENDING` events behind is ended, as
kube-apiserver ends a watcher that cannot keep up; its client resumes from its last
resourceVersion.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson

from apiserver import storage
from apiserver.storage import Store, WatchEvent
from minikube_py.api.types import Obj

log = logging.getLogger(__name__)

BACKLOG = 512
MAX_PENDING = 10_000


class Delivery:
    """One (type, object) a watcher sends. `line` is its JSON line, built on first use
    and shared by every watcher handed this same delivery: for a change, straight from
    the stored bytes (`storage.stamped`), without decoding or encoding the object."""

    __slots__ = ("_change", "_line", "_object", "type")

    def __init__(self, type_: str, obj: Obj | None = None, change: Change | None = None) -> None:
        self.type = type_
        self._object = obj
        self._change = change
        self._line: bytes | None = None

    @property
    def object(self) -> Obj:
        if self._object is None:
            assert self._change is not None
            self._object = self._change.object
        return self._object

    @property
    def resource_version(self) -> str:
        if self._change is not None:
            return str(self._change.event.revision)
        return str(self.object["metadata"].get("resourceVersion", ""))

    @property
    def line(self) -> bytes:
        if self._line is None:
            raw = self._change.stamped() if self._change is not None else None
            if raw is not None:
                self._line = b'{"type":"%s","object":%s}\n' % (self.type.encode(), raw)
            else:
                self._line = orjson.dumps({"type": self.type, "object": self.object}) + b"\n"
        return self._line


@dataclass(frozen=True)
class Kind:
    """The type a feed's objects are sent as."""

    api_version: str
    kind: str

    @functools.cached_property
    def stored_head(self) -> bytes:
        return storage.stored_head(self.api_version, self.kind)


class Change:
    """A store event as the feed shares it: its object decoded, or stamped with its
    resourceVersion as stored bytes, each on first use."""

    __slots__ = ("_deliveries", "_object", "_stamped", "event", "kind")

    def __init__(self, event: WatchEvent, kind: Kind) -> None:
        self.event = event
        self.kind = kind
        self._object: Obj | None = None
        self._stamped: bytes | None = None
        self._deliveries: dict[str, Delivery] = {}

    @property
    def object(self) -> Obj:
        """The decoded object, typed; shared, so nobody may modify it."""
        if self._object is None:
            obj = self.event.value
            obj["apiVersion"], obj["kind"] = self.kind.api_version, self.kind.kind
            self._object = obj
        return self._object

    def stamped(self) -> bytes | None:
        if self._stamped is None:
            raw = storage.stamped(self.event.raw, self.kind.stored_head, self.event.revision)
            self._stamped = raw if raw is not None else b""
        return self._stamped or None

    def delivered_as(self, type_: str) -> Delivery:
        """The object sent as `type_`: the event's own type, or the ADDED or DELETED a
        selector transition makes of a MODIFIED."""
        delivery = self._deliveries.get(type_)
        if delivery is None:
            delivery = self._deliveries[type_] = Delivery(type_, change=self)
        return delivery


# What a subscriber makes of a change: the deliveries it sends (none, or one).
Select = Callable[[Change], Delivery | None]


@dataclass(eq=False)
class Subscriber:
    key_prefix: str
    after: int  # send changes after this revision only
    select: Select
    pending: collections.deque[Delivery] = field(default_factory=collections.deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    failure: BaseException | None = None
    ended: bool = False

    def offer(self, change: Change) -> None:
        ev = change.event
        if ev.revision <= self.after or not ev.key.startswith(self.key_prefix):
            return
        delivery = self.select(change)
        if delivery is None:
            return
        if len(self.pending) >= MAX_PENDING:
            log.warning("watch of %s ended: %d events behind", self.key_prefix, MAX_PENDING)
            self.end()
            return
        self.pending.append(delivery)
        self.wakeup.set()

    def end(self, failure: BaseException | None = None) -> None:
        self.ended, self.failure = True, failure
        self.wakeup.set()

    async def batches(self) -> AsyncIterator[list[Delivery]]:
        """Whatever has arrived, in order, as one list per wake-up."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if self.pending:
                batch = list(self.pending)
                self.pending.clear()
                yield batch
            if self.ended:
                if self.failure is not None:
                    raise self.failure
                return


class Feed:
    """One store watch of a resource's whole prefix, started after `start`."""

    def __init__(self, store: Store, prefix: str, start: int, kind: Kind) -> None:
        self.prefix = prefix
        self.kind = kind
        self.covered_after = start  # every change after this revision is kept or to come
        self.latest = start  # the revision of the last change seen
        self.backlog: collections.deque[Change] = collections.deque()
        self.subscribers: set[Subscriber] = set()
        self.task = asyncio.create_task(self._follow(store, start), name=f"feed {prefix}")

    def join(self, sub: Subscriber) -> None:
        for change in self.backlog:
            sub.offer(change)
        self.subscribers.add(sub)

    async def _follow(self, store: Store, start: int) -> None:
        failure: BaseException | None = None
        try:
            async for ev in store.watch(self.prefix, start):
                change = Change(ev, self.kind)
                self.latest = ev.revision
                if len(self.backlog) == BACKLOG:
                    self.covered_after = self.backlog.popleft().event.revision
                self.backlog.append(change)
                for sub in list(self.subscribers):
                    sub.offer(change)
                    if sub.ended:
                        self.subscribers.discard(sub)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the store's failure is every subscriber's
            failure = e
        for sub in self.subscribers:
            sub.end(failure)
        self.subscribers.clear()


class WatchHub:
    """The feeds of one apiserver process, one per resource prefix at most."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._feeds: dict[str, Feed] = {}

    async def watch(
        self,
        prefix: str,
        key_prefix: str,
        after: int,
        select: Select,
        kind: Kind,
    ) -> AsyncIterator[list[Delivery]]:
        """Batches of what `select` makes of every change under `key_prefix` (within
        the resource's `prefix`) after revision `after`."""
        sub = Subscriber(key_prefix, after, select)
        feed = self._live_feed(prefix)
        if feed is not None and feed.covered_after <= after < feed.latest:
            # a replay from the feed's memory: refused, as etcd would refuse it, when
            # that revision is compacted
            await self._store.check_retained(after + 1)
            feed = self._live_feed(prefix)  # as it is now, with no await until joined
        if feed is not None and after < feed.covered_after:
            # too far back for the feed: a store watch of its own
            async for batch in self._own_watch(sub, kind):
                yield batch
            return
        if feed is None:
            feed = self._feeds[prefix] = Feed(self._store, prefix, after, kind)
        feed.join(sub)
        try:
            async for batch in sub.batches():
                yield batch
        finally:
            feed.subscribers.discard(sub)
            if not feed.subscribers and self._feeds.get(prefix) is feed:
                del self._feeds[prefix]
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed.task

    def _live_feed(self, prefix: str) -> Feed | None:
        feed = self._feeds.get(prefix)
        return None if feed is None or feed.task.done() else feed  # done: failed, ending

    async def _own_watch(self, sub: Subscriber, kind: Kind) -> AsyncIterator[list[Delivery]]:
        async for ev in self._store.watch(sub.key_prefix, sub.after):
            delivery = sub.select(Change(ev, kind))
            if delivery is not None:
                yield [delivery]
