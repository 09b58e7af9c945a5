"""Informers and work queues: the one way every controller and agent loop sees the API.

An `Informer` lists a resource, then watches from the list's resourceVersion, resuming
from the last version it saw when a watch ends and relisting when the server answers
410 Expired; its cache is a dict by `namespace/name`. Handlers get (type, new, old) for
every change, including the synthetic ones a relist discovers, so consumers stay
level-triggered: they enqueue keys and reconcile from the cache. Named indexes (as
client-go's Indexer) keep the cache grouped by a derived value, such as pods by
namespace or by owner uid, so a consumer finds a group without a pass over the cache;
they are updated before handlers run, so a handler sees them current.

`WorkQueue` de-duplicates keys and never hands one key to two workers at once; a key
re-added while it is being processed is processed again afterwards. Delayed adds
coalesce per key: a key already waiting keeps the earlier of its two times, so a burst
of events for one key within a batch period costs one reconcile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

import aiohttp

from minikube_py.api.types import Obj
from minikube_py.client import ApiException, Client

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj, Obj | None], None]
IndexFunc = Callable[[Obj], Iterable[str]]


def key_of(obj: Obj) -> str:
    md = obj.get("metadata", {})
    ns = md.get("namespace")
    return f"{ns}/{md['name']}" if ns else md["name"]


class Informer:
    def __init__(
        self,
        client: Client,
        kind: str,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self._handlers: list[Handler] = []
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, dict[str, Obj]]] = {}
        self._task: asyncio.Task[None] | None = None

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, index: IndexFunc) -> None:
        """Group the cache by `index(obj)` (values an object is filed under). One
        function per name: informers are shared, so a second add of a name is a no-op."""
        if name in self._indexers:
            return
        self._indexers[name] = index
        groups: dict[str, dict[str, Obj]] = {}
        for key, obj in self.cache.items():
            for value in index(obj):
                groups.setdefault(value, {})[key] = obj
        self._indices[name] = groups

    def by_index(self, name: str, value: str) -> dict[str, Obj]:
        """The cached objects filed under `value` in index `name`, by key (a live view:
        copy it before awaiting)."""
        return self._indices[name].get(value, {})

    def _store(self, key: str, obj: Obj | None, old: Obj | None) -> None:
        """Put (or, with obj None, drop) one cached object, keeping indexes current."""
        if obj is None:
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        for name, index in self._indexers.items():
            groups = self._indices[name]
            if old is not None:
                for value in index(old):
                    group = groups.get(value)
                    if group is not None:
                        group.pop(key, None)
                        if not group:
                            del groups[value]
            if obj is not None:
                for value in index(obj):
                    groups.setdefault(value, {})[key] = obj

    def get(self, key: str) -> Obj | None:
        return self.cache.get(key)

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.kind}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception as e:  # it failed as it was being stopped: moot now
                log.debug("%s informer ended with %r", self.kind, e)
            self._task = None

    def _emit(self, kind: str, new: Obj, old: Obj | None) -> None:
        for h in self._handlers:
            try:
                h(kind, new, old)
            except Exception:
                log.exception("%s informer handler failed", self.kind)

    async def _relist(self) -> str:
        listed = await self.client.list(
            self.kind, self.namespace, self.label_selector, self.field_selector
        )
        fresh = {key_of(o): o for o in listed.get("items", [])}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                self._store(key, None, old)
                self._emit("DELETED", old, old)
        for key, obj in fresh.items():
            previous = self.cache.get(key)
            self._store(key, obj, previous)
            if previous is None:
                self._emit("ADDED", obj, None)
            elif previous["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._emit("MODIFIED", obj, previous)
        self.synced.set()
        return str(listed.get("metadata", {}).get("resourceVersion", ""))

    async def _run(self) -> None:
        rv = ""
        backoff = 0.2
        while True:
            try:
                if not rv:
                    rv = await self._relist()
                async for kind, obj in self.client.watch(
                    self.kind, self.namespace, rv, self.label_selector, self.field_selector
                ):
                    backoff = 0.2
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind == "BOOKMARK":
                        continue
                    key = key_of(obj)
                    old = self.cache.get(key)
                    if kind == "DELETED":
                        self._store(key, None, old)
                        self._emit("DELETED", obj, old)
                    else:
                        self._store(key, obj, old)
                        self._emit("ADDED" if old is None else "MODIFIED", obj, old)
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.code == 410:
                    rv = ""  # compacted: the only safe resume point is a fresh list
                    continue
                log.warning("%s watch failed: %s", self.kind, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                log.debug("%s watch interrupted: %r", self.kind, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._waiting: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        waiting = self._waiting.get(key)
        if waiting is not None:
            if waiting.when() <= when:
                return
            waiting.cancel()
        self._waiting[key] = loop.call_at(when, self._add_waiting, key)

    def _add_waiting(self, key: K) -> None:
        del self._waiting[key]
        self.add(key)

    def __len__(self) -> int:
        return len(self._queued)

    async def get(self) -> K:
        key = await self._queue.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    async def run_workers(
        self,
        reconcile: Callable[[K], Awaitable[None]],
        workers: int = 4,
        retry_delay: float = 0.5,
    ) -> None:
        async def worker() -> None:
            while True:
                key = await self.get()
                try:
                    await reconcile(key)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("reconcile %r failed; retrying", key)
                    self.add_after(key, retry_delay)
                finally:
                    self.done(key)

        await asyncio.gather(*(worker() for _ in range(workers)))
