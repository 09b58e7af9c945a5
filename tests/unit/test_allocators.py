"""ClusterIP and NodePort pickers, and the claims a Service holds."""

import ipaddress
import random

from hypothesis import given
from hypothesis import strategies as st

from apiserver import allocators

RANGES = allocators.Ranges(ipaddress.IPv4Network("10.96.0.0/28"), (30000, 30009))


@given(st.sets(st.integers(1, 14), max_size=14), st.integers(0, 2**32))
def test_pick_ip_returns_a_free_address_in_range_or_none_when_full(
    taken_hosts: set[int], seed: int
) -> None:
    taken = {f"10.96.0.{h}" for h in taken_hosts}
    ip = allocators.pick_ip(RANGES, taken, random.Random(seed))
    if len(taken) == 14:
        assert ip is None
    else:
        assert ip is not None and ip not in taken and RANGES.ip_in_range(ip)


@given(st.sets(st.integers(30000, 30009)), st.integers(0, 2**32))
def test_pick_port_returns_a_free_port_or_none_when_full(taken: set[int], seed: int) -> None:
    port = allocators.pick_port(RANGES, taken, random.Random(seed))
    if len(taken) == 10:
        assert port is None
    else:
        assert port is not None and port not in taken and 30000 <= port <= 30009


def test_network_and_broadcast_are_out_of_range() -> None:
    assert not RANGES.ip_in_range("10.96.0.0")
    assert not RANGES.ip_in_range("10.96.0.15")
    assert not RANGES.ip_in_range("not-an-ip")
    assert RANGES.ip_in_range("10.96.0.1")


def test_claims_of_each_service_type() -> None:
    node_port = {
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.5",
            "ports": [{"port": 80, "nodePort": 30001}],
        }
    }
    assert allocators.claimed_keys(node_port) == {
        allocators.IP_PREFIX + "10.96.0.5",
        allocators.PORT_PREFIX + "30001",
    }
    headless = {"spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
    assert allocators.claimed_keys(headless) == set()
    assert not allocators.needs_cluster_ip(headless)
    external = {"spec": {"type": "ExternalName", "externalName": "x.example.com"}}
    assert not allocators.needs_cluster_ip(external)
    assert not allocators.needs_node_ports(external)
