"""The endpoints controller's pure core: Endpoints and EndpointSlices from a Service
and its pods (golden), properties of the slicing, and the incremental slice
reconciler: after any sequence of pod changes the slices hold what a from-scratch build
holds, and only slices whose content changes are rewritten; a plan of only the slices
holding endpoints changed in place is the whole Service's plan."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from minikube_py.controllers.endpoints import (
    MAX_ENDPOINTS_PER_SLICE,
    SlicePlan,
    desired_endpoints,
    desired_slices,
    mirror_slices,
    mirrors,
    plan_in_place,
    plan_slices,
    pod_member,
    slice_layout,
)

SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "d", "uid": "u1", "labels": {"t": "a"}},
    "spec": {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
    },
}


def pod(
    name: str, ip: str, port: int, ready: bool = True, deleting: bool = False, **spec: object
) -> dict:
    md: dict = {"name": name, "namespace": "d", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": md,
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}],
            **spec,
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_endpoints_golden() -> None:
    pods = [
        pod("a", "10.0.0.2", 8080, hostname="a", subdomain="web"),
        pod("b", "10.0.0.3", 8080, ready=False),
        pod("c", "10.0.0.4", 9090),
        pod("gone", "10.0.0.5", 8080, deleting=True),
        {**pod("noip", "", 8080)},
    ]
    ep = desired_endpoints(SVC, pods)
    ref = {"kind": "Pod", "namespace": "d"}
    assert ep["metadata"] == {"name": "web", "namespace": "d", "labels": {"t": "a"}}
    assert ep["subsets"] == [
        {
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "addresses": [
                {
                    "ip": "10.0.0.2",
                    "nodeName": "n1",
                    "hostname": "a",
                    "targetRef": {**ref, "name": "a", "uid": "uid-a"},
                }
            ],
            "notReadyAddresses": [
                {
                    "ip": "10.0.0.3",
                    "nodeName": "n1",
                    "targetRef": {**ref, "name": "b", "uid": "uid-b"},
                }
            ],
        },
        {
            "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}],
            "addresses": [
                {
                    "ip": "10.0.0.4",
                    "nodeName": "n1",
                    "targetRef": {**ref, "name": "c", "uid": "uid-c"},
                }
            ],
        },
    ]


def test_slices_golden() -> None:
    pods = [pod("a", "10.0.0.2", 8080), pod("gone", "10.0.0.5", 8080, deleting=True)]
    (s,) = desired_slices(SVC, pods)
    assert s["metadata"]["labels"] == {
        "t": "a",
        "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    assert s["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [(e["addresses"], e["conditions"]) for e in s["endpoints"]] == [
        (["10.0.0.2"], {"ready": True, "serving": True, "terminating": False}),
        (["10.0.0.5"], {"ready": False, "serving": True, "terminating": True}),
    ]


def test_publish_not_ready_addresses() -> None:
    svc = {**SVC, "spec": {**SVC["spec"], "publishNotReadyAddresses": True}}
    ep = desired_endpoints(svc, [pod("b", "10.0.0.3", 8080, ready=False)])
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == ["10.0.0.3"]
    (s,) = desired_slices(svc, [pod("b", "10.0.0.3", 8080, ready=False)])
    assert s["endpoints"][0]["conditions"]["ready"] is True


def test_no_pods_gives_one_empty_slice() -> None:
    (s,) = desired_slices(SVC, [])
    assert s["endpoints"] == []


def test_mirroring() -> None:
    svc = {**SVC, "spec": {"ports": [{"port": 443}]}}
    ep = {
        "metadata": {"name": "web"},
        "subsets": [
            {
                "addresses": [{"ip": "1.2.3.4"}],
                "notReadyAddresses": [{"ip": "1.2.3.5"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
            }
        ],
    }
    (s,) = mirror_slices(svc, ep)
    assert [(e["addresses"][0], e["conditions"]["ready"]) for e in s["endpoints"]] == [
        ("1.2.3.4", True),
        ("1.2.3.5", False),
    ]
    assert (
        s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
        == "endpointslicemirroring-controller.k8s.io"
    )
    skip = {**ep, "metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}}
    assert not mirrors(svc, skip)
    kube = {**svc, "metadata": {"name": "kubernetes", "namespace": "default"}}
    assert mirrors(kube, skip)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2000), st.booleans(), st.sampled_from([80, 81])),
        max_size=350,
        unique_by=lambda t: t[0],
    )
)
def test_slices_partition_the_endpoints(spec: list[tuple[int, bool, int]]) -> None:
    pods = [pod(f"p{i}", f"10.1.{i // 250}.{i % 250}", port, ready) for i, ready, port in spec]
    slices = desired_slices(SVC, pods)
    seen = [e["addresses"][0] for s in slices for e in s["endpoints"]]
    assert sorted(seen) == sorted(p["status"]["podIP"] for p in pods)
    assert all(len(s["endpoints"]) <= 100 for s in slices)
    assert len({s["metadata"]["name"] for s in slices}) == len(slices)
    for s in (s for s in slices if s["endpoints"]):
        want_port = s["ports"][0]["port"]
        ips = {e["addresses"][0] for e in s["endpoints"]}
        assert all(
            p["spec"]["containers"][0]["ports"][0]["containerPort"] == want_port
            for p in pods
            if p["status"]["podIP"] in ips
        )
    # a readiness flip changes exactly one slice
    if pods:
        flipped = [dict(p) for p in pods]
        first = min(flipped, key=lambda p: (p["status"]["podIP"], p["metadata"]["name"]))
        ready = first["status"]["conditions"][0]["status"] == "True"
        first["status"] = {
            **first["status"],
            "conditions": [{"type": "Ready", "status": "False" if ready else "True"}],
        }
        after = desired_slices(SVC, flipped)
        changed = [a for a, b in zip(slices, after, strict=True) if a != b]
        assert len(changed) == 1


# ---------------------------------------------------------------- incremental slices


def plan_for(pods: list[dict], existing: list[dict], svc: dict = SVC) -> SlicePlan:
    members = [m for m in (pod_member(svc, p) for p in pods) if m is not None]
    return plan_slices(svc, ((m.ports, m.endpoint) for m in members), existing)


def apply(existing: list[dict], plan: SlicePlan) -> list[dict]:
    """What the apiserver holds after the plan's writes (updates must carry the
    resourceVersion they replace; each write gets a new one)."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    version = max((int(s["metadata"]["resourceVersion"]) for s in existing), default=0)

    def stored(body: dict) -> dict:
        nonlocal version
        version += 1
        return {**body, "metadata": {**body["metadata"], "resourceVersion": str(version)}}

    for name in plan.delete:
        del by_name[name]
    for body in plan.update:
        name = body["metadata"]["name"]
        assert body["metadata"]["resourceVersion"] == by_name[name]["metadata"]["resourceVersion"]
        by_name[name] = stored(body)
    for body in plan.create:
        assert body["metadata"]["name"] not in by_name, "create over an existing slice"
        by_name[body["metadata"]["name"]] = stored(body)
    return list(by_name.values())


