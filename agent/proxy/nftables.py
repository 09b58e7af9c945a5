"""The nftables ruleset: tables of our own (`ip mkpy-proxy-0` … `-7`), rendered from the plan.

Layout of each table (kube-proxy's nftables mode, names of our own):
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
- loadBalancerSourceRanges: `firewall-check` (filter prerouting and output, before DNAT)
  sends LoadBalancer IP traffic through `firewall-ips` to `firewall-…`, which drops
  sources outside the ranges.

Services are spread over 8 tables by a hash of "namespace/name" (`shard_table`), each a
complete copy of the base with its share of the Services: on every commit that adds a
jump, goto or NAT rule the kernel re-validates the changed table's whole jump graph
(every chain behind its verdict maps), ~70 ms for one table of 10k Services, an eighth
of that per shard. A packet passes the hooks of every table; NAT chains after the one
that translated a connection are skipped, and the filter chains test `ct state new`.

Every Service port contributes an `NftFragment` (its chains, affinity sets and map
elements). A full render deletes and rebuilds every table, the base plus the fragments,
in one transaction; a partial render diffs the old and new fragments of the changed
Services only, in their tables, so its size does not grow with the number of Services,
except where a map loses elements (see below).

The script's shape decides nft's work (nft 1.0.6): rules are written as `add chain T C
{ rule; rule; }` and map elements as `add map T M { type …; elements = { … } }`, for which
nft loads only the table into its cache, where `add rule` / `add element` make it load
every chain in the namespace first (~60 ms at 30k chains). Deletions need them too, so
a partial render deletes nothing it can avoid deleting: a map that loses elements is
flushed and refilled, and chains no longer used are left flushed (`NftPartial`).
"""

import base64
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.proxy.model import (
    FRAGMENT_CACHE_SIZE,
    Endpoint,
    NodeFacts,
    Plan,
    ServicePort,
    build_plan,
)
from minikube_py.api.types import Obj

TABLE = "mkpy-proxy"  # the prefix of the tables
TABLES = tuple(f"{TABLE}-{i}" for i in range(8))
MASQUERADE_MARK = "0x4000"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
FIREWALL_IPS = "firewall-ips"
MARK_MASQ = "mark-for-masquerade"
REJECT_CHAIN = "reject-chain"
_LOCAL_DADDR = "fib daddr type local ip daddr != 127.0.0.0/8"
_ELEMENTS_PER_COMMAND = 1000

# name: (type, hook, priority). Numbers, since nft only accepts the names dstnat/srcnat
# on some hooks: -100 is dstnat, 100 srcnat; the filter hooks run at dstnat - 10, so
# they see the destination before DNAT.
_BASE_CHAINS = {
    "filter-prerouting": ("filter", "prerouting", -110),
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
    FIREWALL_IPS: "ipv4_addr . inet_proto . inet_service : verdict",
}
_BASE_RULES: dict[str, tuple[str, ...]] = {
    "filter-prerouting": ("ct state new jump firewall-check",),
    "filter-input": ("ct state new jump endpoints-check",),
    "filter-forward": ("ct state new jump endpoints-check",),
    "filter-output": (
        "ct state new jump endpoints-check",
        "ct state new jump firewall-check",
    ),
    "nat-prerouting": ("jump services",),
    "nat-output": ("jump services",),
    "nat-postrouting": ("jump masquerading",),
    "endpoints-check": (
        f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}",
        f"{_LOCAL_DADDR} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
    ),
    "firewall-check": (f"ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}",),
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
Shape = dict[str, int]  # "chain TABLE NAME" -> rules, "map TABLE NAME" -> elements


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


def firewall_chain(sp: ServicePort) -> str:
    return f"firewall-{_name_base(sp.key)}"


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


# Memoized: the rule count of a full sync and the drift check re-render Services that
# did not change, and plans keep equal ServicePorts. Fragments are shared: read-only.
@functools.lru_cache(maxsize=FRAGMENT_CACHE_SIZE)
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
    if sp.uses_firewall:
        sources = ", ".join(sp.firewall_sources(node))
        fragment.chains[firewall_chain(sp)] = [f"ip saddr != {{ {sources} }} drop"]
        for ip in sp.load_balancer_ips:
            fragment.elements.add((FIREWALL_IPS, key(ip), f"goto {firewall_chain(sp)}"))
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


