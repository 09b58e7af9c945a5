"""The Store contract, run against both stores: the in-memory twin and a real etcd.

Every test works under a prefix of its own and reasons about revisions relative to the
store's revision when it started, so one etcd member serves the whole module. etcd's
behaviour is the contract: the property test at the end drives random sequences of
operations through both stores and requires identical observable results.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apiserver.storage import (
    Absent,
    AtRevision,
    EtcdStore,
    Expired,
    MemoryStore,
    Store,
    Unavailable,
    WatchEvent,
    decode,
)
from minikube_py.etcd import Member, find_etcd, start_member, wait_healthy
from minikube_py.lab import free_port

EVENT_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Member]:
    try:
        find_etcd()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    home = tmp_path_factory.mktemp("etcd")
    member = Member("contract", home / "data", free_port(), free_port())
    proc = start_member(member, home / "etcd.log")
    try:
        wait_healthy([member], timeout=30)
        yield member
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _etcd_store(member: Member) -> EtcdStore:
    return EtcdStore([("127.0.0.1", member.client_port)])


@pytest.fixture(params=["memory", "etcd"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    s: Store
    if request.param == "memory":
        s = MemoryStore()
    else:
        s = _etcd_store(request.getfixturevalue("etcd_member"))
    yield s
    await s.close()


@pytest.fixture
def prefix() -> str:
    return f"/contract/{uuid.uuid4().hex[:8]}/"


async def _revision(store: Store) -> int:
    _, revision = await store.list("/")
    return revision


async def _next_events(stream: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    return [await asyncio.wait_for(anext(stream), EVENT_TIMEOUT) for _ in range(n)]


# ------------------------------------------------------------------ get, list, txn


async def test_get_and_list_report_revisions(store: Store, prefix: str) -> None:
    a = await store.txn([], [(prefix + "a", {"v": 1})])
    b = await store.txn([], [(prefix + "b", {"v": 2})])
    assert a.succeeded and b.succeeded
    assert b.revision == a.revision + 1

    got = await store.get(prefix + "a")
    assert got is not None
    assert got.revision == a.revision
    assert got.value == {"v": 1, "metadata": {"resourceVersion": str(a.revision)}}
    assert await store.get(prefix + "missing") is None

    entries, at = await store.list(prefix)
    assert [(e.key, e.revision) for e in entries] == [
        (prefix + "a", a.revision),
        (prefix + "b", b.revision),
    ]
    assert at == b.revision

    stored, raw_at = await store.list_raw(prefix)
    assert raw_at == at
    assert [(s.key, decode(s.raw, s.revision), s.revision) for s in stored] == [
        (e.key, e.value, e.revision) for e in entries
    ]

    other = await store.txn([], [(prefix + "z/elsewhere", {"v": 3})])
    entries, at = await store.list(prefix + "a")
    assert [e.key for e in entries] == [prefix + "a"]
    assert at == other.revision  # a list reads at the store's revision, not its keys'


async def test_resource_version_is_not_stored(store: Store, prefix: str) -> None:
    first = await store.txn([], [(prefix + "a", {"metadata": {"resourceVersion": "999"}})])
    got = await store.get(prefix + "a")
    assert got is not None
    assert got.value["metadata"]["resourceVersion"] == str(first.revision)


async def test_absent_compare(store: Store, prefix: str) -> None:
    key = prefix + "a"
    created = await store.txn([Absent(key)], [(key, {"v": 1})])
    assert created.succeeded
    again = await store.txn([Absent(key)], [(key, {"v": 2})])
    assert not again.succeeded
    assert again.revision == created.revision  # the revision it failed at
    got = await store.get(key)
    assert got is not None and got.value["v"] == 1


async def test_at_revision_compare(store: Store, prefix: str) -> None:
    key = prefix + "a"
    first = await store.txn([], [(key, {"v": 1})])
    second = await store.txn([AtRevision(key, first.revision)], [(key, {"v": 2})])
    assert second.succeeded
    stale = await store.txn([AtRevision(key, first.revision)], [(key, {"v": 3})])
    assert not stale.succeeded
    missing = await store.txn([AtRevision(prefix + "nothing", first.revision)], [(key, {})])
    assert not missing.succeeded
    got = await store.get(key)
    assert got is not None and (got.value["v"], got.revision) == (2, second.revision)


async def test_txn_is_atomic(store: Store, prefix: str) -> None:
    a, b, c = prefix + "a", prefix + "b", prefix + "c"
    await store.txn([], [(a, {"v": 1})])
    both = await store.txn([Absent(b), Absent(c)], [(b, {"v": 2}), (c, {"v": 3})], [a])
    assert both.succeeded
    entries, _ = await store.list(prefix)
    assert [(e.key, e.revision) for e in entries] == [(b, both.revision), (c, both.revision)]

    failed = await store.txn([Absent(b), Absent(prefix + "d")], [(prefix + "d", {})], [c])
    assert not failed.succeeded
    entries, at = await store.list(prefix)
    assert [e.key for e in entries] == [b, c]
    assert at == both.revision


async def test_a_txn_that_changes_nothing_keeps_the_revision(store: Store, prefix: str) -> None:
    before = await _revision(store)
    no_ops = await store.txn([Absent(prefix + "a")])
    delete_missing = await store.txn([], [], [prefix + "missing"])
    assert (no_ops.revision, delete_missing.revision) == (before, before)
    assert await _revision(store) == before


async def test_concurrent_txns_each_stand_on_their_own_compares(store: Store, prefix: str) -> None:
    """etcd commits transactions that wait together as one (group commit): each still
    compares, succeeds or fails on its own, and a failed one costs the others nothing."""
    taken, stale, gone = prefix + "taken", prefix + "stale", prefix + "gone"
    await store.txn([], [(taken, {"v": "old"}), (gone, {"v": 0})])
    first = await store.txn([], [(stale, {"v": 1})])
    await store.txn([AtRevision(stale, first.revision)], [(stale, {"v": 2})])
    fresh = [prefix + f"new-{i}" for i in range(100)]  # over one commit's limit of 64
    results = await asyncio.gather(
        *(store.txn([Absent(k)], [(k, {"v": k})]) for k in fresh),
        store.txn([Absent(taken)], [(taken, {"v": "new"})]),
        store.txn([AtRevision(stale, first.revision)], [(stale, {"v": 3})]),
        store.txn([], [], [gone]),
    )
    *created, clash, outdated, deleted = results
    assert all(r.succeeded for r in created) and deleted.succeeded
    assert not clash.succeeded and not outdated.succeeded
    entries, _ = await store.list(prefix)
    values = {e.key: (e.value["v"], e.revision) for e in entries}
    assert gone not in values
    for key, result in zip(fresh, created, strict=True):
        assert values[key] == (key, result.revision)  # the revision the txn reported
    assert values[taken][0] == "old" and values[stale][0] == 2

    # reads batch too: each gets its own key's entry, or None
    got = await asyncio.gather(*(store.get(k) for k in [*fresh, gone, taken, *fresh]))
    expected = [(k, k, r.revision) for k, r in zip(fresh, created, strict=True)]
    assert [(e.key, e.value["v"], e.revision) for e in got[:100] if e] == expected
    assert got[100] is None and got[101] is not None and got[101].value["v"] == "old"
    assert got[102:] == got[:100]


async def test_concurrent_writes_commit_together(etcd_member: Member, prefix: str) -> None:
    """Writes that wait behind a commit in flight share the next one (and its revision),
    except two writes of one key, which etcd refuses in one transaction."""
    store = _etcd_store(etcd_member)
    try:
        keys = [prefix + str(i) for i in range(20)]
        results = await asyncio.gather(*(store.txn([], [(k, {"v": 1})]) for k in keys))
        assert all(r.succeeded for r in results)
        assert len({r.revision for r in results}) < len(keys)

        same = prefix + "same"
        racing = await asyncio.gather(
            *(store.txn([Absent(same)], [(same, {"v": i})]) for i in range(10))
        )
        assert [r.succeeded for r in racing].count(True) == 1
    finally:
        await store.close()


async def test_writes_waiting_on_a_silent_store_fail_with_the_commit_in_flight() -> None:
    """When no member answers, what waits behind the failed commit fails with it: one
    store timeout for all, not one per batch."""
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        store = EtcdStore([("127.0.0.1", silent.getsockname()[1])], timeout=1)
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(store.txn([], [(f"/silent/{i}", {})]) for i in range(200)),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
        finally:
            await store.close()
    assert all(isinstance(r, Unavailable) for r in results)
    assert elapsed < 2.5  # batches of 64 one after another would take 4 timeouts


# ------------------------------------------------------------------ watch


async def test_watch_replays_every_change_after_a_revision(store: Store, prefix: str) -> None:
    start = await _revision(store)
    a, b = prefix + "a", prefix + "b"
    r1 = await store.txn([], [(a, {"v": 1})])
    r2 = await store.txn([], [(a, {"v": 2})])
    r3 = await store.txn([], [(b, {"v": 3})])
    r4 = await store.txn([], [], [a])
    await store.txn([], [("/contract-other/x", {"v": 0})])  # outside the prefix

    events = await _next_events(aiter(store.watch(prefix, start)), 4)
    seen = [(e.type, e.key, e.revision, e.value.get("v"), e.prev) for e in events]
    assert seen == [
        ("ADDED", a, r1.revision, 1, None),
        ("MODIFIED", a, r2.revision, 2, {"v": 1}),
        ("ADDED", b, r3.revision, 3, None),
        ("DELETED", a, r4.revision, 2, None),
    ]
    # every event's object carries its own revision as resourceVersion
    assert [e.value["metadata"]["resourceVersion"] for e in events] == [
        str(r) for r in (r1.revision, r2.revision, r3.revision, r4.revision)
    ]

    later = await _next_events(aiter(store.watch(prefix, r2.revision)), 2)
    assert [(e.type, e.key) for e in later] == [("ADDED", b), ("DELETED", a)]


async def test_watch_delivers_live_changes(store: Store, prefix: str) -> None:
    start = await _revision(store)
    stream = aiter(store.watch(prefix, start))
    pending = asyncio.ensure_future(_next_events(stream, 2))
    await asyncio.sleep(0.2)  # the watch is established and idle
    assert not pending.done()
    await store.txn([], [(prefix + "a", {"v": 1})])
    await store.txn([], [(prefix + "a", {"v": 2})])
    events = await pending
    assert [(e.type, e.value["v"]) for e in events] == [("ADDED", 1), ("MODIFIED", 2)]


async def test_compacted_revision_expires(store: Store, prefix: str) -> None:
    start = await _revision(store)
    for v in range(3):
        await store.txn([], [(prefix + "a", {"v": v})])
    last = await store.txn([], [(prefix + "a", {"v": 3})])
    await store.compact(last.revision)

    with pytest.raises(Expired):
        await _next_events(aiter(store.watch(prefix, start)), 1)

    # what a watch would say, told without one
    with pytest.raises(Expired):
        await store.check_retained(start + 1)
    await store.check_retained(last.revision)

    # watching from the compaction point itself still works
    stream = aiter(store.watch(prefix, last.revision))
    await store.txn([], [(prefix + "a", {"v": 4})])
    [event] = await _next_events(stream, 1)
    assert (event.type, event.value["v"]) == ("MODIFIED", 4)


async def test_watch_from_just_below_the_compaction_point(store: Store, prefix: str) -> None:
    """etcd keeps the compaction revision itself, so "changes after C-1" still exist."""
    await store.txn([], [(prefix + "a", {"v": 1})])
    kept = await store.txn([], [(prefix + "a", {"v": 2})])
    await store.compact(kept.revision)
    [event] = await _next_events(aiter(store.watch(prefix, kept.revision - 1)), 1)
    assert (event.type, event.key, event.revision, event.value["v"]) == (
        "MODIFIED",
        prefix + "a",
        kept.revision,
        2,
    )


async def test_many_watchers_started_at_once_all_see_a_change(store: Store, prefix: str) -> None:
    """Like 50 clients watching one namespace: every watch is created, none is lost."""
    start = await _revision(store)
    streams = [aiter(store.watch(prefix, start)) for _ in range(60)]
    firsts = [asyncio.ensure_future(anext(s)) for s in streams]
    await asyncio.sleep(0.2)  # the creations queue up behind each other
    await store.txn([], [(prefix + "a", {"v": 1})])
    events = await asyncio.wait_for(asyncio.gather(*firsts), 30)
    assert {(e.type, e.key) for e in events} == {("ADDED", prefix + "a")}


async def test_concurrent_failures_on_a_dead_member_move_on_once(etcd_member: Member) -> None:
    """Calls failing together on an unreachable member leave it once, for the live one:
    were each failure to move on again, they would toggle back to the dead member."""
    dead = free_port()
    store = EtcdStore([("127.0.0.1", dead), ("127.0.0.1", etcd_member.client_port)], timeout=3)
    try:
        results = await asyncio.gather(*(store.get("/nothing") for _ in range(10)))
        assert results == [None] * 10
    finally:
        await store.close()


# ------------------------------------------------------------------ property

KEYS = ("a", "b", "c")
Op = tuple[Any, ...]

ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, 9)),
        st.tuples(st.just("create"), st.sampled_from(KEYS), st.integers(0, 9)),
        # compare against the key's current revision, or a stale one (offset back)
        st.tuples(st.just("update"), st.sampled_from(KEYS), st.integers(0, 9), st.booleans()),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("move"), st.sampled_from(KEYS), st.sampled_from(KEYS)),
        st.tuples(st.just("get"), st.sampled_from(KEYS)),
        st.tuples(
            st.just("list"),
        ),
    ),
    min_size=1,
    max_size=12,
)


async def _observe(store: Store, prefix: str, ops: list[Op]) -> list[Any]:
    """Run `ops` and return what a client sees, revisions made relative to the start."""
    base = await _revision(store)
    seen: list[Any] = []

    def rel(revision: int) -> int:
        return revision - base

    for op in ops:
        kind, key = op[0], prefix + (op[1] if len(op) > 1 else "")
        if kind == "put":
            r = await store.txn([], [(key, {"v": op[2]})])
        elif kind == "create":
            r = await store.txn([Absent(key)], [(key, {"v": op[2]})])
        elif kind == "update":
            cur = await store.get(key)
            at = (cur.revision if cur else base) - (0 if op[3] else 1)
            r = await store.txn([AtRevision(key, at)], [(key, {"v": op[2]})])
        elif kind == "delete":
            r = await store.txn([], [], [key])
        elif kind == "move":
            target = prefix + op[2]
            if target == key:
                continue
            cur = await store.get(key)
            value = {"v": cur.value["v"]} if cur else {"v": -1}
            r = await store.txn([Absent(target)], [(target, value)], [key])
        elif kind == "get":
            got = await store.get(key)
            seen.append(("get", got and (got.value["v"], rel(got.revision))))
            continue
        else:
            entries, at = await store.list(prefix)
            seen.append(
                ("list", [(e.key, e.value["v"], rel(e.revision)) for e in entries], rel(at))
            )
            continue
        seen.append((kind, r.succeeded, rel(r.revision)))

    final = await _revision(store)
    seen.append(("revision", rel(final)))
    seen.append([_summary(e, base) for e in await _replay(store, prefix, base, final)])
    return seen


def _summary(e: WatchEvent, base: int) -> tuple[Any, ...]:
    return (e.type, e.key, e.value.get("v"), e.revision - base, e.prev and e.prev["v"])


async def _replay(store: Store, prefix: str, base: int, final: int) -> list[WatchEvent]:
    """Every event after `base`, up to the revision the run ended at."""
    events: list[WatchEvent] = []
    stream = aiter(store.watch(prefix, base))
    while (events[-1].revision if events else base) < final:
        try:
            events.append(await asyncio.wait_for(anext(stream), 1.0))
        except TimeoutError:
            break  # the store's revision moved without an event
    return events


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=ops_strategy)
def test_random_operations_look_the_same_on_both_stores(etcd_member: Member, ops: list[Op]) -> None:
    async def run() -> tuple[list[Any], list[Any]]:
        prefix = f"/property/{uuid.uuid4().hex[:8]}/"
        expected = await _observe(MemoryStore(), prefix, ops)
        etcd = _etcd_store(etcd_member)
        try:
            return expected, await _observe(etcd, prefix, ops)
        finally:
            await etcd.close()

    expected, actual = asyncio.run(run())
    assert actual == expected
