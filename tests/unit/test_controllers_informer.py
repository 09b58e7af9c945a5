"""The informer's indexes and the work queue's delayed adds, which the controllers
lean on: an index follows every add, change and delete (and is built from the cache
when added late); delayed adds of one key coalesce to the earliest time. And the heap
settling that follows a sync: survivors are frozen, an earlier call's are thawed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from minikube_py.heap import YOUNG_COLLECTION_THRESHOLD, settle_heap
from minikube_py.informer import Informer, WorkQueue


def pod(name: str, ns: str, owner: str = "") -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": ns}
    if owner:
        md["ownerReferences"] = [{"uid": owner, "controller": True}]
    return {"metadata": md}


def by_owner(obj: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]


def test_index_follows_the_cache() -> None:
    inf = Informer(None, "Pod")  # type: ignore[arg-type]  # never started: no client needed
    inf._store("a/p1", pod("p1", "a", "rs1"), None)
    inf.add_index("owner", by_owner)  # added late: built from what is cached
    inf.add_index("namespace", lambda o: [o["metadata"]["namespace"]])
    inf.add_index("owner", lambda o: ["ignored"])  # a second add of a name is a no-op
    inf._store("a/p2", pod("p2", "a", "rs1"), None)
    inf._store("b/p3", pod("p3", "b"), None)
    assert set(inf.by_index("owner", "rs1")) == {"a/p1", "a/p2"}
    assert set(inf.by_index("namespace", "a")) == {"a/p1", "a/p2"}
    assert inf.by_index("owner", "ignored") == {}
    moved = pod("p2", "a", "rs2")
    inf._store("a/p2", moved, inf.get("a/p2"))
    assert set(inf.by_index("owner", "rs1")) == {"a/p1"}
    assert inf.by_index("owner", "rs2") == {"a/p2": moved}  # the new version, not the old
    inf._store("a/p1", None, inf.get("a/p1"))
    inf._store("a/p2", None, inf.get("a/p2"))
    assert inf.by_index("owner", "rs1") == {} and inf.by_index("namespace", "a") == {}
    assert inf._indices["owner"] == {} and set(inf.cache) == {"b/p3"}  # no empty groups


async def drain(q: WorkQueue[str], within: float) -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    start, out = loop.time(), []
    while True:
        try:
            key = await asyncio.wait_for(q.get(), within - (loop.time() - start))
        except TimeoutError:
            return out
        out.append((key, loop.time() - start))
        q.done(key)


async def test_delayed_adds_coalesce_to_the_earliest() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.3)
    q.add_after("a", 0.05)  # earlier: replaces the later one
    q.add_after("b", 0.05)
    q.add_after("b", 0.3)  # later: folded into the earlier one
    for _ in range(10):
        q.add_after("c", 0.1)  # a burst within the batch period
    got = await drain(q, 0.6)
    assert sorted(k for k, _ in got) == ["a", "b", "c"]
    assert all(at < 0.25 for _, at in got), got
    q.add_after("a", 0.01)  # fired ones can be delayed again
    assert [k for k, _ in await drain(q, 0.2)] == ["a"]


class _Cyclic:
    me: object


def test_settle_heap_freezes_survivors_and_thaws_an_earlier_call() -> None:
    threshold = gc.get_threshold()
    try:
        cycle = _Cyclic()
        cycle.me = cycle  # alive at the first settle, garbage after it
        ref = weakref.ref(cycle)
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
        del cycle
        gc.collect()
        assert ref() is not None  # frozen: out of the collector's sight
        settle_heap()
        assert ref() is None  # the next settle collects what the last one froze
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
