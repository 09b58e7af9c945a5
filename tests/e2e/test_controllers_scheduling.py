"""The scheduler, node pod CIDRs and LoadBalancer IPs against the real apiserver and
etcd, observed through the API and real kubectl. Simulated nodes register themselves
as a node agent would (without spec.podCIDR) and renew their Leases."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

from minikube_py.client import Client
from minikube_py.controllers.simnode import SimNode, eventually, sim_nodes
from tests.conftest import ControlPlane


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def pod(name: str, **spec: object) -> dict:
    containers = spec.pop("containers", [{"name": "c", "image": "busybox"}])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers, **spec},
    }


def requests(cpu: str) -> list[dict]:
    return [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]


async def node_of(c: Client, ns: str, name: str) -> str | None:
    return (await c.get("Pod", name, ns))["spec"].get("nodeName")


async def unschedulable(c: Client, ns: str, name: str) -> str | None:
    p = await c.get("Pod", name, ns)
    for cond in p["status"].get("conditions", []):
        if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return str(cond["message"])
    return None


async def test_scheduler_filters_scores_and_events(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    ssd, tainted, cordoned, plain = uniq("ssd"), uniq("gpu"), uniq("cordon"), uniq("plain")
    async with cp.client() as c:
        nodes = [
            SimNode(c, ssd, cpu="2", labels={"disk": "ssd"}),
            SimNode(
                c, tainted, taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
            ),
            SimNode(c, cordoned),
            SimNode(c, plain, cpu="2"),
        ]
        try:
            for n in nodes:
                await n.start()
            await c.patch("Node", cordoned, {"spec": {"unschedulable": True}})
            gpu_toleration = [
                {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
            ]
            cases = {
                "by-selector": (pod("by-selector", nodeSelector={"disk": "ssd"}), {ssd}),
                "by-affinity": (
                    pod(
                        "by-affinity",
                        affinity={
                            "nodeAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [
                                        {
                                            "matchExpressions": [
                                                {
                                                    "key": "kubernetes.io/hostname",
                                                    "operator": "In",
                                                    "values": [plain],
                                                }
                                            ]
                                        }
                                    ]
                                }
                            }
                        },
                    ),
                    {plain},
                ),
                "tolerates": (
                    pod(
                        "tolerates",
                        tolerations=gpu_toleration,
                        affinity={
                            "nodeAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [
                                        {
                                            "matchFields": [
                                                {
                                                    "key": "metadata.name",
                                                    "operator": "In",
                                                    "values": [tainted],
                                                }
                                            ]
                                        }
                                    ]
                                }
                            }
                        },
                    ),
                    {tainted},
                ),
            }
            for body, _ in cases.values():
                await c.create(body, ns)
            for name, (_, allowed) in cases.items():
                got = await eventually(lambda name=name: node_of(c, ns, name), what=name)
                assert got in allowed, (name, got)

            # too big for every node: PodScheduled=False/Unschedulable + FailedScheduling
            await c.create(pod("huge", containers=requests("3")), ns)
            msg = await eventually(lambda: unschedulable(c, ns, "huge"), what="unschedulable")
            assert msg.startswith("0/") and "Insufficient cpu" in msg, msg
            assert "untolerated taint {dedicated: gpu}" in msg
            assert "node(s) were unschedulable" in msg
            events = (
                await asyncio.to_thread(cp.kubectl, "-n", ns, "describe", "pod", "huge")
            ).stdout
            assert "FailedScheduling" in events and "Insufficient cpu" in events

            # host port conflict on the only node a selector allows
            hp = [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}]
            await c.create(pod("hp1", containers=hp, nodeSelector={"disk": "ssd"}), ns)
            await eventually(lambda: node_of(c, ns, "hp1"), what="hp1 bound")
            await c.create(pod("hp2", containers=hp, nodeSelector={"disk": "ssd"}), ns)
            msg = await eventually(lambda: unschedulable(c, ns, "hp2"), what="port conflict")
            assert "didn't have free ports" in msg

            # resources: a 1.5-cpu pod fits the 2-cpu ssd node once; a second one not
            await c.create(
                pod("half1", containers=requests("1500m"), nodeSelector={"disk": "ssd"}), ns
            )
            await eventually(lambda: node_of(c, ns, "half1"), what="half1 bound")
            await c.create(
                pod("half2", containers=requests("1500m"), nodeSelector={"disk": "ssd"}), ns
            )
            msg = await eventually(lambda: unschedulable(c, ns, "half2"), what="no room")
            assert "1 Insufficient cpu" in msg
            # freeing the room lets the pending pod in (level-triggered retry)
            await c.delete("Pod", "half1", ns, {"gracePeriodSeconds": 0})
            assert await eventually(lambda: node_of(c, ns, "half2"), what="half2") == ssd

            describe = (
                await asyncio.to_thread(cp.kubectl, "-n", ns, "describe", "pod", "by-selector")
            ).stdout
            assert f"Successfully assigned {ns}/by-selector to {ssd}" in describe
        finally:
            for n in nodes:
                await n.stop()


async def test_spreading_pods_of_one_owner(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    names = [uniq("s"), uniq("s"), uniq("s")]
    async with cp.client() as c, sim_nodes(c, names):
        await asyncio.to_thread(
            cp.kubectl, "-n", ns, "create", "deployment", "spread", "--image=x", "--replicas=6"
        )

        async def placement() -> dict[str, int] | None:
            pods = (await c.list("Pod", ns, label_selector="app=spread"))["items"]
            nodes = [p["spec"].get("nodeName") for p in pods]
            if len(nodes) < 6 or None in nodes:
                return None
            return {n: nodes.count(n) for n in names}

        assert await eventually(placement, what="6 pods bound") == {n: 2 for n in names}


async def test_pod_cidrs_assigned_stable_and_released(control_plane: ControlPlane) -> None:
    cp = control_plane
    async with (
        cp.client() as c,
        sim_nodes(c, [uniq("ipam"), uniq("ipam")], run_pods=False) as (a, b),
    ):

        async def cidr(name: str) -> str | None:
            return (await c.get("Node", name))["spec"].get("podCIDR")

        ca = await eventually(lambda: cidr(a.name), what="a's CIDR")
        cb = await eventually(lambda: cidr(b.name), what="b's CIDR")
        for x in (ca, cb):
            net = ipaddress.IPv4Network(x)
            assert net.prefixlen == 24 and net.subnet_of(ipaddress.IPv4Network("10.244.0.0/16"))
        assert ca != cb
        node = await c.get("Node", a.name)
        assert node["spec"]["podCIDRs"] == [ca]
        await b.stop()  # deletes the node: its CIDR is free again
        await asyncio.sleep(0.5)
        c2 = SimNode(c, uniq("ipam"), run_pods=False)
        await c2.start()
        try:
            assert await eventually(lambda: cidr(c2.name), what="new CIDR") == cb
            assert await cidr(a.name) == ca  # stable
        finally:
            await c2.stop()


def lb_service(name: str, ip: str | None = None, annotation: str | None = None) -> dict:
    md: dict = {"name": name}
    if annotation:
        md["annotations"] = {"minikube-py.io/load-balancer-ips": annotation}
    spec: dict = {
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"port": 80, "targetPort": 8080}],
    }
    if ip:
        spec["loadBalancerIP"] = ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}


async def test_load_balancer_ips(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    pool = {f"192.168.49.{i}" for i in range(200, 251)}
    async with cp.client() as c:

        async def ingress(name: str) -> str | None:
            svc = await c.get("Service", name, ns)
            ing = svc["status"].get("loadBalancer", {}).get("ingress") or []
            return ing[0]["ip"] if ing else None

        await c.create(lb_service("auto"), ns)
        await c.create(lb_service("asked", ip="192.168.49.249"), ns)
        await c.create(lb_service("annotated", annotation="192.168.49.248"), ns)
        auto = await eventually(lambda: ingress("auto"), what="auto IP")
        assert auto in pool
        assert await eventually(lambda: ingress("asked"), what="asked") == "192.168.49.249"
        assert await eventually(lambda: ingress("annotated"), what="ann") == "192.168.49.248"
        out = (await asyncio.to_thread(cp.kubectl, "-n", ns, "get", "svc", "auto")).stdout
        assert auto in out and "<pending>" not in out

        # a taken address or one outside the pool: an Event says why
        await c.create(lb_service("clash", ip="192.168.49.249"), ns)
        await c.create(lb_service("outside", ip="10.1.2.3"), ns)

        async def failure(name: str) -> str | None:
            evs = (await c.list("Event", ns, field_selector=f"involvedObject.name={name}"))["items"]
            return next((e["message"] for e in evs if e["reason"] == "AllocationFailed"), None)

        assert "already allocated" in await eventually(lambda: failure("clash"), what="ev")
        assert "not in the pool" in await eventually(lambda: failure("outside"), what="ev")
        describe = (await asyncio.to_thread(cp.kubectl, "-n", ns, "describe", "svc", "auto")).stdout
        assert "IPAllocated" in describe

        # release on delete: the waiting Service gets the address
        await c.delete("Service", "asked", ns)
        assert await eventually(lambda: ingress("clash"), what="clash") == "192.168.49.249"
        # release on type change
        await c.patch("Service", "annotated", {"spec": {"type": "ClusterIP"}}, ns)
        assert await eventually(lambda: _no_ingress(c, ns, "annotated"), what="cleared")
        await c.create(lb_service("reuse", ip="192.168.49.248"), ns)
        assert await eventually(lambda: ingress("reuse"), what="reuse") == "192.168.49.248"


async def _no_ingress(c: Client, ns: str, name: str) -> bool:
    svc = await c.get("Service", name, ns)
    return not svc["status"].get("loadBalancer", {}).get("ingress")
