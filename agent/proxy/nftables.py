"""The nftables ruleset: one table of our own (`ip mkpy-proxy`), rendered from the plan.

Layout (kube-proxy's nftables mode, names of our own):
- `services` (jumped from nat prerouting/output) dispatches through the verdict map
  `service-ips` keyed by `ipv4_addr . inet_proto . inet_service` (ClusterIPs, externalIPs,
  LoadBalancer ingress), and for local destinations (`fib daddr type local`, not 127/8)
  through `service-nodeports` keyed by `inet_proto . inet_service`: a lookup costs the
  same however many Services exist.
- per Service port: `service-…` (Cluster policy) and `local-…` (Local policy) choose an
  endpoint with `numgen random mod` (one rule per endpoint, see `_dispatch_rules`),
  after the ClientIP affinity checks;
  `external-…` handles NodePort/LB/externalIP traffic (masquerade, or for
  externalTrafficPolicy Local the pod/node short-circuit); `endpoint-…` DNATs.
- masquerade by mark 0x4000: set in `mark-for-masquerade`, applied in `masquerading`.
- Services with no usable endpoints go into `no-endpoint-services` / `no-endpoint-nodeports`,
  checked in filter hooks before DNAT: reject (TCP reset, ICMP port-unreachable for the
  rest) or drop when only the local policy lacks endpoints.

Every Service port contributes an `NftFragment` (its chains, affinity sets and map
elements). A full render writes the base plus every fragment after deleting the table,
all in one `nft -f` transaction; a partial render diffs the old and new fragments of
the changed Services only, so its size does not grow with the number of Services.
"""

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.proxy.model import Endpoint, NodeFacts, Plan, ServicePort, build_plan
from minikube_py.api.types import Obj

TABLE = "mkpy-proxy"
MASQUERADE_MARK = "0x4000"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
MARK_MASQ = "mark-for-masquerade"
REJECT_CHAIN = "reject-chain"
_LOCAL_DADDR = "fib daddr type local ip daddr != 127.0.0.0/8"
_ELEMENTS_PER_COMMAND = 1000

# name: (type, hook, priority). Numbers, since nft only accepts the names dstnat/srcnat
# on some hooks: -100 is dstnat, 100 srcnat; the filter hooks run at dstnat - 10, so
# they see the destination before DNAT.
_BASE_CHAINS = {
    "filter-input": ("filter", "input", -110),
    "filter-forward": ("filter", "forward", -110),
    "filter-output": ("filter", "output", -110),
    "nat-prerouting": ("nat", "prerouting", -100),
    "nat-output": ("nat", "output", -100),
    "nat-postrouting": ("nat", "postrouting", 100),
}
_MAPS = {
    SERVICE_IPS: "ipv4_addr . inet_proto . inet_service : verdict",
    SERVICE_NODEPORTS: "inet_proto . inet_service : verdict",
    NO_ENDPOINT_SERVICES: "ipv4_addr . inet_proto . inet_service : verdict",
    NO_ENDPOINT_NODEPORTS: "inet_proto . inet_service : verdict",
}
_BASE_RULES: dict[str, tuple[str, ...]] = {
    "filter-input": ("ct state new jump endpoints-check",),
    "filter-forward": ("ct state new jump endpoints-check",),
    "filter-output": ("ct state new jump endpoints-check",),
    "nat-prerouting": ("jump services",),
    "nat-output": ("jump services",),
    "nat-postrouting": ("jump masquerading",),
    "endpoints-check": (
        f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
        f"{_LOCAL_DADDR} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
    ),
    "services": (
        f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
        f"{_LOCAL_DADDR} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
    ),
    MARK_MASQ: (f"meta mark set meta mark | {MASQUERADE_MARK}",),
    "masquerading": (
        f"meta mark & {MASQUERADE_MARK} == 0 return",
        f"meta mark set meta mark ^ {MASQUERADE_MARK}",
        "masquerade fully-random",
    ),
    REJECT_CHAIN: ("meta l4proto tcp reject with tcp reset", "reject"),
}

Element = tuple[str, str, str]  # (map, key, verdict)
Shape = dict[str, int]  # "chain NAME" -> rules, "map NAME" -> elements


