"""The node's DNS server: asyncio UDP+TCP, authoritative for the cluster zone and the
reverse zones of the service and pod CIDRs, a forwarder for everything else.

Answers come from a `DnsTable` (records.py) that `update` swaps in one assignment. A
reply to a local question depends only on the table and on the query bytes apart from
its ID and the letter case of its name, so each reply is kept as a wire template keyed
by those bytes: a repeated question costs one dict lookup and a splice, no parsing.
Forwarded names go to the upstreams in order within one deadline (a dead upstream
gives SERVFAIL, never a hang) and are cached for at most their TTL, capped. Hostile
input is bounded everywhere: unparsable queries get FORMERR (or are dropped when not
even a header), forwards in flight and TCP connections are capped, and no packet can
raise out of a handler.
"""

import asyncio
import bisect
import functools
import ipaddress
import logging
import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dnslib import EDNS0, OPCODE, QTYPE, RCODE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from agent.dns.records import DnsTable, Resolution, is_in_zone, resolve, reverse_zones

log = logging.getLogger(__name__)

HEADER_SIZE = 12
DEFAULT_UDP_SIZE = 512  # RFC 1035, for clients without EDNS0
OUR_UDP_SIZE = 1232  # the DNS Flag Day 2020 value we advertise and use upstream
CLASS_IN, CLASS_ANY = 1, 255
BADVERS = 16  # extended RCODE: upper 8 bits in the OPT record, lower 4 in the header
ANSWER_CACHE_LIMIT = 10_000  # distinct questions; the cluster's names fit easily
TCP_CONNECTION_LIMIT = 128
TCP_IDLE_TIMEOUT = 10.0
FORWARDS_IN_FLIGHT_LIMIT = 256
LATENCY_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01),
    *(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


@dataclass(frozen=True)
class DnsConfig:
    listen: tuple[str, int]
    upstreams: tuple[tuple[str, int], ...]
    # The service and pod CIDRs: the server answers their reverse zones itself.
    reverse_cidrs: tuple[str, ...] = ()
    forward_timeout: float = 2.0
    forward_cache_size: int = 1000
    forward_cache_max_ttl: int = 30


def parse_address(text: str, default_port: int = 53) -> tuple[str, int]:
    """`IP`, `IP:PORT`, `IPV6` or `[IPV6]:PORT` -> (ip, port). Only IP literals: a server
    name would need DNS to reach the DNS. ValueError says what is wrong, so argparse
    (`type=parse_address`) refuses a bad flag before the agent starts anything."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or rest[:1] not in ("", ":"):
            host = ""  # refused below, with the message every malformed form gets
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    try:
        ip = ipaddress.ip_address(host)
        port = default_port if port_text is None else int(port_text)
    except ValueError:
        raise ValueError(f"{text!r} is not IP[:PORT] or [IPV6]:PORT") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is out of range")
    return str(ip), port


@dataclass
class DnsMetrics:
    """Counters readable from Python; `render_prometheus` gives the text format."""

    received: int = 0
    dropped: int = 0
    # Keyed by the wire numbers (qtype 0 when the reply has no question): naming them
    # costs more than the rest of a cached answer, so it waits for the reader.
    responses: Counter[tuple[int, int]] = field(default_factory=Counter)
    answer_cache_hits: int = 0
    forward_cache_hits: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def response_count(self, qtype: str, rcode: str) -> int:
        """Replies sent for `qtype` ("A", or "none" for a reply without question) with
        `rcode` ("NOERROR", "NXDOMAIN", ...)."""
        return sum(n for (t, r), n in self.responses.items() if _names(t, r) == (qtype, rcode))

    def observe(self, qtype: int, rcode: int, seconds: float) -> None:
        self.responses[(qtype, rcode)] += 1
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def render_prometheus(self) -> str:
        prefix = "minikube_py_dns"
        lines = [
            f"# TYPE {prefix}_requests_received_total counter",
            f"{prefix}_requests_received_total {self.received}",
            f"# TYPE {prefix}_requests_dropped_total counter",
            f"{prefix}_requests_dropped_total {self.dropped}",
            f"# TYPE {prefix}_responses_total counter",
        ]
        named = Counter[tuple[str, str]]()
        for (qtype, rcode), count in self.responses.items():
            named[_names(qtype, rcode)] += count
        for (qtype_name, rcode_name), count in sorted(named.items()):
            lines.append(
                f'{prefix}_responses_total{{type="{qtype_name}",rcode="{rcode_name}"}} {count}'
            )
        lines += [
            f"# TYPE {prefix}_cache_hits_total counter",
            f'{prefix}_cache_hits_total{{cache="answer"}} {self.answer_cache_hits}',
            f'{prefix}_cache_hits_total{{cache="forward"}} {self.forward_cache_hits}',
            f"# TYPE {prefix}_request_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), self.latency_buckets, strict=True):
            cumulative += count
            lines.append(f'{prefix}_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f"{prefix}_request_duration_seconds_sum {self.latency_sum}")
        lines.append(f"{prefix}_request_duration_seconds_count {cumulative}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Forward:
    """A question that needs the upstreams before it can be answered."""

    request: DNSRecord
    qname: DNSLabel
    # Records already known (a CNAME chain leaving the zone), prepended to the answer.
    local: Resolution | None


@dataclass
class _CachedForward:
    expires: float
    stored: float
    wire: bytes


class DnsServer:
    def __init__(self, config: DnsConfig, table: DnsTable) -> None:
        self.config = config
        self.metrics = DnsMetrics()
        self._table = table
        self._apexes: tuple[str, ...] = ()
        self._answers: dict[bytes, bytes] = {}  # template key -> reply wire
        self._forward_cache: dict[tuple[str, int, int], _CachedForward] = {}
        self._forwards_in_flight = 0
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.update(table)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Bind UDP then TCP on the same port (port 0 picks one); returns the address."""
        host, port = self.config.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        # Room for bursts (a load test, a pod restart storm) while this loop is busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((host, port))
        host, port = sock.getsockname()[:2]
        self._udp = sock
        asyncio.get_running_loop().add_reader(sock, _UdpEndpoint(self, sock).drain)
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
        return host, port

    async def stop(self) -> None:
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp)
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    def update(self, table: DnsTable) -> None:
        """Serve `table` from the next query on; cached local replies go with the old one."""
        apexes = {table.zone}
        for cidr in self.config.reverse_cidrs:
            apexes.update(reverse_zones(cidr))
        self._table = table
        self._apexes = tuple(sorted(apexes, key=len, reverse=True))
        self._answers = {}

    # -- query path --------------------------------------------------------------

    def answer(self, data: bytes, over_tcp: bool) -> bytes | _Forward | None:
        """Reply bytes, a question to forward, or None to drop the packet."""
        wire = self._answer_from_cache(data, over_tcp)
        if wire is not None:
            return wire
        try:
            return self._answer_uncached(data, over_tcp)
        except Exception:  # a bug must cost one reply, never the server
            log.exception("failed to answer a query")
            return _error_header(data, RCODE.SERVFAIL)

    def _answer_from_cache(self, data: bytes, over_tcp: bool) -> bytes | None:
        """The reply to a question answered before from this table, or None."""
        qname_end = data.find(b"\x00", HEADER_SIZE) + 1
        if qname_end == 0:
            return None
        key = _template_key(data, qname_end, over_tcp)
        wire = self._answers.get(key)
        if wire is None:
            return None
        self.metrics.answer_cache_hits += 1
        return data[:2] + wire[2:HEADER_SIZE] + data[HEADER_SIZE:qname_end] + wire[qname_end:]

    def _answer_uncached(self, data: bytes, over_tcp: bool) -> bytes | _Forward | None:
        if len(data) < HEADER_SIZE or data[2] & 0x80:
            return None  # not even a header, or a response: replying could start a loop
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises many types on hostile input; all mean FORMERR
            return _error_header(data, RCODE.FORMERR)
        if request.header.opcode != OPCODE.QUERY:
            return _error_header(data, RCODE.NOTIMP)
        opts = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
        if len(request.questions) != 1 or len(opts) > 1:
            return _error_header(data, RCODE.FORMERR)
        if opts and (opts[0].ttl >> 16) & 0xFF != 0:
            reply = _reply_header(request, RCODE.NOERROR, authoritative=False)
            reply.add_ar(EDNS0(udp_len=OUR_UDP_SIZE, ext_rcode=BADVERS >> 4))
            return self._finish(data, request, reply, over_tcp, cacheable=False)
        question = request.q
        if question.qclass not in (CLASS_IN, CLASS_ANY):
            return self._finish(data, request, _reply_header(request, RCODE.REFUSED), over_tcp)
        name = str(question.qname).rstrip(".").lower()
        apex = self._apex_of(name)
        if apex is None:
            return _Forward(request, question.qname, None)
        resolution = resolve(self._table, name, question.qtype, apex)
        if resolution.external_target is not None:
            return _Forward(request, DNSLabel(resolution.external_target), resolution)
        reply = _reply_header(request, resolution.rcode)
        for rr in resolution.answer:
            reply.add_answer(rr)
        for rr in resolution.authority:
            reply.add_auth(rr)
        for rr in resolution.additional:
            reply.add_ar(rr)
        return self._finish(data, request, reply, over_tcp)

    async def forward(self, forward: _Forward, data: bytes, over_tcp: bool) -> bytes:
        try:
            return await self._forward(forward, data, over_tcp)
        except Exception:  # a bug must cost one reply, never the server
            log.exception("failed to forward a query")
            return _error_header(data, RCODE.SERVFAIL)

    async def _forward(self, forward: _Forward, data: bytes, over_tcp: bool) -> bytes:
        question = forward.request.q
        upstream = await self._resolve_upstream(forward.qname, question.qtype, question.qclass)
        if upstream is None:
            reply = _reply_header(forward.request, RCODE.SERVFAIL, authoritative=False)
        else:
            local = forward.local
            reply = _reply_header(forward.request, upstream.header.rcode, local is not None)
            for rr in (*(local.answer if local else ()), *upstream.rr):
                reply.add_answer(rr)
            for rr in upstream.auth:
                reply.add_auth(rr)
            for rr in upstream.ar:
                if rr.rtype != QTYPE.OPT:
                    reply.add_ar(rr)
        return self._finish(data, forward.request, reply, over_tcp, cacheable=False)

    def _apex_of(self, name: str) -> str | None:
        for apex in self._apexes:
            if is_in_zone(name, apex):
                return apex
        # A headless endpoint outside the configured CIDRs still has its PTR here.
        if name in self._table.names:
            return ".".join(name.split(".")[-2:])
        return None

    def _finish(
        self,
        data: bytes,
        request: DNSRecord,
        reply: DNSRecord,
        over_tcp: bool,
        cacheable: bool = True,
    ) -> bytes:
        client_opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if client_opt is not None and not any(rr.rtype == QTYPE.OPT for rr in reply.ar):
            reply.add_ar(EDNS0(udp_len=OUR_UDP_SIZE))
        reply.questions = [DNSQuestion(_lower(request.q.qname), request.q.qtype, request.q.qclass)]
        wire = bytes(reply.pack())
        limit = max(DEFAULT_UDP_SIZE, client_opt.rclass if client_opt is not None else 0)
        if not over_tcp and len(wire) > limit:
            reply.header.tc = 1
            reply.rr, reply.auth = [], []
            reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
            wire = bytes(reply.pack())
        qname_end = data.find(b"\x00", HEADER_SIZE) + 1
        if qname_end and wire[HEADER_SIZE:qname_end] == data[HEADER_SIZE:qname_end].lower():
            # Echo the question's letter case (resolvers using 0x20 randomisation check it);
            # answer names are compressed pointers to it, so they follow.
            wire = wire[:HEADER_SIZE] + data[HEADER_SIZE:qname_end] + wire[qname_end:]
            if cacheable:
                if len(self._answers) >= ANSWER_CACHE_LIMIT:
                    self._answers.clear()
                self._answers[_template_key(data, qname_end, over_tcp)] = wire
        return wire

    # -- forwarding --------------------------------------------------------------

    async def _resolve_upstream(self, qname: DNSLabel, qtype: int, qclass: int) -> DNSRecord | None:
        key = (str(qname).lower(), qtype, qclass)
        now = time.monotonic()
        cached = self._forward_cache.get(key)
        if cached is not None and cached.expires > now:
            self.metrics.forward_cache_hits += 1
            reply = DNSRecord.parse(cached.wire)
            elapsed = int(now - cached.stored)
            for rr in (*reply.rr, *reply.auth, *reply.ar):
                if rr.rtype != QTYPE.OPT:
                    rr.ttl = max(0, rr.ttl - elapsed)
            return reply
        if self._forwards_in_flight >= FORWARDS_IN_FLIGHT_LIMIT:
            return None
        self._forwards_in_flight += 1
        try:
            reply = await self._ask_upstreams(qname, qtype, qclass)
        finally:
            self._forwards_in_flight -= 1
        if reply is not None:
            ttl = min(_cache_ttl(reply), self.config.forward_cache_max_ttl)
            if ttl > 0:
                if len(self._forward_cache) >= self.config.forward_cache_size:
                    del self._forward_cache[next(iter(self._forward_cache))]
                self._forward_cache[key] = _CachedForward(now + ttl, now, bytes(reply.pack()))
        return reply

    async def _ask_upstreams(self, qname: DNSLabel, qtype: int, qclass: int) -> DNSRecord | None:
        # An unpredictable ID and a fresh socket's random port guard against spoofed replies.
        query = DNSRecord(DNSHeader(id=secrets.randbits(16), rd=1))
        query.add_question(DNSQuestion(qname, qtype, qclass))
        query.add_ar(EDNS0(udp_len=OUR_UDP_SIZE))
        deadline = time.monotonic() + self.config.forward_timeout
        upstreams = self.config.upstreams
        for index, upstream in enumerate(upstreams):
            # Share what is left of the deadline among the upstreams not yet asked.
            budget = (deadline - time.monotonic()) / (len(upstreams) - index)
            try:
                reply = await asyncio.wait_for(_exchange(query, upstream), budget)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as err:
                log.debug("upstream %s:%s failed: %r", *upstream, err)
                continue
            if reply.header.rcode in (RCODE.NOERROR, RCODE.NXDOMAIN):
                return reply
        return None

    # -- transports --------------------------------------------------------------

    def reply_later(
        self, forward: _Forward, data: bytes, udp: "_UdpEndpoint", addr: Any, started: float
    ) -> None:
        async def forward_and_send() -> None:
            udp.send(await self.forward(forward, data, over_tcp=False), addr, started)

        task = asyncio.create_task(forward_and_send())
        self._tasks.add(task)  # held so the task is not collected mid-flight
        task.add_done_callback(self._tasks.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tcp_writers) >= TCP_CONNECTION_LIMIT:
            writer.close()
            return
        self._tcp_writers.add(writer)
        try:
            while True:
                size = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                data = await asyncio.wait_for(
                    reader.readexactly(int.from_bytes(size, "big")), TCP_IDLE_TIMEOUT
                )
                started = time.perf_counter()
                self.metrics.received += 1
                outcome = self.answer(data, over_tcp=True)
                if isinstance(outcome, _Forward):
                    outcome = await self.forward(outcome, data, over_tcp=True)
                if outcome is None:
                    self.metrics.dropped += 1
                    return
                wire = outcome
                self._observe(wire, started)
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()

    def _observe(self, wire: bytes, started: float) -> None:
        qname_end = wire.find(b"\x00", HEADER_SIZE) + 1
        has_question = wire[5] == 1 and qname_end > 0
        qtype = wire[qname_end] << 8 | wire[qname_end + 1] if has_question else 0
        self.metrics.observe(qtype, wire[3] & 0x0F, time.perf_counter() - started)


