"""The scheduler's pure core: filters in kube's order, kube's failure summary, and
the scoring (least allocated, same-owner spreading)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minikube_py.controllers.scheduler import filter_node, pod_requests, schedule, tolerates
from minikube_py.controllers.simnode import node_body


def pod(cpu: str | None = None, owner: str | None = None, **spec: object) -> dict:
    c: dict = {"name": "c", "image": "x"}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    md: dict = {"name": "p", "namespace": "d"}
    if owner:
        md["ownerReferences"] = [
            {"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}
        ]
    return {"metadata": md, "spec": {"containers": [c], **spec}}


def test_failure_summary_counts_each_reason_like_kube() -> None:
    nodes = [
        node_body("a", cpu="1"),
        node_body("b", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        node_body("c", labels={"disk": "hdd"}),
    ]
    nodes[2]["spec"]["unschedulable"] = True
    d = schedule(pod(cpu="2"), nodes, {})
    assert d.node is None
    assert d.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had "
        "untolerated taint {k: v}, 1 node(s) were unschedulable."
    )


def test_selector_affinity_and_tolerations() -> None:
    ssd = node_body("ssd", labels={"disk": "ssd"})
    gpu = node_body("gpu", taints=[{"key": "gpu", "effect": "NoSchedule"}])
    assert schedule(pod(nodeSelector={"disk": "ssd"}), [ssd, gpu], {}).node == "ssd"
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}
                ]
            }
        }
    }
    tol = [{"key": "gpu", "operator": "Exists"}]
    assert schedule(pod(affinity=affinity, tolerations=tol), [ssd, gpu], {}).node == "gpu"
    d = schedule(pod(affinity=affinity), [ssd, gpu], {})
    assert d.node is None and "didn't match Pod's node affinity/selector" in d.message


def test_host_ports_and_not_ready_nodes() -> None:
    hp = [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 80}]}]
    n = node_body("n")
    other = pod(containers=hp)
    assert filter_node(pod(containers=hp), n, [other]) == [
        "node(s) didn't have free ports for the requested pod ports"
    ]
    udp = [
        {
            "name": "c",
            "image": "x",
            "ports": [{"containerPort": 80, "hostPort": 80, "protocol": "UDP"}],
        }
    ]
    assert filter_node(pod(containers=udp), n, [other]) == []
    n["status"]["conditions"][-1]["status"] = "Unknown"
    assert filter_node(pod(), n, []) == ["node(s) were not ready"]


def test_too_many_pods() -> None:
    n = node_body("n", pods="2")
    assert filter_node(pod(), n, [pod(), pod()]) == ["Too many pods"]


def test_spreading_prefers_nodes_without_siblings() -> None:
    nodes = [node_body("a"), node_body("b")]
    placed = {"a": [pod(owner="rs1")]}
    assert schedule(pod(owner="rs1"), nodes, placed).node == "b"
    assert schedule(pod(owner="rs2", cpu="1"), nodes, {"b": [pod(cpu="3")]}).node == "a"


def test_pods_without_requests_spread_by_kubes_scoring_defaults() -> None:
    nodes = [node_body("a"), node_body("b")]
    placed: dict[str, list[dict]] = {"a": [], "b": []}
    for _ in range(6):  # bare pods: no owner to spread by, no requests to compare
        chosen = schedule(pod(), nodes, placed).node
        assert chosen is not None
        placed[chosen].append(pod())
    assert [len(placed["a"]), len(placed["b"])] == [3, 3]
    # filtering still counts only real requests: defaults never make a pod unschedulable
    assert pod_requests(pod()) == {"pods": 1}


def test_init_containers_and_limits_count_as_requests() -> None:
    p = pod()
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
    p["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1Gi"}}
    r = pod_requests(p)
    assert r["cpu"] == 2 and r["memory"] == 2**30 and r["pods"] == 1


@given(
    st.lists(st.integers(min_value=0, max_value=4000), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=4000),
)
def test_a_chosen_node_always_has_room(free_millis: list[int], want: int) -> None:
    nodes = [node_body(f"n{i}", cpu=f"{m}m") for i, m in enumerate(free_millis)]
    d = schedule(pod(cpu=f"{want}m"), nodes, {})
    fits = [f"n{i}" for i, m in enumerate(free_millis) if m >= want]
    if fits:
        assert d.node in fits
        # least allocated: the roomiest node wins
        assert free_millis[int(d.node[1:])] == max(free_millis)
    else:
        assert d.node is None and f"{len(nodes)} Insufficient cpu" in d.message


@given(
    st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"]),
    st.sampled_from(["", "NoSchedule", "NoExecute"]),
    st.booleans(),
)
def test_toleration_effects(taint_effect: str, tol_effect: str, exists: bool) -> None:
    taint = {"key": "k", "value": "v", "effect": taint_effect}
    tol: dict = {"key": "k", "operator": "Exists" if exists else "Equal", "value": "v"}
    if tol_effect:
        tol["effect"] = tol_effect
    assert tolerates([tol], taint) == (tol_effect in ("", taint_effect))
