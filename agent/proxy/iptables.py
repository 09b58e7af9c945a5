"""The iptables ruleset: kube-proxy's classic chain layout under MKPY- names, rendered from
the plan as `iptables-restore --noflush` input.

nat: MKPY-SERVICES (from PREROUTING and OUTPUT) holds one rule per captured address
(ClusterIP, externalIP, LoadBalancer ingress) and ends by sending local destinations to
MKPY-NODEPORTS; per Service port MKPY-SVC-<hash> (Cluster policy), MKPY-SVL-<hash> (Local
policy) and MKPY-EXT-<hash> (NodePort/LB/externalIP traffic); per endpoint
MKPY-SEP-<hash> with the DNAT. Endpoints are chosen by `-m statistic` probabilities,
ClientIP affinity by `-m recent` (named after the endpoint chain). MKPY-MARK-MASQ sets
mark 0x4000, MKPY-POSTROUTING masquerades marked packets. A LoadBalancer IP with
loadBalancerSourceRanges goes to MKPY-FW-<hash> instead, which passes only the allowed
sources on to MKPY-EXT-<hash>.
filter: MKPY-SERVICES (from INPUT, FORWARD and OUTPUT for new connections) rejects
(TCP reset, ICMP port-unreachable) or drops traffic for Services without endpoints, and
drops what is still addressed to a firewalled LoadBalancer IP (not DNATed: not allowed).

Lookup is a linear walk of MKPY-SERVICES: that, and rewriting it on every sync, is the
classic mode's cost and the reason nftables is the default. The jumps from the built-in
chains cannot be written idempotently in restore input, so they are listed in `HOOKS`
for the adapter to ensure. Chains removed since the last sync are flushed and deleted
(`-X`) in the same restore transaction.
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

MASQUERADE_MARK = "0x4000"
SERVICES = "MKPY-SERVICES"
NODEPORTS = "MKPY-NODEPORTS"
MARK_MASQ = "MKPY-MARK-MASQ"
POSTROUTING = "MKPY-POSTROUTING"

# (table, built-in chain, match arguments, our chain): ensured by the adapter.
HOOKS: tuple[tuple[str, str, str, str], ...] = (
    ("nat", "PREROUTING", "", SERVICES),
    ("nat", "OUTPUT", "", SERVICES),
    ("nat", "POSTROUTING", "", POSTROUTING),
    ("filter", "INPUT", "-m conntrack --ctstate NEW", SERVICES),
    ("filter", "FORWARD", "-m conntrack --ctstate NEW", SERVICES),
    ("filter", "OUTPUT", "-m conntrack --ctstate NEW", SERVICES),
)

_STATIC_NAT: dict[str, tuple[str, ...]] = {
    MARK_MASQ: (f"-j MARK --or-mark {MASQUERADE_MARK}",),
    POSTROUTING: (
        f"-m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN",
        f"-j MARK --xor-mark {MASQUERADE_MARK}",
        "-j MASQUERADE --random-fully",
    ),
}
_TO_NODEPORTS = f"-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j {NODEPORTS}"

Shape = dict[str, int]  # "table CHAIN" -> rules; "table BUILTIN>CHAIN" -> hook rules


@dataclass
class IptFragment:
    """What one Service port adds: its own nat chains and its rules in shared chains."""

    chains: dict[str, list[str]] = field(default_factory=dict)  # nat table
    services: list[str] = field(default_factory=list)  # nat MKPY-SERVICES
    nodeports: list[str] = field(default_factory=list)  # nat MKPY-NODEPORTS
    filters: list[str] = field(default_factory=list)  # filter MKPY-SERVICES


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def chain_names(sp: ServicePort) -> tuple[str, str, str]:
    """(cluster policy chain, local policy chain, external chain) of a Service port."""
    digest = _hash(sp.key)
    return f"MKPY-SVC-{digest}", f"MKPY-SVL-{digest}", f"MKPY-EXT-{digest}"


def firewall_chain(sp: ServicePort) -> str:
    return f"MKPY-FW-{_hash(sp.key)}"


def endpoint_chain(sp: ServicePort, endpoint: Endpoint) -> str:
    return f"MKPY-SEP-{_hash(f'{sp.key}__{endpoint.ip}/{endpoint.port}')}"


def _match(sp: ServicePort, port: int, ip: str = "") -> str:
    destination = f"-d {ip}/32 " if ip else ""
    return f"{destination}-p {sp.protocol} -m {sp.protocol} --dport {port}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def _dispatch_rules(sp: ServicePort, endpoints: tuple[Endpoint, ...]) -> list[str]:
    chains = [endpoint_chain(sp, e) for e in endpoints]
    rules = []
    if sp.affinity_seconds:
        rules += [
            f"-m recent --name {c} --rcheck --seconds {sp.affinity_seconds} --reap -j {c}"
            for c in chains
        ]
    for i, chain in enumerate(chains):
        remaining = len(chains) - i
        if remaining > 1:
            probability = f"{1 / remaining:.10f}"
            rules.append(f"-m statistic --mode random --probability {probability} -j {chain}")
        else:
            rules.append(f"-j {chain}")
    return rules


def _reject(sp: ServicePort) -> str:
    return "-j REJECT --reject-with tcp-reset" if sp.protocol == "tcp" else "-j REJECT"


# Memoized: a sync re-renders Services that did not change (the shared chains, the
# drift check), and plans keep equal ServicePorts. Fragments are shared: read-only.
@functools.lru_cache(maxsize=FRAGMENT_CACHE_SIZE)
def service_fragment(sp: ServicePort, node: NodeFacts) -> IptFragment:
    """The same decisions as the nftables fragment, in the classic layout."""
    fragment = IptFragment()
    cluster_chain, local_chain, external_chain = chain_names(sp)
    internal_chain = local_chain if sp.internal_policy_local else cluster_chain
    external_policy_chain = local_chain if sp.external_policy_local else cluster_chain
    no_endpoints = _reject(sp) if not sp.has_endpoints else "-j DROP"
    missing = "has no endpoints" if not sp.has_endpoints else "has no local endpoints"

    if sp.has_internal_endpoints:
        fragment.services.append(
            f"{_match(sp, sp.port, sp.cluster_ip)} {_comment(f'{sp.key} cluster IP')} "
            f"-j {internal_chain}"
        )
    else:
        fragment.filters.append(
            f"{_match(sp, sp.port, sp.cluster_ip)} {_comment(f'{sp.key} {missing}')} {no_endpoints}"
        )
    # as kube-proxy's iptables mode: the firewall only matters when there is a DNAT
    firewalled = sp.uses_firewall and sp.has_endpoints
    for ip in sp.external_ips + sp.load_balancer_ips:
        if sp.has_endpoints:
            target = (
                firewall_chain(sp) if firewalled and ip in sp.load_balancer_ips else external_chain
            )
            fragment.services.append(
                f"{_match(sp, sp.port, ip)} {_comment(f'{sp.key} external destination')} "
                f"-j {target}"
            )
        if not sp.has_external_endpoints:
            fragment.filters.append(
                f"{_match(sp, sp.port, ip)} {_comment(f'{sp.key} {missing}')} {no_endpoints}"
            )
    if sp.node_port:
        if sp.has_endpoints:
            fragment.nodeports.append(
                f"{_match(sp, sp.node_port)} {_comment(f'{sp.key} node port')} -j {external_chain}"
            )
        if not sp.has_external_endpoints:
            fragment.filters.append(
                f"-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 {_match(sp, sp.node_port)} "
                f"{_comment(f'{sp.key} {missing}')} {no_endpoints}"
            )

    if firewalled:
        fragment.chains[firewall_chain(sp)] = [
            f"-s {source} -j {external_chain}" for source in sp.firewall_sources(node)
        ]
        fragment.filters += [
            f"{_match(sp, sp.port, ip)} "
            f"{_comment(f'{sp.key} not allowed by loadBalancerSourceRanges')} -j DROP"
            for ip in sp.load_balancer_ips
        ]

    if sp.uses_cluster_chain:
        fragment.chains[cluster_chain] = []
    if sp.uses_local_chain:
        fragment.chains[local_chain] = []
    if sp.has_internal_endpoints:
        fragment.chains[internal_chain].append(
            f"! -s {node.cluster_cidr} {_match(sp, sp.port, sp.cluster_ip)} -j {MARK_MASQ}"
        )
    if sp.uses_cluster_chain:
        fragment.chains[cluster_chain] += _dispatch_rules(sp, sp.cluster_endpoints)
    if sp.uses_local_chain:
        fragment.chains[local_chain] += _dispatch_rules(sp, sp.local_endpoints)

    if sp.uses_external_chain:
        external: list[str] = []
        if not sp.external_policy_local:
            external.append(f"-j {MARK_MASQ}")
        elif sp.uses_cluster_chain:
            external += [
                f"-s {node.cluster_cidr} -j {cluster_chain}",
                f"-m addrtype --src-type LOCAL -j {MARK_MASQ}",
                f"-m addrtype --src-type LOCAL -j {cluster_chain}",
            ]
        if sp.has_external_endpoints:
            external.append(f"-j {external_policy_chain}")
        fragment.chains[external_chain] = external

    for endpoint in sp.reachable_endpoints:
        chain = endpoint_chain(sp, endpoint)
        affinity = f"-m recent --name {chain} --set " if sp.affinity_seconds else ""
        fragment.chains[chain] = [
            f"-s {endpoint.ip}/32 -j {MARK_MASQ}",
            f"-p {sp.protocol} {affinity}-m {sp.protocol} "
            f"-j DNAT --to-destination {endpoint.ip}:{endpoint.port}",
        ]
    return fragment


def plan_fragment(ports: Iterable[ServicePort], node: NodeFacts) -> IptFragment:
    merged = IptFragment()
    for sp in ports:
        fragment = service_fragment(sp, node)
        merged.chains.update(fragment.chains)
        merged.services += fragment.services
        merged.nodeports += fragment.nodeports
        merged.filters += fragment.filters
    return merged


def _restore_text(
    nat_chains: dict[str, list[str]],
    filter_rules: list[str],
    stale_chains: Iterable[str],
) -> str:
    """One restore transaction: declaring a chain (`:NAME`) creates or flushes it."""
    stale = sorted(set(stale_chains) - set(nat_chains))
    lines = ["*nat"]
    lines += [f":{name} - [0:0]" for name in [*nat_chains, *stale]]
    lines += [f"-A {name} {rule}" for name, rules in nat_chains.items() for rule in rules]
    lines += [f"-X {name}" for name in stale]
    lines += ["COMMIT", "*filter", f":{SERVICES} - [0:0]"]
    lines += [f"-A {SERVICES} {rule}" for rule in filter_rules]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_iptables_removal(existing_chains: Iterable[str]) -> str:
    """Restore input deleting every chain of ours among `existing_chains` (nat) and the
    filter chain; the hooks into them must have been deleted first."""
    ours = sorted(c for c in set(existing_chains) if is_own_chain(c))
    lines = ["*nat", *(f":{c} - [0:0]" for c in ours), *(f"-X {c}" for c in ours), "COMMIT"]
    lines += ["*filter", f":{SERVICES} - [0:0]", f"-X {SERVICES}", "COMMIT"]
    return "\n".join(lines) + "\n"


def _shared_chains(plan: Plan, node: NodeFacts) -> tuple[IptFragment, dict[str, list[str]]]:
    fragment = plan_fragment((sp for key in sorted(plan) for sp in plan[key]), node)
    shared = {
        SERVICES: [*fragment.services, _TO_NODEPORTS],
        NODEPORTS: fragment.nodeports,
    }
    return fragment, shared


def render_iptables_plan(plan: Plan, node: NodeFacts, existing_chains: Iterable[str] = ()) -> str:
    """Full sync. `existing_chains` (nat chains now in the kernel) lets chains of
    vanished Services be deleted."""
    fragment, shared = _shared_chains(plan, node)
    nat = {**{k: list(v) for k, v in _STATIC_NAT.items()}, **shared}
    nat.update(sorted(fragment.chains.items()))
    ours = [c for c in existing_chains if is_own_chain(c)]
    return _restore_text(nat, fragment.filters, ours)


def render_iptables(
    services: Iterable[Obj],
    endpointslices: Iterable[Obj],
    node: NodeFacts,
    existing_chains: Iterable[str] = (),
) -> str:
    """The whole ruleset for `node`, as `iptables-restore --noflush` input."""
    return render_iptables_plan(build_plan(services, endpointslices, node), node, existing_chains)


def render_iptables_partial(
    previous: Plan, current: Plan, changed: Iterable[str], node: NodeFacts
) -> str:
    """The shared chains (MKPY-SERVICES, MKPY-NODEPORTS, filter) are rewritten whole, as
    in kube-proxy; of the per-Service chains only those of `changed` Services."""
    keys = sorted(k for k in set(changed) if previous.get(k) != current.get(k))
    everything, shared = _shared_chains(current, node)
    old = plan_fragment((sp for k in keys for sp in previous.get(k, ())), node)
    new = plan_fragment((sp for k in keys for sp in current.get(k, ())), node)
    nat = {**shared, **dict(sorted(new.chains.items()))}
    return _restore_text(nat, everything.filters, old.chains)


def expected_shape(plan: Plan, node: NodeFacts) -> Shape:
    fragment, shared = _shared_chains(plan, node)
    shape: Shape = {f"nat {name}": len(rules) for name, rules in _STATIC_NAT.items()}
    shape.update({f"nat {name}": len(rules) for name, rules in shared.items()})
    shape.update({f"nat {name}": len(rules) for name, rules in fragment.chains.items()})
    shape[f"filter {SERVICES}"] = len(fragment.filters)
    for table, builtin, _, target in HOOKS:
        shape[f"{table} {builtin}>{target}"] = 1
    return shape


def rules_count(shape: Shape) -> int:
    return sum(shape.values())


def ports_rule_count(ports: Iterable[ServicePort], node: NodeFacts) -> int:
    """Rules the given Service ports add (their chains and shared-chain entries)."""
    fragment = plan_fragment(ports, node)
    shared = len(fragment.services) + len(fragment.nodeports) + len(fragment.filters)
    return shared + sum(len(rules) for rules in fragment.chains.values())


def is_own_chain(name: str) -> bool:
    """Chains this module creates (other MKPY- chains belong to other parts of the agent)."""
    return name in (SERVICES, NODEPORTS, MARK_MASQ, POSTROUTING) or name.startswith(
        ("MKPY-SVC-", "MKPY-SVL-", "MKPY-EXT-", "MKPY-SEP-", "MKPY-FW-")
    )
