"""Address allocators: LoadBalancer IPs for Services and pod CIDRs for Nodes.

LoadBalancer (the cloud-provider part, built in like MetalLB): `choose_lb_ip` is the
pure rule - a requested address (`spec.loadBalancerIP`, or the first of the
`minikube-py.io/load-balancer-ips` annotation) is honoured when it is in the pool and
free, otherwise the lowest free pool address is taken; failures say why. The
controller runs one worker, and its `assigned` map (rebuilt from every Service's
status at start) is the single source of truth, so two Services never get the same
address even while the cache lags. Addresses are released when a Service is deleted or
stops being type LoadBalancer (its status ingress is cleared then).

Pod CIDRs (kube's node-ipam controller): each Node without `spec.podCIDR` gets the
lowest free /24 of the cluster CIDR, `10.244.<N>.0/24`; a node keeps its CIDR for life
and the CIDR is free again once the node is deleted.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import Controller, key_of

log = logging.getLogger(__name__)

LB_IPS_ANNOTATION = "minikube-py.io/load-balancer-ips"


def parse_pool(text: str) -> list[str]:
    """`192.168.49.200-192.168.49.250` or a CIDR, as a list of addresses."""
    if "-" in text:
        lo, hi = (ipaddress.IPv4Address(p.strip()) for p in text.split("-", 1))
        return [str(ipaddress.IPv4Address(i)) for i in range(int(lo), int(hi) + 1)]
    return [str(a) for a in ipaddress.IPv4Network(text.strip()).hosts()]


def requested_ip(svc: Obj) -> str | None:
    ann = (svc["metadata"].get("annotations") or {}).get(LB_IPS_ANNOTATION, "")
    first = ann.split(",")[0].strip()
    return first or svc.get("spec", {}).get("loadBalancerIP") or None


def choose_lb_ip(
    svc_key: str, requested: str | None, pool: list[str], assigned: dict[str, str]
) -> tuple[str | None, str]:
    """(address, '') or (None, why not)."""
    taken = {ip: k for k, ip in assigned.items() if k != svc_key}
    if requested:
        if requested not in pool:
            return None, f'requested IP "{requested}" is not in the pool {pool[0]}-{pool[-1]}'
        if requested in taken:
            return None, f'requested IP "{requested}" is already allocated to {taken[requested]}'
        return requested, ""
    for ip in pool:
        if ip not in taken:
            return ip, ""
    return None, f"no available IPs in pool {pool[0]}-{pool[-1]}" if pool else "empty pool"


def is_lb(svc: Obj) -> bool:
    return svc.get("spec", {}).get("type") == "LoadBalancer"


def ingress_ip(svc: Obj) -> str | None:
    ingress = (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    return ingress[0].get("ip") if ingress else None


class LoadBalancerController(Controller):
    name = "service-lb"
    workers = 1  # allocation decisions are serial by design

    def __init__(
        self, *args: Any, lb_pool: str = "192.168.49.200-192.168.49.250", **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.pool = parse_pool(lb_pool)
        self.services = self.informers["Service"]
        self.assigned: dict[str, str] = {}
        self.failed: dict[str, str] = {}  # svc key -> last failure reported
        self.services.add_handler(self._on_service)

    def _on_service(self, type_: str, svc: Obj, old: Obj | None) -> None:
        key = key_of(svc)
        if type_ == "DELETED":
            if self.assigned.pop(key, None):
                for other, s in self.services.cache.items():  # one may wait for it
                    if is_lb(s) and not ingress_ip(s):
                        self.enqueue(other)
            return
        self.enqueue(key)

    def enqueue_all(self) -> None:
        for key, svc in self.services.cache.items():
            ip = ingress_ip(svc)
            if is_lb(svc) and ip in self.pool and ip not in self.assigned.values():
                self.assigned[key] = ip
        for key in self.services.cache:
            self.enqueue(key)

    async def reconcile(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            self.assigned.pop(key, None)
            return
        if not is_lb(svc):
            self.assigned.pop(key, None)
            if ingress_ip(svc):
                await self._write(svc, [])
            return
        have = ingress_ip(svc)
        want = requested_ip(svc)
        if have and have == self.assigned.get(key) and (not want or want == have):
            return
        ip, why = choose_lb_ip(key, want, self.pool, self.assigned)
        if ip is None:
            self.assigned.pop(key, None)
            if have:
                await self._write(svc, [])
            if self.failed.get(key) != why:
                self.failed[key] = why
                self.events.warning(
                    svc, "AllocationFailed", f'Failed to allocate IP for "{key}": {why}'
                )
            return
        self.assigned[key] = ip
        self.failed.pop(key, None)
        await self._write(svc, [{"ip": ip, "ipMode": "VIP"}])
        self.events.normal(svc, "IPAllocated", f'Assigned IP ["{ip}"]')

    async def _write(self, svc: Obj, ingress: list[Obj]) -> None:
        status = {
            **(svc.get("status") or {}),
            "loadBalancer": {"ingress": ingress} if ingress else {},
        }
        try:
            await self.client.update_status({**svc, "status": status})
        except ApiException as e:
            if e.code != 404:
                raise


def choose_pod_cidr(cluster_cidr: str, used: set[str], mask: int = 24) -> str | None:
    for subnet in ipaddress.IPv4Network(cluster_cidr).subnets(new_prefix=mask):
        if str(subnet) not in used:
            return str(subnet)
    return None


class NodeIpamController(Controller):
    name = "node-ipam"
    workers = 1  # serial: the used set must see every earlier choice

    def __init__(self, *args: Any, cluster_cidr: str = "10.244.0.0/16", **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cluster_cidr = cluster_cidr
        self.nodes = self.informers["Node"]
        self.assigned: dict[str, str] = {}  # node -> cidr
        self.nodes.add_handler(self._on_node)

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        if type_ == "DELETED":
            self.assigned.pop(name, None)
        elif node.get("spec", {}).get("podCIDR"):
            self.assigned[name] = node["spec"]["podCIDR"]
        else:
            self.enqueue(name)

    async def reconcile(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None or node.get("spec", {}).get("podCIDR") or name in self.assigned:
            return
        cidr = choose_pod_cidr(self.cluster_cidr, set(self.assigned.values()))
        if cidr is None:
            self.events.warning(
                node, "CIDRNotAvailable", f"Node {name} status is now: CIDRNotAvailable"
            )
            return
        self.assigned[name] = cidr
        try:
            await self.client.patch("Node", name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except ApiException:
            self.assigned.pop(name, None)
            raise
        self.events.normal(node, "CIDRAssignmentSucceeded", f"Node {name} got pod CIDR {cidr}")
