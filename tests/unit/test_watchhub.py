"""Shared watches (`apiserver/watchhub.py`) through the registry, on the memory store.

Every watcher of a resource sees exactly what a store watch of its own would show
(namespace, selectors and their ADDED/DELETED transitions, resumption from a revision),
while the store is watched once; resuming from before the feed's memory, from a
compacted revision, a failing store and a watcher that cannot keep up each end as a
lone watch would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from apiserver import storage, watchhub
from apiserver.errors import ApiError
from apiserver.registry import Registry, WriteOptions
from apiserver.storage import MemoryStore, Unavailable, WatchEvent
from apiserver.watchhub import Delivery
from minikube_py.api.resources import BY_KIND
from minikube_py.api.types import Obj

NS = BY_KIND["Namespace"]
CM = BY_KIND["ConfigMap"]
TYPED = {"apiVersion": "v1", "kind": "ConfigMap"}


@dataclass
class CountingStore(MemoryStore):
    """The memory store, counting the watches open on it; `broken` fails them."""

    open_watches: int = 0
    broken: bool = False

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[WatchEvent]:
        self.open_watches += 1
        try:
            async for ev in super().watch(prefix, after_revision):
                if self.broken:
                    raise Unavailable("etcd went away")
                yield ev
        finally:
            self.open_watches -= 1


@pytest.fixture
async def registry() -> Registry:
    reg = Registry(CountingStore())
    for ns in ("a", "b"):
        await reg.create(NS, "", {"metadata": {"name": ns}}, WriteOptions())
    return reg


def store_of(reg: Registry) -> CountingStore:
    assert isinstance(reg.store, CountingStore)
    return reg.store


class Watcher:
    """A registry watch drained into a list by a task of its own, as a client's is."""

    def __init__(self, batches: AsyncIterator[list[Delivery]]) -> None:
        self.seen: list[tuple[str, str, Any]] = []
        self.error: BaseException | None = None
        self.ended = False
        self._task = asyncio.ensure_future(self._drain(batches))

    async def _drain(self, batches: AsyncIterator[list[Delivery]]) -> None:
        try:
            async for batch in batches:
                self.seen += [
                    (d.type, d.object["metadata"]["name"], (d.object.get("data") or {}).get("v"))
                    for d in batch
                ]
        except ApiError as e:
            self.error = e
        self.ended = True

    async def wait_for(self, n: int) -> list[tuple[str, str, Any]]:
        for _ in range(2000):
            if len(self.seen) >= n or self.ended:
                break
            await asyncio.sleep(0)
        return self.seen

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def cm(name: str, v: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": labels}, "data": {"v": v}}


async def write(reg: Registry, ns: str, name: str, v: str, **labels: str) -> int:
    try:
        current = await reg.get(CM, ns, name)
    except ApiError:
        made = await reg.create(CM, ns, cm(name, v, **labels), WriteOptions())
    else:
        body = {**current, "data": {"v": v}, "metadata": {**current["metadata"], "labels": labels}}
        made = await reg.update(CM, ns, name, body, WriteOptions())
    return int(made["metadata"]["resourceVersion"])


async def test_watchers_share_one_store_watch_and_each_sees_its_own(registry: Registry) -> None:
    start = await write(registry, "a", "x", "0")
    everything = Watcher(registry.watch(CM, "", str(start)))
    in_b = Watcher(registry.watch(CM, "b", str(start)))
    blue = Watcher(registry.watch(CM, "", str(start), label_selector="color=blue"))
    await asyncio.sleep(0)
    await write(registry, "a", "x", "1", color="blue")  # joins the selector
    await write(registry, "b", "y", "1")
    await write(registry, "a", "x", "2")  # leaves it
    await registry.delete(CM, "b", "y")
    try:
        assert await everything.wait_for(4) == [
            ("MODIFIED", "x", "1"),
            ("ADDED", "y", "1"),
            ("MODIFIED", "x", "2"),
            ("DELETED", "y", "1"),
        ]
        assert await in_b.wait_for(2) == [("ADDED", "y", "1"), ("DELETED", "y", "1")]
        assert await blue.wait_for(2) == [("ADDED", "x", "1"), ("DELETED", "x", "2")]
        assert store_of(registry).open_watches == 1
    finally:
        for w in (everything, in_b, blue):
            await w.stop()
    await asyncio.sleep(0)
    assert store_of(registry).open_watches == 0  # the feed ends with its last watcher


async def followed_changes(registry: Registry, n: int) -> tuple[int, Watcher, list[int]]:
    """An object's first revision, a watcher from there (the feed's first subscriber),
    and the revisions of `n` changes that watcher has seen."""
    start = await write(registry, "a", "x", "0")
    first = Watcher(registry.watch(CM, "", str(start)))
    await asyncio.sleep(0)
    revisions = [await write(registry, "a", "x", str(v)) for v in range(1, n + 1)]
    await first.wait_for(n)
    return start, first, revisions


async def test_a_resuming_watcher_replays_from_the_feeds_memory(registry: Registry) -> None:
    _, first, revisions = await followed_changes(registry, 3)
    resumed = Watcher(registry.watch(CM, "a", str(revisions[0])))
    try:
        assert await resumed.wait_for(2) == [("MODIFIED", "x", "2"), ("MODIFIED", "x", "3")]
        assert store_of(registry).open_watches == 1
    finally:
        await first.stop()
        await resumed.stop()


async def test_resuming_from_before_the_feeds_memory_watches_the_store(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watchhub, "BACKLOG", 2)
    start, first, _ = await followed_changes(registry, 4)
    early = Watcher(registry.watch(CM, "", str(start)))
    try:
        assert [v for _, _, v in await early.wait_for(4)] == ["1", "2", "3", "4"]
        assert store_of(registry).open_watches == 2
    finally:
        await first.stop()
        await early.stop()


async def test_a_compacted_revision_is_gone_though_the_feed_remembers_it(
    registry: Registry,
) -> None:
    start, first, revisions = await followed_changes(registry, 3)
    await registry.store.compact(revisions[-1])
    late = Watcher(registry.watch(CM, "", str(start)))
    try:
        await late.wait_for(1)
        assert late.seen == [] and isinstance(late.error, ApiError)
        assert late.error.code == 410
    finally:
        await first.stop()
        await late.stop()


async def test_a_failing_store_ends_every_watcher_and_the_next_starts_afresh(
    registry: Registry,
) -> None:
    start = await write(registry, "a", "x", "0")
    watchers = [Watcher(registry.watch(CM, "", str(start))) for _ in range(3)]
    await asyncio.sleep(0)
    store_of(registry).broken = True
    await write(registry, "a", "x", "1")
    for w in watchers:
        await w.wait_for(1)
        assert w.ended and isinstance(w.error, ApiError) and w.error.code == 503
    store_of(registry).broken = False
    again = Watcher(registry.watch(CM, "", str(start)))
    try:
        assert await again.wait_for(1) == [("MODIFIED", "x", "1")]
    finally:
        await again.stop()


async def test_a_watcher_that_falls_too_far_behind_is_ended(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watchhub, "MAX_PENDING", 3)
    start = await write(registry, "a", "x", "0")
    batches = registry.watch(CM, "", str(start))
    first = asyncio.ensure_future(anext(batches))  # subscribes, then reads nothing more
    for v in range(1, 6):
        await write(registry, "a", "x", str(v))
    got = [d.object["data"]["v"] for d in await first]
    rest = [d.object["data"]["v"] for batch in [b async for b in batches] for d in batch]
    assert got + rest == ["1", "2", "3"]  # ended after what it could hold; clients resume


async def test_lines_are_stamped_from_the_stored_bytes_as_decoding_would_give(
    registry: Registry,
) -> None:
    start = await write(registry, "a", "x", "0")
    batches = registry.watch(CM, "", str(start))
    first = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    await write(registry, "a", "x", "ünïcode", app="web")
    await registry.delete(CM, "a", "x")
    deliveries = await first
    if len(deliveries) < 2:
        deliveries += await anext(batches)
    await batches.aclose()  # type: ignore[attr-defined]
    for d in deliveries:
        change = d._change
        assert change is not None and change.stamped() is not None  # no decoding needed
        sent = json.loads(d.line)
        decoded = storage.decode(change.event.raw, change.event.revision)
        assert sent == {"type": d.type, "object": {**decoded, **TYPED}}
        assert d.resource_version == sent["object"]["metadata"]["resourceVersion"]
    assert [(json.loads(d.line)["type"]) for d in deliveries] == ["MODIFIED", "DELETED"]


def test_stamping_an_object_without_metadata_keys_or_of_another_type() -> None:
    head = storage.stored_head("v1", "ConfigMap")
    bare = storage.encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert json.loads(storage.stamped(bare, head, 7) or b"") == {
        **TYPED,
        "metadata": {"resourceVersion": "7"},
    }
    other = storage.encode({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    assert storage.stamped(other, head, 7) is None
    assert storage.stamped(b'{"metadata":{}}', head, 7) is None
