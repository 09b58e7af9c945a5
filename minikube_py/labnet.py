"""The host side of a lab: the node network every node namespace hangs on (root only).

For a cluster named C:
- host bridge `mkpy-C` with the first address of the node subnet (192.168.49.1/24);
- node i: network namespace `mkpy-C-n<i>` joined to the bridge by a veth (host end
  `mkpy<hash of C>n<i>`, node end `eth0`) with address .(i+1), lo up, and a default route
  via the bridge address;
- host routes that keep every cluster range local: `unreachable` for the pod CIDR and
  the service CIDR, and each node's pod CIDR via the node (more specific, so the host
  reaches pods). The LoadBalancer pool lies inside the node subnet, already on the bridge;
- iptables rules (docker_engine.ensure_forward_rules) letting the bridge forward to
  itself despite Docker's DROP policy, and nowhere else.

Host routes carry the routing protocol `LAB_ROUTE_PROTO` and a metric derived from the
cluster name, so two clusters' `unreachable` routes are distinct objects and each cluster
removes exactly its own. Everything else is found by exact name, so `stale_cleanup` can
remove a cluster's leftovers after a crash without touching anything it did not make.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import zlib
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError

from minikube_py.docker_engine import ensure_forward_rules, remove_forward_rules

LAB_ROUTE_PROTO = 168
DEFAULT_SUBNET = "192.168.49.0/24"
DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
NODE_IFNAME = "eth0"
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$")


class LabNetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeNet:
    cluster: str
    index: int
    netns: str
    ip: str
    host_veth: str

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this node's namespace (hand it to subprocess)."""
        return netns_command(self.netns, argv)


def netns_command(netns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def bridge_name(cluster: str) -> str:
    if not _CLUSTER_NAME.match(cluster):
        raise LabNetworkError(
            f"cluster name {cluster!r}: 1-10 lowercase letters, digits or '-' "
            "(the host bridge `mkpy-<cluster>` must fit the 15-character interface names)"
        )
    return f"mkpy-{cluster}"


def netns_name(cluster: str, index: int) -> str:
    return f"mkpy-{cluster}-n{index}"


def host_veth_name(cluster: str, index: int) -> str:
    if not 1 <= index <= 999:
        raise LabNetworkError(f"node index {index} outside 1..999")
    return f"mkpy{hashlib.sha256(cluster.encode()).hexdigest()[:7]}n{index}"


def route_metric(cluster: str) -> int:
    """The metric of the cluster's host routes: its identity among other clusters'."""
    return 1000 + zlib.crc32(cluster.encode()) % 1_000_000


def node_ip(subnet: str, index: int) -> str:
    network = ipaddress.IPv4Network(subnet)
    address = network.network_address + index + 1
    if address >= network.broadcast_address:
        raise LabNetworkError(f"node {index} does not fit in {subnet}")
    return str(address)


def _bridge_address(ipr: IPRoute, cluster: str) -> ipaddress.IPv4Interface:
    links = ipr.link_lookup(ifname=bridge_name(cluster))
    if not links:
        raise LabNetworkError(f"no node network for cluster {cluster}: create it first")
    for address in ipr.get_addr(index=links[0], family=2):
        return ipaddress.IPv4Interface(f"{address.get_attr('IFA_ADDRESS')}/{address['prefixlen']}")
    raise LabNetworkError(f"bridge {bridge_name(cluster)} has no IPv4 address")


def create_node_network(
    cluster: str,
    subnet: str = DEFAULT_SUBNET,
    pod_cidr: str = DEFAULT_POD_CIDR,
    service_cidr: str = DEFAULT_SERVICE_CIDR,
) -> None:
    """The host bridge, the host routes keeping cluster ranges local, the forward rules."""
    bridge = bridge_name(cluster)
    network = ipaddress.IPv4Network(subnet)
    metric = route_metric(cluster)
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=bridge):
            ipr.link("add", ifname=bridge, kind="bridge")
        index = ipr.link_lookup(ifname=bridge)[0]
        with contextlib.suppress(NetlinkError):  # already present
            ipr.addr(
                "add",
                index=index,
                address=str(network.network_address + 1),
                prefixlen=network.prefixlen,
            )
        ipr.link("set", index=index, state="up")
        for cidr in (pod_cidr, service_cidr):
            ipr.route(
                "replace", dst=cidr, type="unreachable", priority=metric, proto=LAB_ROUTE_PROTO
            )
    ensure_forward_rules(cluster, bridge)