@dataclass
class NftFragment:
    """What one Service port adds to the table."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    affinity_sets: dict[str, int] = field(default_factory=dict)  # name -> timeout seconds
    elements: set[Element] = field(default_factory=set)


def _name_base(text: str) -> str:
    digest = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"{digest[:8]}-{text}"


def chain_names(sp: ServicePort) -> tuple[str, str, str]:
    """(cluster policy chain, local policy chain, external chain) of a Service port."""
    base = _name_base(sp.key)
    return f"service-{base}", f"local-{base}", f"external-{base}"


def endpoint_names(sp: ServicePort, endpoint: Endpoint) -> tuple[str, str]:
    """(endpoint chain, affinity set) of one endpoint of a Service port."""
    base = _name_base(f"{sp.key}__{endpoint.ip}/{endpoint.port}")
    return f"endpoint-{base}", f"affinity-{base}"


def _dispatch_rules(sp: ServicePort, endpoints: tuple[Endpoint, ...]) -> list[str]:
    rules = []
    names = [endpoint_names(sp, e) for e in endpoints]
    if sp.affinity_seconds:
        rules += [f"ip saddr @{affinity} goto {chain}" for chain, affinity in names]
    # Endpoint i is taken with probability 1/(N-i) among those left: uniform overall.
    # Not one `numgen random mod N vmap {...}`: each such anonymous map is a set in the
    # kernel, and adding thousands of them grows quadratically (measured: 3.3 s for 3k
    # Services, 95 s for 10k, against 0.9 s and 3.5 s for this form).
    for i, (chain, _) in enumerate(names[:-1]):
        rules.append(f"numgen random mod {len(names) - i} == 0 goto {chain}")
    rules.append(f"goto {names[-1][0]}")
    return rules


def service_fragment(sp: ServicePort, node: NodeFacts) -> NftFragment:
    """Chains, sets and map elements of one Service port (kube-proxy's decisions)."""
    fragment = NftFragment()
    cluster_chain, local_chain, external_chain = chain_names(sp)
    internal_chain = local_chain if sp.internal_policy_local else cluster_chain
    external_policy_chain = local_chain if sp.external_policy_local else cluster_chain
    # No endpoints anywhere: refuse at once; only the Local policy lacks them: drop.
    no_endpoints = f"goto {REJECT_CHAIN}" if not sp.has_endpoints else "drop"

    def key(ip: str) -> str:
        return f"{ip} . {sp.protocol} . {sp.port}"

    if sp.has_internal_endpoints:
        fragment.elements.add((SERVICE_IPS, key(sp.cluster_ip), f"goto {internal_chain}"))
    else:
        fragment.elements.add((NO_ENDPOINT_SERVICES, key(sp.cluster_ip), no_endpoints))
    for ip in sp.external_ips + sp.load_balancer_ips:
        if sp.has_endpoints:
            fragment.elements.add((SERVICE_IPS, key(ip), f"goto {external_chain}"))
        if not sp.has_external_endpoints:
            fragment.elements.add((NO_ENDPOINT_SERVICES, key(ip), no_endpoints))
    if sp.node_port:
        node_port_key = f"{sp.protocol} . {sp.node_port}"
        if sp.has_endpoints:
            fragment.elements.add((SERVICE_NODEPORTS, node_port_key, f"goto {external_chain}"))
        if not sp.has_external_endpoints:
            fragment.elements.add((NO_ENDPOINT_NODEPORTS, node_port_key, no_endpoints))

    if sp.uses_cluster_chain:
        fragment.chains[cluster_chain] = []
    if sp.uses_local_chain:
        fragment.chains[local_chain] = []
    if sp.has_internal_endpoints:
        # Traffic to the ClusterIP from outside the pod network may leave the node.
        fragment.chains[internal_chain].append(
            f"ip daddr {sp.cluster_ip} {sp.protocol} dport {sp.port} "
            f"ip saddr != {node.cluster_cidr} jump {MARK_MASQ}"
        )
    if sp.uses_cluster_chain:
        fragment.chains[cluster_chain] += _dispatch_rules(sp, sp.cluster_endpoints)
    if sp.uses_local_chain:
        fragment.chains[local_chain] += _dispatch_rules(sp, sp.local_endpoints)

    if sp.uses_external_chain:
        external: list[str] = []
        if not sp.external_policy_local:
            external.append(f"jump {MARK_MASQ}")  # may cross nodes: replies must come back
        elif sp.uses_cluster_chain:
            # Pods and the node itself are not subject to the external policy, as if
            # they went out to the load balancer and came back in; the node's own
            # source (a local address) must be masqueraded.
            external += [
                f"ip saddr {node.cluster_cidr} goto {cluster_chain}",
                f"fib saddr type local jump {MARK_MASQ}",
                f"fib saddr type local goto {cluster_chain}",
            ]
        if sp.has_external_endpoints:
            external.append(f"goto {external_policy_chain}")
        fragment.chains[external_chain] = external

    for endpoint in sp.reachable_endpoints:
        chain, affinity = endpoint_names(sp, endpoint)
        rules = [f"ip saddr {endpoint.ip} jump {MARK_MASQ}"]  # hairpin: a pod to itself
        if sp.affinity_seconds:
            fragment.affinity_sets[affinity] = sp.affinity_seconds
            rules.append(f"update @{affinity} {{ ip saddr }}")
        rules.append(f"meta l4proto {sp.protocol} dnat to {endpoint.ip}:{endpoint.port}")
        fragment.chains[chain] = rules
    return fragment


def plan_fragment(ports: Iterable[ServicePort], node: NodeFacts) -> NftFragment:
    """The merged fragments of several Service ports (one Service, or a whole plan)."""
    merged = NftFragment()
    for sp in ports:
        fragment = service_fragment(sp, node)
        merged.chains.update(fragment.chains)
        merged.affinity_sets.update(fragment.affinity_sets)
        merged.elements |= fragment.elements
    return merged


def _set_definition(name: str, timeout: int) -> str:
    return (
        f"add set ip {TABLE} {name} "
        f"{{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
    )


def _element_commands(verb: str, elements: Iterable[Element]) -> list[str]:
    by_map: dict[str, list[str]] = {}
    for map_name, key, verdict in sorted(elements):
        by_map.setdefault(map_name, []).append(f"{key} : {verdict}")
    commands = []
    for map_name, entries in by_map.items():
        for start in range(0, len(entries), _ELEMENTS_PER_COMMAND):
            chunk = ", ".join(entries[start : start + _ELEMENTS_PER_COMMAND])
            commands.append(f"{verb} element ip {TABLE} {map_name} {{ {chunk} }}")
    return commands


def _rule_commands(chains: dict[str, list[str]]) -> list[str]:
    return [
        f"add rule ip {TABLE} {chain} {rule}"
        for chain, rules in sorted(chains.items())
        for rule in rules
    ]


def render_nftables_plan(plan: Plan, node: NodeFacts) -> str:
    """Full sync: the table is deleted and rebuilt in the same transaction."""
    fragment = plan_fragment((sp for ports in plan.values() for sp in ports), node)
    lines = [f"add table ip {TABLE}", f"delete table ip {TABLE}", f"add table ip {TABLE}"]
    for name, (kind, hook, priority) in _BASE_CHAINS.items():
        lines.append(
            f"add chain ip {TABLE} {name} "
            f"{{ type {kind} hook {hook} priority {priority}; policy accept; }}"
        )
    lines += [
        f"add chain ip {TABLE} {name}"
        for name in sorted(set(_BASE_RULES) - set(_BASE_CHAINS) | set(fragment.chains))
    ]
    lines += [f"add map ip {TABLE} {name} {{ type {kind}; }}" for name, kind in _MAPS.items()]
    lines += [_set_definition(n, t) for n, t in sorted(fragment.affinity_sets.items())]
    lines += [
        f"add rule ip {TABLE} {chain} {rule}"
        for chain, rules in _BASE_RULES.items()
        for rule in rules
    ]
    lines += _rule_commands(fragment.chains)
    lines += _element_commands("add", fragment.elements)
    return "\n".join(lines) + "\n"


def render_nftables(services: Iterable[Obj], endpointslices: Iterable[Obj], node: NodeFacts) -> str:
    """The whole table for `node`, as one `nft -f` script."""
    return render_nftables_plan(build_plan(services, endpointslices, node), node)


def render_nftables_partial(
    previous: Plan, current: Plan, changed: Iterable[str], node: NodeFacts
) -> str:
    """Only the Services in `changed` ("namespace/name"): their chains are rewritten and
    their map elements replaced; everything else in the table is left alone. Assumes
    the table holds `previous` (any failure calls for a full render)."""
    keys = sorted(k for k in set(changed) if previous.get(k) != current.get(k))
    old = plan_fragment((sp for k in keys for sp in previous.get(k, ())), node)
    new = plan_fragment((sp for k in keys for sp in current.get(k, ())), node)
    stale_sets = {n for n, t in old.affinity_sets.items() if new.affinity_sets.get(n) != t}
    stale_chains = sorted(set(old.chains) - set(new.chains))
    # Order matters inside the transaction: drop references (elements, then rules)
    # before deleting what they point at, create before referring.
    lines = _element_commands("delete", old.elements - new.elements)
    lines += [f"flush chain ip {TABLE} {chain}" for chain in sorted(old.chains)]
    lines += [f"delete set ip {TABLE} {name}" for name in sorted(stale_sets)]
    lines += [
        _set_definition(n, t)
        for n, t in sorted(new.affinity_sets.items())
        if n in stale_sets or n not in old.affinity_sets
    ]
    for chain in sorted(new.chains):
        lines += [f"add chain ip {TABLE} {chain}", f"flush chain ip {TABLE} {chain}"]
    lines += _rule_commands(new.chains)
    lines += _element_commands("add", new.elements - old.elements)
    lines += [f"delete chain ip {TABLE} {chain}" for chain in stale_chains]
    return "\n".join(lines) + "\n" if lines else ""


def expected_shape(plan: Plan, node: NodeFacts) -> Shape:
    """Rules per chain and elements per map that the table should hold for `plan`."""
    fragment = plan_fragment((sp for ports in plan.values() for sp in ports), node)
    shape: Shape = {f"chain {name}": 0 for name in _BASE_CHAINS}
    shape.update({f"chain {name}": len(rules) for name, rules in _BASE_RULES.items()})
    shape.update({f"chain {name}": len(rules) for name, rules in fragment.chains.items()})
    shape.update({f"map {name}": 0 for name in _MAPS})
    for map_name, _, _ in fragment.elements:
        shape[f"map {map_name}"] += 1
    return shape


def rules_count(shape: Shape) -> int:
    return sum(n for key, n in shape.items() if key.startswith("chain "))


def ports_rule_count(ports: Iterable[ServicePort], node: NodeFacts) -> int:
    """Rules the given Service ports add to the table (for the rules-count metric)."""
    return sum(len(rules) for rules in plan_fragment(ports, node).chains.values())
