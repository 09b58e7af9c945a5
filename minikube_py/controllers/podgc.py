"""Pod garbage collection of orphans: pods bound to a Node that no longer exists.

As kube's PodGC does (`gcOrphaned`): nothing would ever run, stop or delete such a pod
(no kubelet owns it), so a Deployment would count it as available forever and never
replace it. Once a node has been missing from the Node cache for the quarantine (kube:
40 s; the lab's is shorter, like its other node timings), and a fresh read from the API
confirms it is gone, each pod bound to it gets the `DisruptionTarget` condition (reason
`DeletionByPodGC`), phase Failed unless already terminal, and is deleted at once
(grace period 0). Its owner then creates a replacement on a node that exists.

Keys are node names; the quarantine is a delayed enqueue, so a node that comes back
(or a cache that was only late) cancels nothing and costs one lookup.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from minikube_py.api.timestamps import now_rfc3339
from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import (
    BY_NODE,
    Controller,
    bound_node,
    ignore_missing,
    set_condition,
)

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")


def orphan_status(pod: Obj, now: str) -> Obj:
    """The status PodGC writes before deleting a pod whose node is gone."""
    status = dict(pod.get("status") or {})
    if status.get("phase") not in TERMINAL_PHASES:
        status["phase"] = "Failed"
    status["conditions"] = set_condition(
        list(status.get("conditions") or []),
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": now,
        },
    )
    return status


class PodGarbageCollector(Controller):
    name = "pod-garbage-collector"
    workers = 2

    def __init__(self, *args: Any, orphan_quarantine: float = 40.0, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.quarantine = orphan_quarantine
        self.nodes = self.informers["Node"]
        self.pods = self.informers["Pod"]
        self.pods.add_index(BY_NODE, bound_node)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        for node in bound_node(pod):
            if type_ != "DELETED" and self.nodes.get(node) is None:
                self.queue.add_after(node, self.quarantine)

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self.queue.add_after(node["metadata"]["name"], self.quarantine)

    def enqueue_all(self) -> None:
        for pod in self.pods.cache.values():
            self._on_pod("ADDED", pod, None)

    async def reconcile(self, key: str) -> None:
        if self.nodes.get(key) is not None or not self.pods.by_index(BY_NODE, key):
            return
        try:
            await self.client.get("Node", key)
            return  # the cache was behind: the node exists
        except ApiException as e:
            if e.code != 404:
                raise
        pods = list(self.pods.by_index(BY_NODE, key).values())
        await asyncio.gather(*(self._delete_orphan(pod) for pod in pods))

    async def _delete_orphan(self, pod: Obj) -> None:
        md = pod["metadata"]
        log.info(
            "deleting pod %s/%s: its node %s no longer exists",
            md["namespace"],
            md["name"],
            pod["spec"]["nodeName"],
        )
        try:
            await self.client.update_status({**pod, "status": orphan_status(pod, now_rfc3339())})
        except ApiException as e:
            if e.code == 404:
                return
            if e.code != 409:
                raise  # a conflict only means a newer status: delete the pod all the same
        await ignore_missing(
            self.client.delete("Pod", md["name"], md["namespace"], {"gracePeriodSeconds": 0})
        )