@functools.lru_cache(maxsize=FRAGMENT_CACHE_SIZE)
def shard_table(service_key: str) -> str:
    """The table holding one Service ("namespace/name"), all of its ports."""
    digest = hashlib.sha256(service_key.encode()).digest()
    return TABLES[int.from_bytes(digest[:4], "big") % len(TABLES)]


def _by_table(keys: Iterable[str]) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {table: [] for table in TABLES}
    for key in sorted(keys):
        tables[shard_table(key)].append(key)
    return tables


def _set_definition(table: str, name: str, timeout: int) -> str:
    return (
        f"add set ip {table} {name} "
        f"{{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
    )


def _element_chunks(elements: Iterable[Element], with_verdict: bool) -> list[tuple[str, str]]:
    """(map, "key : verdict, …") in commands of a bounded size."""
    by_map: dict[str, list[str]] = {}
    for map_name, key, verdict in sorted(elements):
        by_map.setdefault(map_name, []).append(f"{key} : {verdict}" if with_verdict else key)
    return [
        (map_name, ", ".join(entries[start : start + _ELEMENTS_PER_COMMAND]))
        for map_name, entries in by_map.items()
        for start in range(0, len(entries), _ELEMENTS_PER_COMMAND)
    ]


def _add_elements(table: str, elements: Iterable[Element]) -> list[str]:
    return [
        f"add map ip {table} {name} {{ type {_MAPS[name]}; elements = {{ {chunk} }}; }}"
        for name, chunk in _element_chunks(elements, with_verdict=True)
    ]


def _rule_commands(
    table: str, chains: dict[str, list[str]] | dict[str, tuple[str, ...]]
) -> list[str]:
    """The rules of existing, empty chains, one command per chain."""
    return [
        f"add chain ip {table} {chain} {{ {'; '.join(rules)}; }}"
        for chain, rules in sorted(chains.items())
        if rules
    ]


def _table_commands(table: str, fragment: NftFragment) -> list[str]:
    """One table from scratch: its base, then the Services' fragment."""
    lines = [
        f"add chain ip {table} {name} "
        f"{{ type {kind} hook {hook} priority {priority}; policy accept; }}"
        for name, (kind, hook, priority) in _BASE_CHAINS.items()
    ]
    lines += [
        f"add chain ip {table} {name}"
        for name in sorted(set(_BASE_RULES) - set(_BASE_CHAINS) | set(fragment.chains))
    ]
    lines += [f"add map ip {table} {name} {{ type {kind}; }}" for name, kind in _MAPS.items()]
    lines += [_set_definition(table, n, t) for n, t in sorted(fragment.affinity_sets.items())]
    lines += _rule_commands(table, _BASE_RULES)
    lines += _rule_commands(table, fragment.chains)
    lines += _add_elements(table, fragment.elements)
    return lines


def render_nftables_plan(plan: Plan, node: NodeFacts) -> str:
    """Full sync: every table is deleted and rebuilt in the same transaction."""
    lines = []
    for table in TABLES:
        lines += [f"add table ip {table}", f"delete table ip {table}", f"add table ip {table}"]
    for table, keys in _by_table(plan).items():
        lines += _table_commands(table, plan_fragment((sp for k in keys for sp in plan[k]), node))
    return "\n".join(lines) + "\n"


def render_nftables(services: Iterable[Obj], endpointslices: Iterable[Obj], node: NodeFacts) -> str:
    """The whole ruleset for `node`, as one nft script."""
    return render_nftables_plan(build_plan(services, endpointslices, node), node)


Chain = tuple[str, str]  # (table, chain name)


@dataclass(frozen=True)
class NftPartial:
    """A partial sync's script, and the chains it leaves behind: a chain no longer used
    is flushed (nothing refers to it any more) but stays, since deleting one makes nft
    1.0.6 load every chain of the namespace first (~60 ms at 10k Services), where the
    rest of an endpoint change costs ~13 ms. `render_chain_deletions` removes such
    chains later, many at a time."""

    script: str
    retired: frozenset[Chain] = frozenset()  # chains now flushed and unused
    revived: frozenset[Chain] = frozenset()  # chains (re)filled, retired ones included


