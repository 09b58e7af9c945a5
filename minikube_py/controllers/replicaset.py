"""The ReplicaSet controller: keeps `spec.replicas` active pods.

Pure core: `replica_diff` (how many to create, which to delete, ranked the way kube
ranks them: unassigned before assigned, pending before running, not ready before
ready, newest first) and `replicaset_status`. Pods are found through informer indexes:
by their controller's uid, and orphans (no controller) by namespace; orphans matching
the selector are adopted.

Expectations (as in kube) keep a lagging informer from causing double work: after
creating or deleting N pods the controller waits until it has seen those N changes
(or a timeout passes) before it scales that ReplicaSet again.

A pod counts as available once Ready for longer than `spec.minReadySeconds`; the
controller requeues the ReplicaSet for the moment the next one crosses that line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from minikube_py.api import labels
from minikube_py.api.types import Obj, status_only_change
from minikube_py.client import ApiException
from minikube_py.controllers.common import (
    CONTROLLER_UID,
    ORPHANS,
    Controller,
    condition,
    controller_of,
    controller_uid,
    ignore_missing,
    key_of,
    monotonic,
    orphan_namespace,
    owner_ref,
    parse_time,
    pod_active,
    pod_ready,
)

log = logging.getLogger(__name__)

EXPECTATION_TIMEOUT = 30.0
BURST = 500  # pods created or deleted per reconcile at most
AVAILABLE_MARGIN = 0.05  # past minReadySeconds, so the recheck counts the pod available


class Expectations:
    """Per-owner count of creations/deletions not yet seen in the informer."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, float]] = {}

    def expect(self, key: str, n: int) -> None:
        self._pending[key] = (n, monotonic())

    def observe(self, key: str) -> None:
        if key in self._pending:
            n, at = self._pending[key]
            self._pending[key] = (n - 1, at)

    def satisfied(self, key: str) -> bool:
        n, at = self._pending.get(key, (0, 0.0))
        return n <= 0 or monotonic() - at > EXPECTATION_TIMEOUT

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)


def _delete_rank(pod: Obj) -> tuple[int, int, int, str]:
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}
    return (
        1 if pod.get("spec", {}).get("nodeName") else 0,
        phase_rank.get(pod.get("status", {}).get("phase", "Pending"), 0),
        1 if pod_ready(pod) else 0,
        # newer first: invert the timestamp's order by sorting its negation below
        "".join(chr(0x10FFFF - ord(ch)) for ch in pod["metadata"].get("creationTimestamp", "")),
    )


def replica_diff(replicas: int, active: list[Obj]) -> tuple[int, list[Obj]]:
    """(pods to create, pods to delete) to reach `replicas`."""
    diff = replicas - len(active)
    if diff >= 0:
        return min(diff, BURST), []
    return 0, sorted(active, key=_delete_rank)[: min(-diff, BURST)]


def _ready_since(pod: Obj) -> float | None:
    return parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))


def pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for longer than minReadySeconds (kube's IsPodAvailable: strictly)."""
    if not pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = _ready_since(pod)
    return since is not None and since + min_ready_seconds < now


def next_available_in(rs: Obj, active: list[Obj], now: float) -> float | None:
    """Seconds until the next Ready pod that is not yet available becomes available
    (None when none will), so status is recomputed then rather than at the next event."""
    mrs = int(rs["spec"].get("minReadySeconds") or 0)
    if mrs <= 0:
        return None
    waits = [
        since + mrs - now
        for p in active
        if pod_ready(p) and (since := _ready_since(p)) is not None and since + mrs >= now
    ]
    return max(min(waits), 0.0) if waits else None


def replica_facts(pod: Obj) -> tuple[Any, ...]:
    """What a ReplicaSet's reconcile reads of an owned pod: its labels and owners (for
    counts, adoption and release), whether it is active, and its Ready condition with
    the time it became so (readiness and availability). A pod update that changes none
    of these changes nothing the ReplicaSet does, so it is not reconciled for it."""
    md, status = pod["metadata"], pod.get("status") or {}
    ready = condition(pod, "Ready") or {}
    return (
        md.get("labels"),
        md.get("ownerReferences"),
        md.get("deletionTimestamp"),
        status.get("phase"),
        ready.get("status"),
        ready.get("lastTransitionTime"),
    )


def replicaset_status(rs: Obj, active: list[Obj], now: float) -> Obj:
    template_labels = rs["spec"].get("template", {}).get("metadata", {}).get("labels") or {}
    mrs = int(rs["spec"].get("minReadySeconds") or 0)
    labelled = ready = available = 0
    for p in active:  # one pass: this runs on every change of any of the pods
        labelled += template_labels.items() <= (p["metadata"].get("labels") or {}).items()
        if pod_ready(p):
            ready += 1
            available += pod_available(p, mrs, now)
    status: Obj = {
        "replicas": len(active),
        "fullyLabeledReplicas": labelled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"].get("generation", 1),
    }
    if rs.get("status", {}).get("conditions"):
        status["conditions"] = rs["status"]["conditions"]
    return status


def pod_from_template(owner: Obj, name_prefix: str) -> Obj:
    template = owner["spec"].get("template") or {}
    tmd = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": name_prefix,
            "namespace": owner["metadata"]["namespace"],
            "labels": dict(tmd.get("labels") or {}),
            "annotations": dict(tmd.get("annotations") or {}),
            "ownerReferences": [owner_ref(owner)],
        },
        "spec": dict(template.get("spec") or {}),
    }


