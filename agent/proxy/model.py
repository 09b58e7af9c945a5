"""The proxy's plan: what one node must do for every Service port, decided once.

Services and EndpointSlices (plain dicts) plus the node's facts are reduced to one
`ServicePort` per Service port, carrying everything a ruleset needs: the addresses that
capture traffic (ClusterIP, externalIPs, LoadBalancer ingress, NodePort), the endpoints
chosen for Cluster and for Local traffic policy (kube-proxy's CategorizeEndpoints:
ready endpoints, and serving-but-terminating ones only when no ready one is left), the
affinity timeout and the LoadBalancer source ranges. Both renderers (nftables, iptables)
read only this plan, so the Kubernetes semantics live here once and the renderers only
spell them.

A `Plan` maps "namespace/name" to that Service's ports, so a partial sync can re-plan
just the Services that changed. Everything is sorted, so equal inputs give equal plans
whatever order the lists came in. Only IPv4 is proxied (the lab is single-stack).
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

from minikube_py.api.types import Obj, labels_of, name_of, namespace_of

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# read when spec.loadBalancerSourceRanges is empty, as kube-proxy does
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
DEFAULT_AFFINITY_SECONDS = (
    10800  # Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds
)
PROTOCOLS = ("TCP", "UDP", "SCTP")
# rendered fragments each renderer keeps (Service ports): room for ~10k Services
FRAGMENT_CACHE_SIZE = 1 << 15


@dataclass(frozen=True)
class NodeFacts:
    """What the renderers need to know about the node they program.

    `name` decides which endpoints are local (EndpointSlice `nodeName`); `cluster_cidr`
    tells pod traffic from everything else (masquerade and the externalTrafficPolicy
    short-circuit). NodePorts answer on every local address of the node (`fib daddr type
    local` / `addrtype LOCAL`), so NodePorts need no list of the node's IPs; `ips` (the
    node's own addresses) serve loadBalancerSourceRanges only: a range holding one of
    them lets the node itself through (see `ServicePort.firewall_sources`).
    """

    name: str
    cluster_cidr: str = "10.244.0.0/16"
    ips: tuple[str, ...] = ()


class Endpoint(NamedTuple):
    ip: str
    port: int


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service as this node proxies it."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # lower case: tcp, udp, sctp (as nft and iptables spell it)
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()  # normalized IPv4 CIDRs
    affinity_seconds: int = 0  # 0: no sessionAffinity
    external_policy_local: bool = False  # externalTrafficPolicy Local, externally reachable
    internal_policy_local: bool = False  # internalTrafficPolicy Local
    cluster_endpoints: tuple[Endpoint, ...] = ()
    local_endpoints: tuple[Endpoint, ...] = ()
    has_endpoints: bool = False  # usable endpoints anywhere in the cluster

    @property
    def key(self) -> str:
        """Unique per Service port: port names contain a letter, so they never clash with
        the number used for an unnamed port."""
        return f"{self.namespace}/{self.service}/{self.protocol}/{self.port_name or self.port}"

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or (
            self.externally_accessible and not self.external_policy_local
        )

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or self.external_policy_local

    @property
    def uses_cluster_chain(self) -> bool:
        return self.uses_cluster_endpoints and bool(self.cluster_endpoints)

    @property
    def uses_local_chain(self) -> bool:
        return self.uses_local_endpoints and bool(self.local_endpoints)

    @property
    def has_internal_endpoints(self) -> bool:
        """ClusterIP traffic has somewhere to go (internalTrafficPolicy honoured)."""
        if self.internal_policy_local:
            return bool(self.local_endpoints)
        return self.has_endpoints

    @property
    def has_external_endpoints(self) -> bool:
        """NodePort/LB/externalIP traffic has somewhere to go (externalTrafficPolicy)."""
        if self.external_policy_local:
            return bool(self.local_endpoints)
        return self.has_endpoints

    @property
    def uses_external_chain(self) -> bool:
        # Needed whenever endpoints exist anywhere, even with no local ones: pods and the
        # node itself are short-circuited to the cluster endpoints.
        return self.has_endpoints and self.externally_accessible

    @property
    def uses_firewall(self) -> bool:
        """loadBalancerSourceRanges restrict the LoadBalancer IPs (only them: NodePort,
        ClusterIP and externalIPs stay open, as in kube-proxy)."""
        return bool(self.load_balancer_ips and self.load_balancer_source_ranges)

    def firewall_sources(self, node: NodeFacts) -> tuple[str, ...]:
        """Sources allowed to the LoadBalancer IPs: the ranges, and when one holds a node
        IP, the LoadBalancer IPs too: a node reaching an LB IP it holds as a local
        address does so from that address (kube-proxy's allowFromNode)."""
        ranges = [ipaddress.IPv4Network(r) for r in self.load_balancer_source_ranges]
        from_node = any(ipaddress.IPv4Address(ip) in r for ip in node.ips for r in ranges)
        return self.load_balancer_source_ranges + (
            tuple(f"{ip}/32" for ip in self.load_balancer_ips) if from_node else ()
        )

    @property
    def reachable_endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint some chain of this port may DNAT to (one chain each)."""
        chosen = set(self.cluster_endpoints) if self.uses_cluster_endpoints else set()
        if self.uses_local_endpoints:
            chosen |= set(self.local_endpoints)
        return sort_endpoints(chosen)


Plan = dict[str, tuple[ServicePort, ...]]


class _SliceEndpoint(NamedTuple):
    endpoint: Endpoint
    ready: bool
    serving: bool
    terminating: bool
    local: bool


def sort_endpoints(endpoints: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    return tuple(sorted(endpoints, key=lambda e: (ipaddress.IPv4Address(e.ip), e.port)))


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _source_ranges(service: Obj) -> tuple[str, ...]:
    """spec.loadBalancerSourceRanges, else the annotation (comma-separated), as IPv4
    CIDRs in canonical form; others are ignored (the API validates them)."""
    ranges = (service.get("spec") or {}).get("loadBalancerSourceRanges") or []
    if not ranges:
        annotations = (service.get("metadata") or {}).get("annotations") or {}
        ranges = (annotations.get(SOURCE_RANGES_ANNOTATION) or "").split(",")
    cidrs = set()
    for text in ranges:
        try:
            cidrs.add(ipaddress.IPv4Network(str(text).strip(), strict=False))
        except ValueError:
            continue
    return tuple(str(c) for c in sorted(cidrs))


def service_key(obj: Obj) -> str:
    return f"{namespace_of(obj)}/{name_of(obj)}"


def slice_service_key(endpoint_slice: Obj) -> str:
    """The "namespace/name" of the Service an EndpointSlice belongs to ("" for none)."""
    service = labels_of(endpoint_slice).get(SERVICE_NAME_LABEL, "")
    return f"{namespace_of(endpoint_slice)}/{service}" if service else ""


def is_proxied(service: Obj) -> bool:
    """ExternalName and headless Services get no rules: DNS answers for them."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return False
    return _is_ipv4(str(spec.get("clusterIP") or ""))


def _slice_endpoints(
    slices: Iterable[Obj], port_name: str, protocol: str, node: NodeFacts
) -> list[_SliceEndpoint]:
    """Endpoints of one Service port: the target port is resolved per slice by port name,
    which is how a named targetPort can differ from pod to pod."""
    found: dict[Endpoint, _SliceEndpoint] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        port = next(
            (
                p.get("port")
                for p in endpoint_slice.get("ports") or []
                if (p.get("name") or "") == port_name
                and (p.get("protocol") or "TCP").upper() == protocol
            ),
            None,
        )
        if not port:
            continue
        for item in endpoint_slice.get("endpoints") or []:
            addresses = item.get("addresses") or []
            if not addresses or not _is_ipv4(addresses[0]):
                continue
            conditions = item.get("conditions") or {}
            candidate = _SliceEndpoint(
                Endpoint(addresses[0], int(port)),
                # Unknown readiness/serving counts as true, unknown terminating as false,
                # as the EndpointConditions API documents.
                ready=conditions.get("ready") is not False,
                serving=conditions.get("serving") is not False,
                terminating=conditions.get("terminating") is True,
                local=item.get("nodeName") == node.name,
            )
            # The same address in two slices (mid-update): keep the most usable state,
            # chosen by value so input order cannot matter.
            previous = found.get(candidate.endpoint)
            found[candidate.endpoint] = candidate if previous is None else max(previous, candidate)
    return list(found.values())


def _categorize(
    endpoints: list[_SliceEndpoint], uses_cluster: bool, uses_local: bool
) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...], bool]:
    """kube-proxy's CategorizeEndpoints without topology hints:
    (cluster endpoints, local endpoints, has usable endpoints anywhere)."""

    def pick(wanted: list[_SliceEndpoint]) -> tuple[Endpoint, ...]:
        ready = [e.endpoint for e in wanted if e.ready]
        if ready:
            return sort_endpoints(ready)
        return sort_endpoints(e.endpoint for e in wanted if e.serving and e.terminating)

    cluster = pick(endpoints) if uses_cluster else ()
    local = pick([e for e in endpoints if e.local]) if uses_local else ()
    has_any = any(e.ready or (e.serving and e.terminating) for e in endpoints)
    return cluster, local, has_any