def content(slices: list[dict]) -> Counter:
    """The endpoints, with their ports, regardless of which slice holds them."""
    return Counter(
        (json_key(s["ports"]), json_key(e)) for s in slices for e in s.get("endpoints") or []
    )


def json_key(obj: object) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def many(n: int, ready: bool = True, start: int = 0) -> list[dict]:
    return [pod(f"p{i}", f"10.2.{i // 200}.{i % 200 + 1}", 8080, ready) for i in range(start, n)]


def test_readiness_flip_rewrites_only_its_slice() -> None:
    pods = many(250)
    slices = apply([], plan_for(pods, []))
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]
    pods[120] = pod("p120", pods[120]["status"]["podIP"], 8080, ready=False)
    plan = plan_for(pods, slices)
    assert (len(plan.create), len(plan.update), plan.delete) == (0, 1, [])
    (changed,) = plan.update
    before = next(s for s in slices if s["metadata"]["name"] == changed["metadata"]["name"])
    assert [e["addresses"] for e in changed["endpoints"]] == [
        e["addresses"] for e in before["endpoints"]
    ]
    assert plan_for(pods, apply(slices, plan)) == SlicePlan()  # settled: nothing to do


def test_new_endpoints_fill_changed_slices_first_then_the_fullest_that_fits() -> None:
    pods = many(250)
    slices = apply([], plan_for(pods, []))
    full = sorted(slices, key=lambda s: s["metadata"]["name"])[0]
    gone = full["endpoints"][0]["targetRef"]["name"]
    # one pod leaves a full slice and one arrives: it takes the freed place
    pods = [p for p in pods if p["metadata"]["name"] != gone] + many(251, start=250)
    plan = plan_for(pods, slices)
    assert (plan.create, plan.delete) == ([], [])
    assert [u["metadata"]["name"] for u in plan.update] == [full["metadata"]["name"]]
    slices = apply(slices, plan)
    # 30 more fit into the 50-endpoint slice, which alone is rewritten
    pods += many(281, start=251)
    plan = plan_for(pods, slices)
    assert (plan.create, plan.delete) == ([], [])
    assert [len(u["endpoints"]) for u in plan.update] == [80]
    slices = apply(slices, plan)
    # 30 more do not fit anywhere: a new slice, no rewrite of the others
    pods += many(311, start=281)
    plan = plan_for(pods, slices)
    assert (plan.update, plan.delete) == ([], [])
    assert [len(c["endpoints"]) for c in plan.create] == [30]


