"""Endpoints and EndpointSlices against the real apiserver and etcd: named target
ports resolved per pod, ready / not-ready / terminating endpoints,
publishNotReadyAddresses, hostname+subdomain, nodeName, the slice labels,
selector-less Services (user Endpoints kept and mirrored) and the `kubernetes`
Service's slice. Endpoints trail slices by up to the controller's batch period."""

from __future__ import annotations

import asyncio
import datetime
import re
import time
import uuid

from minikube_py.client import Client
from minikube_py.controllers.simnode import eventually, sim_nodes
from tests.conftest import ControlPlane


def pod(name: str, port: int, labels: dict[str, str], **spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": port}]}
            ],
            **spec,
        },
    }


async def slices(c: Client, ns: str, svc: str) -> list[dict]:
    return (await c.list("EndpointSlice", ns, label_selector=f"kubernetes.io/service-name={svc}"))[
        "items"
    ]


def by_ip(items: list[dict]) -> dict[str, tuple[int, dict]]:
    return {ep["addresses"][0]: (s["ports"][0]["port"], ep) for s in items for ep in s["endpoints"]}


async def test_endpoints_and_slices_follow_pods(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    node = "ep-" + uuid.uuid4().hex[:5]
    async with cp.client() as c, sim_nodes(c, [node]) as (sim,):
        await c.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "labels": {"team": "a"}},
                "spec": {
                    "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                },
            },
            ns,
        )
        await c.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "all"},
                "spec": {
                    "selector": {"app": "web"},
                    "clusterIP": "None",
                    "publishNotReadyAddresses": True,
                    "ports": [{"port": 80, "targetPort": 7000}],
                },
            },
            ns,
        )
        await c.create(pod("a", 8080, {"app": "web"}, hostname="a", subdomain="web"), ns)
        await c.create(pod("b", 9090, {"app": "web"}), ns)
        await c.create(pod("other", 8080, {"app": "db"}), ns)

        async def two_ready() -> dict | None:
            eps = by_ip(await slices(c, ns, "web"))
            ok = len(eps) == 2 and all(e["conditions"]["ready"] for _, e in eps.values())
            return eps if ok else None

        eps = await eventually(two_ready, what="2 ready endpoints")
        pods = {p["metadata"]["name"]: p for p in (await c.list("Pod", ns))["items"]}
        ip_a, ip_b = pods["a"]["status"]["podIP"], pods["b"]["status"]["podIP"]
        assert eps[ip_a][0] == 8080 and eps[ip_b][0] == 9090  # named port, per pod
        assert eps[ip_a][1]["hostname"] == "a" and "hostname" not in eps[ip_b][1]
        assert eps[ip_a][1]["nodeName"] == node
        assert eps[ip_a][1]["targetRef"]["name"] == "a"
        for s in await slices(c, ns, "web"):
            assert (
                s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
                == "endpointslice-controller.k8s.io"
            )
            assert s["metadata"]["labels"]["team"] == "a"
            assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
            # when the controller saw the change, to the microsecond, for the proxies'
            # network programming latency
            trigger = s["metadata"]["annotations"][
                "endpoints.kubernetes.io/last-change-trigger-time"
            ]
            seen = datetime.datetime.fromisoformat(trigger.replace("Z", "+00:00"))
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", trigger)
            assert 0 <= time.time() - seen.timestamp() < 120

        async def both_in_endpoints() -> bool:  # Endpoints follow within the batch period
            ep = await c.get("Endpoints", "web", ns)
            ips = sorted(a["ip"] for s in ep.get("subsets") or [] for a in s["addresses"])
            return ips == sorted([ip_a, ip_b])

        await eventually(both_in_endpoints, what="both addresses in Endpoints")
        out = (await asyncio.to_thread(cp.kubectl, "-n", ns, "get", "endpoints", "web")).stdout
        assert f"{ip_a}:8080" in out and f"{ip_b}:9090" in out

        # b stops being ready: not-ready in both, still published by "all"
        await sim.set_ready(pods["b"], False)

        async def b_not_ready() -> bool:
            e = await c.get("Endpoints", "web", ns)
            nr = [a["ip"] for s in e["subsets"] for a in s.get("notReadyAddresses", [])]
            slice_b = by_ip(await slices(c, ns, "web")).get(ip_b)
            return nr == [ip_b] and slice_b is not None and not slice_b[1]["conditions"]["ready"]

        await eventually(b_not_ready, what="b not ready")
        all_ep = await c.get("Endpoints", "all", ns)
        assert sorted(a["ip"] for s in all_ep["subsets"] for a in s["addresses"]) == sorted(
            [ip_a, ip_b]
        )

        # a is being deleted: terminating, not ready, serving (until the node ends it)
        sim.run_pods = False  # keep the pod in Terminating while we look
        await sim.pods.stop()
        await c.delete("Pod", "a", ns)

        async def a_terminating() -> dict | None:
            e = by_ip(await slices(c, ns, "web")).get(ip_a)
            return e[1]["conditions"] if e and e[1]["conditions"]["terminating"] else None

        conds = await eventually(a_terminating, what="a terminating")
        assert conds == {"ready": False, "serving": True, "terminating": True}

        async def a_left_endpoints() -> bool:
            return ip_a not in str((await c.get("Endpoints", "web", ns)).get("subsets"))

        await eventually(a_left_endpoints, what="a out of Endpoints")
        await c.delete("Pod", "a", ns, {"gracePeriodSeconds": 0})
        await eventually(lambda: _absent(c, ns, ip_a), what="a gone from slices")


