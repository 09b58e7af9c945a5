"""The feed from informer caches to the DNS server: a change is served within 1 s."""

import asyncio
import time

from dnslib import QTYPE, RCODE, DNSRecord

from agent.dns.feed import DnsTableFeed, Handler
from agent.dns.records import build_dns_table
from agent.dns.server import DnsConfig, DnsServer
from minikube_py.api.types import Obj


class ListCache:
    """The two informer methods the feed uses, over a plain list."""

    def __init__(self) -> None:
        self.objects: list[Obj] = []
        self.handlers: list[Handler] = []

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def items(self) -> list[Obj]:
        return list(self.objects)

    def put(self, obj: Obj) -> None:
        self.objects = [o for o in self.objects if o["metadata"] != obj["metadata"]] + [obj]
        for handler in self.handlers:
            handler("MODIFIED", obj, None)


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
