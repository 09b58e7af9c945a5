"""The node agent's Service proxy: Services + EndpointSlices -> kernel rules.

`model` reduces the API objects to a plan (pure), `nftables` and `iptables` render it
(pure), `apply` writes it into a network namespace atomically and checks for drift,
`conntrack` clears stale UDP flows, `loop` drives it from the agent's informers and
`metrics` reports sync and network programming latency.
"""

from agent.proxy.apply import ApplyError, Proxier, SyncResult
from agent.proxy.iptables import render_iptables, render_iptables_partial, render_iptables_plan
from agent.proxy.model import NodeFacts, Plan, ServicePort, build_plan, plan_service
from agent.proxy.nftables import render_nftables, render_nftables_partial, render_nftables_plan

__all__ = [
    "ApplyError",
    "NodeFacts",
    "Plan",
    "Proxier",
    "ServicePort",
    "SyncResult",
    "build_plan",
    "plan_service",
    "render_iptables",
    "render_iptables_partial",
    "render_iptables_plan",
    "render_nftables",
    "render_nftables_partial",
    "render_nftables_plan",
]