def test_emptied_slices_go_but_one_placeholder_stays() -> None:
    numeric = {**SVC, "spec": {**SVC["spec"], "ports": [{"port": 80, "targetPort": 8080}]}}
    pods = many(150)
    slices = apply([], plan_for(pods, [], numeric))
    assert len(slices) == 2
    plan = plan_for([], slices, numeric)
    assert (len(plan.delete), plan.create) == (1, [])  # one emptied slice is kept
    slices = apply(slices, plan)
    assert [s["endpoints"] for s in slices] == [[]]
    assert plan_for([], slices, numeric) == SlicePlan()
    again = apply(slices, plan_for(many(3), slices, numeric))
    assert len(again) == 1 and len(again[0]["endpoints"]) == 3
    # a named targetPort resolves through pods only: the placeholder has no ports
    named = apply([], plan_for(pods, []))
    plan = plan_for([], named)
    assert len(plan.delete) == 2
    assert [(c["ports"], c["endpoints"]) for c in plan.create] == [([], [])]


def test_port_and_label_changes_replace_or_relabel_slices() -> None:
    pods = many(120)
    slices = apply([], plan_for(pods, []))
    relabelled = {**SVC, "metadata": {**SVC["metadata"], "labels": {"t": "b"}}}
    plan = plan_for(pods, slices, relabelled)
    assert len(plan.update) == len(slices) and not plan.create and not plan.delete
    assert all(u["metadata"]["labels"]["t"] == "b" for u in plan.update)
    numeric = {**SVC, "spec": {**SVC["spec"], "ports": [{"name": "http", "port": 80}]}}
    plan = plan_for(pods, slices, numeric)
    assert sorted(plan.delete) == sorted(s["metadata"]["name"] for s in slices)
    assert {c["ports"][0]["port"] for c in plan.create} == {80}
    assert content(plan.create) == content(desired_slices(numeric, pods))


POD_CHANGES = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "ready", "unready", "port", "terminate"]),
        st.integers(0, 400),
    ),
    max_size=60,
)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 260), POD_CHANGES)
def test_incremental_slices_equal_a_rebuild(start: int, changes: list[tuple[str, int]]) -> None:
    """After any sequence of pod changes, each reconciled against the slices the last
    one left, the slices hold exactly what a from-scratch build holds, none over 100,
    names unique, and a second plan finds nothing to do."""
    pods = {f"p{i}": pod(f"p{i}", f"10.3.{i // 200}.{i % 200 + 1}", 8080) for i in range(start)}
    slices = apply([], plan_for(list(pods.values()), []))
    for action, i in changes:
        name, ip = f"p{i}", f"10.3.{i // 200}.{i % 200 + 1}"
        old = pods.get(name)
        if action == "add":
            pods[name] = pod(name, ip, 8080)
        elif old is None:
            continue
        elif action == "remove":
            del pods[name]
        elif action in ("ready", "unready"):
            pods[name] = pod(
                name,
                ip,
                old["spec"]["containers"][0]["ports"][0]["containerPort"],
                ready=action == "ready",
            )
        elif action == "port":
            pods[name] = pod(name, ip, 9090)
        else:
            pods[name] = pod(name, ip, 8080, deleting=True)
        before = {s["metadata"]["name"]: s for s in slices}
        plan = plan_for(list(pods.values()), slices)
        for body in plan.update:  # only slices whose content changes are written
            assert body["endpoints"] != before[body["metadata"]["name"]]["endpoints"]
        slices = apply(slices, plan)
        assert content(slices) == content(desired_slices(SVC, list(pods.values())))
        assert all(len(s["endpoints"]) <= MAX_ENDPOINTS_PER_SLICE for s in slices)
        assert len({s["metadata"]["name"] for s in slices}) == len(slices)
        assert all(s["endpoints"] for s in slices) or len(slices) == 1
        assert plan_for(list(pods.values()), slices) == SlicePlan()


