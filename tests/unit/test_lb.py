"""LoadBalancer announcement: who announces, what, the ARP frame, and when the interface is
synced."""

from __future__ import annotations

import asyncio
import contextlib
import struct

from hypothesis import given
from hypothesis import strategies as st

from agent.lb import (
    EXCLUDE_LABEL,
    announced_addresses,
    announcer,
    eligible_nodes,
    gratuitous_arp,
    ingress_ips,
    keep_announcements,
)


def node(name: str, ready: bool = True, labels: dict[str, str] | None = None) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def lb_service(name: str, *ips: str, ip_mode: str = "VIP") -> dict:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": ip_mode} for ip in ips]}},
    }


def test_eligible_nodes_are_ready_and_not_excluded() -> None:
    nodes = [node("c"), node("a"), node("b", ready=False), node("d", labels={EXCLUDE_LABEL: ""})]
    assert eligible_nodes(nodes) == ["a", "c"]


def test_no_candidates_no_announcer() -> None:
    assert announcer("default/web", []) is None


names = st.lists(st.from_regex(r"[a-z]{1,6}-n[0-9]", fullmatch=True), min_size=2, unique=True)


@given(names, st.text(min_size=1, max_size=20))
def test_announcer_ignores_order(nodes: list[str], key: str) -> None:
    assert announcer(key, nodes) == announcer(key, list(reversed(nodes)))
    assert announcer(key, nodes) in nodes


@given(names, st.text(min_size=1, max_size=20))
def test_only_the_announcers_services_move_when_a_node_goes(nodes: list[str], key: str) -> None:
    chosen = announcer(key, nodes)
    for gone in nodes:
        rest = [n for n in nodes if n != gone]
        if gone != chosen:
            assert announcer(key, rest) == chosen
        else:
            assert announcer(key, rest) in rest


def test_services_spread_over_nodes() -> None:
    nodes = ["lab-n1", "lab-n2", "lab-n3"]
    chosen = {announcer(f"default/svc{i}", nodes) for i in range(60)}
    assert chosen == set(nodes)


def test_each_address_is_announced_by_exactly_one_node() -> None:
    nodes = [node("lab-n1"), node("lab-n2"), node("lab-n3"), node("lab-n4", ready=False)]
    services = [lb_service(f"s{i}", f"192.168.49.{200 + i}") for i in range(20)]
    held = [announced_addresses(services, nodes, f"lab-n{i}") for i in (1, 2, 3, 4)]
    assert held[3] == set()
    assert sorted(ip for h in held for ip in h) == sorted(
        f"192.168.49.{200 + i}" for i in range(20)
    )


def test_ingress_ips_only_for_announced_load_balancers() -> None:
    assert ingress_ips(lb_service("a", "192.168.49.200", "host.example")) == ["192.168.49.200"]
    assert ingress_ips(lb_service("b", "192.168.49.201", ip_mode="Proxy")) == []
    cluster_ip = lb_service("c", "192.168.49.202")
    cluster_ip["spec"]["type"] = "ClusterIP"
    assert ingress_ips(cluster_ip) == []


def test_gratuitous_arp_frame() -> None:
    mac = bytes.fromhex("02420a000001")
    frame = gratuitous_arp(mac, "192.168.49.200", reply=False)
    assert frame.hex() == (
        "ffffffffffff" "02420a000001" "0806"  # broadcast from us, ARP
        "0001" "0800" "06" "04" "0001"  # Ethernet/IPv4, request
        "02420a000001" "c0a831c8"  # sender: our MAC, the address
        "000000000000" "c0a831c8"  # target: the same address
    )  # fmt: skip
    reply = gratuitous_arp(mac, "192.168.49.200", reply=True)
    assert struct.unpack("!H", reply[20:22]) == (2,)
    assert reply[32:38] == b"\xff" * 6


class FakeInformer:
    """What keep_announcements reads of an informer: items, handlers, synced."""

    def __init__(self, *objects: dict) -> None:
        self.objects = list(objects)
        self.handlers: list = []
        self.synced = asyncio.Event()
        self.synced.set()

    def add_handler(self, handler: object) -> None:
        self.handlers.append(handler)

    def items(self) -> list[dict]:
        return list(self.objects)

    def add(self, obj: dict) -> None:
        self.objects.append(obj)
        for handler in self.handlers:
            handler("ADDED", obj, None)


class RecordingAnnouncer:
    def __init__(self) -> None:
        self.synced: list[set[str]] = []
        self.failing = False

    def sync(self, wanted: set[str]) -> tuple[set[str], set[str]]:
        self.synced.append(set(wanted))
        if self.failing:
            raise OSError("netlink said no")
        return set(), set()


async def synced_times(recorder: RecordingAnnouncer, count: int) -> None:
    """Until the announcer has synced `count` times (a thread does it: give it time)."""
    async with asyncio.timeout(10):
        while len(recorder.synced) < count:
            await asyncio.sleep(0.01)


async def test_the_interface_is_synced_when_the_addresses_change_and_periodically() -> None:
    services, nodes = FakeInformer(), FakeInformer(node("a"))
    recorder = RecordingAnnouncer()
    task = asyncio.create_task(
        keep_announcements(recorder, services, nodes, "a", resync_seconds=1.0)  # type: ignore[arg-type]
    )
    try:
        await synced_times(recorder, 1)  # the first look
        cluster_ip = {"metadata": {"name": "c", "namespace": "default"}, "spec": {}}
        services.add(cluster_ip)  # changes nothing this node holds: no netlink work
        await asyncio.sleep(0.1)
        assert recorder.synced == [set()]
        recorder.failing = True
        services.add(lb_service("web", "192.168.49.200"))
        await synced_times(recorder, 2)
        recorder.failing = False
        services.add(cluster_ip)  # a failed sync is tried again at the next event
        await synced_times(recorder, 3)
        assert recorder.synced == [set(), {"192.168.49.200"}, {"192.168.49.200"}]
        await synced_times(recorder, 4)  # the periodic look, which repairs drift
        assert recorder.synced[-1] == {"192.168.49.200"}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