def add_node(cluster: str, index: int, pod_cidr: str | None = None) -> NodeNet:
    """Node `index` (1, 2, ...): its namespace on the bridge; idempotent.

    With `pod_cidr`, the host also routes that CIDR to the node.
    """
    netns = netns_name(cluster, index)
    host_veth = host_veth_name(cluster, index)
    with IPRoute() as ipr:
        bridge_address = _bridge_address(ipr, cluster)
        ip = node_ip(str(bridge_address.network), index)
        if netns not in pyroute2_netns.listnetns():
            pyroute2_netns.create(netns)
        if not ipr.link_lookup(ifname=host_veth):
            ipr.link(
                "add",
                ifname=host_veth,
                kind="veth",
                peer={"ifname": NODE_IFNAME, "net_ns_fd": netns},
            )
        host_index = ipr.link_lookup(ifname=host_veth)[0]
        ipr.link("set", index=host_index, master=ipr.link_lookup(ifname=bridge_name(cluster))[0])
        ipr.link("set", index=host_index, state="up")
        if pod_cidr is not None:
            ipr.route(
                "replace",
                dst=pod_cidr,
                gateway=ip,
                priority=route_metric(cluster),
                proto=LAB_ROUTE_PROTO,
            )
    with IPRoute(netns=netns, flags=0) as node:
        eth0 = node.link_lookup(ifname=NODE_IFNAME)[0]
        with contextlib.suppress(NetlinkError):  # already present
            node.addr("add", index=eth0, address=ip, prefixlen=bridge_address.network.prefixlen)
        node.link("set", index=eth0, state="up")
        node.link("set", index=node.link_lookup(ifname="lo")[0], state="up")
        node.route("replace", dst="0.0.0.0/0", gateway=str(bridge_address.ip))
    return NodeNet(cluster=cluster, index=index, netns=netns, ip=ip, host_veth=host_veth)


def remove_node(cluster: str, index: int) -> None:
    """Remove node `index`: its namespace, its veth and its host pod route."""
    netns = netns_name(cluster, index)
    with IPRoute() as ipr:
        with contextlib.suppress(LabNetworkError):
            gateway = node_ip(str(_bridge_address(ipr, cluster).network), index)
            for route in _owned_routes(ipr, cluster):
                if route.get_attr("RTA_GATEWAY") == gateway:
                    ipr.route("del", **_route_key(route))
        for link in ipr.link_lookup(ifname=host_veth_name(cluster, index)):
            ipr.link("del", index=link)
    if netns in pyroute2_netns.listnetns():
        pyroute2_netns.remove(netns)


def _owned_routes(ipr: IPRoute, cluster: str) -> list[Any]:
    metric = route_metric(cluster)
    return [
        route
        for route in ipr.get_routes(family=2, proto=LAB_ROUTE_PROTO)
        if route.get_attr("RTA_PRIORITY") == metric
    ]


def _route_key(route: Any) -> dict[str, Any]:
    return {
        "dst": f"{route.get_attr('RTA_DST')}/{route['dst_len']}",
        "priority": route.get_attr("RTA_PRIORITY"),
        "proto": route["proto"],
        "type": route["type"],
    }


def _node_namespaces(cluster: str) -> list[tuple[int, str]]:
    pattern = re.compile(rf"^{re.escape(netns_name(cluster, 0))[:-1]}(\d+)$")
    found = []
    for name in pyroute2_netns.listnetns():
        match = pattern.match(name)
        if match:
            found.append((int(match.group(1)), name))
    return sorted(found)


def stale_cleanup(cluster: str) -> list[str]:
    """Remove everything of this cluster's node network, made now or by a crashed run.

    Returns what it removed, for the caller to report.
    """
    bridge = bridge_name(cluster)
    removed = []
    for index, netns in _node_namespaces(cluster):
        remove_node(cluster, index)
        removed.append(f"netns {netns}")
    with IPRoute() as ipr:
        for route in _owned_routes(ipr, cluster):
            key = _route_key(route)
            ipr.route("del", **key)
            removed.append(f"route {key['dst']}")
        for link in ipr.link_lookup(ifname=bridge):
            # Veths of nodes whose namespace is gone already went with it; any other
            # port of our bridge with our prefix is a leftover of ours.
            for port in ipr.get_links():
                name = port.get_attr("IFLA_IFNAME")
                if port.get_attr("IFLA_MASTER") == link and name.startswith("mkpy"):
                    ipr.link("del", index=port["index"])
                    removed.append(f"link {name}")
            ipr.link("del", index=link)
            removed.append(f"link {bridge}")
    remove_forward_rules(cluster)
    return removed


def delete_network(cluster: str) -> list[str]:
    """Remove the cluster's node network and check that nothing of it is left."""
    removed = stale_cleanup(cluster)
    with IPRoute() as ipr:
        left = (
            [f"link {bridge_name(cluster)}"] if ipr.link_lookup(ifname=bridge_name(cluster)) else []
        )
        left += [f"route {_route_key(route)['dst']}" for route in _owned_routes(ipr, cluster)]
    left += [f"netns {name}" for _, name in _node_namespaces(cluster)]
    if left:
        raise LabNetworkError(f"cluster {cluster}: could not remove {', '.join(left)}")
    return removed
