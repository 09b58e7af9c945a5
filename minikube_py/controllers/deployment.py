"""The Deployment controller: ReplicaSets per pod template, rolled by strategy.

Pure core: `template_hash` (the `pod-template-hash` label: FNV-32a of the template,
kube-safe-encoded), `resolve_fenceposts` (maxSurge rounds up, maxUnavailable down, both
0 means 1 unavailable), `rolling_step` (one step of RollingUpdate: scale the new
ReplicaSet up within maxSurge, else scale old ones down - unhealthy first, then
oldest first - within maxUnavailable), `recreate_step`, and `rollout_status` (counts
plus the Available and Progressing conditions `kubectl rollout status` reads, with
kube's reasons and times: NewReplicaSetCreated / FoundNewReplicaSet when a rollout
starts, ReplicaSetUpdated with a fresh lastUpdateTime whenever it progresses,
NewReplicaSetAvailable when complete, and Progressing=False with
ProgressDeadlineExceeded once it has shown no progress for
`spec.progressDeadlineSeconds`; lastTransitionTime moves only with the status).
Availability honours `spec.minReadySeconds` through the ReplicaSets' counts. A
rollout without progress is rechecked when its deadline falls due
(`recheck_progress_in`), so the deadline needs no other event. A paused Deployment
starts no new ReplicaSet and shows DeploymentPaused / DeploymentResumed.
The new ReplicaSet is the one whose hash matches the current template, so
`rollout undo` (which copies an old ReplicaSet's template back) revives that one with
the next revision. Every step is recomputed from the caches, so a restart mid-rollout
simply continues.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from minikube_py.api.names import SAFE_CHARS
from minikube_py.api.timestamps import rfc3339
from minikube_py.api.types import Obj, clone
from minikube_py.controllers.common import (
    CONTROLLER_UID,
    Controller,
    controller_of,
    controller_uid,
    ignore_missing,
    key_of,
    owner_ref,
    parse_time,
)

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# A Deployment's annotations its ReplicaSets take, but these, which describe one object
NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)
HASH_LABEL = "pod-template-hash"
DEADLINE_MARGIN = 0.05  # past the deadline, so the recheck finds it exceeded


def template_hash(template: Obj, collision_count: int = 0) -> str:
    data = json.dumps(strip_hash(template), sort_keys=True, separators=(",", ":"))
    h = 0x811C9DC5
    for b in (data + (str(collision_count) if collision_count else "")).encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_CHARS[ord(c) % len(SAFE_CHARS)] for c in str(h))


def strip_hash(template: Obj) -> Obj:
    t = clone(template or {})
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


# Progressing condition reasons, as kube's deployment util names them
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


def max_unavailable(deploy: Obj) -> int:
    """As kube: 0 for Recreate or no replicas, never above the replicas."""
    replicas = int(deploy["spec"].get("replicas", 1))
    if (deploy["spec"].get("strategy") or {}).get("type") == "Recreate" or replicas == 0:
        return 0
    return min(resolve_fenceposts(deploy)[1], replicas)


def progress_deadline(deploy: Obj) -> int | None:
    """spec.progressDeadlineSeconds (default 600); None when unset to the max int32,
    which kube reads as no deadline."""
    value = int(deploy["spec"].get("progressDeadlineSeconds", 600))
    return None if value == 2**31 - 1 else value


def set_deployment_condition(
    status: Obj, type_: str, value: str, reason: str, message: str, now: str
) -> None:
    """kube's SetDeploymentCondition: no change when status and reason are the same;
    lastTransitionTime kept when only the reason changes; lastUpdateTime is now."""
    conds = list(status.get("conditions") or [])
    current = next((c for c in conds if c.get("type") == type_), None)
    if current is not None and (current.get("status"), current.get("reason")) == (value, reason):
        return
    since = current["lastTransitionTime"] if current and current.get("status") == value else now
    status["conditions"] = [c for c in conds if c.get("type") != type_] + [
        {
            "type": type_,
            "status": value,
            "lastUpdateTime": now,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }
    ]


def _progressing(status: Obj) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)


def calculate_status(deploy: Obj, new: Obj | None, olds: list[Obj], now: str) -> Obj:
    """Counts from the ReplicaSets, the old conditions, and Available."""
    replicas = int(deploy["spec"].get("replicas", 1))
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
    old = deploy.get("status") or {}
    if old.get("collisionCount"):
        status["collisionCount"] = old["collisionCount"]
    status["conditions"] = [dict(c) for c in old.get("conditions") or []]
    if status.get("availableReplicas", 0) >= replicas - max_unavailable(deploy):
        set_deployment_condition(
            status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    else:
        set_deployment_condition(
            status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    return status


def deployment_complete(deploy: Obj, status: Obj) -> bool:
    replicas = int(deploy["spec"].get("replicas", 1))
    return (
        status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("observedGeneration", 0) >= deploy["metadata"].get("generation", 1)
    )


def deployment_progressing(deploy: Obj, status: Obj) -> bool:
    """Progress since the last status: more updated, ready or available pods, or fewer
    old ones."""
    old = deploy.get("status") or {}

    def n(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)

    return (
        n(status, "updatedReplicas") > n(old, "updatedReplicas")
        or n(status, "replicas") - n(status, "updatedReplicas")
        < n(old, "replicas") - n(old, "updatedReplicas")
        or n(status, "readyReplicas") > n(old, "readyReplicas")
        or n(status, "availableReplicas") > n(old, "availableReplicas")
    )


def deployment_timed_out(deploy: Obj, status: Obj, now: float) -> bool:
    """No progress reported for progressDeadlineSeconds since the Progressing
    condition's lastUpdateTime."""
    deadline = progress_deadline(deploy)
    cond = _progressing(status)
    if deadline is None or cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + deadline < now


