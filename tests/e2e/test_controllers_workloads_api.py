"""Workload controllers against the real apiserver and etcd, driven with real kubectl:
Deployments (rollout status / set image / undo / restart / scale, RollingUpdate
surge bounds, Recreate, progressDeadlineSeconds failing `rollout status`,
minReadySeconds holding availability back), StatefulSets (ordered, stable names,
hostname+subdomain),
the garbage collector's three cascades and namespace deletion. Simulated nodes
(`SimNode`) play the node agents: they bind nothing, only write pod status."""

from __future__ import annotations

import asyncio
import json
import uuid

from minikube_py.client import ApiException
from minikube_py.controllers.simnode import eventually, sim_nodes
from tests.conftest import ControlPlane


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


async def kubectl(cp: ControlPlane, *args: str, **kw: object) -> str:
    proc = await asyncio.to_thread(cp.kubectl, *args, **kw)  # type: ignore[arg-type]
    return proc.stdout


async def rollout(cp: ControlPlane, ns: str, what: str, timeout: int = 40) -> str:
    """`kubectl rollout status`; on failure the assertion shows the objects' state."""
    proc = await asyncio.to_thread(
        cp.kubectl,
        "-n",
        ns,
        "rollout",
        "status",
        what,
        f"--timeout={timeout}s",
        check=False,
        timeout=timeout + 10,
    )
    if proc.returncode != 0:
        state = await asyncio.to_thread(
            cp.kubectl, "-n", ns, "get", "deploy,sts,rs,pods", "-o", "wide", check=False
        )
        raise AssertionError(f"rollout of {what} failed: {proc.stderr}\n{state.stdout}")
    return proc.stdout


