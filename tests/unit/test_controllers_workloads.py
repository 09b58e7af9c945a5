"""The workload controllers' pure cores: rollout arithmetic (RollingUpdate within
maxSurge/maxUnavailable, Recreate), template hashes, Deployment status and its
Progressing condition through a rollout's life (created, progressing, stuck past
progressDeadlineSeconds, complete, paused), minReadySeconds availability, the
ReplicaSet's deletion ranking, and the StatefulSet's next step."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from minikube_py.controllers.common import parse_time
from minikube_py.controllers.deployment import (
    REVISION,
    REVISION_HISTORY,
    RS,
    new_replicaset,
    recheck_progress_in,
    recreate_step,
    replicaset_annotations,
    resolve_fenceposts,
    rolling_step,
    rollout_status,
    template_hash,
)
from minikube_py.controllers.replicaset import (
    next_available_in,
    pod_available,
    replica_diff,
    replica_facts,
    replicaset_status,
)
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


def test_replicasets_take_the_deployments_annotations_and_keep_their_revisions() -> None:
    """As kube's controller: a new ReplicaSet carries the Deployment's annotations (so
    `kubectl rollout history` shows its change-cause) but those describing one object; a
    rollback revives an old one with the next revision and records the earlier ones."""
    d = {"apiVersion": "apps/v1", "kind": "Deployment", **deploy(3)}
    d["metadata"]["uid"] = "u-1"
    d["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "kubectl set image web=v2",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        REVISION: "4",
        "team": "blue",
    }
    d["spec"]["template"] = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}
    made = new_replicaset(d, 5, 1)["metadata"]["annotations"]
    assert made["kubernetes.io/change-cause"] == "kubectl set image web=v2"
    assert made["team"] == "blue" and made[REVISION] == "5"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in made
    assert REVISION_HISTORY not in made

    old = {REVISION: "2", "kubernetes.io/change-cause": "first", "kept": "yes"}
    revived = replicaset_annotations(d, old, 6)
    assert revived[REVISION] == "6" and revived[REVISION_HISTORY] == "2"
    assert revived["kubernetes.io/change-cause"] == "kubectl set image web=v2"
    assert revived["kept"] == "yes"  # nothing is taken away
    again = replicaset_annotations(d, revived, 9)
    assert again[REVISION_HISTORY] == "2,6"
    assert replicaset_annotations(d, again, 9) == again  # settled: no further patch
    assert replicaset_annotations(d, again, 7)[REVISION] == "9"  # never lowered
    assert replicaset_annotations(d, {REVISION: "x"}, 2)[REVISION] == "2"  # not a number


def test_recreate_scales_down_waits_then_up() -> None:
    assert recreate_step(3, RS("new", 0, 0, 0), [RS("old", 3, 3, 3)]) == {"old": 0}
    assert recreate_step(3, RS("new", 0, 0, 0), [RS("old", 0, 0, 2)]) == {}
    assert recreate_step(3, RS("new", 0, 0, 0), [RS("old", 0, 0, 0)]) == {"new": 3}


def rs(name: str, spec: int, status: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {"replicas": spec}, "status": status}


T0 = parse_time("2026-03-01T10:00:00Z") or 0.0


def conds(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status["conditions"]}


def test_deployment_status_conditions() -> None:
    d = deploy(3)
    new = rs("web-a", 3, {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3})
    st_ = rollout_status(d, new, [], T0)
    assert (
        st_["replicas"],
        st_["updatedReplicas"],
        st_["availableReplicas"],
        st_["observedGeneration"],
    ) == (3, 3, 3, 3)
    assert [c["type"] for c in st_["conditions"]] == ["Available", "Progressing"]
    c = conds(st_)
    assert c["Available"]["reason"] == "MinimumReplicasAvailable"
    assert c["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert c["Progressing"]["message"] == 'ReplicaSet "web-a" has successfully progressed.'
    mid = rollout_status(
        d,
        rs("web-b", 1, {"replicas": 1}),
        [rs("web-a", 3, {"replicas": 3, "availableReplicas": 1})],
        T0,
    )
    c = conds(mid)
    assert c["Available"]["status"] == "False"
    assert c["Available"]["reason"] == "MinimumReplicasUnavailable"
    assert c["Progressing"]["reason"] == "ReplicaSetUpdated"  # found, then progressed
    assert mid["unavailableReplicas"] == 3


def with_status(d: dict, status: dict) -> dict:
    return {**d, "status": status}


def test_progress_deadline_lifecycle() -> None:
    """A rollout from creation through progress to its deadline, then to completion,
    with kube's reasons, messages and times."""
    d = {**deploy(2), "spec": {**deploy(2)["spec"], "progressDeadlineSeconds": 30}}
    stamp = "2026-03-01T10:00:{:02d}Z".format
    old = rs("web-a", 2, {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2})
    d = with_status(d, rollout_status(d, old, [], T0 - 100))  # web-a rolled out
    created = rollout_status(d, rs("web-b", 0, {}), [old], T0, created=True)
    p = conds(created)["Progressing"]
    assert (p["status"], p["reason"], p["message"]) == (
        "True",
        "NewReplicaSetCreated",
        'Created new replica set "web-b"',
    )
    # True before (web-a complete) and True now: only lastUpdateTime moves
    assert (p["lastUpdateTime"], p["lastTransitionTime"]) == (stamp(0), "2026-03-01T09:58:20Z")
    d = with_status(d, created)
    assert recheck_progress_in(d, T0 + 10) == 20  # nothing to see: look at the deadline

    # a new pod appears: progress, lastUpdateTime moves, lastTransitionTime stays
    new = rs("web-b", 1, {"replicas": 1})
    moved = rollout_status(d, new, [old], T0 + 5)
    p = conds(moved)["Progressing"]
    assert (p["reason"], p["message"]) == (
        "ReplicaSetUpdated",
        'ReplicaSet "web-b" is progressing.',
    )
    assert (p["lastUpdateTime"], p["lastTransitionTime"]) == (stamp(5), "2026-03-01T09:58:20Z")
    d = with_status(d, moved)

    # nothing more happens: unchanged until 30 s after the last progress, then stuck
    assert rollout_status(d, new, [old], T0 + 35) == moved
    assert recheck_progress_in(d, T0 + 35) == 0
    stuck = rollout_status(d, new, [old], T0 + 35.5)
    p = conds(stuck)["Progressing"]
    assert (p["status"], p["reason"], p["message"]) == (
        "False",
        "ProgressDeadlineExceeded",
        'ReplicaSet "web-b" has timed out progressing.',
    )
    assert p["lastUpdateTime"] == p["lastTransitionTime"] == "2026-03-01T10:00:35Z"
    d = with_status(d, stuck)
    assert rollout_status(d, new, [old], T0 + 90) == stuck  # stays, and is not rechecked
    assert recheck_progress_in(d, T0 + 90) is None

    # progress after the deadline makes it progressing again
    ready = rs("web-b", 1, {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1})
    again = conds(rollout_status(d, ready, [old], T0 + 100))["Progressing"]
    assert (again["status"], again["reason"]) == ("True", "ReplicaSetUpdated")
    assert again["lastTransitionTime"] == "2026-03-01T10:01:40Z"

    # complete: NewReplicaSetAvailable, which no deadline undoes
    done_rs = rs("web-b", 2, {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2})
    done = rollout_status(d, done_rs, [rs("web-a", 0, {})], T0 + 110)
    assert conds(done)["Progressing"]["reason"] == "NewReplicaSetAvailable"
    d = with_status(d, done)
    assert recheck_progress_in(d, T0 + 9999) is None
    one_lost = rs("web-b", 2, {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1})
    later = rollout_status(d, one_lost, [rs("web-a", 0, {})], T0 + 9999)
    assert conds(later)["Progressing"] == conds(done)["Progressing"]


