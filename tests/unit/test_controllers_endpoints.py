"""The endpoints controller's pure core: Endpoints and EndpointSlices from a Service
and its pods (golden), and properties of the slicing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from minikube_py.controllers.endpoints import (
    desired_endpoints,
    desired_slices,
    mirror_slices,
    mirrors,
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


@settings(max_examples=30)
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
