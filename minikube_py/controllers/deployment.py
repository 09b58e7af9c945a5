"""The Deployment controller: ReplicaSets per pod template, rolled by strategy.

Pure core: `template_hash` (the `pod-template-hash` label: FNV-32a of the template,
kube-safe-encoded), `resolve_fenceposts` (maxSurge rounds up, maxUnavailable down, both
0 means 1 unavailable), `rolling_step` (one step of RollingUpdate: scale the new
ReplicaSet up within maxSurge, else scale old ones down - unhealthy first, then
oldest first - within maxUnavailable), `recreate_step`, and `deployment_status`
(counts plus the Available and Progressing conditions `kubectl rollout status`
reads). The new ReplicaSet is the one whose hash matches the current template, so
`rollout undo` (which copies an old ReplicaSet's template back) revives that one with
the next revision. Every step is recomputed from the caches, so a restart mid-rollout
simply continues.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from minikube_py.api.types import Obj
from minikube_py.controllers.common import (
    Controller,
    controller_of,
    ignore_missing,
    key_of,
    now_rfc3339,
    owner_ref,
    set_condition,
)

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj, collision_count: int = 0) -> str:
    data = json.dumps(strip_hash(template), sort_keys=True, separators=(",", ":"))
    h = 0x811C9DC5
    for b in (data + (str(collision_count) if collision_count else "")).encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


def strip_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template or {})
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return t


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        frac = int(value[:-1]) * total / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value)


def resolve_fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts."""
    replicas = int(deploy["spec"].get("replicas", 1))
    ru = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = _int_or_percent(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = _int_or_percent(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True)
class RS:
    """What the rollout arithmetic needs of a ReplicaSet."""

    name: str
    spec: int
    available: int
    pods: int  # pods that still exist, terminating ones included


def rolling_step(
    replicas: int, surge: int, unavailable: int, new: RS, olds: list[RS]
) -> dict[str, int]:
    """New spec.replicas for the ReplicaSets to change in this step (olds: oldest
    first)."""
    total = new.spec + sum(o.spec for o in olds)
    if new.spec > replicas:
        return {new.name: replicas}
    if new.spec < replicas:
        room = replicas + surge - total
        if room > 0:
            return {new.name: new.spec + min(room, replicas - new.spec)}
    min_available = replicas - unavailable
    new_unavailable = new.spec - new.available
    budget = total - min_available - new_unavailable
    if budget <= 0:
        return {}
    out: dict[str, int] = {}
    for o in olds:  # unhealthy pods first: removing them costs no availability
        unhealthy = min(o.spec - o.available, budget)
        if unhealthy > 0 and o.spec > 0:
            out[o.name] = o.spec - unhealthy
            budget -= unhealthy
    available = new.available + sum(o.available for o in olds)
    can_remove = min(budget, available - min_available)
    for o in olds:
        if can_remove <= 0:
            break
        current = out.get(o.name, o.spec)
        step = min(current, can_remove)
        if step > 0:
            out[o.name] = current - step
            can_remove -= step
    return out


def recreate_step(replicas: int, new: RS, olds: list[RS]) -> dict[str, int]:
    """Scale every old ReplicaSet to 0, wait for their pods to be gone, then scale up."""
    running_olds = {o.name: 0 for o in olds if o.spec > 0}
    if running_olds:
        return running_olds
    if any(o.pods > 0 for o in olds):
        return {}
    return {new.name: replicas} if new.spec != replicas else {}


def deployment_status(deploy: Obj, new: Obj | None, olds: list[Obj], created: bool) -> Obj:
    spec = deploy["spec"]
    replicas = int(spec.get("replicas", 1))
    every = [r for r in [new, *olds] if r is not None]

    def st(rs: Obj, k: str) -> int:
        return int((rs.get("status") or {}).get(k) or 0)

    status: Obj = {
        "observedGeneration": deploy["metadata"].get("generation", 1),
        "replicas": sum(st(r, "replicas") for r in every),
        "updatedReplicas": st(new, "replicas") if new else 0,
        "readyReplicas": sum(st(r, "readyReplicas") for r in every),
        "availableReplicas": sum(st(r, "availableReplicas") for r in every),
    }
    spec_total = sum(int(r["spec"].get("replicas", 0)) for r in every)
    status["unavailableReplicas"] = max(spec_total - status["availableReplicas"], 0)
    for k in list(status):
        if status[k] == 0 and k != "observedGeneration":
            del status[k]  # kube omits zero counts
    _, unavailable = resolve_fenceposts(deploy)
    now = now_rfc3339()
    old_conds = list((deploy.get("status") or {}).get("conditions") or [])
    if status.get("availableReplicas", 0) >= replicas - unavailable:
        avail = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        avail = (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    name = new["metadata"]["name"] if new else ""
    complete = (
        new is not None
        and status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
    )
    if complete:
        prog = (
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{name}" has successfully progressed.',
        )
    elif created:
        prog = ("True", "NewReplicaSetCreated", f'Created new replica set "{name}"')
    else:
        prog = ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
    conds = old_conds
    for type_, (s, reason, msg) in (("Available", avail), ("Progressing", prog)):
        prev: Obj = next((c for c in old_conds if c.get("type") == type_), {})
        same = (prev.get("status"), prev.get("reason"), prev.get("message")) == (s, reason, msg)
        conds = set_condition(
            conds,
            {
                "type": type_,
                "status": s,
                "reason": reason,
                "message": msg,
                "lastUpdateTime": prev.get("lastUpdateTime", now) if same else now,
                "lastTransitionTime": now,
            },
        )
    status["conditions"] = sorted(conds, key=lambda c: c["type"] != "Available")
    if (deploy.get("status") or {}).get("collisionCount"):
        status["collisionCount"] = deploy["status"]["collisionCount"]
    return status


def new_replicaset(deploy: Obj, rev: int, replicas: int) -> Obj:
    template = strip_hash(deploy["spec"]["template"])
    h = template_hash(template, int((deploy.get("status") or {}).get("collisionCount") or 0))
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = copy.deepcopy(deploy["spec"].get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    md = deploy["metadata"]
    surge, _ = resolve_fenceposts(deploy)
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{md['name']}-{h}",
            "namespace": md["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {
                REVISION: str(rev),
                DESIRED_REPLICAS: str(deploy["spec"].get("replicas", 1)),
                MAX_REPLICAS: str(int(deploy["spec"].get("replicas", 1)) + surge),
            },
            "ownerReferences": [owner_ref(deploy)],
        },
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": template,
            "minReadySeconds": int(deploy["spec"].get("minReadySeconds") or 0),
        },
    }