def _table_changes(
    table: str, previous: Plan, current: Plan, keys: list[str], node: NodeFacts
) -> tuple[list[str], set[str], set[str]]:
    """The commands for `keys` in `table`, the chains they retire and those they fill."""
    old = plan_fragment((sp for k in keys for sp in previous.get(k, ())), node)
    new = plan_fragment((sp for k in keys for sp in current.get(k, ())), node)
    stale_sets = {n for n, t in old.affinity_sets.items() if new.affinity_sets.get(n) != t}
    # A map losing elements is flushed and refilled with the table's current ones: a
    # `delete element` makes nft load every chain of the namespace first (~80 ms at 10k
    # Services), refilling a map of 1,250 elements costs ~30 ms.
    refilled = sorted({name for name, _, _ in old.elements - new.elements})
    kept: set[Element] = set()
    if refilled:
        kept = {
            element
            for k in current
            if shard_table(k) == table
            for sp in current[k]
            for element in service_fragment(sp, node).elements
            if element[0] in refilled
        }
    # Order matters inside the transaction: drop references (elements, then rules)
    # before deleting what they point at, create before referring.
    lines = [f"flush map ip {table} {name}" for name in refilled]
    lines += [f"flush chain ip {table} {chain}" for chain in sorted(old.chains)]
    lines += [f"delete set ip {table} {name}" for name in sorted(stale_sets)]
    # Every set the new rules refer to is declared, kept ones too: `add` leaves an
    # existing set as it is, and without it nft's table-only cache does not know the set.
    lines += [_set_definition(table, n, t) for n, t in sorted(new.affinity_sets.items())]
    for chain in sorted(new.chains):
        lines += [f"add chain ip {table} {chain}", f"flush chain ip {table} {chain}"]
    lines += _rule_commands(table, new.chains)
    lines += _add_elements(table, (new.elements - old.elements) | kept)
    return lines, set(old.chains) - set(new.chains), set(new.chains)


def render_nftables_partial(
    previous: Plan, current: Plan, changed: Iterable[str], node: NodeFacts
) -> NftPartial:
    """Only the Services in `changed` ("namespace/name"): their chains are rewritten and
    their map elements replaced, in their own tables; everything else is left alone.
    Assumes the tables hold `previous` (any failure calls for a full render), plus
    perhaps retired chains (see `NftPartial`)."""
    keys = {k for k in set(changed) if previous.get(k) != current.get(k)}
    lines: list[str] = []
    retired: set[Chain] = set()
    revived: set[Chain] = set()
    for table, table_keys in _by_table(keys).items():
        if table_keys:
            commands, unused, filled = _table_changes(table, previous, current, table_keys, node)
            lines += commands
            retired |= {(table, chain) for chain in unused}
            revived |= {(table, chain) for chain in filled}
    script = "\n".join(lines) + "\n" if lines else ""
    return NftPartial(script, frozenset(retired), frozenset(revived))


def render_chain_deletions(chains: Iterable[Chain]) -> str:
    """Delete retired chains (flushed, and referred to by nothing)."""
    return "".join(f"delete chain ip {table} {chain}\n" for table, chain in sorted(chains))


def loads_every_chain(script: str) -> bool:
    """Does nft 1.0.6 load every chain of the namespace to run `script`? (Any deletion
    does; then deleting retired chains in the same transaction costs nothing more.)"""
    return script.startswith("delete ") or "\ndelete " in script


def expected_shape(plan: Plan, node: NodeFacts) -> Shape:
    """Rules per chain and elements per map that the tables should hold for `plan`."""
    shape: Shape = {}
    for table, keys in _by_table(plan).items():
        fragment = plan_fragment((sp for k in keys for sp in plan[k]), node)
        shape.update({f"chain {table} {name}": 0 for name in _BASE_CHAINS})
        shape.update({f"chain {table} {name}": len(r) for name, r in _BASE_RULES.items()})
        shape.update({f"chain {table} {name}": len(r) for name, r in fragment.chains.items()})
        shape.update({f"map {table} {name}": 0 for name in _MAPS})
        for map_name, _, _ in fragment.elements:
            shape[f"map {table} {map_name}"] += 1
    return shape


def rules_count(shape: Shape) -> int:
    return sum(n for key, n in shape.items() if key.startswith("chain "))


def ports_rule_count(ports: Iterable[ServicePort], node: NodeFacts) -> int:
    """Rules the given Service ports add to the table (for the rules-count metric)."""
    return sum(len(rules) for rules in plan_fragment(ports, node).chains.values())
