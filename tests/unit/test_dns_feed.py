"""The feed from informer caches to the DNS server: a change is served within 1 s, and a
pod change rebuilds the table only when it changes what the table reads."""

import asyncio
import time

from dnslib import QTYPE, RCODE, DNSRecord

from agent.dns.feed import DnsTableFeed, Handler
from agent.dns.records import build_dns_table
from agent.dns.server import DnsConfig, DnsServer
from minikube_py.api.types import Obj
from minikube_py.informer import key_of


class ListCache:
    """The informer methods the feed uses, over a plain list."""

    def __init__(self) -> None:
        self.objects: list[Obj] = []
        self.handlers: list[Handler] = []

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def items(self) -> list[Obj]:
        return list(self.objects)

    def get(self, key: str) -> Obj | None:
        return next((o for o in self.objects if key_of(o) == key), None)

    def put(self, obj: Obj) -> None:
        """Add or replace (by metadata) an object, telling the handlers as an informer."""
        old = next((o for o in self.objects if o["metadata"] == obj["metadata"]), None)
        self.objects = [o for o in self.objects if o is not old] + [obj]
        for handler in self.handlers:
            handler("ADDED" if old is None else "MODIFIED", obj, old)


def web(ip: str) -> Obj:
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": ip}}


def lookup(server: DnsServer) -> tuple[int, list[str]]:
    wire = server.answer(bytes(DNSRecord.question("web.default.svc.cluster.local").pack()), False)
    assert isinstance(wire, bytes)
    reply = DNSRecord.parse(wire)
    return reply.header.rcode, [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


async def wait_for(server: DnsServer, expected: tuple[int, list[str]]) -> float:
    started = time.monotonic()
    while lookup(server) != expected:
        assert time.monotonic() - started < 1.0, lookup(server)
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_changes_reach_the_server_within_a_second() -> None:
    services, slices, pods = ListCache(), ListCache(), ListCache()
    services.put(web("10.96.0.10"))
    server = DnsServer(DnsConfig(("127.0.0.1", 0), ()), build_dns_table([], [], []))
    feed = DnsTableFeed(server, services, slices, pods)
    assert lookup(server)[0] == RCODE.NXDOMAIN
    feed.start()
    try:
        await wait_for(server, (RCODE.NOERROR, ["10.96.0.10"]))
        for n in range(100):  # a burst is coalesced; the last state wins
            services.put(web(f"10.96.1.{n}"))
        await wait_for(server, (RCODE.NOERROR, ["10.96.1.99"]))
    finally:
        await feed.stop()


def counting_feed() -> tuple[DnsTableFeed, list[object], ListCache, ListCache, ListCache]:
    """A started feed whose server counts the tables it gets."""
    services, slices, pods = ListCache(), ListCache(), ListCache()
    server = DnsServer(DnsConfig(("127.0.0.1", 0), ()), build_dns_table([], [], []))
    tables: list[object] = []
    update = server.update
    server.update = lambda table: (tables.append(table), update(table))[-1]  # type: ignore[method-assign]
    feed = DnsTableFeed(server, services, slices, pods)
    feed.start()
    return feed, tables, services, slices, pods


async def built(tables: list[object], count: int) -> bool:
    await asyncio.sleep(0.2)  # well past the coalescing pause
    return len(tables) == count


async def test_only_what_the_table_reads_of_a_pod_rebuilds_it() -> None:
    feed, tables, _, _, pods = counting_feed()

    def pod(phase: str, **spec: str) -> Obj:
        metadata = {"name": "web-0", "namespace": "default"}
        return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}

    try:
        assert await built(tables, 1)
        pods.put(pod("Pending"))
        pods.put(pod("Running"))  # a status write: no rebuild
        assert await built(tables, 1)
        pods.put(pod("Running", hostname="web-0", subdomain="web"))  # names an endpoint
        assert await built(tables, 2)
        pods.put(pod("Succeeded", hostname="web-0", subdomain="web"))
        assert await built(tables, 2)
        pods.put(pod("Succeeded"))  # no longer names one
        assert await built(tables, 3)
    finally:
        await feed.stop()


async def test_only_headless_services_slices_rebuild_it() -> None:
    feed, tables, services, slices, _ = counting_feed()

    def endpoint_slice(service: str, ready: bool) -> Obj:
        metadata = {"name": f"{service}-abc", "namespace": "default",
                    "labels": {"kubernetes.io/service-name": service}}  # fmt: skip
        endpoint = {"addresses": ["10.244.1.5"], "conditions": {"ready": ready}}
        return {"metadata": metadata, "addressType": "IPv4", "endpoints": [endpoint]}

    try:
        services.put(web("10.96.0.10"))
        headless = web("None")
        headless["metadata"] = {"name": "db", "namespace": "default"}
        services.put(headless)
        assert await built(tables, 1)  # the first build sees both
        slices.put(endpoint_slice("web", True))
        slices.put(endpoint_slice("web", False))  # a ClusterIP Service's: no rebuild
        assert await built(tables, 1)
        slices.put(endpoint_slice("db", True))  # a headless Service's endpoints have names
        assert await built(tables, 2)
        slices.put(endpoint_slice("unknown", True))  # its Service not known yet: rebuild
        assert await built(tables, 3)
    finally:
        await feed.stop()
