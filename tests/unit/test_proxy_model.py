"""The proxy plan follows Kubernetes' endpoint semantics (fixture: golden/proxy/fixture.yaml)."""

from pathlib import Path

import pytest
import yaml

from agent.proxy.model import Endpoint, NodeFacts, Plan, ServicePort, build_plan, plan_service

FIXTURE = yaml.safe_load((Path(__file__).parent / "golden/proxy/fixture.yaml").read_text())
NODE = NodeFacts(
    FIXTURE["node"]["name"], FIXTURE["node"]["clusterCIDR"], tuple(FIXTURE["node"]["ips"])
)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(FIXTURE["services"], FIXTURE["endpointslices"], NODE)


def port(plan: Plan, service: str, index: int = 0) -> ServicePort:
    return plan[f"default/{service}"][index]


def test_externalname_and_headless_services_get_no_plan(plan: Plan) -> None:
    assert "default/ext" not in plan
    assert "default/headless" not in plan


def test_named_target_port_is_resolved_per_slice_and_not_ready_excluded(plan: Plan) -> None:
    by_name = {p.port_name: p for p in plan["default/web"]}
    assert by_name["http"].cluster_endpoints == (
        Endpoint("10.244.1.2", 8080),
        Endpoint("10.244.1.3", 9090),
        Endpoint("10.244.2.2", 8080),
    )
    assert by_name["dns"].protocol == "udp"
    assert [e.port for e in by_name["dns"].cluster_endpoints] == [5353, 5353, 5353]
    # the IPv6 slice is ignored, and so is the not-ready 10.244.1.9
    assert all(e.ip != "10.244.1.9" for e in by_name["http"].cluster_endpoints)


def test_serving_terminating_endpoints_are_the_fallback(plan: Plan) -> None:
    draining = port(plan, "draining")
    assert draining.cluster_endpoints == (Endpoint("10.244.1.10", 80),)
    assert draining.has_endpoints


def test_ready_endpoints_win_over_terminating_ones() -> None:
    service = {
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"clusterIP": "10.96.1.1", "ports": [{"port": 80}]},
    }
    endpoints = [
        {
            "addresses": ["10.244.1.1"],
            "conditions": {"ready": False, "serving": True, "terminating": True},
        },
        {"addresses": ["10.244.1.2"], "conditions": {"ready": True}},
    ]
    slices = [
        {
            "metadata": {"name": "s-1", "namespace": "n"},
            "ports": [{"port": 80}],
            "endpoints": endpoints,
        }
    ]
    (sp,) = plan_service(service, slices, NODE)
    assert sp.cluster_endpoints == (Endpoint("10.244.1.2", 80),)


def test_no_endpoints_means_no_internal_or_external_destination(plan: Plan) -> None:
    empty = port(plan, "empty")
    assert not empty.has_endpoints and not empty.has_internal_endpoints


def test_affinity_timeout_and_default() -> None:
    service = {
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"clusterIP": "10.96.1.1", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]},
    }
    assert plan_service(service, [], NODE)[0].affinity_seconds == 10800


def test_external_traffic_policy_local(plan: Plan) -> None:
    local = port(plan, "lb-local")
    assert local.external_policy_local and local.load_balancer_ips == ("192.168.49.200",)
    assert local.local_endpoints == (Endpoint("10.244.1.6", 80),)
    assert len(local.cluster_endpoints) == 2  # ClusterIP traffic still uses every endpoint
    remote = port(plan, "lb-remote")
    assert remote.has_endpoints and not remote.has_external_endpoints
    assert remote.has_internal_endpoints


def test_internal_traffic_policy_local_without_local_endpoint(plan: Plan) -> None:
    itp = port(plan, "itp-local")
    assert itp.has_endpoints and not itp.has_internal_endpoints
    assert itp.reachable_endpoints == ()


def test_node_ports_only_for_node_port_and_load_balancer_types() -> None:
    spec = {"clusterIP": "10.96.1.1", "ports": [{"port": 80, "nodePort": 30001}]}
    service = {"metadata": {"name": "s", "namespace": "n"}, "spec": spec}
    assert plan_service(service, [], NODE)[0].node_port == 0
    spec["type"] = "NodePort"
    assert plan_service(service, [], NODE)[0].node_port == 30001


def test_load_balancer_ingress_in_proxy_mode_is_not_captured() -> None:
    service = {
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.1.1", "ports": [{"port": 80}]},
        "status": {
            "loadBalancer": {
                "ingress": [{"ip": "192.168.49.210", "ipMode": "Proxy"}, {"ip": "192.168.49.211"}]
            }
        },
    }
    assert plan_service(service, [], NODE)[0].load_balancer_ips == ("192.168.49.211",)


def test_source_ranges_are_normalized_and_the_annotation_is_the_fallback(plan: Plan) -> None:
    assert port(plan, "lb-fw").load_balancer_source_ranges == ("192.168.49.0/24", "203.0.113.7/32")
    # the field is empty: the annotation counts, its invalid entry is ignored
    assert port(plan, "lb-fw-annotation").load_balancer_source_ranges == ("198.51.100.0/24",)
    assert port(plan, "lb-fw").uses_firewall and port(plan, "lb-fw-annotation").uses_firewall


def test_source_ranges_restrict_only_load_balancer_ips() -> None:
    spec = {"clusterIP": "10.96.0.40", "ports": [{"port": 80, "nodePort": 30090}]}
    spec["loadBalancerSourceRanges"] = ["10.0.0.0/8"]
    for kind, status in [("NodePort", {}), ("LoadBalancer", {"loadBalancer": {"ingress": []}})]:
        service = {"metadata": {"name": "s", "namespace": "default"}, "spec": dict(spec, type=kind)}
        (sp,) = plan_service(dict(service, status=status), [], NODE)
        assert not sp.uses_firewall and sp.load_balancer_source_ranges == ()


def test_a_range_holding_a_node_ip_lets_the_load_balancer_ips_through(plan: Plan) -> None:
    lb_fw = port(plan, "lb-fw")  # 192.168.49.0/24 holds the node's 192.168.49.2
    assert lb_fw.firewall_sources(NODE) == (
        "192.168.49.0/24",
        "203.0.113.7/32",
        "192.168.49.202/32",
    )
    elsewhere = NodeFacts("node-a", ips=("172.16.0.5",))
    assert lb_fw.firewall_sources(elsewhere) == ("192.168.49.0/24", "203.0.113.7/32")
