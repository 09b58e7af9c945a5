"""The StatefulSet controller: stable pods `<name>-0..n-1`.

Pure core: `statefulset_step(sts, pods)` returns the one action to take next, in
kube's order: replace a failed pod; create the lowest missing ordinal (with
OrderedReady only when every lower ordinal is Running and Ready); delete the highest
ordinal beyond `replicas` (OrderedReady: one at a time, after the others are
healthy); then, for RollingUpdate, delete the highest-ordinal pod whose revision is
stale (at or above the partition). Pods get `hostname` = their name and `subdomain` =
`spec.serviceName`, so a headless Service gives each one a DNS name.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from minikube_py.api.types import Obj
from minikube_py.controllers.common import (
    Controller,
    controller_of,
    ignore_missing,
    key_of,
    owner_ref,
    pod_ready,
)

log = logging.getLogger(__name__)

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def revision_of(sts: Obj) -> str:
    digest = hashlib.sha256(
        json.dumps(sts["spec"].get("template") or {}, sort_keys=True).encode()
    ).hexdigest()
    return f"{sts['metadata']['name']}-{digest[:10]}"


def ordinal(sts: Obj, pod: Obj) -> int | None:
    prefix = sts["metadata"]["name"] + "-"
    name = pod["metadata"]["name"]
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None


def pod_for(sts: Obj, index: int) -> Obj:
    template = sts["spec"].get("template") or {}
    tmd = template.get("metadata") or {}
    name = f"{sts['metadata']['name']}-{index}"
    spec = dict(template.get("spec") or {})
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": sts["metadata"]["namespace"],
            "labels": {
                **(tmd.get("labels") or {}),
                REVISION_LABEL: revision_of(sts),
                POD_NAME_LABEL: name,
                POD_INDEX_LABEL: str(index),
            },
            "annotations": dict(tmd.get("annotations") or {}),
            "ownerReferences": [owner_ref(sts)],
        },
        "spec": spec,
    }


@dataclass(frozen=True)
class Step:
    action: str  # "create", "delete" or "" (nothing to do now)
    index: int = -1


def _healthy(pod: Obj) -> bool:
    return (
        pod.get("status", {}).get("phase") == "Running"
        and pod_ready(pod)
        and not pod["metadata"].get("deletionTimestamp")
    )


def statefulset_step(sts: Obj, pods: dict[int, Obj]) -> Step:
    replicas = int(sts["spec"].get("replicas", 1))
    ordered = (sts["spec"].get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
    for i, pod in sorted(pods.items()):
        if pod.get("status", {}).get("phase") == "Failed" and not pod["metadata"].get(
            "deletionTimestamp"
        ):
            return Step("delete", i)
    for i in range(replicas):
        if i not in pods:
            return Step("create", i)
        if ordered and not _healthy(pods[i]):
            return Step("")  # wait: the next ordinal needs this one Running and Ready
    extra = sorted((i for i in pods if i >= replicas), reverse=True)
    if extra:
        if ordered and any(not _healthy(p) for i, p in pods.items() if i < replicas):
            return Step("")
        if pods[extra[0]]["metadata"].get("deletionTimestamp"):
            return Step("")
        return Step("delete", extra[0])
    strategy = sts["spec"].get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return Step("")
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    if any(not _healthy(p) for p in pods.values()):
        return Step("")
    want = revision_of(sts)
    for i in sorted(pods, reverse=True):
        if i >= partition and (pods[i]["metadata"].get("labels") or {}).get(REVISION_LABEL) != want:
            return Step("delete", i)
    return Step("")


def statefulset_status(sts: Obj, pods: dict[int, Obj]) -> Obj:
    want = revision_of(sts)
    live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
    updated = sum(
        1 for p in live if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == want
    )
    replicas = int(sts["spec"].get("replicas", 1))
    old = sts.get("status") or {}
    done = updated == replicas == len(live)
    return {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": len(live),
        "readyReplicas": sum(1 for p in live if pod_ready(p)),
        "availableReplicas": sum(1 for p in live if pod_ready(p)),
        "currentReplicas": updated if done else len(live) - updated,
        "updatedReplicas": updated,
        "currentRevision": want
        if done or not old.get("currentRevision")
        else old["currentRevision"],
        "updateRevision": want,
        "collisionCount": int(old.get("collisionCount") or 0),
    }


class StatefulSetController(Controller):
    name = "statefulset"
    workers = 4

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sets = self.informers["StatefulSet"]
        self.pods = self.informers["Pod"]
        self.sets.add_handler(lambda t, o, _: self.enqueue(key_of(o)))
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_of(pod)
        if ref and ref.get("kind") == "StatefulSet":
            self.enqueue(f"{pod['metadata']['namespace']}/{ref['name']}")

    def enqueue_all(self) -> None:
        for key in self.sets.cache:
            self.enqueue(key)

    async def reconcile(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        uid = sts["metadata"]["uid"]
        pods: dict[int, Obj] = {}
        for p in self.pods.cache.values():
            if (controller_of(p) or {}).get("uid") == uid:
                i = ordinal(sts, p)
                if i is not None:
                    pods[i] = p
        step = statefulset_step(sts, pods)
        name = f"{sts['metadata']['name']}-{step.index}"
        ns = sts["metadata"]["namespace"]
        if step.action == "create":
            await self.client.create(pod_for(sts, step.index))
            self.events.normal(
                sts,
                "SuccessfulCreate",
                f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful",
            )
        elif step.action == "delete":
            await ignore_missing(self.client.delete("Pod", name, ns))
            self.events.normal(
                sts,
                "SuccessfulDelete",
                f"delete Pod {name} in StatefulSet {sts['metadata']['name']} successful",
            )
        status = statefulset_status(sts, pods)
        if status != sts.get("status"):
            await ignore_missing(self.client.update_status({**sts, "status": status}))
