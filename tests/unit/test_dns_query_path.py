"""The DNS server's query path on raw packets, without sockets: header handling,
EDNS0 and truncation, the reply-template cache, table updates, metrics."""

import struct

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSHeader, DNSQuestion, DNSRecord

from agent.dns.records import build_dns_table
from agent.dns.server import DnsConfig, DnsServer
from minikube_py.api.types import Obj


def headless(name: str, ips: list[str]) -> tuple[Obj, Obj]:
    svc = {"metadata": {"name": name, "namespace": "default"}, "spec": {"clusterIP": "None"}}
    eps = {
        "metadata": {
            "name": f"{name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }
    return svc, eps


def web(ip: str) -> Obj:
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": ip}}


BIG_IPS = [f"10.244.{n // 250}.{n % 250 + 1}" for n in range(60)]  # 60 A records: > 512 bytes


def make_server(web_ip: str = "10.96.0.10") -> DnsServer:
    big_svc, big_eps = headless("big", BIG_IPS)
    table = build_dns_table([web(web_ip), big_svc], [big_eps], [])
    config = DnsConfig(("127.0.0.1", 0), (("127.0.0.1", 9),), reverse_cidrs=("10.96.0.0/16",))
    return DnsServer(config, table)


def query(name: str, qtype: str = "A", *, id_: int = 4242, edns: int | None = None) -> bytes:
    record = DNSRecord(DNSHeader(id=id_, rd=1), q=DNSQuestion(name, getattr(QTYPE, qtype)))
    if edns is not None:
        record.add_ar(EDNS0(udp_len=edns))
    return bytes(record.pack())


def local_reply(server: DnsServer, packet: bytes, over_tcp: bool = False) -> DNSRecord:
    wire = server.answer(packet, over_tcp)
    assert isinstance(wire, bytes)
    return DNSRecord.parse(wire)


def test_answers_with_the_query_id_and_the_question_as_asked() -> None:
    server = make_server()
    for id_ in (1, 2):  # the second is the cached template with a new ID and case
        name = "web.default.svc.cluster.local" if id_ == 1 else "WEB.Default.svc.cluster.local"
        reply = local_reply(server, query(name, id_=id_))
        assert reply.header.id == id_
        assert (reply.header.qr, reply.header.aa, reply.header.rd) == (1, 1, 1)
        assert str(reply.q.qname) == name + "."
        assert [str(rr.rdata) for rr in reply.rr] == ["10.96.0.10"]
    assert server.metrics.answer_cache_hits == 1


def test_update_replaces_the_table_and_the_cached_replies() -> None:
    server = make_server()
    packet = query("web.default.svc.cluster.local")
    assert str(local_reply(server, packet).rr[0].rdata) == "10.96.0.10"
    server.update(build_dns_table([web("10.96.0.99")], [], []))
    assert str(local_reply(server, packet).rr[0].rdata) == "10.96.0.99"


def test_udp_truncates_to_512_without_edns_and_to_the_edns_size() -> None:
    server = make_server()
    small = local_reply(server, query("big.default.svc.cluster.local"))
    assert small.header.tc == 1 and small.rr == []
    roomy = local_reply(server, query("big.default.svc.cluster.local", edns=4096))
    assert roomy.header.tc == 0 and len(roomy.rr) == len(BIG_IPS)
    assert [rr.rclass for rr in roomy.ar if rr.rtype == QTYPE.OPT] == [1232]
    tcp = local_reply(server, query("big.default.svc.cluster.local"), over_tcp=True)
    assert tcp.header.tc == 0 and len(tcp.rr) == len(BIG_IPS)


def test_negative_answers_carry_the_soa_of_their_zone() -> None:
    server = make_server()
    nxdomain = local_reply(server, query("nope.default.svc.cluster.local"))
    assert nxdomain.header.rcode == RCODE.NXDOMAIN
    assert str(nxdomain.auth[0].rname) == "cluster.local."
    reverse = local_reply(server, query("9.9.96.10.in-addr.arpa", "PTR"))
    assert reverse.header.rcode == RCODE.NXDOMAIN
    assert str(reverse.auth[0].rname) == "96.10.in-addr.arpa."
    nodata = local_reply(server, query("web.default.svc.cluster.local", "AAAA"))
    assert (nodata.header.rcode, nodata.rr, nodata.auth[0].rtype) == (RCODE.NOERROR, [], QTYPE.SOA)


def test_names_outside_the_zones_are_forwarded() -> None:
    server = make_server()
    assert not isinstance(server.answer(query("example.com"), False), bytes)
    assert not isinstance(server.answer(query("1.1.168.192.in-addr.arpa", "PTR"), False), bytes)


@pytest.mark.parametrize(
    ("packet", "rcode"),
    [
        (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x03abc", RCODE.FORMERR),
        (
            struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
            RCODE.FORMERR,
        ),
        (struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0), RCODE.FORMERR),
        (
            struct.pack("!HHHHHH", 7, 0x0100, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01" * 2,
            RCODE.FORMERR,
        ),
        (struct.pack("!HHHHHH", 7, 0x2100, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01", RCODE.NOTIMP),
    ],
    ids=["truncated", "compression-loop", "no-question", "two-questions", "opcode-update"],
)
def test_malformed_queries_get_a_bare_error_header(packet: bytes, rcode: int) -> None:
    reply = local_reply(make_server(), packet)
    assert (reply.header.id, reply.header.qr, reply.header.rcode) == (7, 1, rcode)
    assert reply.header.rd == 1 and reply.questions == []


def test_fragments_and_responses_are_dropped() -> None:
    server = make_server()
    assert server.answer(b"\x00\x07\x01", False) is None
    response = DNSRecord.parse(query("web.default.svc.cluster.local")).reply().pack()
    assert server.answer(response, False) is None


def test_unknown_edns_version_is_badvers_and_other_classes_are_refused() -> None:
    server = make_server()
    record = DNSRecord.parse(query("web.default.svc.cluster.local"))
    record.add_ar(EDNS0(udp_len=1232, version=1))
    reply = local_reply(server, bytes(record.pack()))
    opt = next(rr for rr in reply.ar if rr.rtype == QTYPE.OPT)
    assert (opt.ttl >> 24, reply.header.rcode) == (1, 0)  # extended RCODE 16 = BADVERS
    chaos = DNSRecord(DNSHeader(id=5), q=DNSQuestion("version.bind", QTYPE.TXT, 3))
    assert local_reply(server, bytes(chaos.pack())).header.rcode == RCODE.REFUSED


def test_metrics_count_replies_by_type_and_rcode() -> None:
    server = make_server()
    for packet in (query("web.default.svc.cluster.local"), query("x.cluster.local")):
        server._observe(server.answer(packet, False), 0.0)  # type: ignore[arg-type]
    assert server.metrics.response_count("A", "NOERROR") == 1
    assert server.metrics.response_count("A", "NXDOMAIN") == 1
    text = server.metrics.render_prometheus()
    assert 'minikube_py_dns_responses_total{type="A",rcode="NXDOMAIN"} 1' in text
    assert 'minikube_py_dns_request_duration_seconds_bucket{le="+Inf"} 2' in text
