"""Node lifecycle: health from Leases, taints, pod readiness and eviction.

Pure core: `node_health` judges a node by when this process last saw its Lease
(kube-node-lease/<node>) or its Ready heartbeat change - kube's observed-time rule,
immune to clock skew - and `unknown_conditions` gives kube's `Ready=Unknown`
conditions ("NodeStatusUnknown", "Kubelet stopped posting node status.").
`wanted_taints` maps the Ready condition to `node.kubernetes.io/unreachable` or
`not-ready` NoSchedule+NoExecute taints. `evictions` lists the pods to delete on a
node with a NoExecute taint: after their toleration's tolerationSeconds, or the pod
eviction timeout for pods without a matching toleration; pods tolerating it forever
stay. Deleted pods leave their owners short, so those recreate them elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from minikube_py.api.timestamps import now_rfc3339
from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import (
    BY_NODE,
    Controller,
    bound_node,
    condition,
    ignore_missing,
    key_of,
    monotonic,
    parse_time,
    pod_ready,
    set_condition,
)
from minikube_py.controllers.scheduler import tolerates

log = logging.getLogger(__name__)

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def node_health(observed_age: float, grace: float, ever_posted: bool) -> str:
    """'ok', 'unknown' (stopped posting) or 'never' (never posted) for a node."""
    if observed_age <= grace:
        return "ok"
    return "unknown" if ever_posted else "never"


def unknown_conditions(node: Obj, health: str, now: str) -> list[Obj]:
    if health == "never":
        reason, message = "NodeStatusNeverUpdated", "Kubelet never posted node status."
    else:
        reason, message = "NodeStatusUnknown", "Kubelet stopped posting node status."
    conds = list(node.get("status", {}).get("conditions") or [])
    present = {c.get("type") for c in conds}
    for type_ in NODE_CONDITIONS:
        if type_ not in present and type_ != "Ready":
            continue
        prev = condition(node, type_) or {}
        conds = set_condition(
            conds,
            {
                "type": type_,
                "status": "Unknown",
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": prev.get("lastHeartbeatTime"),
                "lastTransitionTime": now,
            },
        )
    return conds


def wanted_taints(node: Obj, now: str) -> list[Obj]:
    """The node's taints with the lifecycle ones matching its Ready condition."""
    ready = (condition(node, "Ready") or {}).get("status")
    key = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready or "Unknown")
    if not (node.get("status", {}).get("conditions")):
        key = None  # a node that never reported is judged by node_health first
    taints = list(node.get("spec", {}).get("taints") or [])
    keep = [
        t for t in taints if t.get("key") not in (UNREACHABLE, NOT_READY) or t.get("key") == key
    ]
    if key is not None:
        for effect in ("NoSchedule", "NoExecute"):
            if not any(t.get("key") == key and t.get("effect") == effect for t in keep):
                taint: Obj = {"key": key, "effect": effect}
                if effect == "NoExecute":
                    taint["timeAdded"] = now
                keep.append(taint)
    return keep


def evictions(
    node: Obj, pods: list[Obj], now: float, eviction_timeout: float
) -> tuple[list[Obj], float | None]:
    """(pods due for deletion, seconds until the next one is due)."""
    due, wait = [], None
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") != "NoExecute":
            continue
        added = parse_time(taint.get("timeAdded")) or now
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp") or pod in due:
                continue
            tols = [
                t for t in pod.get("spec", {}).get("tolerations") or [] if tolerates([t], taint)
            ]
            if tols and any(t.get("tolerationSeconds") is None for t in tols):
                continue
            limit = min((float(t["tolerationSeconds"]) for t in tols), default=eviction_timeout)
            left = added + limit - now
            if left <= 0:
                due.append(pod)
            else:
                wait = left if wait is None else min(wait, left)
    return due, wait


class NodeLifecycleController(Controller):
    name = "node-lifecycle"
    workers = 4

    def __init__(
        self,
        *args: Any,
        node_monitor_grace: float = 40.0,
        pod_eviction_timeout: float = 300.0,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.grace = node_monitor_grace
        self.eviction_timeout = pod_eviction_timeout
        self.nodes = self.informers["Node"]
        self.leases = self.informers["Lease"]
        self.pods = self.informers["Pod"]
        self.seen: dict[str, tuple[Any, float]] = {}  # node -> (heartbeat record, when)
        self.nodes.add_handler(lambda t, o, _: self.enqueue(key_of(o)))
        self.leases.add_handler(lambda t, o, _: self.enqueue(o["metadata"]["name"]))
        self.pods.add_index(BY_NODE, bound_node)
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        node = pod.get("spec", {}).get("nodeName")
        if node and type_ != "DELETED":
            n = self.nodes.get(node)
            if n and (condition(n, "Ready") or {}).get("status") != "True":
                self.enqueue(node)

    def enqueue_all(self) -> None:
        for key in self.nodes.cache:
            self.enqueue(key)

    def _observed_age(self, name: str, node: Obj) -> tuple[float, bool]:
        lease = self.leases.get(f"kube-node-lease/{name}")
        renew = (lease or {}).get("spec", {}).get("renewTime")
        ready = condition(node, "Ready") or {}
        record = (renew, ready.get("lastHeartbeatTime"))
        ever = bool(renew or ready.get("lastHeartbeatTime"))
        if self.seen.get(name, (None,))[0] != record:
            self.seen[name] = (record, monotonic())
        return monotonic() - self.seen[name][1], ever

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self.seen.pop(key, None)
            return
        age, ever = self._observed_age(key, node)
        health = node_health(age, self.grace, ever)
        if health == "ok":
            self.queue.add_after(key, self.grace - age + 0.5)
        else:
            ready = condition(node, "Ready") or {}
            if ready.get("status") != "Unknown":
                status = {
                    **node.get("status", {}),
                    "conditions": unknown_conditions(node, health, now_rfc3339()),
                }
                node = await self.client.update_status({**node, "status": status})
                self.events.normal(node, "NodeNotReady", f"Node {key} status is now: NodeNotReady")
        taints = wanted_taints(node, now_rfc3339())
        if taints != (node.get("spec", {}).get("taints") or []):
            node = await self.client.patch("Node", key, {"spec": {"taints": taints or None}})
        if (condition(node, "Ready") or {}).get("status") == "True":
            return
        pods = list(self.pods.by_index(BY_NODE, key).values())
        await self._mark_not_ready(pods)
        due, wait = evictions(node, pods, time.time(), self.eviction_timeout)
        for pod in due:
            md = pod["metadata"]
            await ignore_missing(self.client.delete("Pod", md["name"], md["namespace"]))
            self.events.normal(
                pod,
                "TaintManagerEviction",
                f"Marking for deletion Pod {md['namespace']}/{md['name']}",
            )
        if wait is not None:
            self.queue.add_after(key, wait + 0.1)

    async def _mark_not_ready(self, pods: list[Obj]) -> None:
        async def one(pod: Obj) -> None:
            status = dict(pod.get("status") or {})
            status["conditions"] = set_condition(
                list(status.get("conditions") or []),
                {
                    "type": "Ready",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(),
                },
            )
            try:
                await self.client.update_status({**pod, "status": status})
            except ApiException as e:
                if e.code not in (404, 409):
                    raise

        await asyncio.gather(*(one(p) for p in pods if pod_ready(p)))
