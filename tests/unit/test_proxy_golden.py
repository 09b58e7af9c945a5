"""Golden rulesets for the fixture covering every proxy feature, in both modes.

Set MKPY_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then
read the diff: these files are the reviewable form of the proxy's behaviour.
"""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from agent.proxy.iptables import render_iptables, render_iptables_partial, render_iptables_removal
from agent.proxy.model import NodeFacts, build_plan, plan_service
from agent.proxy.nftables import (
    render_chain_deletions,
    render_nftables,
    render_nftables_partial,
    shard_table,
)

GOLDEN = Path(__file__).parent / "golden/proxy"
FIXTURE = yaml.safe_load((GOLDEN / "fixture.yaml").read_text())
NODE = NodeFacts(
    FIXTURE["node"]["name"], FIXTURE["node"]["clusterCIDR"], tuple(FIXTURE["node"]["ips"])
)
SERVICES, SLICES = FIXTURE["services"], FIXTURE["endpointslices"]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MKPY_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with MKPY_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def partial_change() -> tuple[dict, dict, list[str]]:
    """web loses all endpoints, sticky is deleted, a new Service appears."""
    previous = build_plan(SERVICES, SLICES, NODE)
    current = dict(previous)
    web = next(s for s in SERVICES if s["metadata"]["name"] == "web")
    current["default/web"] = plan_service(web, [], NODE)
    del current["default/sticky"]
    new = {
        "metadata": {"name": "new", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.30", "ports": [{"port": 80}]},
    }
    new_slice = {
        "metadata": {"name": "new-1", "namespace": "default"},
        "ports": [{"port": 8080}],
        "endpoints": [{"addresses": ["10.244.1.30"], "nodeName": "node-a"}],
    }
    current["default/new"] = plan_service(new, [new_slice], NODE)
    return previous, current, ["default/web", "default/sticky", "default/new"]


def test_nftables_full_golden() -> None:
    check_golden("nftables.nft", render_nftables(SERVICES, SLICES, NODE))


def test_iptables_full_golden() -> None:
    check_golden("iptables.rules", render_iptables(SERVICES, SLICES, NODE))


def test_nftables_partial_golden() -> None:
    partial = render_nftables_partial(*partial_change(), NODE)
    check_golden("nftables-partial.nft", partial.script + render_chain_deletions(partial.retired))


def test_iptables_partial_golden() -> None:
    check_golden("iptables-partial.rules", render_iptables_partial(*partial_change(), NODE))


@pytest.mark.parametrize("render", [render_nftables, render_iptables])
def test_services_without_rules_leave_no_trace(render: Callable[..., str]) -> None:
    text = render(SERVICES, SLICES, NODE)
    assert "/ext/" not in text and "headless" not in text


def test_nftables_partial_touches_only_the_changed_services() -> None:
    partial = render_nftables_partial(*partial_change(), NODE)
    text = partial.script
    chains = {line.split()[4] for line in text.splitlines() if line.split()[1] == "chain"}
    assert not any("default/np/" in c or "default/lb-local/" in c for c in chains)
    # a map that loses elements is refilled whole: lb-local shares web's table
    assert "flush map ip mkpy-proxy-1 service-ips" in text and "delete element" not in text
    assert shard_table("default/lb-local") == shard_table("default/web") == "mkpy-proxy-1"
    sticky = shard_table("default/sticky")
    # sticky's chains are flushed and retired, not deleted, in this transaction
    retired = {chain for table, chain in partial.retired if table == sticky}
    assert retired and all(f"flush chain ip {sticky} {chain}" in text for chain in retired)
    assert "delete chain" not in text
    assert "10.96.0.30 . tcp . 80 : goto service-" in text  # new one is dispatched
    assert "10.96.0.20 . tcp . 80 : goto reject-chain" in text  # web now rejects
    assert not partial.retired & partial.revived


def test_partial_of_nothing_is_empty_for_nftables() -> None:
    plan = build_plan(SERVICES, SLICES, NODE)
    assert render_nftables_partial(plan, plan, ["default/web"], NODE).script == ""


def test_iptables_removal_deletes_only_our_chains() -> None:
    text = render_iptables_removal(["PREROUTING", "MKPY-SERVICES", "MKPY-SEP-X", "MKPY-FORWARD"])
    assert "-X MKPY-SERVICES" in text and "-X MKPY-SEP-X" in text
    assert "MKPY-FORWARD" not in text and "PREROUTING" not in text
