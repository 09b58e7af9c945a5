"""Pure cores of leader election, node lifecycle, the garbage collectors and the
address allocators."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from minikube_py.controllers.common import bound_node
from minikube_py.controllers.gc import finalizer_plan, owner_verdict
from minikube_py.controllers.ipam import choose_lb_ip, choose_pod_cidr, parse_pool, requested_ip
from minikube_py.controllers.leader import decide
from minikube_py.controllers.nodelifecycle import (
    evictions,
    node_health,
    unknown_conditions,
    wanted_taints,
)
from minikube_py.controllers.podgc import orphan_status
from minikube_py.controllers.simnode import node_body


def test_leader_decisions() -> None:
    assert decide(None, "me", 0, 15) == "acquire"
    assert decide({"holderIdentity": "me"}, "me", 99, 15) == "renew"
    held = {"holderIdentity": "other", "leaseDurationSeconds": 15}
    assert decide(held, "me", 14.9, 15) == "standby"
    assert decide(held, "me", 15.1, 15) == "acquire"
    assert decide({"holderIdentity": ""}, "me", 0, 15) == "acquire"  # released


def test_node_goes_unknown_with_kube_reason() -> None:
    assert node_health(9.9, 10, True) == "ok"
    assert node_health(10.1, 10, True) == "unknown"
    assert node_health(10.1, 10, False) == "never"
    node = node_body("n")
    conds = {c["type"]: c for c in unknown_conditions(node, "unknown", "T")}
    assert conds["Ready"]["status"] == "Unknown"
    assert conds["Ready"]["reason"] == "NodeStatusUnknown"
    assert conds["Ready"]["message"] == "Kubelet stopped posting node status."
    assert conds["MemoryPressure"]["status"] == "Unknown"
    node["status"]["conditions"] = list(conds.values())
    taints = wanted_taints(node, "T")
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
    node["spec"]["taints"] = [*taints, {"key": "mine", "effect": "NoSchedule"}]
    node["status"]["conditions"][-1]["status"] = "True"
    for c in node["status"]["conditions"]:
        if c["type"] == "Ready":
            c["status"] = "True"
    assert wanted_taints(node, "T") == [{"key": "mine", "effect": "NoSchedule"}]


def test_evictions_follow_tolerations() -> None:
    node = node_body("n")
    node["spec"]["taints"] = [
        {
            "key": "node.kubernetes.io/unreachable",
            "effect": "NoExecute",
            "timeAdded": "2026-01-01T00:00:00Z",
        }
    ]
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z

    def pod(name: str, tolerations: list[dict]) -> dict:
        return {"metadata": {"name": name}, "spec": {"tolerations": tolerations}}

    short = pod(
        "short",
        [
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 5,
            }
        ],
    )
    forever = pod("forever", [{"operator": "Exists"}])
    plain = pod("plain", [])
    due, wait = evictions(node, [short, forever, plain], t0 + 1, eviction_timeout=30)
    assert due == [] and wait == 4
    due, wait = evictions(node, [short, forever, plain], t0 + 6, eviction_timeout=30)
    assert due == [short] and wait == 24
    due, _ = evictions(node, [short, forever, plain], t0 + 31, eviction_timeout=30)
    assert due == [short, plain]


def test_garbage_collector_decisions() -> None:
    refs = [{"uid": "a"}, {"uid": "b"}]
    assert owner_verdict(refs, {"a", "b"}) == "keep"
    assert owner_verdict(refs, {"a"}) == "prune"
    assert owner_verdict(refs, set()) == "delete"
    assert owner_verdict([], set()) == "keep"
    dep_blocking = {"metadata": {"ownerReferences": [{"uid": "o", "blockOwnerDeletion": True}]}}
    dep_free = {"metadata": {"ownerReferences": [{"uid": "o"}]}}
    owner = {
        "metadata": {"uid": "o", "deletionTimestamp": "T", "finalizers": ["foregroundDeletion"]}
    }
    assert finalizer_plan(owner, [dep_blocking, dep_free]) == ("foreground", [dep_blocking])
    owner["metadata"]["finalizers"] = ["orphan"]
    assert finalizer_plan(owner, [dep_blocking, dep_free]) == ("orphan", [dep_blocking, dep_free])
    del owner["metadata"]["deletionTimestamp"]
    assert finalizer_plan(owner, [dep_free]) == ("", [])


def test_lb_allocation_rules() -> None:
    pool = parse_pool("192.168.49.200-192.168.49.202")
    assert pool == ["192.168.49.200", "192.168.49.201", "192.168.49.202"]
    assert choose_lb_ip("a", None, pool, {}) == ("192.168.49.200", "")
    assert choose_lb_ip("a", None, pool, {"a": "192.168.49.200"}) == ("192.168.49.200", "")
    assert choose_lb_ip("b", "192.168.49.202", pool, {"a": "192.168.49.200"}) == (
        "192.168.49.202",
        "",
    )
    ip, why = choose_lb_ip("b", "192.168.49.200", pool, {"a": "192.168.49.200"})
    assert ip is None and why == 'requested IP "192.168.49.200" is already allocated to a'
    ip, why = choose_lb_ip("b", "10.0.0.1", pool, {})
    assert ip is None and "not in the pool" in why
    full = {str(i): ip for i, ip in enumerate(pool)}
    assert choose_lb_ip("z", None, pool, full) == (
        None,
        "no available IPs in pool 192.168.49.200-192.168.49.202",
    )
    svc = {
        "metadata": {"annotations": {"minikube-py.io/load-balancer-ips": "1.1.1.1, 2.2.2.2"}},
        "spec": {"loadBalancerIP": "3.3.3.3"},
    }
    assert requested_ip(svc) == "1.1.1.1"


@given(st.lists(st.integers(0, 30), unique=True, max_size=31))
def test_pod_cidr_is_the_lowest_free_one(used_idx: list[int]) -> None:
    used = {f"10.244.{i}.0/24" for i in used_idx}
    got = choose_pod_cidr("10.244.0.0/19", used)
    free = [i for i in range(32) if i not in used_idx]
    assert got == f"10.244.{free[0]}.0/24"


def test_pod_cidrs_run_out() -> None:
    assert choose_pod_cidr("10.244.0.0/23", {"10.244.0.0/24", "10.244.1.0/24"}) is None


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=30))
def test_lb_never_hands_out_an_address_twice(keys: list[str]) -> None:
    pool = parse_pool("10.0.0.1-10.0.0.3")
    assigned: dict[str, str] = {}
    for k in keys:
        if k in assigned and len(keys) % 2:
            del assigned[k]  # released
            continue
        ip, _ = choose_lb_ip(k, None, pool, assigned)
        if ip:
            assigned[k] = ip
        assert len(set(assigned.values())) == len(assigned)


def test_orphan_status_marks_disruption_and_fails_a_live_pod() -> None:
    pod = {
        "spec": {"nodeName": "gone"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    status = orphan_status(pod, "2026-11-29T10:00:00Z")
    assert status["phase"] == "Failed"
    assert {"type": "Ready", "status": "True"} in status["conditions"]
    (mark,) = [c for c in status["conditions"] if c["type"] == "DisruptionTarget"]
    assert mark == {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByPodGC",
        "message": "PodGC: node no longer exists",
        "lastTransitionTime": "2026-11-29T10:00:00Z",
    }
    assert pod["status"]["phase"] == "Running"  # the cached pod is left alone


@given(st.sampled_from(["Succeeded", "Failed"]))
def test_orphan_status_keeps_a_terminal_phase(phase: str) -> None:
    assert orphan_status({"status": {"phase": phase}}, "t")["phase"] == phase


def test_pods_are_indexed_by_their_node_only_once_bound() -> None:
    assert bound_node({"spec": {"nodeName": "n1"}}) == ["n1"]
    assert bound_node({"spec": {}}) == []