async def pods_of(client, ns: str, selector: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return (await client.list("Pod", ns, label_selector=selector))["items"]


async def test_deployment_rollout_undo_restart_scale(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    async with cp.client() as c, sim_nodes(c, [uniq("n"), uniq("n")]):
        await kubectl(
            cp, "-n", ns, "create", "deployment", "web", "--image=busybox:1", "--replicas=4"
        )
        out = await rollout(cp, ns, "deployment/web", 40)
        assert 'deployment "web" successfully rolled out' in out
        d = await c.get("Deployment", "web", ns)
        st = d["status"]
        assert (
            st["replicas"],
            st["updatedReplicas"],
            st["readyReplicas"],
            st["availableReplicas"],
        ) == (4, 4, 4, 4)
        assert st["observedGeneration"] == d["metadata"]["generation"]
        conds = {x["type"]: x for x in st["conditions"]}
        assert conds["Available"]["status"] == "True"
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        (rs1,) = (await c.list("ReplicaSet", ns))["items"]
        h1 = rs1["metadata"]["labels"]["pod-template-hash"]
        assert rs1["metadata"]["name"] == f"web-{h1}"
        assert rs1["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
        pods = await pods_of(c, ns, "app=web")
        assert len(pods) == 4 and all(
            p["metadata"]["labels"]["pod-template-hash"] == h1 for p in pods
        )

        # RollingUpdate with maxSurge 1, maxUnavailable 0: never above 5 pods, never
        # below 4 ready ones
        await kubectl(
            cp,
            "-n",
            ns,
            "patch",
            "deployment",
            "web",
            "-p",
            json.dumps(
                {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}
            ),
        )
        await kubectl(cp, "-n", ns, "set", "image", "deployment/web", "busybox=busybox:2")
        seen_max, seen_min_ready = 0, 99
        done = asyncio.create_task(rollout(cp, ns, "deployment/web", 60))
        while not done.done():
            live = [
                p
                for p in await pods_of(c, ns, "app=web")
                if not p["metadata"].get("deletionTimestamp")
            ]
            seen_max = max(seen_max, len(live))
            ready = sum(
                1
                for p in live
                for x in p["status"].get("conditions", [])
                if x["type"] == "Ready" and x["status"] == "True"
            )
            seen_min_ready = min(seen_min_ready, ready)
            await asyncio.sleep(0.05)
        assert "successfully rolled out" in await done
        assert seen_max <= 5 and seen_min_ready >= 4, (seen_max, seen_min_ready)
        d = await c.get("Deployment", "web", ns)
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        old = await c.get("ReplicaSet", f"web-{h1}", ns)
        assert old["spec"]["replicas"] == 0

        history = await kubectl(cp, "-n", ns, "rollout", "history", "deployment/web")
        assert "1" in history and "2" in history
        await kubectl(cp, "-n", ns, "rollout", "undo", "deployment/web")
        await rollout(cp, ns, "deployment/web", 60)
        d = await c.get("Deployment", "web", ns)
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        revived = await c.get("ReplicaSet", f"web-{h1}", ns)  # the old one, revived
        assert revived["spec"]["replicas"] == 4
        assert revived["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

        await kubectl(cp, "-n", ns, "rollout", "restart", "deployment/web")
        await rollout(cp, ns, "deployment/web", 60)
        assert len((await c.list("ReplicaSet", ns))["items"]) == 3

        await kubectl(cp, "-n", ns, "scale", "deployment/web", "--replicas=2")
        await rollout(cp, ns, "deployment/web", 30)
        await eventually(lambda: _count_live(c, ns, "app=web", 2), what="2 pods")

        events = await kubectl(cp, "-n", ns, "get", "events")
        for reason in ("ScalingReplicaSet", "SuccessfulCreate", "SuccessfulDelete", "Scheduled"):
            assert reason in events, events
        describe = await kubectl(cp, "-n", ns, "describe", "deployment", "web")
        assert "Scaled down replica set" in describe


async def _count_live(c, ns: str, selector: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    live = [p for p in await pods_of(c, ns, selector) if not p["metadata"].get("deletionTimestamp")]
    return len(live) == n


SLOW = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: slow}
spec:
  replicas: 2
  progressDeadlineSeconds: 3
  minReadySeconds: 2
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec: {containers: [{name: c, image: x}]}
"""


def progressing(d: dict) -> dict:
    return next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")


async def test_progress_deadline_and_min_ready_seconds(
    control_plane: ControlPlane, namespace: str
) -> None:
    """Pods that never become Ready: `kubectl rollout status` fails on the deadline
    (no other event needed: the controller rechecks when it falls due). Once Ready,
    pods count as available only after minReadySeconds, and the rollout completes."""
    cp, ns = control_plane, namespace
    async with cp.client() as c, sim_nodes(c, [uniq("n")], ready=False) as (node,):
        await kubectl(cp, "-n", ns, "apply", "-f", "-", input=SLOW)
        started = asyncio.get_running_loop().time()
        proc = await asyncio.to_thread(
            cp.kubectl,
            "-n", ns, "rollout", "status", "deployment/slow", "--timeout=40s",
            check=False, timeout=50,
        )  # fmt: skip
        waited = asyncio.get_running_loop().time() - started
        assert proc.returncode != 0, proc.stdout
        assert 'deployment "slow" exceeded its progress deadline' in proc.stderr
        # times are kept to the second, so the deadline can come up to 1 s early (as in kube)
        assert 2 <= waited < 15, waited
        d = await c.get("Deployment", "slow", ns)
        (rs,) = (await c.list("ReplicaSet", ns, label_selector="app=slow"))["items"]
        cond = progressing(d)
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "False",
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.',
        )
        assert cond["lastTransitionTime"] == cond["lastUpdateTime"]
        assert rs["spec"]["minReadySeconds"] == 2

        for pod in await pods_of(c, ns, "app=slow"):
            await node.set_ready(pod, True)

        async def ready_rs() -> dict | None:
            r = await c.get("ReplicaSet", rs["metadata"]["name"], ns)
            return r if r["status"].get("readyReplicas") == 2 else None

        r = await eventually(ready_rs, what="2 ready replicas")
        assert not r["status"].get("availableReplicas")  # not for minReadySeconds yet
        out = await rollout(cp, ns, "deployment/slow", 20)
        assert 'deployment "slow" successfully rolled out' in out
        r = await c.get("ReplicaSet", rs["metadata"]["name"], ns)
        assert r["status"]["availableReplicas"] == 2
        cond = progressing(await c.get("Deployment", "slow", ns))
        assert (cond["status"], cond["reason"]) == ("True", "NewReplicaSetAvailable")


RECREATE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: rc}
spec:
  replicas: 3
  strategy: {type: Recreate}
  selector: {matchLabels: {app: rc}}
  template:
    metadata: {labels: {app: rc}}
    spec: {containers: [{name: c, image: IMAGE}]}
"""


async def test_recreate_never_mixes_versions(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    async with cp.client() as c, sim_nodes(c, [uniq("n")]):
        await kubectl(cp, "-n", ns, "apply", "-f", "-", input=RECREATE.replace("IMAGE", "a"))
        await rollout(cp, ns, "deployment/rc", 30)
        await kubectl(cp, "-n", ns, "set", "image", "deployment/rc", "c=b")
        done = asyncio.create_task(rollout(cp, ns, "deployment/rc", 40))
        while not done.done():
            images = {p["spec"]["containers"][0]["image"] for p in await pods_of(c, ns, "app=rc")}
            assert len(images) <= 1, f"old and new pods at once: {images}"
            await asyncio.sleep(0.05)
        await done
        pods = await pods_of(c, ns, "app=rc")
        assert [p["spec"]["containers"][0]["image"] for p in pods] == ["b"] * 3


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 3
  serviceName: web
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec: {containers: [{name: c, image: busybox}]}
"""


async def test_statefulset_ordered_ready(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    async with cp.client() as c, sim_nodes(c, [uniq("n")], ready=False) as (node,):
        await kubectl(cp, "-n", ns, "apply", "-f", "-", input=STATEFULSET)

        async def names() -> list[str]:
            return sorted(p["metadata"]["name"] for p in await pods_of(c, ns, "app=sts"))

        for i in range(3):
            pod = await eventually(lambda i=i: _running(c, ns, f"web-{i}"), what=f"web-{i}")
            await asyncio.sleep(0.5)  # OrderedReady: nothing more until web-i is Ready
            assert await names() == [f"web-{j}" for j in range(i + 1)]
            assert pod["spec"]["hostname"] == f"web-{i}"
            assert pod["spec"]["subdomain"] == "web"
            await node.set_ready(pod, True)
        out = await rollout(cp, ns, "statefulset/web", 20)
        assert "roll out complete" in out or "rolling update complete" in out, out
        await kubectl(cp, "-n", ns, "scale", "statefulset/web", "--replicas=1")
        for _ in range(200):  # highest ordinal first: never web-2 without web-1
            left = await names()
            assert "web-2" not in left or "web-1" in left, left
            if left == ["web-0"]:
                break
            await asyncio.sleep(0.05)
        assert await names() == ["web-0"]


async def _running(c, ns: str, name: str):  # type: ignore[no-untyped-def]
    try:
        pod = await c.get("Pod", name, ns)
    except ApiException:
        return None
    return pod if pod["status"].get("phase") == "Running" else None


async def test_garbage_collector_cascades(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    async with cp.client() as c, sim_nodes(c, [uniq("n")]):
        for name in ("bg", "orphan", "fg"):
            await kubectl(cp, "-n", ns, "create", "deployment", name, "--image=x", "--replicas=2")
        for name in ("bg", "orphan", "fg"):
            await rollout(cp, ns, f"deployment/{name}", 30)

        await kubectl(cp, "-n", ns, "delete", "deployment", "bg", "--cascade=background")
        await eventually(lambda: _none_left(c, ns, "app=bg"), what="bg's RS and pods gone")

        await kubectl(cp, "-n", ns, "delete", "deployment", "orphan", "--cascade=orphan")
        (rs,) = (await c.list("ReplicaSet", ns, label_selector="app=orphan"))["items"]
        assert not rs["metadata"].get("ownerReferences")
        await asyncio.sleep(1)
        assert await _count_live(c, ns, "app=orphan", 2)

        # foreground: the kubectl delete returns once the Deployment is gone, which is
        # only after its ReplicaSet and pods are
        await kubectl(
            cp, "-n", ns, "delete", "deployment", "fg", "--cascade=foreground", timeout=40
        )
        assert await _none_left(c, ns, "app=fg")


async def _none_left(c, ns: str, selector: str) -> bool:  # type: ignore[no-untyped-def]
    rss = (await c.list("ReplicaSet", ns, label_selector=selector))["items"]
    return not rss and not await pods_of(c, ns, selector)


async def test_namespace_deletion_removes_everything(control_plane: ControlPlane) -> None:
    cp = control_plane
    ns = uniq("gone")
    async with cp.client() as c, sim_nodes(c, [uniq("n")]):
        await kubectl(cp, "create", "namespace", ns)
        await kubectl(cp, "-n", ns, "create", "deployment", "web", "--image=x", "--replicas=2")
        await kubectl(cp, "-n", ns, "create", "configmap", "cfg", "--from-literal=a=b")
        await kubectl(cp, "-n", ns, "create", "service", "clusterip", "web", "--tcp=80:80")
        await rollout(cp, ns, "deployment/web", 30)
        await kubectl(cp, "delete", "namespace", ns, timeout=40)  # returns once gone
        out = await kubectl(cp, "get", "namespace", ns, check=False)
        assert ns not in out
        assert not (await c.list("Pod", ns))["items"]
