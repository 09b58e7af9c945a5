"""The registry on the in-memory store, without HTTP: what every verb does to objects.

Creation stamps (uid, creationTimestamp, generation, generateName), optimistic
concurrency (409 on a stale resourceVersion), validation (422 with field causes),
ClusterIP and NodePort allocation as kube-apiserver does it (explicit values honoured,
conflicts rejected with kube's messages, released on delete, unique under concurrent
creates), the status subresource split, graceful pod deletion, finalizers and the
terminating namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from apiserver.allocators import IP_PREFIX, PORT_PREFIX
from apiserver.errors import ApiError
from apiserver.registry import ClusterConfig, Registry, WriteOptions
from apiserver.storage import Compare, Entry, MemoryStore, Stored, TxnResult
from apiserver.watchcache import WatchCache
from minikube_py.api.resources import BY_KIND
from minikube_py.api.types import Obj

NS = BY_KIND["Namespace"]
SVC = BY_KIND["Service"]
POD = BY_KIND["Pod"]
CM = BY_KIND["ConfigMap"]
DEPLOY = BY_KIND["Deployment"]

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
async def registry() -> Registry:
    reg = Registry(MemoryStore(), ClusterConfig("10.96.0.0/16", (30000, 32767)))
    await reg.create(NS, "", {"metadata": {"name": "default"}}, WriteOptions())
    return reg


class InterleavingStore(MemoryStore):
    """The memory store with a scheduling point before every call, as a network round
    trip to etcd has: concurrent creates really interleave between read and txn."""

    async def get(self, key: str) -> Entry | None:
        await asyncio.sleep(0)
        return await super().get(key)

    async def list_raw(self, prefix: str) -> tuple[list[Stored], int]:
        await asyncio.sleep(0)
        return await super().list_raw(prefix)

    async def txn(
        self,
        compares: Sequence[Compare],
        puts: Sequence[tuple[str, Obj]] = (),
        deletes: Sequence[str] = (),
    ) -> TxnResult:
        await asyncio.sleep(0)
        return await super().txn(compares, puts, deletes)


@pytest.fixture
async def racing_registry() -> Registry:
    reg = Registry(InterleavingStore(), ClusterConfig("10.96.0.0/26", (30000, 30063)))
    await reg.create(NS, "", {"metadata": {"name": "default"}}, WriteOptions())
    return reg


def opts() -> WriteOptions:
    return WriteOptions(field_manager="test")


def service(name: str, **spec: Any) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}], **spec},
    }


def pod(name: str) -> Obj:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x"}]}}


async def api_error(call: Awaitable[Any]) -> ApiError:
    with pytest.raises(ApiError) as info:
        await call
    return info.value


# ------------------------------------------------------------------ create


async def test_create_stamps_and_defaults(registry: Registry) -> None:
    svc = await registry.create(SVC, "default", service("web"), opts())
    md = svc["metadata"]
    assert uuid.UUID(md["uid"])
    assert RFC3339.match(md["creationTimestamp"])
    assert md["generation"] == 1
    assert md["namespace"] == "default"
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["sessionAffinity"] == "None"
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]
    assert await registry.get(SVC, "default", "web") == svc


async def test_generate_name(registry: Registry) -> None:
    made = [
        await registry.create(CM, "default", {"metadata": {"generateName": "cfg-"}}, opts())
        for _ in range(3)
    ]
    names = {m["metadata"]["name"] for m in made}
    assert len(names) == 3
    assert all(re.fullmatch(r"cfg-[bcdfghjklmnpqrstvwxz2456789]{5}", n) for n in names)


async def test_name_is_required(registry: Registry) -> None:
    e = await api_error(registry.create(CM, "default", {"metadata": {}}, opts()))
    assert (e.code, e.reason) == (422, "Invalid")


async def test_create_twice_is_already_exists(registry: Registry) -> None:
    await registry.create(CM, "default", {"metadata": {"name": "a"}}, opts())
    e = await api_error(registry.create(CM, "default", {"metadata": {"name": "a"}}, opts()))
    assert (e.code, e.reason, e.message) == (409, "AlreadyExists", 'configmaps "a" already exists')


async def test_create_in_a_missing_namespace_is_not_found(registry: Registry) -> None:
    e = await api_error(registry.create(CM, "nowhere", {"metadata": {"name": "a"}}, opts()))
    assert (e.code, e.reason) == (404, "NotFound")


# ------------------------------------------------------------------ update


async def test_stale_resource_version_is_conflict(registry: Registry) -> None:
    first = await registry.create(CM, "default", {"metadata": {"name": "a"}}, opts())
    first["data"] = {"k": "1"}
    second = await registry.update(CM, "default", "a", first, opts())
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])

    first["data"] = {"k": "2"}  # still carries the first resourceVersion
    e = await api_error(registry.update(CM, "default", "a", first, opts()))
    assert (e.code, e.reason) == (409, "Conflict")
    assert e.message == (
        'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert (await registry.get(CM, "default", "a"))["data"] == {"k": "1"}


async def test_generation_counts_spec_changes_only(registry: Registry) -> None:
    svc = await registry.create(SVC, "default", service("web"), opts())
    svc["metadata"]["labels"] = {"app": "web"}
    svc = await registry.update(SVC, "default", "web", svc, opts())
    assert svc["metadata"]["generation"] == 1
    svc["spec"]["ports"][0]["targetPort"] = 9090
    svc = await registry.update(SVC, "default", "web", svc, opts())
    assert svc["metadata"]["generation"] == 2


async def test_unchanged_update_keeps_the_resource_version(registry: Registry) -> None:
    cm = await registry.create(CM, "default", {"metadata": {"name": "a"}}, opts())
    again = await registry.update(CM, "default", "a", cm, opts())
    assert again["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]


# ------------------------------------------------------------------ validation


async def test_invalid_port_names_the_field(registry: Registry) -> None:
    bad = service("x")
    bad["spec"]["ports"][0]["port"] = 70000
    e = await api_error(registry.create(SVC, "default", bad, opts()))
    assert (e.code, e.reason) == (422, "Invalid")
    assert e.message == (
        'Service "x" is invalid: spec.ports[0].port: Invalid value: 70000: '
        "must be between 1 and 65535, inclusive"
    )
    assert e.details is not None
    assert (e.details["name"], e.details["kind"]) == ("x", "Service")
    assert e.details["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 70000: must be between 1 and 65535, inclusive",
            "field": "spec.ports[0].port",
        }
    ]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (service("Bad_Name"), "metadata.name", "FieldValueInvalid"),
        (service("e", type="ExternalName"), "spec.externalName", "FieldValueRequired"),
        (service("h", type="Nope"), "spec.type", "FieldValueNotSupported"),
        (
            {"metadata": {"name": "l", "labels": {"bad key!": "v"}}},
            "metadata.labels",
            "FieldValueInvalid",
        ),
    ],
)
async def test_validation_causes(registry: Registry, body: Obj, field: str, reason: str) -> None:
    res = CM if "spec" not in body else SVC
    e = await api_error(registry.create(res, "default", body, opts()))
    assert (e.code, e.reason) == (422, "Invalid")
    assert e.details is not None
    assert (field, reason) in [(c["field"], c["reason"]) for c in e.details["causes"]]
    assert await registry.list_objects(res, "default") == ([], await _revision(registry))


async def _revision(registry: Registry) -> int:
    _, revision = await registry.store.list("/")
    return revision


# ------------------------------------------------------------------ ClusterIP


async def test_cluster_ip_is_allocated_from_the_range(registry: Registry) -> None:
    svc = await registry.create(SVC, "default", service("web"), opts())
    ip = svc["spec"]["clusterIP"]
    assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network("10.96.0.0/16")
    assert svc["spec"]["clusterIPs"] == [ip]
    assert await registry.store.get(IP_PREFIX + ip) is not None


async def test_explicit_cluster_ip_is_honoured_and_exclusive(registry: Registry) -> None:
    svc = await registry.create(SVC, "default", service("a", clusterIP="10.96.7.7"), opts())
    assert svc["spec"]["clusterIP"] == "10.96.7.7"
    e = await api_error(
        registry.create(SVC, "default", service("b", clusterIP="10.96.7.7"), opts())
    )
    assert (e.code, e.reason) == (422, "Invalid")
    assert e.message == (
        'Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.7.7"}: '
        "failed to allocate IP 10.96.7.7: provided IP is already allocated"
    )


async def test_cluster_ip_outside_the_range_is_rejected(registry: Registry) -> None:
    e = await api_error(registry.create(SVC, "default", service("a", clusterIP="10.0.0.9"), opts()))
    assert (e.code, e.reason) == (422, "Invalid")
    assert "The range of valid IPs is 10.96.0.0/16" in e.message


async def test_cluster_ip_is_released_on_delete(registry: Registry) -> None:
    await registry.create(SVC, "default", service("a", clusterIP="10.96.7.7"), opts())
    await registry.delete(SVC, "default", "a")
    assert await registry.store.get(IP_PREFIX + "10.96.7.7") is None
    again = await registry.create(SVC, "default", service("b", clusterIP="10.96.7.7"), opts())
    assert again["spec"]["clusterIP"] == "10.96.7.7"


async def test_headless_and_external_name_take_no_ip(registry: Registry) -> None:
    headless = await registry.create(SVC, "default", service("h", clusterIP="None"), opts())
    assert headless["spec"]["clusterIP"] == "None"
    ext = await registry.create(
        SVC, "default", service("e", type="ExternalName", externalName="example.com"), opts()
    )
    assert "clusterIP" not in ext["spec"]
    claims, _ = await registry.store.list(IP_PREFIX)
    assert claims == []


async def test_concurrent_creates_never_share_an_ip(racing_registry: Registry) -> None:
    # 62 addresses for 50 Services: random picks collide and the claim txn settles them
    registry = racing_registry
    made = await asyncio.gather(
        *(registry.create(SVC, "default", service(f"s{i}"), opts()) for i in range(50))
    )
    ips = [s["spec"]["clusterIP"] for s in made]
    assert len(set(ips)) == 50
    stored, _ = await registry.list_objects(SVC, "default")
    assert sorted(s["spec"]["clusterIP"] for s in stored) == sorted(ips)
    claims, _ = await registry.store.list(IP_PREFIX)
    assert sorted(c.key.removeprefix(IP_PREFIX) for c in claims) == sorted(ips)


async def test_concurrent_creates_of_one_explicit_ip_have_one_winner(
    racing_registry: Registry,
) -> None:
    registry = racing_registry
    results = await asyncio.gather(
        *(
            registry.create(SVC, "default", service(f"s{i}", clusterIP="10.96.0.9"), opts())
            for i in range(10)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, ApiError)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(e.code == 422 and "provided IP is already allocated" in e.message for e in losers)


# ------------------------------------------------------------------ NodePort


async def test_node_port_is_allocated_from_the_range(registry: Registry) -> None:
    svc = await registry.create(SVC, "default", service("np", type="NodePort"), opts())
    port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    assert await registry.store.get(f"{PORT_PREFIX}{port}") is not None


async def test_explicit_node_port_is_honoured_and_exclusive(registry: Registry) -> None:
    first = service("a", type="NodePort")
    first["spec"]["ports"][0]["nodePort"] = 30000
    svc = await registry.create(SVC, "default", first, opts())
    assert svc["spec"]["ports"][0]["nodePort"] == 30000
    second = service("b", type="NodePort")
    second["spec"]["ports"][0]["nodePort"] = 30000
    e = await api_error(registry.create(SVC, "default", second, opts()))
    assert (e.code, e.reason) == (422, "Invalid")
    assert e.message == (
        'Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 30000: '
        "provided port is already allocated"
    )


async def test_node_port_outside_the_range_is_rejected(registry: Registry) -> None:
    body = service("a", type="NodePort")
    body["spec"]["ports"][0]["nodePort"] = 20000
    e = await api_error(registry.create(SVC, "default", body, opts()))
    assert (e.code, e.reason) == (422, "Invalid")
    assert "The range of valid ports is 30000-32767" in e.message


async def test_node_port_is_released_on_delete_and_on_type_change(registry: Registry) -> None:
    body = service("a", type="NodePort")
    body["spec"]["ports"][0]["nodePort"] = 30001
    await registry.create(SVC, "default", body, opts())
    await registry.delete(SVC, "default", "a")
    assert await registry.store.get(f"{PORT_PREFIX}30001") is None

    svc = await registry.create(SVC, "default", body, opts())
    svc["spec"]["type"] = "ClusterIP"
    svc["spec"]["ports"][0].pop("nodePort")
    svc["spec"].pop("externalTrafficPolicy", None)
    await registry.update(SVC, "default", "a", svc, opts())
    assert await registry.store.get(f"{PORT_PREFIX}30001") is None


async def test_concurrent_creates_never_share_a_node_port(racing_registry: Registry) -> None:
    # 64 ports for 50 Services
    made = await asyncio.gather(
        *(
            racing_registry.create(SVC, "default", service(f"n{i}", type="NodePort"), opts())
            for i in range(50)
        )
    )
    ports = [s["spec"]["ports"][0]["nodePort"] for s in made]
    assert len(set(ports)) == 50
    assert all(30000 <= p <= 30063 for p in ports)
    claims, _ = await racing_registry.store.list(PORT_PREFIX)
    assert sorted(int(c.key.removeprefix(PORT_PREFIX)) for c in claims) == sorted(ports)


# ------------------------------------------------------------------ status subresource


async def test_status_is_written_only_through_the_subresource(registry: Registry) -> None:
    created = await registry.create(POD, "default", pod("p"), opts())
    body = await registry.get(POD, "default", "p")
    body["status"] = {"phase": "Running"}
    body["metadata"]["labels"] = {"a": "b"}
    main = await registry.update(POD, "default", "p", body, opts())
    assert main["status"] == created["status"]  # status ignored on the main resource
    assert main["metadata"]["labels"] == {"a": "b"}

    body = await registry.get(POD, "default", "p")
    body["status"] = {"phase": "Running"}
    body["spec"]["activeDeadlineSeconds"] = 5
    status = await registry.update(POD, "default", "p", body, opts(), subresource="status")
    assert status["status"]["phase"] == "Running"
    assert "activeDeadlineSeconds" not in status["spec"]  # spec ignored on status
    assert (await registry.get(POD, "default", "p"))["spec"] == created["spec"]


# ------------------------------------------------------------------ deletion


async def test_unbound_pod_is_deleted_at_once(registry: Registry) -> None:
    await registry.create(POD, "default", pod("p"), opts())
    await registry.delete(POD, "default", "p")
    e = await api_error(registry.get(POD, "default", "p"))
    assert e.code == 404


async def test_bound_pod_is_deleted_gracefully(registry: Registry) -> None:
    await registry.create(POD, "default", pod("p"), opts())
    await registry.bind("default", "p", {"target": {"name": "node-1"}}, opts())
    marked = await registry.delete(POD, "default", "p")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert RFC3339.match(marked["metadata"]["deletionTimestamp"])
    still = await registry.get(POD, "default", "p")
    assert still["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]

    # the node confirms with a zero grace period: now it is gone
    await registry.delete(POD, "default", "p", {"gracePeriodSeconds": 0})
    e = await api_error(registry.get(POD, "default", "p"))
    assert e.code == 404


async def test_eviction_deletes_gracefully_with_its_options(registry: Registry) -> None:
    await registry.create(POD, "default", pod("p"), opts())
    await registry.bind("default", "p", {"target": {"name": "node-1"}}, opts())
    mismatch = await api_error(registry.evict("default", "p", {"metadata": {"name": "q"}}, opts()))
    assert (mismatch.code, mismatch.message) == (
        400,
        "name in URL does not match name in Eviction object",
    )
    dry = WriteOptions(dry_run=True)
    await registry.evict("default", "p", {"metadata": {"name": "p"}}, dry)
    assert "deletionTimestamp" not in (await registry.get(POD, "default", "p"))["metadata"]

    eviction = {"metadata": {"name": "p"}, "deleteOptions": {"gracePeriodSeconds": 5}}
    marked = await registry.evict("default", "p", eviction, opts())
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 5
    missing = await api_error(registry.evict("default", "nope", {}, opts()))
    assert missing.code == 404


async def test_finalizers_hold_deletion_until_removed(registry: Registry) -> None:
    body = {"metadata": {"name": "held", "finalizers": ["example.com/keep"]}}
    await registry.create(CM, "default", body, opts())
    marked = await registry.delete(CM, "default", "held")
    assert marked["metadata"]["deletionTimestamp"]
    current = await registry.get(CM, "default", "held")
    assert current["metadata"]["finalizers"] == ["example.com/keep"]

    current["metadata"]["finalizers"] = []
    await registry.update(CM, "default", "held", current, opts())
    e = await api_error(registry.get(CM, "default", "held"))
    assert e.code == 404


async def test_delete_with_stale_precondition_is_conflict(registry: Registry) -> None:
    cm = await registry.create(CM, "default", {"metadata": {"name": "a"}}, opts())
    stale = cm["metadata"]["resourceVersion"]
    cm["data"] = {"x": "y"}
    await registry.update(CM, "default", "a", cm, opts())
    e = await api_error(
        registry.delete(CM, "default", "a", {"preconditions": {"resourceVersion": stale}})
    )
    assert (e.code, e.reason) == (409, "Conflict")


async def test_terminating_namespace_refuses_new_content(registry: Registry) -> None:
    await registry.create(NS, "", {"metadata": {"name": "going"}}, opts())
    ns = await registry.delete(NS, "", "going")
    assert ns["status"]["phase"] == "Terminating"
    e = await api_error(registry.create(CM, "going", {"metadata": {"name": "late"}}, opts()))
    assert (e.code, e.reason) == (403, "Forbidden")
    assert e.message == (
        'configmaps "late" is forbidden: unable to create new content in namespace going '
        "because it is being terminated"
    )


# ------------------------------------------------------------------ namespace watch cache


@dataclass
class CountingStore(MemoryStore):
    """The memory store, counting point reads per key."""

    gets: Counter[str] = field(default_factory=Counter)

    async def get(self, key: str) -> Entry | None:
        self.gets[key] += 1
        return await super().get(key)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


@dataclass
class Cached:
    registry: Registry
    follower: asyncio.Task[None]  # keeps registry.namespaces current

    async def freeze(self) -> None:
        """Stop the cache following the store: it keeps what it has, soon stale."""
        self.follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.follower


@pytest.fixture
async def cached() -> AsyncIterator[Cached]:
    """A registry whose namespace cache follows its store, with namespace `team`."""
    reg = Registry(CountingStore())
    state = Cached(reg, asyncio.ensure_future(reg.namespaces.run()))
    await reg.create(NS, "", {"metadata": {"name": "team"}}, opts())
    await until(lambda: reg.namespaces.get("/registry/namespaces/team") is not None)
    yield state
    await state.freeze()


async def test_create_takes_an_open_namespace_from_the_cache(cached: Cached) -> None:
    reg = cached.registry
    store = reg.store
    assert isinstance(store, CountingStore)
    store.gets.clear()
    await reg.create(CM, "team", {"metadata": {"name": "a"}}, opts())
    assert store.gets["/registry/namespaces/team"] == 0
    # a namespace the cache has not seen yet is read live
    await reg.create(NS, "", {"metadata": {"name": "fresh"}}, opts())
    await reg.create(CM, "fresh", {"metadata": {"name": "a"}}, opts())


async def test_a_stale_cache_lets_nothing_into_a_terminating_namespace(
    cached: Cached,
) -> None:
    reg = cached.registry
    await cached.freeze()
    await reg.delete(NS, "", "team")
    stale = reg.namespaces.get("/registry/namespaces/team")
    assert stale is not None and "deletionTimestamp" not in stale.value["metadata"]
    e = await api_error(reg.create(CM, "team", {"metadata": {"name": "a"}}, opts()))
    assert (e.code, e.reason) == (403, "Forbidden")
    assert await reg.store.get("/registry/configmaps/team/a") is None


async def test_a_stale_cache_lets_nothing_into_a_deleted_namespace(
    cached: Cached,
) -> None:
    reg = cached.registry
    await cached.freeze()
    # the namespace controller's last step: the namespace key goes
    await reg.store.txn([], deletes=["/registry/namespaces/team"])
    e = await api_error(reg.create(CM, "team", {"metadata": {"name": "a"}}, opts()))
    assert (e.code, e.reason, e.message) == (404, "NotFound", 'namespaces "team" not found')
    assert await reg.store.get("/registry/configmaps/team/a") is None


async def test_a_namespace_changed_behind_the_cache_still_takes_content(
    cached: Cached,
) -> None:
    reg = cached.registry
    await cached.freeze()
    ns = await reg.get(NS, "", "team")
    ns["metadata"]["labels"] = {"tier": "gold"}
    await reg.update(NS, "", "team", ns, opts())
    made = await reg.create(CM, "team", {"metadata": {"name": "a"}}, opts())
    assert made["metadata"]["namespace"] == "team"


async def test_the_cache_follows_deletes_and_relists_after_compaction() -> None:
    store = MemoryStore(history_limit=3)
    reg = Registry(store)
    cache = WatchCache(store, "/registry/namespaces/", retry_seconds=0)
    follower = asyncio.ensure_future(cache.run())
    try:
        for name in ("a", "b"):
            await reg.create(NS, "", {"metadata": {"name": name}}, opts())
        await until(lambda: cache.get("/registry/namespaces/b") is not None)
        # more changes than the history keeps, with no pause for the watcher: it falls
        # behind the compaction, gets Expired, and lists again
        await store.txn([], deletes=["/registry/namespaces/a"])
        for name in ("c", "d", "e", "f"):
            await reg.create(NS, "", {"metadata": {"name": name}}, opts())
        await until(lambda: cache.get("/registry/namespaces/f") is not None)
        assert cache.get("/registry/namespaces/a") is None
        current = await store.get("/registry/namespaces/c")
        assert current is not None
        assert cache.get("/registry/namespaces/c") == current
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


async def test_two_apiservers_with_the_same_random_choices_never_share_an_ip() -> None:
    # two worker processes share nothing but etcd; identical seeds make every random
    # pick collide, and the claim transactions alone must keep the addresses unique
    store = InterleavingStore()
    config = ClusterConfig("10.96.0.0/26", (30000, 30063))
    workers = [Registry(store, config), Registry(store, config)]
    for w in workers:
        w._rng = random.Random(7)
    await workers[0].create(NS, "", {"metadata": {"name": "default"}}, WriteOptions())
    made = await asyncio.gather(
        *(
            workers[i % 2].create(SVC, "default", service(f"s{i}", type="NodePort"), opts())
            for i in range(40)
        )
    )
    ips = [s["spec"]["clusterIP"] for s in made]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in made]
    assert len(set(ips)) == 40 and len(set(ports)) == 40


# ------------------------------------------------------------------ writes without a read


async def test_an_update_after_our_own_write_skips_the_read() -> None:
    store = CountingStore()
    reg = Registry(store)
    await reg.create(NS, "", {"metadata": {"name": "default"}}, opts())
    made = await reg.create(CM, "default", {"metadata": {"name": "a"}, "data": {"k": "1"}}, opts())
    key = "/registry/configmaps/default/a"
    for v in ("2", "3"):
        made = await reg.update(CM, "default", "a", {**made, "data": {"k": v}}, opts())
    assert store.gets[key] == 0
    stored = await store.get(key)
    assert stored is not None and stored.value["data"] == {"k": "3"}
    assert stored.revision == int(made["metadata"]["resourceVersion"])


async def test_writes_from_another_apiserver_are_never_lost_or_misjudged() -> None:
    # two workers on one store: what one remembers goes stale when the other writes,
    # and every verdict must come from the stored object
    store = MemoryStore()
    ours, theirs = Registry(store), Registry(store)
    await ours.create(NS, "", {"metadata": {"name": "default"}}, opts())
    made = await ours.create(POD, "default", pod("p"), opts())
    key = "/registry/pods/default/p"

    async def stored() -> Obj:
        entry = await store.get(key)
        assert entry is not None
        return entry.value

    # a status write keeps the labels the other worker stored since, not our copy's
    await theirs.patch(
        POD, "default", "p", "application/merge-patch+json",
        b'{"metadata":{"labels":{"by":"them"}}}', opts(),
    )  # fmt: skip
    running = {**made, "status": {"phase": "Running"}}
    running["metadata"] = {k: v for k, v in made["metadata"].items() if k != "resourceVersion"}
    merged = await ours.update(POD, "default", "p", running, opts(), "status")
    assert merged["metadata"]["labels"] == {"by": "them"}
    assert (await stored())["status"]["phase"] == "Running"

    # the client's resourceVersion is judged against the stored object: the one the
    # other worker returned is current though ours remembers an older one, and ours
    # is stale though it is the one we remember
    mine = await ours.update(
        POD, "default", "p", {**merged, "status": {"phase": "Failed"}}, opts(), "status"
    )
    theirs_now = await theirs.update(
        POD, "default", "p", {**mine, "status": {"phase": "Succeeded"}}, opts(), "status"
    )
    assert (await ours.update(POD, "default", "p", theirs_now, opts()))["status"] == {
        "phase": "Succeeded"
    }
    assert (await api_error(ours.update(POD, "default", "p", mine, opts()))).code == 409

    # writing back what we last wrote is a no-op for our copy but a change in the store
    async def set_phase(registry: Registry, phase: str) -> Obj:
        body = {**(await stored()), "status": {"phase": phase}}
        return await registry.update(POD, "default", "p", body, opts(), "status")

    await set_phase(theirs, "Unknown")
    ours_last = await set_phase(ours, "Pending")
    await set_phase(theirs, "Unknown")
    without_version = {**ours_last, "metadata": {**ours_last["metadata"]}}
    del without_version["metadata"]["resourceVersion"]
    back = await ours.update(POD, "default", "p", without_version, opts(), "status")
    assert back["status"] == {"phase": "Pending"} == (await stored())["status"]


# ------------------------------------------------------------------ list


async def test_a_json_list_is_the_decoded_list_with_stored_bytes_spliced(
    registry: Registry,
) -> None:
    """`list_json` sends stored bytes with the resourceVersion spliced in: the same list
    as the decoded one, selectors included, and for a value stored in another layout
    (no apiVersion first) too."""
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        body = {"metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": name}}
        await registry.create(CM, "default", body, opts())
    foreign = {"kind": "ConfigMap", "metadata": {"name": "d", "namespace": "default"}}
    assert (await registry.store.txn([], [(registry.key(CM, "default", "d"), foreign)])).succeeded
    for labels, fields, names in (
        ("", "", ["a", "b", "c", "d"]),
        ("tier=web", "", ["a", "c"]),
        ("", "metadata.name!=a", ["b", "c", "d"]),
        ("tier", "metadata.name=c", ["c"]),
    ):
        items, revision = await registry.list_objects(CM, "default", labels, fields)
        listed = orjson.loads(await registry.list_json(CM, "default", labels, fields))
        assert listed == {
            "kind": "ConfigMapList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }
        assert [i["metadata"]["name"] for i in listed["items"]] == names
    assert (
        listed["items"][0]["metadata"]["resourceVersion"] == items[0]["metadata"]["resourceVersion"]
    )
