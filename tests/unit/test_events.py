"""Events as the controllers and the agents write them: the body kube's recorders make,
and the kubelet's pacing of a burst (`TokenBucket`)."""

from __future__ import annotations

from minikube_py.events import TokenBucket, event_body

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "9"},
}


def test_an_agents_event_names_its_container_and_node() -> None:
    body = event_body(
        POD, "Normal", "Started", "Started container app", "kubelet",
        "2026-11-29T10:00:00Z", "abc", "spec.containers{app}", "node-a",
    )  # fmt: skip
    assert body["metadata"] == {"name": "web-1.abc", "namespace": "shop"}
    assert body["involvedObject"] == {
        "kind": "Pod", "apiVersion": "v1", "name": "web-1", "namespace": "shop",
        "uid": "u-1", "resourceVersion": "9", "fieldPath": "spec.containers{app}",
    }  # fmt: skip
    assert body["source"] == {"component": "kubelet", "host": "node-a"}
    assert (body["reportingComponent"], body["reportingInstance"]) == ("kubelet", "node-a")
    assert (body["count"], body["firstTimestamp"]) == (1, "2026-11-29T10:00:00Z")


def test_a_controllers_event_has_no_field_or_host() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "uid": "u"}}
    body = event_body(node, "Warning", "NodeNotReady", "m", "controller-manager", "t", "x")
    assert body["metadata"]["namespace"] == "default"  # cluster-scoped: kube's choice
    assert "fieldPath" not in body["involvedObject"]
    assert body["source"] == {"component": "controller-manager"}


def test_the_bucket_lets_a_burst_through_then_paces_at_qps() -> None:
    bucket = TokenBucket(qps=50.0, burst=100, now=0.0)
    waits = [bucket.take(0.0) for _ in range(103)]
    assert waits[:100] == [0.0] * 100
    assert [round(w, 3) for w in waits[100:]] == [0.02, 0.04, 0.06]


def test_the_bucket_refills_while_quiet_but_never_beyond_its_burst() -> None:
    bucket = TokenBucket(qps=10.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert round(bucket.take(0.0), 3) == 0.1  # owed: the next token comes in 0.1 s
    # an hour later only `burst` sends go at once
    assert [bucket.take(3600.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert round(bucket.take(3600.0), 3) == 0.1
