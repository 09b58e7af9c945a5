"""The garbage collector and the namespace controller.

Garbage collector (kube's semantics, over the informed kinds): an object whose every
owner is gone is deleted (background cascading: each deletion lets the next level be
collected); references to owners that are gone are dropped when others remain. An
owner being deleted with the `foregroundDeletion` finalizer gets its dependents
deleted (in the foreground too) and loses the finalizer once no dependent with
`blockOwnerDeletion` remains; one with the `orphan` finalizer has itself removed from
its dependents' ownerReferences, then loses the finalizer. "Gone" is decided by uid:
an owner missing from the caches is looked up in the API before anything is deleted,
since separate watches may deliver a dependent before its owner.

`owner_verdict` and `finalizer_plan` are the pure decisions.

Namespace controller: a namespace marked for deletion has everything in it deleted;
when nothing is left, `/finalize` empties its spec.finalizers and the apiserver
removes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from minikube_py.api.resources import RESOURCES
from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import Controller, ignore_missing, key_of, split_key

log = logging.getLogger(__name__)

GC_KINDS = (
    "Pod",
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "Service",
    "EndpointSlice",
    "ConfigMap",
    "Secret",
)
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def owner_verdict(refs: list[Obj], alive: set[str]) -> str:
    """'keep', 'delete' (every owner gone) or 'prune' (drop dangling references)."""
    if not refs:
        return "keep"
    gone = [r for r in refs if r.get("uid") not in alive]
    if not gone:
        return "keep"
    return "delete" if len(gone) == len(refs) else "prune"


def finalizer_plan(owner: Obj, dependents: list[Obj]) -> tuple[str, list[Obj]]:
    """For an owner being deleted: ('foreground'|'orphan'|'', dependents to act on, or
    [] when the finalizer can go)."""
    md = owner["metadata"]
    finalizers = md.get("finalizers") or []
    uid = md.get("uid")
    if not md.get("deletionTimestamp"):
        return "", []
    if ORPHAN in finalizers:
        return "orphan", [
            d
            for d in dependents
            if any(r.get("uid") == uid for r in d["metadata"].get("ownerReferences") or [])
        ]
    if FOREGROUND in finalizers:
        return "foreground", [
            d
            for d in dependents
            if any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in d["metadata"].get("ownerReferences") or []
            )
        ]
    return "", []


def _gc_fields_changed(obj: Obj, old: Obj | None, type_: str = "MODIFIED") -> bool:
    """Whether an event touches what collection decides on: owners, finalizers,
    deletion, or the object's existence."""
    if old is None or type_ == "DELETED":
        return True
    md, was = obj["metadata"], old.get("metadata", {})
    return any(
        md.get(field) != was.get(field)
        for field in ("ownerReferences", "finalizers", "deletionTimestamp", "uid")
    )