def plan_service(service: Obj, slices: Iterable[Obj], node: NodeFacts) -> tuple[ServicePort, ...]:
    """The ports of one Service, with its EndpointSlices (any order), as `node` proxies them."""
    if not is_proxied(service):
        return ()
    slices = list(slices)
    spec = service.get("spec") or {}
    service_type = spec.get("type") or "ClusterIP"
    external_ips = tuple(sorted({ip for ip in spec.get("externalIPs") or [] if _is_ipv4(ip)}))
    load_balancer_ips: tuple[str, ...] = ()
    if service_type == "LoadBalancer":
        ingress = (service.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        # ipMode Proxy means the load balancer itself delivers to the nodes, so
        # traffic to its IP must not be captured here.
        load_balancer_ips = tuple(
            sorted(
                {
                    i["ip"]
                    for i in ingress
                    if _is_ipv4(i.get("ip") or "") and i.get("ipMode") != "Proxy"
                }
            )
        )
    affinity_seconds = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity_seconds = int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)

    ports = []
    for port in spec.get("ports") or []:
        protocol = (port.get("protocol") or "TCP").upper()
        if protocol not in PROTOCOLS:
            continue
        node_port = (
            int(port.get("nodePort") or 0) if service_type in ("NodePort", "LoadBalancer") else 0
        )
        accessible = bool(node_port or external_ips or load_balancer_ips)
        external_local = accessible and spec.get("externalTrafficPolicy") == "Local"
        internal_local = spec.get("internalTrafficPolicy") == "Local"
        shape = ServicePort(
            namespace=namespace_of(service),
            service=name_of(service),
            port_name=port.get("name") or "",
            protocol=protocol.lower(),
            cluster_ip=spec["clusterIP"],
            port=int(port["port"]),
            node_port=node_port,
            external_ips=external_ips,
            load_balancer_ips=load_balancer_ips,
            load_balancer_source_ranges=_source_ranges(service) if load_balancer_ips else (),
            affinity_seconds=affinity_seconds,
            external_policy_local=external_local,
            internal_policy_local=internal_local,
        )
        cluster, local, has_any = _categorize(
            _slice_endpoints(slices, shape.port_name, protocol, node),
            shape.uses_cluster_endpoints,
            shape.uses_local_endpoints,
        )
        ports.append(
            replace(shape, cluster_endpoints=cluster, local_endpoints=local, has_endpoints=has_any)
        )
    return tuple(sorted(ports, key=lambda p: p.key))


def build_plan(services: Iterable[Obj], endpointslices: Iterable[Obj], node: NodeFacts) -> Plan:
    """The whole node's plan; Services that need no rules are left out."""
    slices_by_service: dict[str, list[Obj]] = {}
    for endpoint_slice in endpointslices:
        slices_by_service.setdefault(slice_service_key(endpoint_slice), []).append(endpoint_slice)
    plan: Plan = {}
    for service in services:
        key = service_key(service)
        ports = plan_service(service, slices_by_service.get(key, []), node)
        if ports:
            plan[key] = ports
    return dict(sorted(plan.items()))
