"""Stale UDP conntrack entries: which to delete after a sync, and deleting them.

UDP has no connection end, so a client that keeps sending to a Service keeps hitting
the conntrack entry that DNATs it to an endpoint that is gone; kube-proxy deletes those
entries after each sync. Two cases, as kube-proxy: an endpoint left a UDP Service port
(delete the flows to each Service address that were NATed to it), and a UDP Service port
got its first endpoint (delete flows to its addresses created while it had none).
The decision is pure (`stale_udp_flows`); `delete_flows` runs `conntrack -D`.
"""

import subprocess
from collections.abc import Iterable

from agent.proxy.model import Endpoint, ServicePort


def _addresses(sp: ServicePort) -> list[list[str]]:
    """Match arguments for every way a client reaches the Service port."""
    port = str(sp.port)
    matches = [
        ["--orig-dst", ip, "--orig-port-dst", port]
        for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips)
    ]
    if sp.node_port:
        matches.append(["--orig-port-dst", str(sp.node_port)])
    return matches


def stale_udp_flows(
    previous: Iterable[ServicePort], current: Iterable[ServicePort]
) -> list[list[str]]:
    """`conntrack` argument lists deleting the flows one Service's change left stale."""
    now = {sp.key: sp for sp in current}
    commands = []
    for old in previous:
        if old.protocol != "udp":
            continue
        new = now.get(old.key)
        kept: set[Endpoint] = set(new.reachable_endpoints) if new else set()
        for endpoint in old.reachable_endpoints:
            if endpoint in kept:
                continue
            reply = ["--reply-src", endpoint.ip, "--reply-port-src", str(endpoint.port)]
            commands += [["-D", "-p", "udp", *match, *reply] for match in _addresses(old)]
    before = {sp.key: sp for sp in previous}
    for new in now.values():
        old_port = before.get(new.key)
        if (
            new.protocol == "udp"
            and new.reachable_endpoints
            and not (old_port and old_port.reachable_endpoints)
        ):
            commands += [["-D", "-p", "udp", *match] for match in _addresses(new)]
    return commands


def delete_flows(commands: Iterable[list[str]], netns: str | None = None) -> None:
    """Run each `conntrack` command (in `netns`); finding nothing to delete is fine."""
    for args in commands:
        argv = ["conntrack", *args]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode and "0 flow entries" not in proc.stderr:
            raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