def rollout_status(
    deploy: Obj, new: Obj | None, olds: list[Obj], now: float, created: bool = False
) -> Obj:
    """The Deployment's next status, as kube's sync: the rollout's first condition
    (NewReplicaSetCreated, FoundNewReplicaSet, or paused/resumed), then counts,
    Available, and, unless paused or already complete, whether the rollout completed
    (NewReplicaSetAvailable), progressed (ReplicaSetUpdated, lastUpdateTime now) or
    made no progress for the deadline (Progressing=False, ProgressDeadlineExceeded)."""
    stamp = rfc3339(datetime.fromtimestamp(now, UTC))
    deadline = progress_deadline(deploy)
    name = new["metadata"]["name"] if new else ""
    base = clone(deploy.get("status") or {})
    current = _progressing(base)
    paused = bool(deploy["spec"].get("paused"))
    if deadline is not None and not (current and current.get("reason") == TIMED_OUT):
        if paused and not (current and current.get("reason") == PAUSED):
            set_deployment_condition(
                base, "Progressing", "Unknown", PAUSED, "Deployment is paused", stamp
            )
        elif not paused and current and current.get("reason") == PAUSED:
            set_deployment_condition(
                base, "Progressing", "Unknown", RESUMED, "Deployment is resumed", stamp
            )
    if created:
        set_deployment_condition(
            base, "Progressing", "True", NEW_RS_CREATED, f'Created new replica set "{name}"', stamp
        )
    elif new is not None and deadline is not None and _progressing(base) is None:
        set_deployment_condition(
            base, "Progressing", "True", FOUND_NEW_RS, f'Found new replica set "{name}"', stamp
        )
    deploy = {**deploy, "status": base}
    status = calculate_status(deploy, new, olds, stamp)
    if deadline is None:
        status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"]
    current = _progressing(base)
    complete_before = (
        status.get("replicas", 0) == status.get("updatedReplicas", 0)
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if deadline is not None and not paused and not complete_before:
        subject = f'ReplicaSet "{name}"' if new else f'Deployment "{deploy["metadata"]["name"]}"'
        if deployment_complete(deploy, status):
            set_deployment_condition(
                status,
                "Progressing",
                "True",
                NEW_RS_AVAILABLE,
                f"{subject} has successfully progressed.",
                stamp,
            )
        elif deployment_progressing(deploy, status):
            since = (
                current["lastTransitionTime"] if current and current["status"] == "True" else stamp
            )
            status["conditions"] = [
                c for c in status["conditions"] if c["type"] != "Progressing"
            ] + [
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": since,
                    "reason": RS_UPDATED,
                    "message": f"{subject} is progressing.",
                }
            ]
        elif deployment_timed_out(deploy, status, now):
            set_deployment_condition(
                status,
                "Progressing",
                "False",
                TIMED_OUT,
                f"{subject} has timed out progressing.",
                stamp,
            )
    status["conditions"].sort(key=lambda c: c["type"] != "Available")
    return status