async def _absent(c: Client, ns: str, ip: str) -> bool:
    return ip not in by_ip(await slices(c, ns, "web"))


async def test_selectorless_services_and_the_kubernetes_service(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    async with cp.client() as c:
        await c.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "ext"},
                "spec": {"ports": [{"name": "db", "port": 5432}]},
            },
            ns,
        )
        await c.create(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "ext"},
                "subsets": [
                    {"addresses": [{"ip": "10.0.0.7"}], "ports": [{"name": "db", "port": 5432}]}
                ],
            },
            ns,
        )

        async def mirrored() -> dict | None:
            items = await slices(c, ns, "ext")
            return items[0] if items and items[0]["endpoints"] else None

        s = await eventually(mirrored, what="mirrored slice")
        assert s["endpoints"][0]["addresses"] == ["10.0.0.7"]
        assert s["ports"] == [{"name": "db", "port": 5432, "protocol": "TCP"}]
        assert (
            s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
            == "endpointslicemirroring-controller.k8s.io"
        )
        await asyncio.sleep(0.5)
        ep = await c.get("Endpoints", "ext", ns)  # the user's Endpoints stay as written
        assert ep["subsets"][0]["addresses"] == [{"ip": "10.0.0.7"}]

        api = await c.get("Endpoints", "kubernetes", "default")
        want = api["subsets"][0]["addresses"][0]["ip"]
        (ks,) = await eventually(lambda: slices(c, "default", "kubernetes"), what="k8s slice")
        assert ks["endpoints"][0]["addresses"] == [want]
        assert ks["ports"][0]["port"] == api["subsets"][0]["ports"][0]["port"]


async def test_a_readiness_flip_rewrites_one_slice(
    control_plane: ControlPlane, namespace: str
) -> None:
    """150 pods fill two slices or more; one pod turning not-ready rewrites only its
    own slice (the others keep their resourceVersion), and turning ready restores it."""
    cp, ns = control_plane, namespace
    node = "ep-" + uuid.uuid4().hex[:5]
    async with cp.client() as c, sim_nodes(c, [node], pods="200") as (sim,):
        await c.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "many"}, "ports": [{"port": 80}]},
            },
            ns,
        )
        await asyncio.gather(
            *(c.create(pod(f"p{i}", 8080, {"app": "many"}), ns) for i in range(150))
        )

        async def all_ready() -> list[dict] | None:
            items = await slices(c, ns, "web")
            eps = [e for s in items for e in s["endpoints"]]
            return items if len(eps) == 150 and all(e["conditions"]["ready"] for e in eps) else None

        before = {s["metadata"]["name"]: s for s in await eventually(all_ready, 40, "150 ready")}
        # how they are split depends on the order pods came up in: 2 slices at least
        assert all(len(s["endpoints"]) <= 100 for s in before.values()) and len(before) >= 2
        victim = await c.get("Pod", "p7", ns)
        ip = victim["status"]["podIP"]
        holder = next(n for n, s in before.items() if ip in str(s["endpoints"]))
        await sim.set_ready(victim, False)

        async def flipped() -> list[dict] | None:
            items = await slices(c, ns, "web")
            return items if not by_ip(items)[ip][1]["conditions"]["ready"] else None

        after = {s["metadata"]["name"]: s for s in await eventually(flipped, what="p7 unready")}
        assert after.keys() == before.keys()
        for name, s in after.items():
            same = s["metadata"]["resourceVersion"] == before[name]["metadata"]["resourceVersion"]
            assert same == (name != holder), name
        await sim.set_ready(await c.get("Pod", "p7", ns), True)
        await eventually(all_ready, what="p7 ready again")
