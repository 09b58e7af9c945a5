"""Failure handling against the real apiserver and etcd: a node whose Lease goes
stale, two controller-managers of which only the leader acts (and the standby takes
over when the leader is killed), and a controller-manager restart in the middle of a
rollout that still ends in a completed rollout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

from minikube_py.client import ApiException, Client
from minikube_py.controllers.simnode import eventually, sim_nodes
from minikube_py.informer import Informer
from tests.conftest import ControlPlane
from tests.e2e.test_controllers_workloads_api import rollout

TOLERATE_BRIEFLY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: x}]
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute,
         tolerationSeconds: 2}
"""


async def kubectl(cp: ControlPlane, *args: str, **kw: object) -> str:
    return (await asyncio.to_thread(cp.kubectl, *args, **kw)).stdout  # type: ignore[arg-type]


def ready(obj: dict) -> str | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == "Ready":
            return str(c["status"])
    return None


async def test_node_lifecycle_unreachable_then_eviction(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    names = ["nl-" + uuid.uuid4().hex[:5], "nl-" + uuid.uuid4().hex[:5]]
    async with cp.client() as c, sim_nodes(c, names) as (dying, alive):
        await kubectl(cp, "-n", ns, "apply", "-f", "-", input=TOLERATE_BRIEFLY)
        await rollout(cp, ns, "deployment/web", 30)
        pods = (await c.list("Pod", ns))["items"]
        (victim,) = [p for p in pods if p["spec"]["nodeName"] == dying.name]
        await dying.stop_heartbeat()

        async def unknown_and_tainted() -> dict | None:
            # The status and the taints are two writes, as in Kubernetes: wait for both.
            node = await c.get("Node", dying.name)
            tainted = len(node["spec"].get("taints") or []) >= 2
            return node if ready(node) == "Unknown" and tainted else None

        node = await eventually(unknown_and_tainted, timeout=20, what="Ready=Unknown, tainted")
        cond = next(x for x in node["status"]["conditions"] if x["type"] == "Ready")
        assert cond["reason"] == "NodeStatusUnknown"
        assert cond["message"] == "Kubelet stopped posting node status."
        taints = {(t["key"], t["effect"]) for t in node["spec"]["taints"]}
        assert taints >= {
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        }
        assert ready(await c.get("Node", alive.name)) == "True"
        out = await kubectl(cp, "get", "node", dying.name)
        assert "NotReady" in out

        async def evicted() -> dict | None:
            try:
                p = await c.get("Pod", victim["metadata"]["name"], ns)
            except ApiException:
                return {"gone": True}
            return p if p["metadata"].get("deletionTimestamp") else None

        gone = await eventually(evicted, timeout=15, what="eviction")
        if "gone" not in gone:
            assert ready(gone) == "False"  # marked not ready before it was evicted

        async def replaced() -> bool:
            live = [
                p
                for p in (await c.list("Pod", ns))["items"]
                if not p["metadata"].get("deletionTimestamp")
            ]
            return len(live) == 2 and all(
                p["spec"].get("nodeName") == alive.name and ready(p) == "True" for p in live
            )

        await eventually(replaced, timeout=20, what="replacement on the live node")
        events = await kubectl(cp, "-n", ns, "get", "events")
        assert "TaintManagerEviction" in events


PLAIN_WEB = """
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: plain}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain}
spec:
  replicas: 2
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec:
      containers: [{name: c, image: x}]
"""


async def test_pods_of_a_deleted_node_are_collected_and_replaced(
    control_plane: ControlPlane, namespace: str
) -> None:
    """A pod bound to a Node that no longer exists leaves its Service's EndpointSlice at
    once; PodGC marks it (DisruptionTarget, Failed) and deletes it after the quarantine,
    and its Deployment replaces it."""
    cp, ns = control_plane, namespace
    names = ["gc-" + uuid.uuid4().hex[:5], "gc-" + uuid.uuid4().hex[:5]]
    async with cp.client() as c, sim_nodes(c, names) as (doomed, alive):
        await kubectl(cp, "-n", ns, "apply", "-f", "-", input=PLAIN_WEB)
        await rollout(cp, ns, "deployment/plain", 30)
        pods = (await c.list("Pod", ns))["items"]
        (victim,) = [p for p in pods if p["spec"]["nodeName"] == doomed.name]
        (survivor_ip,) = [p["status"]["podIP"] for p in pods if p is not victim]
        seen: list[dict] = []
        watch = Informer(c, "Pod", namespace=ns)
        watch.add_handler(
            lambda t, o, _: (
                seen.append(o) if o["metadata"]["uid"] == victim["metadata"]["uid"] else None
            )
        )
        watch.start()
        try:
            await doomed.stop()  # the Node and its Lease are deleted; its pod stays

            async def endpoint_dropped() -> bool:
                slices = await c.list(
                    "EndpointSlice", ns, label_selector="kubernetes.io/service-name=plain"
                )
                ips = [
                    a
                    for s in slices["items"]
                    for e in s.get("endpoints") or []
                    for a in e["addresses"]
                ]
                return ips == [survivor_ip]

            await eventually(endpoint_dropped, timeout=5, what="the orphan out of the slice")
            assert (await c.get("Pod", victim["metadata"]["name"], ns))["status"][
                "phase"
            ] == "Running"

            async def collected() -> bool:
                try:
                    await c.get("Pod", victim["metadata"]["name"], ns)
                except ApiException as e:
                    return e.code == 404
                return False

            await eventually(collected, timeout=30, what="the orphaned pod collected")
        finally:
            await watch.stop()
        marked = [
            p
            for p in seen
            for x in p.get("status", {}).get("conditions") or []
            if x["type"] == "DisruptionTarget" and x["reason"] == "DeletionByPodGC"
        ]
        assert marked and marked[-1]["status"]["phase"] == "Failed", seen

        async def replaced() -> bool:
            live = (await c.list("Pod", ns, label_selector="app=plain"))["items"]
            return len(live) == 2 and all(p["spec"].get("nodeName") == alive.name for p in live)

        await eventually(replaced, timeout=20, what="replacement on the live node")


def start_standby(cp: ControlPlane, identity: str, log: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "minikube_py.controllers",
                "--kubeconfig",
                str(cp.lab.admin_kubeconfig),
                "--leader-elect",
                "--identity",
                identity,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def holder(c: Client) -> dict:
    lease = await c.get("Lease", "minikube-py-controller-manager", "kube-system")
    return dict(lease["spec"])


async def replica_sets(c: Client, ns: str, app: str) -> list[dict]:
    return (await c.list("ReplicaSet", ns, label_selector=f"app={app}"))["items"]


async def test_only_the_leader_acts_and_a_standby_takes_over(
    fresh_control_plane: ControlPlane, tmp_path: object
) -> None:
    cp = fresh_control_plane
    log = f"{tmp_path}/standby.log"
    async with cp.client() as c:
        first = await eventually(lambda: holder(c), what="the lab's manager leading")
    standby = start_standby(cp, "standby-b", log)
    try:
        async with cp.client() as c, sim_nodes(c, ["ha-" + uuid.uuid4().hex[:5]]):
            await asyncio.sleep(2.5)  # the standby has tried and failed to take the Lease
            assert (await holder(c))["holderIdentity"] == first["holderIdentity"]
            assert first["holderIdentity"] != "standby-b"
            assert first["leaseDurationSeconds"] == 15 and first["renewTime"]
            await kubectl(cp, "create", "deployment", "before", "--image=x", "--replicas=2")
            await rollout(cp, "default", "deployment/before", 30)
            assert len(await replica_sets(c, "default", "before")) == 1
            assert len((await c.list("Pod", "default", label_selector="app=before"))["items"]) == 2
            with open(log) as f:
                assert "caches synced" not in f.read()  # the standby never ran controllers

            leader_pid = cp.lab.pid("controller-manager")
            assert leader_pid is not None
            os.kill(leader_pid, signal.SIGKILL)  # no chance to release the Lease
            await kubectl(cp, "create", "deployment", "after", "--image=x", "--replicas=2")
            await asyncio.sleep(3)
            assert await replica_sets(c, "default", "after") == []  # nobody leads yet

            async def taken() -> dict | None:
                spec = await holder(c)
                return spec if spec["holderIdentity"] == "standby-b" else None

            spec = await eventually(taken, timeout=25, what="takeover")
            assert spec["leaseTransitions"] == first.get("leaseTransitions", 0) + 1
            await rollout(cp, "default", "deployment/after", 30)
    finally:
        standby.send_signal(signal.SIGTERM)
        standby.wait(timeout=15)


ROLLING = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "roll"},
    "spec": {
        "replicas": 6,
        "selector": {"matchLabels": {"app": "roll"}},
        "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": {"app": "roll"}},
            "spec": {"containers": [{"name": "c", "image": "v1"}]},
        },
    },
}