class DeploymentController(Controller):
    name = "deployment"
    workers = 4

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.deploys = self.informers["Deployment"]
        self.rss = self.informers["ReplicaSet"]
        self.pods = self.informers["Pod"]
        self.deploys.add_handler(lambda t, o, _: self.enqueue(key_of(o)))
        self.rss.add_handler(lambda t, o, _: self._enqueue_owner(o, "Deployment"))
        self.pods.add_handler(self._on_pod)

    def _enqueue_owner(self, obj: Obj, kind: str) -> None:
        ref = controller_of(obj)
        if ref and ref.get("kind") == kind:
            self.enqueue(f"{obj['metadata']['namespace']}/{ref['name']}")

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        if type_ != "DELETED":
            return  # only Recreate waits on pods, and only on their disappearance
        ref = controller_of(pod)
        if ref and ref.get("kind") == "ReplicaSet":
            rs = self.rss.get(f"{pod['metadata']['namespace']}/{ref['name']}")
            if rs is not None:
                self._enqueue_owner(rs, "Deployment")

    def enqueue_all(self) -> None:
        for key in self.deploys.cache:
            self.enqueue(key)

    def _pods_of(self, rs: Obj) -> int:
        uid, ns = rs["metadata"]["uid"], rs["metadata"]["namespace"]
        return sum(
            1
            for p in self.pods.cache.values()
            if p["metadata"]["namespace"] == ns
            and (controller_of(p) or {}).get("uid") == uid
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        )

    async def reconcile(self, key: str) -> None:
        d = self.deploys.get(key)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        ns, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        owned = [
            r
            for r in self.rss.cache.values()
            if r["metadata"]["namespace"] == ns and (controller_of(r) or {}).get("uid") == uid
        ]
        h = template_hash(
            d["spec"]["template"], int((d.get("status") or {}).get("collisionCount") or 0)
        )
        wanted_template = strip_hash(d["spec"]["template"])
        new = next(
            (
                r
                for r in owned
                if (r["metadata"].get("labels") or {}).get(HASH_LABEL) == h
                or strip_hash(r["spec"].get("template") or {}) == wanted_template
            ),
            None,
        )
        olds = sorted((r for r in owned if r is not new), key=revision)
        max_old = max((revision(r) for r in olds), default=0)
        replicas = int(d["spec"].get("replicas", 1))
        recreate = (d["spec"].get("strategy") or {}).get("type") == "Recreate"
        created = False
        if new is None:
            first = replicas if not any(int(o["spec"].get("replicas", 0)) for o in olds) else 0
            if recreate and any(self._pods_of(o) for o in olds):
                first = 0
            body = new_replicaset(d, max_old + 1, first)
            new = await self.client.create(body)  # 409 when the cache lags: retried
            created = True
            self.events.normal(
                d,
                "ScalingReplicaSet",
                f"Scaled up replica set {body['metadata']['name']} from 0 to {first}",
            )
        elif revision(new) <= max_old:
            new = await self.client.patch(
                "ReplicaSet",
                new["metadata"]["name"],
                {"metadata": {"annotations": {REVISION: str(max_old + 1)}}},
                ns,
            )
        rev = str(revision(new))
        if (d["metadata"].get("annotations") or {}).get(REVISION) != rev:
            d = await self.client.patch(
                "Deployment",
                d["metadata"]["name"],
                {"metadata": {"annotations": {REVISION: rev}}},
                ns,
            )
        if not d["spec"].get("paused") and not created:
            await self._scale(d, new, olds, recreate)
        await self._cleanup(d, olds)
        status = deployment_status(d, new, olds, created)
        if _status_changed(d.get("status") or {}, status):
            await ignore_missing(self.client.update_status({**d, "status": status}))

    async def _scale(self, d: Obj, new: Obj, olds: list[Obj], recreate: bool) -> None:
        def view(r: Obj) -> RS:
            return RS(
                r["metadata"]["name"],
                int(r["spec"].get("replicas", 0)),
                int((r.get("status") or {}).get("availableReplicas") or 0),
                self._pods_of(r) if recreate else 0,
            )

        replicas = int(d["spec"].get("replicas", 1))
        if recreate:
            plan = recreate_step(replicas, view(new), [view(o) for o in olds])
        else:
            surge, unavailable = resolve_fenceposts(d)
            plan = rolling_step(replicas, surge, unavailable, view(new), [view(o) for o in olds])
        by_name = {r["metadata"]["name"]: r for r in [new, *olds]}
        for name, count in plan.items():
            rs = by_name[name]
            before = int(rs["spec"].get("replicas", 0))
            if before == count:
                continue
            await self.client.patch(
                "ReplicaSet",
                name,
                {
                    "spec": {"replicas": count},
                    "metadata": {"annotations": {DESIRED_REPLICAS: str(replicas)}},
                },
                d["metadata"]["namespace"],
            )
            verb = "up" if count > before else "down"
            self.events.normal(
                d, "ScalingReplicaSet", f"Scaled {verb} replica set {name} from {before} to {count}"
            )

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = int(d["spec"].get("revisionHistoryLimit", 10))
        idle = [
            o
            for o in olds
            if int(o["spec"].get("replicas", 0)) == 0
            and not int((o.get("status") or {}).get("replicas") or 0)
        ]
        for o in idle[: max(len(idle) - limit, 0)]:
            await ignore_missing(
                self.client.delete("ReplicaSet", o["metadata"]["name"], o["metadata"]["namespace"])
            )


def _status_changed(old: Obj, new: Obj) -> bool:
    def strip(s: Obj) -> Obj:
        return {
            **s,
            "conditions": [
                {k: v for k, v in c.items() if k not in ("lastUpdateTime", "lastTransitionTime")}
                for c in s.get("conditions") or []
            ],
        }

    return strip(old) != strip(new)
