"""A simulated node (and a polling helper), for tests and benchmarks without Docker.

It does through the API what a node agent does: registers its Node (Ready, with
capacity), renews its Lease in kube-node-lease, and, when `run_pods` is on, watches
the pods bound to it, gives each an address from its pod CIDR and writes Running +
Ready (or only Running, when `ready=False`) through pods/status, and finishes the
deletion of pods marked for deletion with a grace-0 delete. `stop_heartbeat()` plays a
node that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from minikube_py.api.timestamps import now_micro, now_rfc3339
from minikube_py.api.types import Obj
from minikube_py.client import ApiException, Client
from minikube_py.controllers.common import (
    pod_ready,
    set_condition,
)
from minikube_py.informer import Informer

T = TypeVar("T")


def node_body(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
) -> Obj:
    now = now_rfc3339()
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    conds = [
        {
            "type": t,
            "status": "False",
            "reason": f"Kubelet{r}",
            "message": "",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for t, r in (
            ("MemoryPressure", "HasSufficientMemory"),
            ("DiskPressure", "HasNoDiskPressure"),
            ("PIDPressure", "HasSufficientPID"),
        )
    ]
    conds.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                **(labels or {}),
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": conds,
            "addresses": [{"type": "Hostname", "address": name}],
        },
    }


def running_status(pod: Obj, ip: str, ready: bool) -> Obj:
    status = dict(pod.get("status") or {})
    now = now_rfc3339()
    status.update(
        phase="Running",
        podIP=ip,
        podIPs=[{"ip": ip}],
        hostIP="192.168.49.2",
        startTime=status.get("startTime", now),
    )
    conds = list(status.get("conditions") or [])
    for type_ in ("Initialized", "ContainersReady", "Ready"):
        value = "True" if ready or type_ == "Initialized" else "False"
        conds = set_condition(
            conds,
            {"type": type_, "status": value, "lastProbeTime": None, "lastTransitionTime": now},
        )
    status["conditions"] = conds
    status["containerStatuses"] = [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": status["startTime"]}},
        }
        for c in pod.get("spec", {}).get("containers") or []
    ]
    return status


class SimNode:
    def __init__(
        self,
        client: Client,
        name: str,
        *,
        run_pods: bool = True,
        ready: bool = True,
        heartbeat: float = 1.0,
        **node: object,
    ) -> None:
        self.client = client
        self.name = name
        self.run_pods = run_pods
        self.ready = ready
        self.heartbeat = heartbeat
        self.node = node
        self._tasks: list[asyncio.Task[None]] = []
        self._pod_tasks: set[asyncio.Task[None]] = set()
        self._ips: dict[str, str] = {}  # pod uid -> address handed out
        self.pods = Informer(client, "Pod", field_selector=f"spec.nodeName={name}")

    async def start(self) -> None:
        body = node_body(self.name, **self.node)  # type: ignore[arg-type]
        status = body.pop("status")
        node = await self.client.create(body)
        for _ in range(20):  # the node-ipam controller may write the Node meanwhile
            try:
                await self.client.update_status({**node, "status": status})
                break
            except ApiException as e:
                if e.code != 409:
                    raise
                node = await self.client.get("Node", self.name)
        self._tasks.append(asyncio.create_task(self._renew()))
        if self.run_pods:
            self.pods.add_handler(self._on_pod)
            self.pods.start()

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        if type_ != "DELETED":
            task = asyncio.create_task(self._handle(pod))
            self._pod_tasks.add(task)
            task.add_done_callback(self._pod_tasks.discard)

    async def _pod_cidr(self) -> ipaddress.IPv4Network:
        for _ in range(100):
            node = await self.client.get("Node", self.name)
            if node.get("spec", {}).get("podCIDR"):
                return ipaddress.IPv4Network(node["spec"]["podCIDR"])
            await asyncio.sleep(0.05)
        raise TimeoutError(f"node {self.name} got no pod CIDR")

    async def _handle(self, pod: Obj) -> None:
        md = pod["metadata"]
        with contextlib.suppress(ApiException):
            if md.get("deletionTimestamp"):
                await self.client.delete(
                    "Pod", md["name"], md["namespace"], {"gracePeriodSeconds": 0}
                )
            elif not pod.get("status", {}).get("podIP") and md["uid"] not in self._ips:
                self._ips[md["uid"]] = ""
                index = len(self._ips)
                net = await self._pod_cidr()
                ip = str(net.network_address + 1 + index)
                self._ips[md["uid"]] = ip
                await self.client.update_status(
                    {**pod, "status": running_status(pod, ip, self.ready)}
                )

    async def set_ready(self, pod: Obj, ready: bool) -> Obj:
        """Flip a running pod's Ready condition, as a readiness probe would."""
        ip = pod["status"]["podIP"]
        if pod_ready(pod) == ready:
            return pod
        return await self.client.update_status({**pod, "status": running_status(pod, ip, ready)})

    async def _renew(self) -> None:
        while True:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                "spec": {
                    "holderIdentity": self.name,
                    "leaseDurationSeconds": 40,
                    "renewTime": now_micro(),
                },
            }
            with contextlib.suppress(ApiException, OSError, asyncio.TimeoutError):
                try:
                    current = await self.client.get("Lease", self.name, "kube-node-lease")
                    lease["metadata"] = current["metadata"]
                    await self.client.update(lease)
                except ApiException as e:
                    if e.code != 404:
                        raise
                    await self.client.create(lease)
            await asyncio.sleep(self.heartbeat)

    async def stop_heartbeat(self) -> None:
        """Die: no more Lease renewals, and pods on this node are left as they are."""
        for task in self._tasks:
            task.cancel()
        await self.pods.stop()

    async def stop(self, delete: bool = True) -> None:
        """Stop playing the node; with `delete`, remove its Node and Lease too."""
        for task in [*self._tasks, *self._pod_tasks]:
            task.cancel()
        await self.pods.stop()  # the client is the caller's, and other nodes may share it
        await asyncio.gather(*self._tasks, *self._pod_tasks, return_exceptions=True)
        if delete:
            with contextlib.suppress(ApiException):
                await self.client.delete("Node", self.name)
            with contextlib.suppress(ApiException):
                await self.client.delete("Lease", self.name, "kube-node-lease")


@contextlib.asynccontextmanager
async def sim_nodes(client: Client, names: list[str], **kw: object) -> AsyncIterator[list[SimNode]]:
    """Nodes that live for the block, then are deleted."""
    nodes = [SimNode(client, n, **kw) for n in names]  # type: ignore[arg-type]
    try:
        for n in nodes:
            await n.start()
        yield nodes
    finally:
        for n in nodes:
            await n.stop()


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 20.0, what: str = "condition"
) -> T:
    """The first truthy result of `check`, polled until `timeout` (tests only)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while True:
        try:
            last = await check()
        except ApiException as e:
            last = e
        if last and not isinstance(last, ApiException):
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last saw {last!r}")
        await asyncio.sleep(0.1)
