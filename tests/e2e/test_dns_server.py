"""The DNS server on real sockets, asked by the real `dig`.

The server runs in a thread with its own event loop on a random 127.x.y.z address; a
fake upstream on another loopback address stands in for the host's resolvers, so no
query ever leaves the machine. Needs no root, only `dig` (dnsutils), which the test
requires loudly.
"""

import asyncio
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from dnslib import QTYPE, RCODE, RR, SOA, A, DNSHeader, DNSQuestion, DNSRecord

from agent.dns.records import DnsTable, build_dns_table
from agent.dns.server import DnsConfig, DnsServer
from minikube_py.api.types import Obj

T = TypeVar("T")
UPSTREAM_NAME = "www.example.test"
UPSTREAM_ADDRESS = "192.0.2.80"


def random_loopback() -> str:
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


# -- the cluster's objects ---------------------------------------------------------


def service(name: str, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def slice_of(service_name: str, endpoints: list[Obj], ports: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {
            "name": f"{service_name}-abcde",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": ports or [],
        "endpoints": endpoints,
    }


BIG_IPS = [f"10.244.9.{n}" for n in range(1, 81)]


def cluster_table(web_ip: str = "10.96.0.10") -> DnsTable:
    services = [
        service("web", clusterIP=web_ip, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]),
        service("db", clusterIP="None", ports=[{"name": "pg", "port": 5432}]),
        service("big", clusterIP="None"),
        service("alias", type="ExternalName", externalName="web.default.svc.cluster.local"),
        service("outside", type="ExternalName", externalName=UPSTREAM_NAME),
    ]
    ready = {"ready": True}
    slices = [
        slice_of(
            "db",
            [
                {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": ready},
                {"addresses": ["10.244.1.6"], "hostname": "db-1", "conditions": ready},
            ],
            ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
        ),
        slice_of("big", [{"addresses": [ip], "conditions": ready} for ip in BIG_IPS]),
    ]
    return build_dns_table(services, slices, [], ttl=5)


# -- servers in threads ------------------------------------------------------------


class ServerThread:
    """A DnsServer on its own event loop; `call` runs a function in that loop."""

    def __init__(self, config: DnsConfig, table: DnsTable) -> None:
        self.server = DnsServer(config, table)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.host, self.port = self.run(self.server.start())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def stop(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class FakeUpstream:
    """A UDP resolver on loopback that knows one name and counts the questions."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((random_loopback(), 0))
        self.sock.settimeout(0.2)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.questions: Counter[str] = Counter()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, client = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            query = DNSRecord.parse(data)
            name = str(query.q.qname).rstrip(".").lower()
            self.questions[name] += 1
            reply = query.reply(aa=0)
            if name == UPSTREAM_NAME and query.q.qtype == QTYPE.A:
                reply.add_answer(RR(UPSTREAM_NAME, QTYPE.A, rdata=A(UPSTREAM_ADDRESS), ttl=60))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
                soa = SOA("ns.example.test.", "root.example.test.", (1, 60, 60, 60, 30))
                reply.add_auth(RR("example.test", QTYPE.SOA, rdata=soa, ttl=30))
            self.sock.sendto(reply.pack(), client)

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def dig_binary() -> str:
    path = shutil.which("dig")
    if path is None:
        pytest.fail("the real `dig` is required (apt-get install dnsutils)", pytrace=False)
    return path


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.stop()


def start_server(upstreams: tuple[tuple[str, int], ...]) -> ServerThread:
    config = DnsConfig(
        listen=(random_loopback(), 0),
        upstreams=upstreams,
        reverse_cidrs=("10.96.0.0/16", "10.244.0.0/16"),
    )
    return ServerThread(config, cluster_table())


@pytest.fixture
def dns(upstream: FakeUpstream) -> Iterator[ServerThread]:
    server = start_server((upstream.address,))
    yield server
    server.stop()


# -- asking with dig ---------------------------------------------------------------


@dataclass
class Dig:
    status: str
    flags: set[str]
    answer: list[tuple[str, str, str]]  # (owner, type, rdata)
    authority: list[tuple[str, str, str]]
    output: str


def dig(dig_binary: str, server: ServerThread, *args: str) -> Dig:
    command = [dig_binary, "-p", str(server.port), f"@{server.host}", "+tries=1", "+time=5"]
    command += ["+nocookie", "+noall", "+comments", "+answer", "+authority", *args]
    output = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    status, flags = "", set()
    sections: dict[str, list[tuple[str, str, str]]] = {"ANSWER": [], "AUTHORITY": []}
    current = None
    for line in output.splitlines():
        if "status:" in line:
            status = line.split("status:")[1].split(",")[0].strip()
        elif line.startswith(";; flags:"):
            flags = set(line.split(":")[1].split(";")[0].split())
        elif line.startswith(";; ") and " SECTION:" in line:
            current = line[3:].split()[0]
        elif line and not line.startswith(";") and current in sections:
            owner, _ttl, _class, rtype, rdata = line.split(None, 4)
            sections[current].append((owner.rstrip("."), rtype, rdata))
    return Dig(status, flags, sections["ANSWER"], sections["AUTHORITY"], output)


def rdatas(result: Dig, rtype: str) -> list[str]:
    return [rdata for _, t, rdata in result.answer if t == rtype]


# -- tests -------------------------------------------------------------------------


def test_every_cluster_record_type(dig_binary: str, dns: ServerThread) -> None:
    ask = lambda *args: dig(dig_binary, dns, *args)  # noqa: E731
    web = ask("web.default.svc.cluster.local", "A")
    assert (web.status, rdatas(web, "A")) == ("NOERROR", ["10.96.0.10"])
    assert "aa" in web.flags
    assert rdatas(ask("_http._tcp.web.default.svc.cluster.local", "SRV"), "SRV") == [
        "0 100 80 web.default.svc.cluster.local."
    ]
    assert rdatas(ask("-x", "10.96.0.10"), "PTR") == ["web.default.svc.cluster.local."]
    assert sorted(rdatas(ask("db.default.svc.cluster.local", "A"), "A")) == [
        "10.244.1.5",
        "10.244.1.6",
    ]
    assert rdatas(ask("db-1.db.default.svc.cluster.local", "A"), "A") == ["10.244.1.6"]
    assert sorted(rdatas(ask("_pg._tcp.db.default.svc.cluster.local", "SRV"), "SRV")) == [
        "0 100 5432 db-0.db.default.svc.cluster.local.",
        "0 100 5432 db-1.db.default.svc.cluster.local.",
    ]
    assert rdatas(ask("-x", "10.244.1.5"), "PTR") == ["db-0.db.default.svc.cluster.local."]
    alias = ask("alias.default.svc.cluster.local", "A")
    assert alias.answer == [
        ("alias.default.svc.cluster.local", "CNAME", "web.default.svc.cluster.local."),
        ("web.default.svc.cluster.local", "A", "10.96.0.10"),
    ]
    assert rdatas(ask("10-244-3-4.default.pod.cluster.local", "A"), "A") == ["10.244.3.4"]
    assert rdatas(ask("dns-version.cluster.local", "TXT"), "TXT") == ['"1.1.0"']
    shouted = ask("WEB.Default.SVC.cluster.local", "A")
    assert shouted.answer == [("WEB.Default.SVC.cluster.local", "A", "10.96.0.10")]


def test_nodata_and_nxdomain_carry_the_soa(dig_binary: str, dns: ServerThread) -> None:
    soa = "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"
    nodata = dig(dig_binary, dns, "web.default.svc.cluster.local", "AAAA")
    assert (nodata.status, nodata.answer) == ("NOERROR", [])
    assert nodata.authority == [("cluster.local", "SOA", soa)]
    nxdomain = dig(dig_binary, dns, "nope.default.svc.cluster.local", "A")
    assert (nxdomain.status, nxdomain.authority) == ("NXDOMAIN", [("cluster.local", "SOA", soa)])
    reverse = dig(dig_binary, dns, "-x", "10.96.7.7")
    assert reverse.status == "NXDOMAIN" and reverse.authority[0][0] == "96.10.in-addr.arpa"


def test_truncated_over_udp_then_complete_over_tcp(dig_binary: str, dns: ServerThread) -> None:
    udp_only = dig(dig_binary, dns, "+noedns", "+ignore", "big.default.svc.cluster.local", "A")
    assert "tc" in udp_only.flags and udp_only.answer == []
    retried = dig(dig_binary, dns, "+noedns", "big.default.svc.cluster.local", "A")
    assert "Truncated, retrying in TCP mode" in retried.output
    assert sorted(rdatas(retried, "A")) == sorted(BIG_IPS)
    roomy = dig(dig_binary, dns, "+bufsize=4096", "+ignore", "big.default.svc.cluster.local")
    assert "tc" not in roomy.flags and len(roomy.answer) == len(BIG_IPS)


def test_forwarding_to_the_upstream_with_a_cache(
    dig_binary: str, dns: ServerThread, upstream: FakeUpstream
) -> None:
    for _ in range(3):
        answer = dig(dig_binary, dns, UPSTREAM_NAME, "A")
        assert (answer.status, rdatas(answer, "A")) == ("NOERROR", [UPSTREAM_ADDRESS])
        assert "aa" not in answer.flags
    assert upstream.questions[UPSTREAM_NAME] == 1
    assert dns.call(lambda: dns.server.metrics.forward_cache_hits) == 2
    missing = dig(dig_binary, dns, "missing.example.test", "A")
    assert missing.status == "NXDOMAIN"
    outside = dig(dig_binary, dns, "outside.default.svc.cluster.local", "A")
    assert outside.answer == [
        ("outside.default.svc.cluster.local", "CNAME", UPSTREAM_NAME + "."),
        (UPSTREAM_NAME, "A", UPSTREAM_ADDRESS),
    ]


@pytest.mark.parametrize("kind", ["closed-port", "silent"])
def test_a_dead_upstream_gives_servfail_quickly(dig_binary: str, kind: str) -> None:
    # The silent upstream holds its port open but never answers: the deadline must cut.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((random_loopback(), 0))
    address = silent.getsockname()
    if kind == "closed-port":
        silent.close()
    server = start_server((address,))
    try:
        started = time.monotonic()
        result = dig(dig_binary, server, "unknown.example.test", "A")
        elapsed = time.monotonic() - started
        assert result.status == "SERVFAIL"
        assert elapsed < 3.0
        # The cluster zone stays served while the upstream is dead.
        assert dig(dig_binary, server, "web.default.svc.cluster.local").status == "NOERROR"
    finally:
        server.stop()
        silent.close()


def test_a_table_update_is_answered_on_the_next_query(dig_binary: str, dns: ServerThread) -> None:
    assert rdatas(dig(dig_binary, dns, "web.default.svc.cluster.local"), "A") == ["10.96.0.10"]
    new_table = cluster_table(web_ip="10.96.0.77")
    dns.call(lambda: dns.server.update(new_table))
    assert rdatas(dig(dig_binary, dns, "web.default.svc.cluster.local"), "A") == ["10.96.0.77"]
    assert rdatas(dig(dig_binary, dns, "+tcp", "web.default.svc.cluster.local"), "A") == [
        "10.96.0.77"
    ]


# -- fuzz --------------------------------------------------------------------------

FUZZ_PACKETS = 100_000
FUZZ_BUDGET_SECONDS = 120.0  # about 12 s on two idle cores: a bound, not a speed test
FUZZ_BATCH = 500
SEED_QUERIES = [
    DNSRecord(DNSHeader(id=n, rd=1), q=DNSQuestion(name, getattr(QTYPE, qtype))).pack()
    for n, (name, qtype) in enumerate(
        [
            ("web.default.svc.cluster.local", "A"),
            ("_pg._tcp.db.default.svc.cluster.local", "SRV"),
            ("10.0.96.10.in-addr.arpa", "PTR"),
            ("alias.default.svc.cluster.local", "ANY"),
            ("big.default.svc.cluster.local", "A"),
        ]
    )
]


def hostile_packet(rng: random.Random) -> bytes:
    """Random bytes, or a real query with flipped, cut, inserted or looping bytes."""
    choice = rng.random()
    if choice < 0.2:
        return rng.randbytes(rng.randint(0, 600))
    packet = bytearray(rng.choice(SEED_QUERIES))
    if choice < 0.5:
        for _ in range(rng.randint(1, 8)):
            packet[rng.randrange(len(packet))] ^= 1 << rng.randrange(8)
    elif choice < 0.65:
        del packet[rng.randint(0, len(packet) - 1) :]
    elif choice < 0.8:
        position = rng.randint(12, len(packet))
        packet[position:position] = rng.randbytes(rng.randint(1, 40))
    elif choice < 0.9:  # a compression pointer at or before itself: a loop
        position = rng.randint(12, len(packet) - 2)
        packet[position : position + 2] = struct.pack("!H", 0xC000 | rng.randint(0, position))
    else:  # header counts claiming more records than there are
        packet[4:12] = struct.pack("!HHHH", *(rng.randint(0, 0xFFFF) for _ in range(4)))
    return bytes(packet)


def test_fuzzed_packets_leave_the_server_answering(dig_binary: str, dns: ServerThread) -> None:
    rng = random.Random(int(os.environ.get("DNS_FUZZ_SEED", "1")))
    target = (dns.host, dns.port)
    received_before = dns.call(lambda: dns.server.metrics.received)
    packets = [hostile_packet(rng) for _ in range(FUZZ_PACKETS)]
    sent = 0
    deadline = time.monotonic() + FUZZ_BUDGET_SECONDS
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setblocking(False)
        while sent < FUZZ_PACKETS and time.monotonic() < deadline:
            for packet in packets[sent : sent + FUZZ_BATCH]:
                client.sendto(packet, target)
            sent += len(packets[sent : sent + FUZZ_BATCH])
            # Wait for the server to take this batch in, so the kernel drops nothing.
            # (A plain read of a counter the server thread increments: safe in CPython.)
            while dns.server.metrics.received - received_before < sent:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            _drain(client)
    assert sent == FUZZ_PACKETS, f"only {sent} packets within {FUZZ_BUDGET_SECONDS}s"
    # A few over TCP too, where a bad length prefix or a cut message must only end the
    # connection.
    for _ in range(50):
        with socket.create_connection(target, timeout=5) as stream:
            packet = hostile_packet(rng)
            stream.sendall(struct.pack("!H", rng.randint(0, 0xFFFF)) + packet)
    assert dns.thread.is_alive()
    metrics = dns.server.metrics
    print(metrics.render_prometheus())
    # The mix reached every path: parse errors, answers, negative answers.
    for rcode in ("FORMERR", "NOERROR", "NXDOMAIN"):
        assert sum(n for (_, r), n in metrics.responses.items() if RCODE.get(r) == rcode) > 1000
    web = dig(dig_binary, dns, "web.default.svc.cluster.local", "A")
    assert (web.status, rdatas(web, "A")) == ("NOERROR", ["10.96.0.10"])
    assert dig(dig_binary, dns, "+tcp", "nope.default.svc.cluster.local").status == "NXDOMAIN"


def _drain(client: socket.socket) -> None:
    while True:
        try:
            client.recv(65535)
        except (BlockingIOError, ConnectionRefusedError):
            return