class _UdpEndpoint:
    """The UDP socket, drained in batches per wakeup: asyncio's datagram transport reads
    one packet per event-loop turn, which caps a loaded server at a fraction of this."""

    BATCH = 256  # packets per wakeup, so TCP clients and forwards still get turns

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock

    def drain(self) -> None:
        server, sock = self.server, self.sock
        for _ in range(self.BATCH):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # an ICMP error queued for a client that went away
                log.debug("udp receive error: %r", err)
                continue
            started = time.perf_counter()
            server.metrics.received += 1
            outcome = server.answer(data, over_tcp=False)
            if isinstance(outcome, _Forward):
                server.reply_later(outcome, data, self, addr, started)
            elif outcome is None:
                server.metrics.dropped += 1
            else:
                self.send(outcome, addr, started)

    def send(self, wire: bytes, addr: Any, started: float) -> None:
        try:
            self.sock.sendto(wire, addr)
        except OSError as err:  # a full send buffer loses this reply, as UDP may
            log.debug("udp send error: %r", err)
        self.server._observe(wire, started)


async def _exchange(query: DNSRecord, upstream: tuple[str, int]) -> DNSRecord:
    """One question to one upstream over UDP, retried over TCP when truncated."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(upstream)  # a connected socket only accepts the upstream's packets
        await loop.sock_sendall(sock, query.pack())
        while True:
            reply = _matching_reply(query, await loop.sock_recv(sock, 65535))
            if reply is not None:
                break
    if not reply.header.tc:
        return reply
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        wire = query.pack()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        size = int.from_bytes(await reader.readexactly(2), "big")
        reply = _matching_reply(query, await reader.readexactly(size))
        if reply is None:
            raise OSError("upstream answered another question over TCP")
        return reply
    finally:
        writer.close()


def _matching_reply(query: DNSRecord, wire: bytes) -> DNSRecord | None:
    try:
        reply = DNSRecord.parse(wire)
    except Exception:  # a garbled upstream reply is ignored like a spoofed one
        return None
    if reply.header.id != query.header.id or not reply.header.qr or len(reply.questions) != 1:
        return None
    same = reply.q.qtype == query.q.qtype and reply.q.qname == query.q.qname
    return reply if same else None


def _cache_ttl(reply: DNSRecord) -> int:
    """How long an upstream answer may be reused: its smallest TTL, or for a negative
    answer the SOA's negative-caching TTL (RFC 2308)."""
    if reply.rr:
        return min(rr.ttl for rr in reply.rr)
    soas = [rr for rr in reply.auth if rr.rtype == QTYPE.SOA]
    return min((min(rr.ttl, rr.rdata.times[4]) for rr in soas), default=0)


def _reply_header(request: DNSRecord, rcode: int, authoritative: bool = True) -> DNSRecord:
    header = DNSHeader(
        id=request.header.id, qr=1, aa=int(authoritative), rd=request.header.rd, ra=1, rcode=rcode
    )
    return DNSRecord(header)


def _error_header(data: bytes, rcode: int) -> bytes:
    """A bare header (no question: it may be what failed to parse) echoing ID, opcode, RD."""
    flags = 0x8000 | (data[2] & 0x79) << 8 | 0x80 | rcode
    return data[:2] + flags.to_bytes(2, "big") + bytes(8)


def _template_key(data: bytes, qname_end: int, over_tcp: bool) -> bytes:
    transport = b"T" if over_tcp else b"U"
    return transport + data[2:HEADER_SIZE] + data[HEADER_SIZE:qname_end].lower() + data[qname_end:]


@functools.cache
def _names(qtype: int, rcode: int) -> tuple[str, str]:
    return ("none" if qtype == 0 else str(QTYPE.get(qtype)), str(RCODE.get(rcode)))


def _lower(label: DNSLabel) -> DNSLabel:
    return DNSLabel([part.lower() for part in label.label])
