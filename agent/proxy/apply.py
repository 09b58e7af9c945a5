"""The edge between the pure renderers and the kernel.

`Proxier` keeps one node's rules in step with its plan, in a given network namespace
(the lab's node netns; None for the current one). Each sync writes one transaction:
an nft script through libnftables (`agent.proxy.libnft`, a persistent context per
namespace) or `iptables-restore --noflush`, both all-or-nothing, so a failed sync
leaves the previous ruleset whole. A sync is partial (only the Services that changed,
plus the shared maps/chains) unless a full one is due: at start, after any failure,
and when `resync` finds drift (table or chains missing, or rules per chain and
elements per map differing from what the plan implies). iptables commands run under
`ip netns exec NAME`; the renderers never see the kernel. `close()` releases the
namespace (the nft context's thread).

Costs to know (nft 1.0.6, kernel 6.18, 10k Services = 30k chains): a partial sync that
adds a Service costs ~15-20 ms, most of it the kernel re-validating the changed table's
whole jump graph (every chain behind its verdict maps) on each commit that adds a jump,
goto or NAT rule. Any deletion also makes libnftables re-read every chain first (~60
ms), so a partial nftables sync leaves the chains it no longer uses flushed, to be
deleted by a later sync that deletes something anyway, or by `resync`: an endpoint
change then costs ~13 ms instead of ~80; a Service's removal still pays for its map
elements. Batch changes into one `sync`. A full nftables sync rebuilds the tables,
which also forgets ClientIP affinity; the drift check lists the tables (seconds at
10k), so run it at resync periods, not per change.
"""

import json
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from agent.proxy import iptables, nftables
from agent.proxy.conntrack import delete_flows, stale_udp_flows
from agent.proxy.libnft import Nft, NftError
from agent.proxy.model import NodeFacts, Plan, ServicePort

Mode = Literal["nftables", "iptables"]
Shape = dict[str, int]


class ApplyError(RuntimeError):
    """A ruleset was refused; the kernel still holds the previous one."""


