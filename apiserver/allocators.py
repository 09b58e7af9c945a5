"""ClusterIP and NodePort claims, as Kubernetes allocates them in the apiserver.

A claim is an etcd key (`/registry/ranges/serviceips/<ip>`,
`/registry/ranges/servicenodeports/<port>`) created in the same transaction as the
Service that holds it, guarded by an "absent" compare. So two concurrent creates can
never get one address, an explicit address already taken fails cleanly, and a deleted
Service releases its claims atomically with its own removal. This module is pure: it
says which claims a Service needs and picks free values; the registry runs the txn.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from minikube_py.api.types import Obj

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"


@dataclass(frozen=True)
class Ranges:
    service_cidr: ipaddress.IPv4Network
    node_ports: tuple[int, int]

    def ip_in_range(self, ip: str) -> bool:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        net = self.service_cidr
        return addr in net and addr not in (net.network_address, net.broadcast_address)


def needs_cluster_ip(svc: Obj) -> bool:
    spec = svc.get("spec", {})
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


def needs_node_ports(svc: Obj) -> bool:
    return svc.get("spec", {}).get("type") in ("NodePort", "LoadBalancer")


def claimed_keys(svc: Obj) -> set[str]:
    """Every claim key a stored Service holds."""
    spec = svc.get("spec", {})
    keys = set()
    ip = spec.get("clusterIP")
    if ip and ip != "None":
        keys.add(IP_PREFIX + ip)
    for p in spec.get("ports") or []:
        if p.get("nodePort"):
            keys.add(f"{PORT_PREFIX}{p['nodePort']}")
    hc = spec.get("healthCheckNodePort")
    if hc:
        keys.add(f"{PORT_PREFIX}{hc}")
    return keys


def pick_ip(ranges: Ranges, taken: set[str], rng: random.Random) -> str | None:
    net = ranges.service_cidr
    size = net.num_addresses - 2
    if size <= len(taken):
        return None
    base = int(net.network_address) + 1
    # random probing, then a linear scan so a nearly full range still finds its holes
    for _ in range(64):
        ip = str(ipaddress.IPv4Address(base + rng.randrange(size)))
        if ip not in taken:
            return ip
    for off in range(size):
        ip = str(ipaddress.IPv4Address(base + off))
        if ip not in taken:
            return ip
    return None


def pick_port(ranges: Ranges, taken: set[int], rng: random.Random) -> int | None:
    lo, hi = ranges.node_ports
    if hi - lo + 1 <= len(taken):
        return None
    for _ in range(64):
        port = rng.randint(lo, hi)
        if port not in taken:
            return port
    return next((p for p in range(lo, hi + 1) if p not in taken), None)
