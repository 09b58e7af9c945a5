"""The scheduler: binds pending pods to nodes.

`schedule(pod, nodes, pods_by_node)` is pure: every node goes through kube's filters
in kube's order (unschedulable, Ready, taints/tolerations, nodeSelector + required
node affinity, host ports, resource requests vs allocatable); the survivors are scored
by least-allocated cpu/memory plus spreading of pods with the same controller, ties
broken by name. A pod no node fits gets kube's summary message ("0/3 nodes are
available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.").

The controller decides and *assumes* a placement synchronously (no await between), so
many bindings can be in flight at once without two decisions seeing stale capacity;
an assumption is dropped when the informer shows the pod bound, or the bind fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from minikube_py.api.quantity import parse_quantity
from minikube_py.api.timestamps import now_rfc3339
from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import (
    Controller,
    condition,
    controller_of,
    key_of,
    set_condition,
)

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
DEFAULT_MAX_PODS = 110
_MATCH_FAIL = "node(s) didn't match Pod's node affinity/selector"
_PORTS_FAIL = "node(s) didn't have free ports for the requested pod ports"


# ---------------------------------------------------------------------- requests


# What the scheduler's scoring assumes for a container that requests no cpu or memory
# (kube's schedutil.DefaultMilliCPURequest and DefaultMemoryRequest), so that pods
# without requests still spread by least-allocated instead of all scoring the same.
SCORING_DEFAULTS = {"cpu": Decimal("0.1"), "memory": Decimal(200 * 1024 * 1024)}


def pod_requests(pod: Obj, defaults: dict[str, Decimal] | None = None) -> dict[str, Decimal]:
    """Effective requests: sum over containers, at least each init container's, a
    missing request defaulting to the limit (as kube defaults them), then to `defaults`
    (scoring passes SCORING_DEFAULTS; filtering counts only real requests)."""

    def of(c: Obj) -> dict[str, Decimal]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        found = {k: parse_quantity(v) for k, v in merged.items()}
        for k, v in (defaults or {}).items():
            if not found.get(k):
                found[k] = v
        return found

    spec = pod.get("spec", {})
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, Decimal(0)), v)
    total["pods"] = Decimal(1)
    return total


def allocatable(node: Obj) -> dict[str, Decimal]:
    status = node.get("status", {})
    raw = status.get("allocatable") or status.get("capacity") or {}
    alloc = {k: parse_quantity(v) for k, v in raw.items()}
    alloc.setdefault("pods", Decimal(DEFAULT_MAX_PODS))
    return alloc


def host_ports(pod: Obj) -> set[tuple[str, str, int]]:
    out = set()
    for c in pod.get("spec", {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add(
                    (p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"]))
                )
    return out


def _ports_conflict(want: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for ip, proto, port in want:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


# ---------------------------------------------------------------------- matching


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def _expression_matches(expr: Obj, value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_matches(pod: Obj, node: Obj) -> bool:
    """nodeSelector AND required node affinity (terms ORed, expressions ANDed)."""
    labels = node.get("metadata", {}).get("labels") or {}
    spec = pod.get("spec", {})
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in required.get("nodeSelectorTerms") or []:
        exprs = term.get("matchExpressions") or []
        field_exprs = term.get("matchFields") or []
        if not exprs and not field_exprs:
            continue  # an empty term matches nothing
        if all(_expression_matches(e, labels.get(e["key"])) for e in exprs) and all(
            _expression_matches(e, fields.get(e["key"])) for e in field_exprs
        ):
            return True
    return False


def node_ready(node: Obj) -> bool:
    c = condition(node, "Ready")
    return bool(c and c.get("status") == "True")


# ---------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Decision:
    node: str | None
    message: str = ""


def filter_node(pod: Obj, node: Obj, pods_on_node: list[Obj]) -> list[str]:
    """Why `pod` cannot go to `node` (empty: it fits)."""
    spec = node.get("spec", {})
    if spec.get("unschedulable"):
        return ["node(s) were unschedulable"]
    if not node_ready(node):
        return ["node(s) were not ready"]
    tolerations = pod.get("spec", {}).get("tolerations") or []
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return [
                f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
            ]
    if not node_matches(pod, node):
        return [_MATCH_FAIL]
    want_ports = host_ports(pod)
    if want_ports:
        used: set[tuple[str, str, int]] = set()
        for p in pods_on_node:
            used |= host_ports(p)
        if _ports_conflict(want_ports, used):
            return [_PORTS_FAIL]
    alloc = allocatable(node)
    used_res: dict[str, Decimal] = {}
    for p in pods_on_node:
        for k, v in pod_requests(p).items():
            used_res[k] = used_res.get(k, Decimal(0)) + v
    reasons = []
    for k, v in sorted(pod_requests(pod).items()):
        if v <= 0:
            continue
        if k not in alloc and k not in ("cpu", "memory", "ephemeral-storage"):
            reasons.append(f"Insufficient {k}")
        elif k in alloc and used_res.get(k, Decimal(0)) + v > alloc[k]:
            reasons.append("Too many pods" if k == "pods" else f"Insufficient {k}")
    return reasons


def score_node(pod: Obj, node: Obj, pods_on_node: list[Obj]) -> float:
    """Least allocated (0..100, mean over cpu and memory) plus same-owner spreading
    (100 with no sibling on the node, less for each)."""
    alloc = allocatable(node)
    want = pod_requests(pod, SCORING_DEFAULTS)
    used: dict[str, Decimal] = dict(want)
    for p in pods_on_node:
        for k, v in pod_requests(p, SCORING_DEFAULTS).items():
            used[k] = used.get(k, Decimal(0)) + v
    free = []
    for res in ("cpu", "memory"):
        cap = alloc.get(res)
        if cap:
            free.append(float(max(cap - used.get(res, Decimal(0)), Decimal(0)) / cap) * 100)
    least = sum(free) / len(free) if free else 100.0
    owner = controller_of(pod)
    siblings = 0
    if owner:
        siblings = sum(
            1 for p in pods_on_node if (controller_of(p) or {}).get("uid") == owner.get("uid")
        )
    return least + 100.0 / (1 + siblings)


def schedule(pod: Obj, nodes: list[Obj], pods_by_node: dict[str, list[Obj]]) -> Decision:
    if not nodes:
        return Decision(None, "0/0 nodes are available: no nodes available to schedule pods.")
    reasons: Counter[str] = Counter()
    best: tuple[float, str] | None = None
    for node in nodes:
        name = node["metadata"]["name"]
        on_node = pods_by_node.get(name, [])
        why = filter_node(pod, node, on_node)
        if why:
            reasons.update(why)
            continue
        candidate = (-score_node(pod, node, on_node), name)
        if best is None or candidate < best:
            best = candidate
    if best is not None:
        return Decision(best[1])
    summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return Decision(None, f"0/{len(nodes)} nodes are available: {summary}.")


def wants_scheduling(pod: Obj) -> bool:
    spec = pod.get("spec", {})
    return (
        not spec.get("nodeName")
        and not pod["metadata"].get("deletionTimestamp")
        and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
        and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    )


# ---------------------------------------------------------------------- controller


class Scheduler(Controller):
    name = "scheduler"
    workers = 16

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.pods = self.informers["Pod"]
        self.nodes = self.informers["Node"]
        self.assumed: dict[str, tuple[str, Obj]] = {}  # pod key -> (node, pod)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(lambda *_: self._retry_pending())

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        key = key_of(pod)
        if type_ == "DELETED" or pod.get("spec", {}).get("nodeName"):
            self.assumed.pop(key, None)
        if type_ == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            self._retry_pending()  # capacity freed
        elif wants_scheduling(pod):
            self.enqueue(key)

    def _retry_pending(self) -> None:
        for key, pod in self.pods.cache.items():
            if key not in self.assumed and wants_scheduling(pod):
                self.enqueue(key)

    def enqueue_all(self) -> None:
        self._retry_pending()

    def _pods_by_node(self) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for key, pod in self.pods.cache.items():
            node = pod.get("spec", {}).get("nodeName")
            if node is None and key in self.assumed:
                node = self.assumed[key][0]
            if node and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                out.setdefault(node, []).append(pod)
        return out

    async def reconcile(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not wants_scheduling(pod) or key in self.assumed:
            return
        decision = schedule(pod, list(self.nodes.cache.values()), self._pods_by_node())
        if decision.node is None:
            await self._unschedulable(pod, decision.message)
            return
        self.assumed[key] = (decision.node, pod)
        try:
            await self.client.bind(pod, decision.node)
        except ApiException as e:
            self.assumed.pop(key, None)
            if e.code in (404, 409):
                return  # gone, or bound/deleted meanwhile: the informer will tell
            raise
        md = pod["metadata"]
        self.events.normal(
            pod,
            "Scheduled",
            f"Successfully assigned {md['namespace']}/{md['name']} to {decision.node}",
        )

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        cond = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        }
        old = condition(pod, "PodScheduled") or {}
        if (old.get("reason"), old.get("message")) == ("Unschedulable", message):
            return
        self.events.warning(pod, "FailedScheduling", message)
        status = dict(pod.get("status") or {})
        status["conditions"] = set_condition(list(status.get("conditions") or []), cond)
        try:
            await self.client.update_status({**pod, "status": status})
        except ApiException as e:
            if e.code not in (404, 409):
                raise
            if e.code == 409:
                await asyncio.sleep(0.05)
                self.enqueue(key_of(pod))