class GarbageCollector(Controller):
    name = "garbage-collector"
    workers = 8

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.by_uid: dict[str, tuple[str, str]] = {}  # uid -> (kind, key)
        self.dependents: dict[str, set[tuple[str, str]]] = {}  # owner uid -> {(kind, key)}
        for kind in GC_KINDS:
            self.informers[kind].add_handler(self._handler(kind))

    def _handler(self, kind: str) -> Any:
        def on(type_: str, obj: Obj, old: Obj | None) -> None:
            key, md = key_of(obj), obj["metadata"]
            item = (kind, key)
            for ref in (old or {}).get("metadata", {}).get("ownerReferences") or []:
                self.dependents.get(ref.get("uid"), set()).discard(item)
            if type_ == "DELETED":
                self.by_uid.pop(md.get("uid"), None)
                for dep in self.dependents.pop(md.get("uid"), set()):
                    self.enqueue("|".join(dep))
            else:
                self.by_uid[md["uid"]] = item
                for ref in md.get("ownerReferences") or []:
                    self.dependents.setdefault(ref["uid"], set()).add(item)
                # A status-only update (most pod events) changes no verdict: skip it, or
                # every pod flip would re-plan its owner over all of its dependents.
                if (md.get("ownerReferences") or md.get("finalizers")) and _gc_fields_changed(
                    obj, old
                ):
                    self.enqueue(f"{kind}|{key}")
            for ref in md.get("ownerReferences") or []:  # a deleting owner may be unblocked
                owner = self.by_uid.get(ref.get("uid"))
                if owner and self._deleting(*owner) and _gc_fields_changed(obj, old, type_):
                    self.enqueue("|".join(owner))

        return on

    def _deleting(self, kind: str, key: str) -> bool:
        owner = self.informers[kind].get(key)
        return bool(owner and owner["metadata"].get("deletionTimestamp"))

    def enqueue_all(self) -> None:
        for kind in GC_KINDS:
            for key, obj in self.informers[kind].cache.items():
                if obj["metadata"].get("ownerReferences") or obj["metadata"].get("finalizers"):
                    self.enqueue(f"{kind}|{key}")

    async def _alive(self, obj: Obj) -> set[str]:
        alive = set()
        ns = obj["metadata"].get("namespace", "")
        for ref in obj["metadata"].get("ownerReferences") or []:
            uid = ref.get("uid")
            if uid in self.by_uid:
                alive.add(uid)
                continue
            try:
                live = await self.client.get(ref["kind"], ref["name"], ns)
            except (ApiException, KeyError) as e:
                if isinstance(e, ApiException) and e.code != 404:
                    raise
                continue
            if live["metadata"].get("uid") == uid:
                alive.add(uid)
        return alive

    def _dependents_of(self, uid: str) -> list[Obj]:
        out = []
        for kind, key in self.dependents.get(uid, set()):
            dep = self.informers[kind].get(key)
            if dep is not None:
                out.append({**dep, "kind": kind})
        return out

    async def reconcile(self, item: str) -> None:
        kind, key = item.split("|", 1)
        obj = self.informers[kind].get(key)
        if obj is None:
            return
        obj = {**obj, "kind": kind}
        ns, name = split_key(key)
        mode, deps = finalizer_plan(obj, self._dependents_of(obj["metadata"]["uid"]))
        if mode == "orphan":
            await self._orphan(obj, deps)
        elif mode == "foreground":
            await self._foreground(obj, deps)
        refs = obj["metadata"].get("ownerReferences") or []
        verdict = owner_verdict(refs, await self._alive(obj)) if refs else "keep"
        if verdict == "delete" and not obj["metadata"].get("deletionTimestamp"):
            log.info("collecting %s %s: its owners are gone", kind, key)
            await ignore_missing(
                self.client.delete(kind, name, ns, {"propagationPolicy": "Background"})
            )
        elif verdict == "prune":
            alive = await self._alive(obj)
            await ignore_missing(
                self.client.patch(
                    kind,
                    name,
                    {"metadata": {"ownerReferences": [r for r in refs if r.get("uid") in alive]}},
                    ns,
                )
            )

    async def _drop_finalizer(self, obj: Obj, finalizer: str) -> None:
        md = obj["metadata"]
        body = {
            **obj,
            "metadata": {
                **md,
                "finalizers": [f for f in md.get("finalizers") or [] if f != finalizer],
            },
        }
        await ignore_missing(self.client.update(body))

    async def _orphan(self, owner: Obj, deps: list[Obj]) -> None:
        uid = owner["metadata"]["uid"]
        for d in deps:
            refs = [r for r in d["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            await ignore_missing(
                self.client.patch(
                    d["kind"],
                    d["metadata"]["name"],
                    {"metadata": {"ownerReferences": refs or None}},
                    d["metadata"].get("namespace", ""),
                )
            )
        await self._drop_finalizer(owner, ORPHAN)

    async def _foreground(self, owner: Obj, blocking: list[Obj]) -> None:
        uid = owner["metadata"]["uid"]
        for d in self._dependents_of(uid):
            if not d["metadata"].get("deletionTimestamp"):
                await ignore_missing(
                    self.client.delete(
                        d["kind"],
                        d["metadata"]["name"],
                        d["metadata"].get("namespace", ""),
                        {"propagationPolicy": "Foreground"},
                    )
                )
        if not blocking:
            await self._drop_finalizer(owner, FOREGROUND)


NAMESPACED = [r for r in RESOURCES if r.namespaced]


class NamespaceController(Controller):
    name = "namespace"
    workers = 2

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.namespaces = self.informers["Namespace"]
        self.namespaces.add_handler(lambda t, o, _: self.enqueue(key_of(o)))

    def enqueue_all(self) -> None:
        for key in self.namespaces.cache:
            self.enqueue(key)

    async def reconcile(self, name: str) -> None:
        ns = self.namespaces.get(name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for res in NAMESPACED:
            items = (await self.client.list(res.kind, name)).get("items") or []
            remaining += len(items)
            await asyncio.gather(
                *(
                    ignore_missing(self.client.delete(res.kind, i["metadata"]["name"], name))
                    for i in items
                    if not i["metadata"].get("deletionTimestamp")
                )
            )
        if remaining:
            self.queue.add_after(name, 1.0)
            return
        if ns.get("spec", {}).get("finalizers"):
            await ignore_missing(
                self.client.update({**ns, "spec": {**ns["spec"], "finalizers": []}}, "finalize")
            )
