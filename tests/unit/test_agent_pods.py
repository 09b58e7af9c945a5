"""The pod sync loop's pure core: restarts and back-off, which containers were never
started, phase, conditions, status, and the ConfigMaps and Secrets a pod names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.pods import (
    ContainerRecord,
    CrashBackoff,
    pod_conditions,
    pod_phase,
    pod_status,
    qos_class,
    referenced_objects,
    should_restart,
)
from agent.runtime import never_started, state_from_docker
from minikube_py.api.types import status_only_change

NOW = "2026-01-01T00:00:10Z"
EARLIER = "2026-01-01T00:00:00Z"


def running(name: str, ready: bool = True) -> ContainerRecord:
    return ContainerRecord(
        name, "img", {"running": {"startedAt": EARLIER}}, ready=ready, started=True
    )


def exited(name: str, code: int) -> ContainerRecord:
    return ContainerRecord(name, "img", {"terminated": {"exitCode": code}})


def waiting(
    name: str, reason: str = "ContainerCreating", ran_before: bool = False
) -> ContainerRecord:
    last = {"terminated": {"exitCode": 1}} if ran_before else {}
    return ContainerRecord(name, "img", {"waiting": {"reason": reason}}, last_state=last)


# --- restarts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False),
     ("OnFailure", 2, True), ("Never", 0, False), ("Never", 1, False)],
)  # fmt: skip
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_crash_backoff_is_immediate_then_doubles_to_the_cap() -> None:
    backoff = CrashBackoff(base=10, cap=40)
    key = ("uid", "c")
    waits = []
    now = 1000.0
    for _ in range(5):
        wait = backoff.remaining(key, finished_at=now, now=now)
        waits.append(wait)
        now += wait
        backoff.restarted(key, now)
    assert waits == [0, 10, 20, 40, 40]


def test_crash_backoff_forgets_a_container_healthy_for_twice_the_cap() -> None:
    backoff = CrashBackoff(base=10, cap=40)
    backoff.restarted(("uid", "c"), 0)
    assert backoff.remaining(("uid", "c"), finished_at=81, now=81.5) == 0
    backoff.restarted(("uid", "c"), 100)
    backoff.forget("uid")
    assert backoff.remaining(("uid", "c"), finished_at=101, now=101) == 0


@given(st.integers(1, 100), st.integers(1, 1000), st.integers(1, 30))
def test_crash_backoff_never_exceeds_the_cap(base: int, cap: int, restarts: int) -> None:
    backoff = CrashBackoff(base=base, cap=max(cap, base))
    for i in range(restarts):
        backoff.restarted(("u", "c"), float(i))
    assert 0 <= backoff.remaining(("u", "c"), restarts, restarts) <= max(cap, base)


# --- phase and conditions ------------------------------------------------------------


# Docker `State`s as the engine reports them (a failed start: "created", 128, an error).
docker_states = st.fixed_dictionaries(
    {
        "Status": st.sampled_from(["created", "running", "exited", "paused", "dead"]),
        "ExitCode": st.sampled_from([0, 1, 128, 137]),
        "Error": st.sampled_from(["", "cannot join network of a non running container"]),
        "StartedAt": st.just("0001-01-01T00:00:00Z"),
        "FinishedAt": st.just("0001-01-01T00:00:00Z"),
    }
)


def test_never_started_is_a_created_container_without_a_start_error() -> None:
    created = {"Status": "created", "ExitCode": 0, "Error": ""}
    assert never_started(created)
    assert not never_started({**created, "ExitCode": 128, "Error": "cannot join network"})
    assert not never_started({**created, "Status": "running"})
    assert not never_started({**created, "Status": "exited"})


@given(docker_states)
def test_a_never_started_container_is_reported_as_being_created(state: dict) -> None:
    """The sync loop starts such a container as it is (no restart counted): its status
    must say ContainerCreating, never a failure."""
    if never_started(state):
        assert state_from_docker("id", state) == {"waiting": {"reason": "ContainerCreating"}}
    elif state["Status"] == "created":
        assert state_from_docker("id", state)["terminated"]["reason"] == "StartError"


@pytest.mark.parametrize(
    ("policy", "inits", "apps", "phase"),
    [
        ("Always", [], [waiting("a")], "Pending"),
        ("Always", [running("i")], [waiting("a", "PodInitializing")], "Pending"),
        ("Never", [exited("i", 1)], [waiting("a", "PodInitializing")], "Failed"),
        ("Always", [exited("i", 0)], [running("a")], "Running"),
        ("Always", [], [running("a"), waiting("b", "CrashLoopBackOff", True)], "Running"),
        ("Always", [], [waiting("a", "CrashLoopBackOff", True)], "Running"),
        ("Always", [], [exited("a", 0)], "Running"),
        ("OnFailure", [], [exited("a", 0), exited("b", 0)], "Succeeded"),
        ("OnFailure", [], [exited("a", 0), waiting("b", "CrashLoopBackOff", True)], "Running"),
        ("Never", [], [exited("a", 0), exited("b", 3)], "Failed"),
        ("Never", [], [exited("a", 0)], "Succeeded"),
        ("Never", [], [running("a"), exited("b", 3)], "Running"),
    ],
)
def test_pod_phase(
    policy: str, inits: list[ContainerRecord], apps: list[ContainerRecord], phase: str
) -> None:
    assert pod_phase(policy, inits, apps) == phase


def test_conditions_name_the_unready_and_keep_transition_times() -> None:
    previous = [
        {"type": "Ready", "status": "False", "lastTransitionTime": EARLIER},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": EARLIER},
    ]
    conditions = {
        c["type"]: c
        for c in pod_conditions("Running", [], [running("a"), running("b", False)], previous, NOW)
    }
    assert conditions["Ready"] == {
        "type": "Ready",
        "status": "False",
        "lastTransitionTime": EARLIER,
        "reason": "ContainersNotReady",
        "message": "containers with unready status: [b]",
    }
    assert conditions["ContainersReady"]["lastTransitionTime"] == NOW
    assert conditions["Initialized"]["status"] == "True"
    assert conditions["PodScheduled"]["lastTransitionTime"] == EARLIER


def test_conditions_of_a_pod_waiting_for_init_containers() -> None:
    conditions = {
        c["type"]: c
        for c in pod_conditions(
            "Pending", [exited("i1", 0), running("i2")], [waiting("a")], [], NOW
        )
    }
    assert conditions["Initialized"]["reason"] == "ContainersNotInitialized"
    assert conditions["Initialized"]["message"] == "containers with incomplete status: [i2]"


def test_completed_pod_is_not_ready_with_reason_pod_completed() -> None:
    conditions = {c["type"]: c for c in pod_conditions("Succeeded", [], [exited("a", 0)], [], NOW)}
    assert conditions["Ready"]["reason"] == "PodCompleted"
    assert "message" not in conditions["Ready"]


records = st.builds(
    ContainerRecord,
    name=st.sampled_from(["a", "b", "c"]),
    image=st.just("img"),
    state=st.sampled_from(
        [
            {"running": {}},
            {"waiting": {"reason": "X"}},
            {"terminated": {"exitCode": 0}},
            {"terminated": {"exitCode": 1}},
        ]
    ),
    ready=st.booleans(),
)


@given(st.lists(records, max_size=3), st.lists(records, min_size=1, max_size=3),
       st.sampled_from(["Always", "OnFailure", "Never"]))  # fmt: skip
def test_ready_only_when_running_and_every_container_ready(
    inits: list[ContainerRecord], apps: list[ContainerRecord], policy: str
) -> None:
    phase = pod_phase(policy, inits, apps)
    conditions = {c["type"]: c["status"] for c in pod_conditions(phase, inits, apps, [], NOW)}
    assert phase in ("Pending", "Running", "Succeeded", "Failed")
    if conditions["Ready"] == "True":
        assert phase in ("Running", "Pending") and all(r.ready for r in apps)
    assert conditions["Ready"] == conditions["ContainersReady"]


def test_pod_status_golden() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [{"name": "a", "image": "img"}]},
        "status": {"startTime": EARLIER, "conditions": []},
    }
    record = running("a")
    record.restart_count = 2
    record.container_id = "docker://abc"
    record.image_id = "docker://sha256:1"
    record.last_state = {"terminated": {"exitCode": 137, "reason": "Error"}}
    status = pod_status(pod, [], [record], "10.244.1.2", "192.168.49.2", NOW)
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.244.1.2" and status["podIPs"] == [{"ip": "10.244.1.2"}]
    assert status["hostIP"] == "192.168.49.2" and status["startTime"] == EARLIER
    assert status["qosClass"] == "BestEffort"
    assert status["containerStatuses"] == [
        {
            "name": "a",
            "state": {"running": {"startedAt": EARLIER}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "Error"}},
            "ready": True,
            "restartCount": 2,
            "image": "img",
            "imageID": "docker://sha256:1",
            "started": True,
            "containerID": "docker://abc",
        }
    ]
    assert "initContainerStatuses" not in status


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
        ({"requests": {"memory": "1Gi"}}, "Burstable"),
    ],
)
def test_qos_class(resources: dict, qos: str) -> None:
    pod = {"spec": {"containers": [{"name": "a", "resources": resources}]}}
    assert qos_class(pod) == qos


def test_referenced_objects_covers_env_env_from_and_volumes() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-s"}}]}],
            "containers": [
                {
                    "name": "c",
                    "envFrom": [{"configMapRef": {"name": "cm-all"}, "prefix": "P_"}],
                    "env": [
                        {"name": "A", "value": "x"},
                        {
                            "name": "B",
                            "valueFrom": {"configMapKeyRef": {"name": "cm-k", "key": "k"}},
                        },
                        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s-k", "key": "k"}}},
                        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                }
            ],
            "volumes": [
                {"name": "v1", "configMap": {"name": "cm-vol"}},
                {"name": "v2", "secret": {"secretName": "s-vol"}},
                {"name": "v3", "emptyDir": {}},
            ],
        }
    }
    assert referenced_objects(pod) == {
        ("Secret", "init-s"),
        ("ConfigMap", "cm-all"),
        ("ConfigMap", "cm-k"),
        ("Secret", "s-k"),
        ("ConfigMap", "cm-vol"),
        ("Secret", "s-vol"),
    }


BOUND_POD = {
    "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "img"}]},
    "status": {"phase": "Pending"},
}


def test_status_only_change_golden() -> None:
    written = {
        **BOUND_POD,
        "metadata": {**BOUND_POD["metadata"], "resourceVersion": "8", "managedFields": []},
        "status": {"phase": "Running", "podIP": "10.244.1.2"},
    }
    assert status_only_change(BOUND_POD, written)
    deleting = {
        **written,
        "metadata": {**written["metadata"], "deletionTimestamp": NOW},
    }
    assert not status_only_change(written, deleting)
    relabelled = {**BOUND_POD, "metadata": {**BOUND_POD["metadata"], "labels": {"a": "b"}}}
    assert not status_only_change(BOUND_POD, relabelled)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values, st.text(max_size=5), json_values, st.sampled_from(["spec", "metadata"]))
def test_only_status_and_version_changes_skip_a_sync(
    status: object, version: str, value: object, section: str
) -> None:
    """A new status or resourceVersion alone never syncs the pod; any change elsewhere does."""
    updated = {
        **BOUND_POD,
        "metadata": {**BOUND_POD["metadata"], "resourceVersion": version},
        "status": status,
    }
    assert status_only_change(BOUND_POD, updated)
    changed = {**updated, section: {**updated[section], "x-changed": value}}
    assert not status_only_change(BOUND_POD, changed)