def run(argv: list[str], netns: str | None, stdin: str | None = None) -> str:
    """Run a command (inside `netns`), returning stdout; ApplyError when it fails."""
    command = ["ip", "netns", "exec", netns, *argv] if netns else argv
    proc = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise ApplyError(f"{' '.join(command)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


class Backend(Protocol):
    def render_full(self, plan: Plan, node: NodeFacts) -> str: ...
    def render_partial(
        self, previous: Plan, current: Plan, changed: Iterable[str], node: NodeFacts
    ) -> str: ...
    def apply(self, text: str, full: bool) -> None: ...
    def collect_garbage(self) -> None: ...
    def expected_shape(self, plan: Plan, node: NodeFacts) -> Shape: ...
    def observed_shape(self) -> Shape | None: ...
    def rule_count(self, ports: Iterable[ServicePort], node: NodeFacts) -> int: ...
    def base_rule_count(self, node: NodeFacts) -> int: ...
    def remove(self) -> None: ...
    def close(self) -> None: ...


# Retired chains (see nftables.NftPartial) wait for a sync that deletes something anyway,
# or for the periodic resync, unless this many pile up first.
RETIRED_CHAINS_MAX = 1000


class NftablesBackend:
    def __init__(self, netns: str | None) -> None:
        self._nft = Nft(netns)
        self._retired: set[nftables.Chain] = set()  # in the kernel, flushed, unused
        self._retired_after_apply: set[nftables.Chain] = set()

    def _run(self, text: str, json: bool = False) -> str:
        try:
            return self._nft.run(text, json)
        except NftError as error:
            raise ApplyError(str(error)) from error

    def render_full(self, plan: Plan, node: NodeFacts) -> str:
        return nftables.render_nftables_plan(plan, node)

    def render_partial(
        self, previous: Plan, current: Plan, changed: Iterable[str], node: NodeFacts
    ) -> str:
        partial = nftables.render_nftables_partial(previous, current, changed, node)
        retired = (self._retired - partial.revived) | partial.retired
        script = partial.script
        if retired and (nftables.loads_every_chain(script) or len(retired) >= RETIRED_CHAINS_MAX):
            script += nftables.render_chain_deletions(retired)
            retired = set()
        self._retired_after_apply = retired
        return script

    def apply(self, text: str, full: bool) -> None:
        self._run(text)
        self._retired = set() if full else self._retired_after_apply

    def collect_garbage(self) -> None:
        if self._retired:
            self._run(nftables.render_chain_deletions(self._retired))
            self._retired = set()

    def expected_shape(self, plan: Plan, node: NodeFacts) -> Shape:
        shape = nftables.expected_shape(plan, node)
        shape.update({f"chain {table} {chain}": 0 for table, chain in self._retired})
        return shape

    def observed_shape(self) -> Shape | None:
        shape: Shape = {}
        for item in json.loads(self._run("list ruleset", json=True))["nftables"]:
            kind = next((k for k in ("chain", "rule", "map") if k in item), "")
            body = item.get(kind, {})
            if body.get("family") != "ip" or body.get("table") not in nftables.TABLES:
                continue
            if kind == "chain":
                shape.setdefault(f"chain {body['table']} {body['name']}", 0)
            elif kind == "rule":
                key = f"chain {body['table']} {body['chain']}"
                shape[key] = shape.get(key, 0) + 1
            elif kind == "map":
                shape[f"map {body['table']} {body['name']}"] = len(body.get("elem", []))
        return shape or None

    def rule_count(self, ports: Iterable[ServicePort], node: NodeFacts) -> int:
        return nftables.ports_rule_count(ports, node)

    def base_rule_count(self, node: NodeFacts) -> int:
        return nftables.rules_count(nftables.expected_shape({}, node))

    def remove(self) -> None:
        self._run("".join(f"add table ip {t}\ndelete table ip {t}\n" for t in nftables.TABLES))
        self._retired = set()

    def close(self) -> None:
        self._nft.close()


class IptablesBackend:
    def __init__(self, netns: str | None) -> None:
        self.netns = netns

    def render_full(self, plan: Plan, node: NodeFacts) -> str:
        return iptables.render_iptables_plan(plan, node, self._nat_chains())

    def _nat_chains(self) -> list[str]:
        listing = run(["iptables-save", "-t", "nat"], self.netns)
        return [line[1:].split()[0] for line in listing.splitlines() if line.startswith(":")]

    def render_partial(
        self, previous: Plan, current: Plan, changed: Iterable[str], node: NodeFacts
    ) -> str:
        return iptables.render_iptables_partial(previous, current, changed, node)

    def apply(self, text: str, full: bool) -> None:
        run(["iptables-restore", "--noflush"], self.netns, text)
        if full:  # the hooks change only if someone removed them: drift repairs that
            for table, builtin, match, target in iptables.HOOKS:
                rule = [*match.split(), "-j", target]
                try:
                    run(["iptables", "-t", table, "-C", builtin, *rule], self.netns)
                except ApplyError:
                    run(["iptables", "-t", table, "-I", builtin, "1", *rule], self.netns)

    def collect_garbage(self) -> None:
        pass  # a partial iptables-restore deletes its chains at once, at no extra cost

    def expected_shape(self, plan: Plan, node: NodeFacts) -> Shape:
        return iptables.expected_shape(plan, node)

    def observed_shape(self) -> Shape | None:
        shape: Shape = {}
        table = ""
        for line in run(["iptables-save"], self.netns).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and iptables.is_own_chain(line[1:].split()[0]):
                shape.setdefault(f"{table} {line[1:].split()[0]}", 0)
            elif line.startswith("-A "):
                words = line.split()
                chain, target = words[1], words[-1]
                if iptables.is_own_chain(chain):
                    key = f"{table} {chain}"
                elif words[-2] == "-j" and iptables.is_own_chain(target):
                    key = f"{table} {chain}>{target}"
                else:
                    continue
                shape[key] = shape.get(key, 0) + 1
        return shape or None

    def rule_count(self, ports: Iterable[ServicePort], node: NodeFacts) -> int:
        return iptables.ports_rule_count(ports, node)

    def base_rule_count(self, node: NodeFacts) -> int:
        return iptables.rules_count(iptables.expected_shape({}, node))

    def remove(self) -> None:
        for table, builtin, match, target in iptables.HOOKS:
            rule = [*match.split(), "-j", target]
            while True:  # delete every copy of the hook
                try:
                    run(["iptables", "-t", table, "-D", builtin, *rule], self.netns)
                except ApplyError:
                    break
        run(
            ["iptables-restore", "--noflush"],
            self.netns,
            iptables.render_iptables_removal(self._nat_chains()),
        )

    def close(self) -> None:
        pass  # nothing held between commands


BACKENDS: dict[str, type[NftablesBackend] | type[IptablesBackend]] = {
    "nftables": NftablesBackend,
    "iptables": IptablesBackend,
}


@dataclass(frozen=True)
class SyncResult:
    full: bool
    rules: int  # rules the proxy now holds in the kernel
    duration_seconds: float


class Proxier:
    """One node's Service proxy state: the plan the kernel holds, and how to change it."""

    def __init__(self, mode: Mode, node: NodeFacts, netns: str | None = None) -> None:
        self.mode = mode
        self.node = node
        self.netns = netns
        self.plan: Plan = {}
        self._backend: Backend = BACKENDS[mode](netns)
        self._full_due = True
        self._other_mode_removed = False
        self._rules = 0

    def sync(self, updates: Mapping[str, tuple[ServicePort, ...]]) -> SyncResult:
        """Bring the given Services ("namespace/name" -> ports from `plan_service`; no
        ports: gone or not proxied) into the kernel, then delete the UDP conntrack flows
        the change left stale. Raises ApplyError when the rules are refused (the next
        sync is then a full one), RuntimeError when conntrack fails."""
        start = time.perf_counter()
        current = dict(self.plan)
        for key, ports in updates.items():
            if ports:
                current[key] = ports
            else:
                current.pop(key, None)
        changed = sorted(k for k in updates if self.plan.get(k, ()) != current.get(k, ()))
        full = self._full_due
        self._full_due = True  # until this sync has succeeded
        if not self._other_mode_removed:
            # as kube-proxy at start: rules of the other mode would capture traffic too
            other = BACKENDS["iptables" if self.mode == "nftables" else "nftables"](self.netns)
            try:
                other.remove()
            finally:
                other.close()
            self._other_mode_removed = True
        if full:
            text = self._backend.render_full(current, self.node)
        else:
            text = self._backend.render_partial(self.plan, current, changed, self.node)
        if text:
            self._backend.apply(text, full)
        self._full_due = False
        previous, self.plan = self.plan, current
        if full:
            self._rules = self._backend.base_rule_count(self.node) + self._backend.rule_count(
                (sp for ports in current.values() for sp in ports), self.node
            )
        else:
            self._rules += sum(
                self._backend.rule_count(current.get(k, ()), self.node)
                - self._backend.rule_count(previous.get(k, ()), self.node)
                for k in changed
            )
        delete_flows(
            (
                flow
                for k in changed
                for flow in stale_udp_flows(previous.get(k, ()), current.get(k, ()))
            ),
            self.netns,
        )
        return SyncResult(full, self._rules, time.perf_counter() - start)

    def remove(self) -> None:
        """Take this mode's rules out of the kernel (the agent stops proxying)."""
        self._backend.remove()
        self.plan = {}
        self._full_due = True

    def close(self) -> None:
        """Release what the Proxier holds open (its namespace); the rules stay."""
        self._backend.close()

    def full_sync(self) -> SyncResult:
        self._full_due = True
        return self.sync({})

    def drifted(self) -> bool:
        """Does the kernel differ from the plan (table flushed or deleted, rules lost)?"""
        expected = self._backend.expected_shape(self.plan, self.node)
        return self._backend.observed_shape() != expected

    def resync(self) -> SyncResult | None:
        """The periodic check: a full sync when one is due or the kernel drifted;
        otherwise the chains partial syncs retired are deleted now."""
        if self._full_due or self.drifted():
            return self.full_sync()
        try:
            self._backend.collect_garbage()
        except ApplyError:
            self._full_due = True
            raise
        return None