async def test_restart_in_the_middle_of_a_rollout(fresh_control_plane: ControlPlane) -> None:
    cp = fresh_control_plane
    async with cp.client() as c, sim_nodes(c, ["rr-" + uuid.uuid4().hex[:5]]):
        await kubectl(cp, "apply", "-f", "-", input=json.dumps(ROLLING))
        await rollout(cp, "default", "deployment/roll", 30)
        await kubectl(cp, "set", "image", "deployment/roll", "c=v2")

        async def midway() -> bool:
            rss = await replica_sets(c, "default", "roll")
            return len(rss) == 2 and all(r["spec"]["replicas"] > 0 for r in rss)

        await eventually(midway, what="both ReplicaSets scaled up")
        cp.lab.stop_component("controller-manager")
        await asyncio.sleep(1)
        frozen = {
            r["metadata"]["name"]: r["spec"]["replicas"]
            for r in await replica_sets(c, "default", "roll")
        }
        assert len(frozen) == 2 and sorted(frozen.values()) != [0, 6]  # really midway
        cp.lab.start_controller_manager()
        await rollout(cp, "default", "deployment/roll", 40)
        pods = (await c.list("Pod", "default", label_selector="app=roll"))["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert sorted(p["spec"]["containers"][0]["image"] for p in live) == ["v2"] * 6
