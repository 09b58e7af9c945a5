"""Which UDP conntrack entries a change leaves stale."""

from dataclasses import replace

from agent.proxy.conntrack import stale_udp_flows
from agent.proxy.model import Endpoint, ServicePort

A = Endpoint("10.244.1.2", 5353)
B = Endpoint("10.244.2.2", 5353)
DNS = ServicePort(
    namespace="kube-system",
    service="dns",
    port_name="dns",
    protocol="udp",
    cluster_ip="10.96.0.10",
    port=53,
    node_port=30053,
    cluster_endpoints=(A, B),
    has_endpoints=True,
)


def test_removed_endpoint_flows_are_deleted_for_every_service_address() -> None:
    after = replace(DNS, cluster_endpoints=(B,))
    reply = ["--reply-src", "10.244.1.2", "--reply-port-src", "5353"]
    assert stale_udp_flows([DNS], [after]) == [
        ["-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53", *reply],
        ["-D", "-p", "udp", "--orig-port-dst", "30053", *reply],
    ]


def test_deleted_service_flushes_all_its_endpoints() -> None:
    flows = stale_udp_flows([DNS], [])
    assert {f[f.index("--reply-src") + 1] for f in flows} == {"10.244.1.2", "10.244.2.2"}


def test_first_endpoint_flushes_flows_to_the_service_addresses() -> None:
    before = replace(DNS, cluster_endpoints=(), has_endpoints=False, node_port=0)
    after = replace(DNS, node_port=0)
    assert stale_udp_flows([before], [after]) == [
        ["-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53"]
    ]


def test_tcp_and_unchanged_services_need_nothing() -> None:
    assert stale_udp_flows([DNS], [DNS]) == []
    tcp = replace(DNS, protocol="tcp")
    assert stale_udp_flows([tcp], [replace(tcp, cluster_endpoints=())]) == []