def recheck_progress_in(deploy: Obj, now: float) -> float | None:
    """Seconds until a rollout that shows no progress reaches its deadline (kube's
    requeueStuckDeployment), for a Deployment whose status is current; None when there
    is nothing to wait for."""
    deadline = progress_deadline(deploy)
    status = deploy.get("status") or {}
    cond = _progressing(status)
    if (
        deadline is None
        or deploy["spec"].get("paused")
        or cond is None
        or cond.get("reason") in (TIMED_OUT, NEW_RS_AVAILABLE)
        or deployment_complete(deploy, status)
    ):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    return None if since is None else max(since + deadline - now, 0.0)


def replicaset_annotations(deploy: Obj, current: Obj, rev: int) -> Obj:
    """The annotations of the Deployment's new ReplicaSet, from its `current` ones: the
    Deployment's own are copied over (but `NOT_COPIED`; so `kubernetes.io/change-cause`
    reaches `kubectl rollout history`), none removed, and the revision only rises. A
    ReplicaSet revived with a higher revision (a rollback) lists its earlier ones in
    revision-history, as kube's controller does."""
    annotations = dict(current)
    annotations.update(
        (k, v)
        for k, v in ((deploy["metadata"].get("annotations") or {}).items())
        if k not in NOT_COPIED
    )
    earlier = current.get(REVISION)
    if earlier is None or revision({"metadata": {"annotations": current}}) < rev:
        annotations[REVISION] = str(rev)
        if earlier is not None:
            history = current.get(REVISION_HISTORY)
            annotations[REVISION_HISTORY] = f"{history},{earlier}" if history else earlier
    return annotations


def new_replicaset(deploy: Obj, rev: int, replicas: int) -> Obj:
    template = strip_hash(deploy["spec"]["template"])
    h = template_hash(template, int((deploy.get("status") or {}).get("collisionCount") or 0))
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
    selector = clone(deploy["spec"].get("selector") or {})
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
            "annotations": replicaset_annotations(
                deploy,
                {
                    DESIRED_REPLICAS: str(deploy["spec"].get("replicas", 1)),
                    MAX_REPLICAS: str(int(deploy["spec"].get("replicas", 1)) + surge),
                },
                rev,
            ),
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
        self.rss.add_index(CONTROLLER_UID, controller_uid)
        self.pods.add_index(CONTROLLER_UID, controller_uid)
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
        return sum(
            1
            for p in self.pods.by_index(CONTROLLER_UID, rs["metadata"]["uid"]).values()
            if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        )

    async def reconcile(self, key: str) -> None:
        d = self.deploys.get(key)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        ns = d["metadata"]["namespace"]
        owned = list(self.rss.by_index(CONTROLLER_UID, d["metadata"]["uid"]).values())
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
        paused = bool(d["spec"].get("paused"))
        created = False
        if new is None and not paused:  # a paused Deployment starts no rollout
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
        elif new is not None:
            patch: Obj = {}
            current = new["metadata"].get("annotations") or {}
            wanted = replicaset_annotations(d, current, max(revision(new), max_old + 1))
            if wanted != current:
                changed = {k: v for k, v in wanted.items() if current.get(k) != v}
                patch["metadata"] = {"annotations": changed}
            min_ready = int(d["spec"].get("minReadySeconds") or 0)
            if int(new["spec"].get("minReadySeconds") or 0) != min_ready:
                patch["spec"] = {"minReadySeconds": min_ready}
            if patch:
                new = await self.client.patch("ReplicaSet", new["metadata"]["name"], patch, ns)
        rev = str(revision(new)) if new is not None else None
        if rev is not None and (d["metadata"].get("annotations") or {}).get(REVISION) != rev:
            d = await self.client.patch(
                "Deployment",
                d["metadata"]["name"],
                {"metadata": {"annotations": {REVISION: rev}}},
                ns,
            )
        if new is not None and not paused and not created:
            await self._scale(d, new, olds, recreate)
        await self._cleanup(d, olds)
        now = time.time()
        status = rollout_status(d, new, olds, now, created)
        if status != (d.get("status") or {}):
            await ignore_missing(self.client.update_status({**d, "status": status}))
            return  # its own update event brings the Deployment back
        wait = recheck_progress_in(d, now)
        if wait is not None:
            self.queue.add_after(key, wait + DEADLINE_MARGIN)

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
