"""The lab's host network on the real kernel: bridge, node namespaces, host routes.

Each test uses its own cluster name and node subnet, and removes what it made by that
exact name. Traffic goes only between the test's own namespaces.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import docker
import pytest

from minikube_py import labnet

pytestmark = pytest.mark.e2e


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def route_get(address: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "route", "get", address]
    return run(labnet.netns_command(netns, argv) if netns else argv)


@pytest.fixture
def cluster(docker_engine: docker.DockerClient) -> Iterator[tuple[str, str]]:
    """(cluster name, node subnet), both unique; dockerd runs so FORWARD drops by default."""
    name = "t" + secrets.token_hex(3)
    subnet = f"192.168.{200 + secrets.randbelow(50)}.0/24"
    labnet.stale_cleanup(name)
    yield name, subnet
    labnet.stale_cleanup(name)


def test_nodes_talk_over_the_bridge_and_cluster_ranges_stay_local(
    cluster: tuple[str, str],
) -> None:
    name, subnet = cluster
    assert "-P FORWARD DROP" in run(["iptables", "-S", "FORWARD"]).stdout
    prefix = subnet.rsplit(".", 1)[0]
    labnet.create_node_network(name, subnet)
    node1 = labnet.add_node(name, 1, pod_cidr="10.244.201.0/24")
    node2 = labnet.add_node(name, 2, pod_cidr="10.244.202.0/24")
    assert labnet.add_node(name, 1, pod_cidr="10.244.201.0/24") == node1  # idempotent
    assert (node1.ip, node2.ip) == (f"{prefix}.2", f"{prefix}.3")
    assert node1.netns == f"mkpy-{name}-n1"

    # Node to node across the host bridge, despite Docker's FORWARD policy.
    ping = run(node1.command(["busybox", "ping", "-c", "1", "-W", "2", node2.ip]))
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "default via " + f"{prefix}.1" in run(node1.command(["ip", "route"])).stdout

    # Cluster ranges never follow the host's default route.
    for address in ("10.244.99.9", "10.96.0.10"):
        got = route_get(address)
        assert got.returncode != 0 and "No route to host" in got.stderr, got
    assert f"via {node1.ip} dev mkpy-{name}" in route_get("10.244.201.7").stdout
    assert f"dev mkpy-{name}" in route_get(f"{prefix}.200").stdout  # LoadBalancer pool
    # From a node, cluster ranges go to the host (which refuses them), not elsewhere.
    assert f"via {prefix}.1 dev eth0" in route_get("10.96.0.10", node2.netns).stdout

    labnet.remove_node(name, 2)
    assert node2.netns not in run(["ip", "netns", "list"]).stdout
    node2_route = run(["ip", "route", "show", "10.244.202.0/24"]).stdout
    assert f"metric {labnet.route_metric(name)}" not in node2_route
    assert "10.244.201.0/24" in run(["ip", "route", "show", "10.244.201.0/24"]).stdout

    removed = labnet.delete_network(name)
    assert f"link mkpy-{name}" in removed and f"netns {node1.netns}" in removed
    assert_nothing_left(name)


def test_stale_cleanup_removes_leftovers_of_a_crashed_run(cluster: tuple[str, str]) -> None:
    name, subnet = cluster
    labnet.create_node_network(name, subnet)
    labnet.add_node(name, 1, pod_cidr="10.244.203.0/24")
    labnet.add_node(name, 3)
    # A host veth on the bridge whose namespace never came up.
    stray = labnet.host_veth_name(name, 7)
    assert (
        run(["ip", "link", "add", stray, "type", "veth", "peer", "name", stray + "p"]).returncode
        == 0
    )
    assert run(["ip", "link", "set", stray, "master", f"mkpy-{name}"]).returncode == 0

    removed = labnet.stale_cleanup(name)
    assert f"link {stray}" in removed
    assert_nothing_left(name)


def test_cluster_names_must_fit_interface_names() -> None:
    with pytest.raises(labnet.LabNetworkError):
        labnet.bridge_name("much-too-long")
    with pytest.raises(labnet.LabNetworkError):
        labnet.bridge_name("Upper")
    assert len(labnet.host_veth_name("abcdefghij", 999)) <= 15


def assert_nothing_left(name: str) -> None:
    assert run(["ip", "link", "show", f"mkpy-{name}"]).returncode != 0
    assert f"mkpy-{name}-" not in run(["ip", "netns", "list"]).stdout
    routes = run(["ip", "route"]).stdout.split()
    assert str(labnet.route_metric(name)) not in routes
    assert f"mkpy:{name}" not in run(["iptables", "-S"]).stdout
    for index in (1, 2, 3, 7):
        assert run(["ip", "link", "show", labnet.host_veth_name(name, index)]).returncode != 0
