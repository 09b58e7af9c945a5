"""The workload controllers' pure cores: rollout arithmetic (RollingUpdate within
maxSurge/maxUnavailable, Recreate), template hashes, Deployment status, the
ReplicaSet's deletion ranking, and the StatefulSet's next step."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minikube_py.controllers.deployment import (
    RS,
    deployment_status,
    recreate_step,
    resolve_fenceposts,
    rolling_step,
    template_hash,
)
from minikube_py.controllers.replicaset import replica_diff
from minikube_py.controllers.statefulset import Step, pod_for, statefulset_step


def deploy(replicas: int, surge: object = "25%", unavailable: object = "25%") -> dict:
    return {
        "metadata": {"name": "web", "namespace": "d", "generation": 3},
        "spec": {
            "replicas": replicas,
            "strategy": {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
        },
    }


def test_fenceposts_round_like_kube() -> None:
    assert resolve_fenceposts(deploy(10)) == (3, 2)  # surge rounds up, unavailable down
    assert resolve_fenceposts(deploy(1)) == (1, 0)
    assert resolve_fenceposts(deploy(3, 0, 0)) == (0, 1)


def test_template_hash_is_stable_and_ignores_its_own_label() -> None:
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"image": "a"}]}}
    h = template_hash(t)
    assert h == template_hash(
        {
            "metadata": {"labels": {"app": "web", "pod-template-hash": h}},
            "spec": {"containers": [{"image": "a"}]},
        }
    )
    assert h != template_hash(t, collision_count=1)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


def simulate(replicas: int, surge: int, unavailable: int) -> list[tuple[int, int]]:
    """Run a rollout to the end, every pod becoming available at once; (total, available)
    after each step."""
    new, old = RS("new", 0, 0, 0), RS("old", replicas, replicas, replicas)
    trace = []
    for _ in range(4 * replicas + 10):
        plan = rolling_step(replicas, surge, unavailable, new, [old])
        if not plan:
            break
        # scale-ups create pods that are not yet available; scale-downs remove at once
        n = plan.get("new", new.spec)
        o = plan.get("old", old.spec)
        new = RS("new", n, min(new.available, n), n)
        old = RS("old", o, min(old.available, o), o)
        trace.append((new.spec + old.spec, new.available + old.available))
        new = RS("new", n, n, n)  # they become available before the next step
    assert (new.spec, old.spec) == (replicas, 0), trace
    return trace


@given(st.integers(1, 20), st.integers(0, 5), st.integers(0, 5))
def test_rolling_update_stays_within_bounds(replicas: int, surge: int, unav: int) -> None:
    if surge == 0 and unav == 0:
        unav = 1
    unav = min(unav, replicas)
    for total, available in simulate(replicas, surge, unav):
        assert total <= replicas + surge
        assert available >= replicas - unav


def test_rolling_golden_steps() -> None:
    new, old = RS("new", 0, 0, 0), RS("old", 4, 4, 4)
    assert rolling_step(4, 1, 0, new, [old]) == {"new": 1}
    assert rolling_step(4, 1, 0, RS("new", 1, 0, 1), [old]) == {}  # wait for availability
    assert rolling_step(4, 1, 0, RS("new", 1, 1, 1), [old]) == {"old": 3}
    # unhealthy old pods go first, at no cost in availability
    assert rolling_step(4, 0, 1, new, [RS("old", 4, 2, 4)]) == {"old": 3}
    assert rolling_step(4, 1, 0, RS("new", 6, 6, 6), []) == {"new": 4}  # scaled down


def test_recreate_scales_down_waits_then_up() -> None:
    assert recreate_step(3, RS("new", 0, 0, 0), [RS("old", 3, 3, 3)]) == {"old": 0}
    assert recreate_step(3, RS("new", 0, 0, 0), [RS("old", 0, 0, 2)]) == {}
    assert recreate_step(3, RS("new", 0, 0, 0), [RS("old", 0, 0, 0)]) == {"new": 3}


def rs(name: str, spec: int, status: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {"replicas": spec}, "status": status}


def test_deployment_status_conditions() -> None:
    d = deploy(3)
    new = rs("web-a", 3, {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3})
    st_ = deployment_status(d, new, [], created=False)
    assert (
        st_["replicas"],
        st_["updatedReplicas"],
        st_["availableReplicas"],
        st_["observedGeneration"],
    ) == (3, 3, 3, 3)
    conds = {c["type"]: c for c in st_["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds["Progressing"]["message"] == 'ReplicaSet "web-a" has successfully progressed.'
    mid = deployment_status(
        d,
        rs("web-b", 1, {"replicas": 1}),
        [rs("web-a", 3, {"replicas": 3, "availableReplicas": 1})],
        False,
    )
    conds = {c["type"]: c for c in mid["conditions"]}
    assert conds["Available"]["status"] == "False"
    assert conds["Progressing"]["reason"] == "ReplicaSetUpdated"
    assert mid["unavailableReplicas"] == 3


def pod(
    name: str,
    node: str = "",
    phase: str = "Running",
    ready: bool = True,
    ts: str = "2026-01-01T00:00:00Z",
) -> dict:
    return {
        "metadata": {"name": name, "creationTimestamp": ts},
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_replicaset_deletes_the_cheapest_pods_first() -> None:
    pods = [
        pod("ready-old", "n", ts="2026-01-01T00:00:00Z"),
        pod("ready-new", "n", ts="2026-01-02T00:00:00Z"),
        pod("notready", "n", ready=False),
        pod("pending", "n", phase="Pending"),
        pod("unbound", phase="Pending"),
    ]
    create, delete = replica_diff(1, pods)
    assert create == 0
    assert [p["metadata"]["name"] for p in delete] == [
        "unbound",
        "pending",
        "notready",
        "ready-new",
    ]
    assert replica_diff(7, pods) == (2, [])


STS = {
    "metadata": {"name": "web", "namespace": "d", "uid": "u"},
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "spec": {
        "replicas": 3,
        "serviceName": "web",
        "template": {"metadata": {"labels": {"app": "w"}}, "spec": {}},
    },
}


def sts_pod(i: int, healthy: bool = True) -> dict:
    p = pod_for(STS, i)
    p["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if healthy else "False"}],
    }
    return p


def test_statefulset_ordered_steps() -> None:
    assert statefulset_step(STS, {}) == Step("create", 0)
    assert statefulset_step(STS, {0: sts_pod(0, healthy=False)}) == Step("")
    assert statefulset_step(STS, {0: sts_pod(0)}) == Step("create", 1)
    parallel = {**STS, "spec": {**STS["spec"], "podManagementPolicy": "Parallel"}}
    assert statefulset_step(parallel, {0: sts_pod(0, healthy=False)}) == Step("create", 1)
    down = {**STS, "spec": {**STS["spec"], "replicas": 1}}
    assert statefulset_step(down, {i: sts_pod(i) for i in range(3)}) == Step("delete", 2)
    p = pod_for(STS, 1)
    assert (p["metadata"]["name"], p["spec"]["hostname"], p["spec"]["subdomain"]) == (
        "web-1",
        "web-1",
        "web",
    )
    changed = {**STS, "spec": {**STS["spec"], "template": {"metadata": {}, "spec": {"x": 1}}}}
    assert statefulset_step(changed, {i: sts_pod(i) for i in range(3)}) == Step("delete", 2)