IN_PLACE_CHANGES = st.lists(
    st.tuples(st.sampled_from(["ready", "unready", "terminate"]), st.integers(0, 260)),
    min_size=1,
    max_size=8,
)


def members_by_pod(pods: list[dict]) -> dict:
    return {f"d/{p['metadata']['name']}": m for p in pods if (m := pod_member(SVC, p)) is not None}


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 260), st.lists(IN_PLACE_CHANGES, max_size=6))
def test_in_place_plan_equals_the_whole_plan(start: int, rounds: list) -> None:
    """Readiness and termination changes, planned from the layout the last plan left,
    give exactly the whole Service's plan (the same slices rewritten, the same way)."""
    pods = {f"p{i}": pod(f"p{i}", f"10.4.{i // 200}.{i % 200 + 1}", 8080) for i in range(start)}
    slices = apply([], plan_for(list(pods.values()), []))
    layout = slice_layout(slices)
    for changes in rounds:
        changed = set()
        for action, i in changes:
            old = pods.get(f"p{i % start}")
            assert old is not None
            name, ip = old["metadata"]["name"], old["status"]["podIP"]
            pods[name] = pod(
                name, ip, 8080, ready=action == "ready", deleting=action == "terminate"
            )
            changed.add((ip, name))
        whole = plan_for(list(pods.values()), slices)
        members = members_by_pod(list(pods.values()))
        assert plan_in_place(SVC, slices, layout, changed, members) == whole
        slices = apply(slices, whole)
        assert slice_layout(slices) == layout  # in-place changes never move an endpoint


def test_in_place_plan_declines_what_is_not_in_place() -> None:
    pods = many(150)
    slices = apply([], plan_for(pods, []))
    layout = slice_layout(slices)
    members = members_by_pod(pods)
    assert plan_in_place(SVC, slices, layout, set(), members) == SlicePlan()
    gone = pods[7]["metadata"]["name"], pods[7]["status"]["podIP"]
    del members[f"d/{gone[0]}"]  # a removed pod: its slice must shrink, and others may fill
    assert plan_in_place(SVC, slices, layout, {(gone[1], gone[0])}, members) is None
    new = ("10.9.9.9", "p999")  # an endpoint no slice holds yet: placing it is a whole plan
    assert plan_in_place(SVC, slices, layout, {new}, members_by_pod(pods)) is None
    lost = slices[1:]  # a slice of the layout is gone
    some = next(k for k, name in layout.items() if name == slices[0]["metadata"]["name"])
    assert plan_in_place(SVC, lost, layout, {some}, members_by_pod(pods)) is None


def test_a_pod_on_a_missing_node_is_no_endpoint_unless_not_ready_ones_are_published() -> None:
    """As kube's reconciler: "skipping Pod for Service, Node not found"."""
    p = pod("a", "10.0.0.1", 8080)
    assert pod_member(SVC, p) is not None
    assert pod_member(SVC, p, node_exists=False) is None
    publishing = {**SVC, "spec": {**SVC["spec"], "publishNotReadyAddresses": True}}
    member = pod_member(publishing, p, node_exists=False)
    assert member is not None and member.endpoint["nodeName"] == "n1"
