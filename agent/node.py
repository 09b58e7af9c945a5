"""The agent's Node: registration, pod CIDR, Lease heartbeat and status, as the kubelet.

`node_status` is pure: it builds `status` (addresses, capacity and allocatable,
nodeInfo, the four kubelet conditions with kube's reasons and messages, the agent
server's endpoint) from `MachineFacts` and the previous status, keeping each
condition's lastTransitionTime until its status changes. `machine_facts` reads them
from the machine (/proc, /etc/machine-id, Docker).

`NodeAgent` is the adapter: it creates the Node (or adopts the one of the same name),
waits until the control plane gave it a `spec.podCIDR` (or the lab did, at creation),
renews the Lease `kube-node-lease/<node>` every `lease_renew_seconds` (the node
lifecycle controller judges liveness by it) and patches the status every
`status_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from minikube_py.api.timestamps import now_micro, now_rfc3339
from minikube_py.api.types import Obj
from minikube_py.client import ApiException, Client

log = logging.getLogger(__name__)

AGENT_PORT = 10250
LEASE_NAMESPACE = "kube-node-lease"
MAX_PODS = 110

CONDITIONS = (
    # type, status when healthy, reason, message (the kubelet's words)
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


@dataclass(frozen=True)
class MachineFacts:
    cpus: int
    memory_kib: int
    machine_id: str
    boot_id: str
    kernel_version: str
    os_image: str
    architecture: str
    container_runtime_version: str
    agent_version: str
    hostname: str


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip('"')
    return "Linux"


def _memory_kib() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def machine_facts(container_runtime_version: str, agent_version: str) -> MachineFacts:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return MachineFacts(
        cpus=os.cpu_count() or 1,
        memory_kib=_memory_kib(),
        machine_id=_read("/etc/machine-id"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        kernel_version=platform.release(),
        os_image=_os_image(),
        architecture=arch,
        container_runtime_version=container_runtime_version,
        agent_version=agent_version,
        hostname=socket.gethostname(),
    )


def node_resources(facts: MachineFacts) -> dict[str, str]:
    """The Node's capacity, all of it allocatable to pods."""
    return {"cpu": str(facts.cpus), "memory": f"{facts.memory_kib}Ki", "pods": str(MAX_PODS)}


def node_status(facts: MachineFacts, node_ip: str, node_name: str, previous: Obj, now: str) -> Obj:
    """The Node's status for a healthy agent; transition times carried over from
    `previous` while a condition keeps its status."""
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    conditions = []
    for kind, status, reason, message in CONDITIONS:
        old = before.get(kind, {})
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": old.get("lastTransitionTime", now)
                if old.get("status") == status
                else now,
            }
        )
    resources = node_resources(facts)
    return {
        "addresses": [
            {"type": "InternalIP", "address": node_ip},
            {"type": "Hostname", "address": node_name},
        ],
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": conditions,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": AGENT_PORT}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel_version,
            "osImage": facts.os_image,
            "containerRuntimeVersion": facts.container_runtime_version,
            "kubeletVersion": facts.agent_version,
            "kubeProxyVersion": facts.agent_version,
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    }


def new_node(name: str, pod_cidr: str | None) -> Obj:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(
            platform.machine(), platform.machine()
        ),
    }
    spec: Obj = {}
    if pod_cidr:
        spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def lease_body(node: Obj, duration_seconds: int) -> Obj:
    name = node["metadata"]["name"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": name,
                    "uid": node["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": now_micro(),
        },
    }


class NodeAgent:
    def __init__(
        self,
        client: Client,
        name: str,
        node_ip: str,
        facts: MachineFacts,
        pod_cidr: str | None = None,
        lease_renew_seconds: float = 2.0,
        lease_duration_seconds: int = 40,
        status_seconds: float = 10.0,
    ) -> None:
        self.client = client
        self.name = name
        self.node_ip = node_ip
        self.facts = facts
        self.pod_cidr = pod_cidr
        self.lease_renew_seconds = lease_renew_seconds
        self.lease_duration_seconds = lease_duration_seconds
        self.status_seconds = status_seconds
        self.node: Obj = {}

    async def register(self) -> Obj:
        """Create the Node, or take over the existing one of this name; post status."""
        try:
            self.node = await self.client.create(new_node(self.name, self.pod_cidr))
        except ApiException as error:
            if error.code != 409:
                raise
            self.node = await self.client.get("Node", self.name)
        await self.post_status()
        return self.node

    async def wait_pod_cidr(self, timeout: float) -> str:
        """spec.podCIDR, waiting up to `timeout` seconds for the control plane to set it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            cidr = str(self.node.get("spec", {}).get("podCIDR") or "")
            if cidr:
                return cidr
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"node {self.name} got no spec.podCIDR in {timeout:g}s")
            await asyncio.sleep(0.2)
            self.node = await self.client.get("Node", self.name)

    async def post_status(self) -> None:
        status = node_status(
            self.facts, self.node_ip, self.name, self.node.get("status") or {}, now_rfc3339()
        )
        self.node = await self.client.patch("Node", self.name, {"status": status}, sub="status")

    async def renew_lease(self) -> None:
        body = lease_body(self.node, self.lease_duration_seconds)
        try:
            lease = await self.client.get("Lease", self.name, LEASE_NAMESPACE)
        except ApiException as error:
            if error.code != 404:
                raise
            await self.client.create(body, LEASE_NAMESPACE)
            return
        lease["spec"] = {**lease.get("spec", {}), **body["spec"]}
        await self.client.update(lease)

    async def heartbeat(self) -> None:
        """Renew the Lease and post the status, forever; errors are logged and retried."""
        last_status = asyncio.get_running_loop().time()
        while True:
            try:
                await self.renew_lease()
                if asyncio.get_running_loop().time() - last_status >= self.status_seconds:
                    await self.post_status()
                    last_status = asyncio.get_running_loop().time()
            except (TimeoutError, ApiException, OSError, aiohttp.ClientError) as error:
                log.warning("node heartbeat failed: %s", error)
            await asyncio.sleep(self.lease_renew_seconds)
