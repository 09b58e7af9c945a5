"""What every controller shares: one informer per kind, a base class wiring a
WorkQueue to its reconcile, small object helpers, and the clock.

Informers are created lazily by kind and started together once every controller has
registered its handlers; workers start only after every cache has synced, so no
reconcile acts on a half-listed world. Then the heap is settled (minikube_py.heap):
what is alive by then (modules, the listed caches) lives as long as the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from minikube_py.api.types import Obj
from minikube_py.client import ApiException, Client
from minikube_py.events import EventRecorder
from minikube_py.heap import settle_heap
from minikube_py.informer import Informer, WorkQueue, key_of

__all__ = ["key_of"]


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return ns, name


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


CONTROLLER_UID = "controller-uid"  # informer index: objects by their controller's uid
ORPHANS = "orphans"  # informer index: objects without a controller, by namespace


def controller_uid(obj: Obj) -> list[str]:
    ref = controller_of(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


def orphan_namespace(obj: Obj) -> list[str]:
    return [] if controller_of(obj) else [obj["metadata"].get("namespace", "")]


def owner_ref(owner: Obj, block: bool = True) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }


def condition(obj: Obj, kind: str) -> Obj | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def pod_ready(pod: Obj) -> bool:
    for c in pod.get("status", {}).get("conditions") or []:  # hot: no copy
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


# The Pod informer index of the node each pod is bound to (shared by every controller
# that looks pods up by node).
BY_NODE = "node"


def bound_node(pod: Obj) -> list[str]:
    """`BY_NODE`'s value for a pod: its node, once bound."""
    node = pod.get("spec", {}).get("nodeName")
    return [node] if node else []


def pod_active(pod: Obj) -> bool:
    """Counts towards an owner's replicas: not finished and not being deleted."""
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed") and not pod[
        "metadata"
    ].get("deletionTimestamp")


def set_condition(conditions: list[Obj], new: Obj) -> list[Obj]:
    """Replace the condition of new's type; lastTransitionTime moves only when the
    status changes, as in kube's condition helpers."""
    out = []
    for c in conditions:
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"] and c.get("lastTransitionTime"):
                new = {**new, "lastTransitionTime": c["lastTransitionTime"]}
            continue
        out.append(c)
    out.append(new)
    return out


class Informers:
    """One shared informer per kind (cluster-wide, or one namespace for Leases)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._by_kind: dict[str, Informer] = {}

    def __getitem__(self, kind: str) -> Informer:
        if kind not in self._by_kind:
            ns = "kube-node-lease" if kind == "Lease" else ""
            self._by_kind[kind] = Informer(self.client, kind, namespace=ns)
        return self._by_kind[kind]

    def all(self) -> Iterable[Informer]:
        return self._by_kind.values()

    async def start_and_sync(self) -> None:
        for inf in self._by_kind.values():
            inf.start()
        await asyncio.gather(*(inf.synced.wait() for inf in self._by_kind.values()))
        settle_heap()

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._by_kind.values()))
        await self.client.close()


class Controller:
    """A named reconcile loop over a keyed work queue."""

    name = "controller"
    workers = 4

    def __init__(
        self, client: Client, informers: Informers, events: EventRecorder, **_: Any
    ) -> None:
        self.client = client
        self.informers = informers
        self.events = events
        self.queue: WorkQueue[str] = WorkQueue()

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_all(self) -> None:
        """Called once caches are synced: every object gets one reconcile."""

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    async def _reconcile_quietly(self, key: str) -> None:
        """A 409 means our copy was stale: retry soon, without a traceback."""
        try:
            await self.reconcile(key)
        except ApiException as e:
            if e.code != 409:
                raise
            self.queue.add_after(key, 0.05)

    async def run(self) -> None:
        self.enqueue_all()
        await self.queue.run_workers(self._reconcile_quietly, self.workers)


async def ignore_missing(coro: Any) -> Any:
    """Await an API call whose 404 (already gone) means the work is done."""
    try:
        return await coro
    except ApiException as e:
        if e.code != 404:
            raise
        return None


def monotonic() -> float:
    return time.monotonic()