class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 8

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.rss = self.informers["ReplicaSet"]
        self.pods = self.informers["Pod"]
        self.expectations = Expectations()
        self.pods.add_index(CONTROLLER_UID, controller_uid)
        self.pods.add_index(ORPHANS, orphan_namespace)
        self.rss.add_handler(self._on_rs)
        self.pods.add_handler(self._on_pod)

    def _on_rs(self, type_: str, rs: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self.expectations.forget(key_of(rs))
        elif old is not None and status_only_change(old, rs):
            return  # the status this controller wrote coming back: nothing to act on
        self.enqueue(key_of(rs))

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_of(pod)
        if ref and ref.get("kind") == "ReplicaSet":
            return f"{pod['metadata']['namespace']}/{ref['name']}"
        return None

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        key = self._owner_key(pod)
        if key is None:
            if type_ != "DELETED" and not controller_of(pod):
                self._enqueue_matching(pod)  # a candidate for adoption
            return
        if (
            type_ == "ADDED"
            or (
                type_ == "DELETED"
                and old is not None
                and not old["metadata"].get("deletionTimestamp")
            )
            or (
                type_ == "MODIFIED"
                and old is not None
                and pod["metadata"].get("deletionTimestamp")
                and not old["metadata"].get("deletionTimestamp")
            )
        ):
            self.expectations.observe(key)
        elif type_ == "MODIFIED" and old is not None and replica_facts(pod) == replica_facts(old):
            return  # a status detail (a probe message, restarts): no count can change
        self.enqueue(key)

    def _enqueue_matching(self, pod: Obj) -> None:
        ns = pod["metadata"]["namespace"]
        for key, rs in self.rss.cache.items():
            if rs["metadata"]["namespace"] == ns and labels.matches(
                labels.from_label_selector(rs["spec"].get("selector")),
                pod["metadata"].get("labels"),
            ):
                self.enqueue(key)

    def enqueue_all(self) -> None:
        for key in self.rss.cache:
            self.enqueue(key)

    def _owned_pods(self, rs: Obj) -> tuple[list[Obj], list[Obj]]:
        """(owned pods, orphans to adopt)."""
        sel = labels.from_label_selector(rs["spec"].get("selector"))
        owned = list(self.pods.by_index(CONTROLLER_UID, rs["metadata"]["uid"]).values())
        orphans = [
            pod
            for pod in self.pods.by_index(ORPHANS, rs["metadata"]["namespace"]).values()
            if labels.matches(sel, pod["metadata"].get("labels")) and pod_active(pod)
        ]
        return owned, orphans

    async def reconcile(self, key: str) -> None:
        rs = self.rss.get(key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        owned, orphans = self._owned_pods(rs)
        for pod in orphans:
            refs = [*(pod["metadata"].get("ownerReferences") or []), owner_ref(rs)]
            try:
                await self.client.patch(
                    "Pod",
                    pod["metadata"]["name"],
                    {"metadata": {"ownerReferences": refs}},
                    pod["metadata"]["namespace"],
                )
                owned.append(pod)
            except ApiException as e:
                if e.code not in (404, 409, 422):
                    raise
        active = [p for p in owned if pod_active(p)]
        if self.expectations.satisfied(key):
            create, delete = replica_diff(int(rs["spec"].get("replicas", 1)), active)
            if create:
                await self._create(rs, key, create)
            elif delete:
                await self._delete(rs, key, delete)
        await self._write_status(rs, active)

    async def _create(self, rs: Obj, key: str, n: int) -> None:
        self.expectations.expect(key, n)
        body = pod_from_template(rs, rs["metadata"]["name"] + "-")
        results = await asyncio.gather(
            *(self.client.create(body) for _ in range(n)), return_exceptions=True
        )
        failed = 0
        for r in results:
            if isinstance(r, BaseException):
                failed += 1
                self.expectations.observe(key)
                self.events.warning(rs, "FailedCreate", f"Error creating: {r}")
            else:
                self.events.normal(rs, "SuccessfulCreate", f"Created pod: {r['metadata']['name']}")
        if failed:
            raise RuntimeError(f"{failed} of {n} pod creations failed")

    async def _delete(self, rs: Obj, key: str, pods: list[Obj]) -> None:
        self.expectations.expect(key, len(pods))

        async def one(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            if (
                await ignore_missing(self.client.delete("Pod", name, pod["metadata"]["namespace"]))
                is None
            ):
                self.expectations.observe(key)
                return
            self.events.normal(rs, "SuccessfulDelete", f"Deleted pod: {name}")

        await asyncio.gather(*(one(p) for p in pods))

    async def _write_status(self, rs: Obj, active: list[Obj]) -> None:
        now = time.time()
        wait = next_available_in(rs, active, now)
        if wait is not None:
            self.queue.add_after(key_of(rs), wait + AVAILABLE_MARGIN)
        status = replicaset_status(rs, active, now)
        if status == rs.get("status"):
            return
        await ignore_missing(self.client.update_status({**rs, "status": status}))