def test_paused_deployments_do_not_time_out_and_no_deadline_means_no_condition() -> None:
    d = {**deploy(2), "spec": {**deploy(2)["spec"], "progressDeadlineSeconds": 10}}
    new = rs("web-b", 1, {"replicas": 1})
    d = with_status(d, rollout_status(d, new, [], T0, created=True))
    paused = {**d, "spec": {**d["spec"], "paused": True}}
    st_ = rollout_status(paused, new, [], T0 + 100)
    p = conds(st_)["Progressing"]
    assert (p["status"], p["reason"], p["message"]) == (
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    )
    paused = with_status(paused, st_)
    assert rollout_status(paused, new, [], T0 + 200) == st_
    assert recheck_progress_in(paused, T0 + 200) is None
    resumed = {**paused, "spec": {**paused["spec"], "paused": False}}
    p = conds(rollout_status(resumed, new, [], T0 + 300))["Progressing"]
    assert (p["status"], p["reason"]) == ("Unknown", "DeploymentResumed")
    unbounded = {**d, "spec": {**d["spec"], "progressDeadlineSeconds": 2**31 - 1}}
    assert "Progressing" not in conds(rollout_status(unbounded, new, [], T0 + 999))


def ready_pod(name: str, since: float) -> dict:
    stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp}],
        },
    }


def test_min_ready_seconds_availability_and_recheck() -> None:
    rs_ = {
        "metadata": {"name": "r", "generation": 1},
        "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "web"}}}},
    }
    pods = [ready_pod("a", T0), ready_pod("b", T0 + 4)]
    assert not pod_available(pods[0], 10, T0 + 10)  # strictly longer than minReadySeconds
    assert pod_available(pods[0], 10, T0 + 10.5)
    assert pod_available(pods[1], 0, T0 + 4)
    status = replicaset_status(rs_, pods, T0 + 12)
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 1)
    assert next_available_in(rs_, pods, T0 + 12) == 2  # b: ready at +4, available after +14
    assert replicaset_status(rs_, pods, T0 + 14.5)["availableReplicas"] == 2
    assert next_available_in(rs_, pods, T0 + 14.5) is None
    no_wait = {**rs_, "spec": {**rs_["spec"], "minReadySeconds": 0}}
    assert next_available_in(no_wait, pods, T0) is None


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


def test_replica_facts_ignore_status_details_but_not_readiness() -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"app": "a"}, "ownerReferences": [{"uid": "rs"}]},
        "status": {
            "phase": "Running",
            "message": "x",
            "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ],
        },
    }
    detail = {**pod, "status": {**pod["status"], "message": "y", "podIP": "10.0.0.1"}}
    assert replica_facts(detail) == replica_facts(pod)
    ready = {
        **pod,
        "status": {
            **pod["status"],
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}
            ],
        },
    }
    relabelled = {**pod, "metadata": {**pod["metadata"], "labels": {"app": "b"}}}
    finished = {**pod, "status": {**pod["status"], "phase": "Succeeded"}}
    deleting = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "t"}}
    for changed in (ready, relabelled, finished, deleting):
        assert replica_facts(changed) != replica_facts(pod)
