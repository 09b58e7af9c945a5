"""The cluster DNS records, computed from Services, EndpointSlices and Pods.

`build_dns_table` is a pure function implementing the Kubernetes DNS-Based Service
Discovery specification (schema 1.1.0) with CoreDNS's behaviour where the spec leaves
room: headless endpoints without a hostname are named by their dashed IP, and pod
names `a-b-c-d.<ns>.pod.<zone>` answer for any well-formed dashed IP (`pods insecure`).
The result is a dict keyed by (lowercase name, qtype) plus the set of every existing
name (with its ancestors, the empty non-terminals), so a query is one lookup and
NXDOMAIN vs NODATA is exact. `TableBuilder` builds it again and again, keeping the
records of every unchanged Service (the same table as `build_dns_table`, for a fraction
of the work). `resolve` turns a question into the answer sections; the server only adds
the wire format around it.
"""

import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RD, RR, SOA, SRV, TXT, A, DNSLabel

from minikube_py.api.types import Obj, labels_of, name_of, namespace_of

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SCHEMA_VERSION = "1.1.0"
# Enough for any sane chain inside the zone; a longer one is a loop.
MAX_CNAME_CHAIN = 8
# The record types a name in the table can hold; ANY answers with all of them.
TABLE_TYPES = (QTYPE.A, QTYPE.AAAA, QTYPE.CNAME, QTYPE.SRV, QTYPE.PTR, QTYPE.TXT)

RecordKey = tuple[str, int]


@dataclass(frozen=True)
class DnsTable:
    """Every record of the cluster zone and of the reverse names it owns."""

    zone: str
    ttl: int
    serial: int
    records: Mapping[RecordKey, tuple[RR, ...]]
    names: frozenset[str]

    def rrset(self, name: str, qtype: int) -> tuple[RR, ...]:
        found = self.records.get((name, qtype))
        if found is not None:
            return found
        if qtype in (QTYPE.A, QTYPE.AAAA):
            address = self._pod_address(name)
            if address is not None and (address.version == 4) == (qtype == QTYPE.A):
                return (_address_rr(name, str(address), self.ttl),)
        return ()

    def has_name(self, name: str) -> bool:
        if name in self.names:
            return True
        pod_suffix = f".pod.{self.zone}"
        if not name.endswith(pod_suffix):
            return False
        labels = name[: -len(pod_suffix)].split(".")
        # `<ns>.pod.<zone>` is an ancestor of the pod names, so it exists for any label.
        return len(labels) == 1 or self._pod_address(name) is not None

    def _pod_address(self, name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        labels = name.split(".")
        if len(labels) != len(self.zone.split(".")) + 3 or labels[2] != "pod":
            return None
        if ".".join(labels[3:]) != self.zone or not labels[1]:
            return None
        return parse_dashed_ip(labels[0])


@dataclass(frozen=True)
class Resolution:
    rcode: int
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()
    # Set when a CNAME chain leaves the zone: the server resolves this name upstream
    # and appends its records, as the spec's ExternalName example shows.
    external_target: str | None = None


@dataclass
class _Builder:
    zone: str
    ttl: int
    # Per rrset, records by their data, so the same record from two slices appears once.
    records: dict[RecordKey, dict[str, RR]] = field(default_factory=dict)
    # Parsed names, shared: parsing a name costs more than the record that holds it.
    labels: dict[str, DNSLabel] = field(default_factory=dict)

    def label(self, name: str) -> DNSLabel:
        found = self.labels.get(name)
        if found is None:
            found = self.labels[name] = DNSLabel(name)
        return found

    def put(self, name: str, rtype: int, data: str, rdata: Callable[[], RD]) -> None:
        rrset = self.records.setdefault((name, rtype), {})
        if data not in rrset:
            rrset[data] = RR(self.label(name), rtype, rdata=rdata(), ttl=self.ttl)

    def address(self, name: str, ip: str) -> None:
        rtype = QTYPE.A if ipaddress.ip_address(ip).version == 4 else QTYPE.AAAA
        self.put(name, rtype, ip, lambda: A(ip) if rtype == QTYPE.A else AAAA(ip))

    def ptr(self, ip: str, target: str) -> None:
        name = ipaddress.ip_address(ip).reverse_pointer
        self.put(name, QTYPE.PTR, target, lambda: PTR(self.label(target)))

    def srv(self, name: str, port: int, target: str) -> None:
        # The spec leaves priority and weight open; equal values spread clients evenly.
        self.put(
            name,
            QTYPE.SRV,
            f"{port} {target}",
            lambda: SRV(priority=0, weight=100, port=port, target=self.label(target)),
        )


def build_dns_table(
    services: list[Obj],
    endpointslices: list[Obj],
    pods: list[Obj],
    *,
    zone: str = "cluster.local",
    ttl: int = 5,
    serial: int = 1,
) -> DnsTable:
    """The table from nothing (see `TableBuilder` for building it again and again)."""
    return TableBuilder(zone, ttl).build(services, endpointslices, pods, serial)


@dataclass
class _ServiceRecords:
    spec: Obj  # what they were made from (a headless Service's are never reused)
    records: dict[RecordKey, dict[str, RR]]  # by their data, to merge a shared rrset
    rrsets: dict[RecordKey, tuple[RR, ...]]  # the same, as the table holds them
    names: set[str]  # their names and ancestors


class TableBuilder:
    """Builds the table again and again, reusing a Service's records while its spec is
    unchanged: making records (parsing names and addresses into dnslib's objects) is
    most of a build, about 1.6 s for 10,000 Services, while a change touches one. A
    headless Service's records also depend on its slices and pods: made anew each time.
    Not thread-safe: one build at a time."""

    def __init__(self, zone: str = "cluster.local", ttl: int = 5) -> None:
        self.zone = zone.strip(".").lower()
        self.ttl = ttl
        self._made: dict[tuple[str, str], _ServiceRecords] = {}

    def build(
        self, services: list[Obj], endpointslices: list[Obj], pods: list[Obj], serial: int = 1
    ) -> DnsTable:
        zone = self.zone
        slices_by_service: dict[tuple[str, str], list[Obj]] = {}
        for eps in endpointslices:
            service_name = labels_of(eps).get(SERVICE_NAME_LABEL)
            if service_name:
                key = (namespace_of(eps), service_name)
                slices_by_service.setdefault(key, []).append(eps)
        pods_by_key = {(namespace_of(p), name_of(p)): p for p in pods}

        made: dict[tuple[str, str], _ServiceRecords] = {}
        # A build makes no object per record it keeps (allocating ~30,000 of them would
        # run the cyclic collector over every record): a Service's rrsets go in as they
        # are, and only an rrset that several Services contribute to is merged anew.
        table: dict[RecordKey, tuple[RR, ...]] = {}
        first: dict[RecordKey, _ServiceRecords] = {}
        shared: dict[RecordKey, dict[str, RR]] = {}
        names = {zone, f"svc.{zone}", f"pod.{zone}"}
        for svc in services:
            key = (namespace_of(svc), name_of(svc))
            spec = svc.get("spec") or {}
            found = self._made.get(key)
            if found is None or found.spec != spec or spec.get("clusterIP") == "None":
                found = self._records_of(key, spec, slices_by_service.get(key, []), pods_by_key)
            made[key] = found
            for record_key, rrset in found.rrsets.items():
                if record_key not in table:
                    table[record_key] = rrset
                    first[record_key] = found
                    continue
                merged = shared.get(record_key)
                if merged is None:
                    merged = shared[record_key] = dict(first[record_key].records[record_key])
                for data, rr in found.records[record_key].items():
                    merged.setdefault(data, rr)  # the same record from two Services: once
            names |= found.names
        self._made = made  # Services gone are forgotten
        table.update((key, tuple(rrs.values())) for key, rrs in shared.items())

        version = f"dns-version.{zone}"
        table[(version, QTYPE.TXT)] = (
            RR(version, QTYPE.TXT, rdata=TXT(SCHEMA_VERSION), ttl=self.ttl),
        )
        names.update(_ancestors(version, zone))
        return DnsTable(zone, self.ttl, serial, table, frozenset(names))

    def _records_of(
        self,
        key: tuple[str, str],
        spec: Obj,
        slices: list[Obj],
        pods_by_key: dict[tuple[str, str], Obj],
    ) -> _ServiceRecords:
        ns, name = key
        builder = _Builder(self.zone, self.ttl)
        fqdn = f"{name}.{ns}.svc.{self.zone}".lower()
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").strip(".").lower()
            if target:
                builder.put(fqdn, QTYPE.CNAME, target, functools.partial(CNAME, target))
        elif _cluster_ips(spec):
            _add_cluster_ip_service(builder, fqdn, spec)
        elif spec.get("clusterIP") == "None":
            _add_headless_service(builder, fqdn, spec, slices, pods_by_key)
        names: set[str] = set()
        for record_name, _ in builder.records:
            names.update(_ancestors(record_name, self.zone))
        rrsets = {key: tuple(rrs.values()) for key, rrs in builder.records.items()}
        return _ServiceRecords(spec, builder.records, rrsets, names)


def _cluster_ips(spec: Obj) -> list[str]:
    return _valid_ips(spec.get("clusterIPs") or [spec.get("clusterIP") or ""])


def _valid_ips(values: list[str]) -> list[str]:
    """The values that are IP addresses, normalised; an invalid object (which the
    apiserver should have refused) loses its records, not the whole table."""
    valid = []
    for value in values:
        try:
            valid.append(str(ipaddress.ip_address(value)))
        except ValueError:
            continue
    return valid


def _add_cluster_ip_service(builder: _Builder, fqdn: str, spec: Obj) -> None:
    for ip in _cluster_ips(spec):
        builder.address(fqdn, ip)
        builder.ptr(ip, fqdn)
    for port in spec.get("ports") or []:
        if port.get("name") and port.get("port"):
            builder.srv(_srv_name(port, fqdn), int(port["port"]), fqdn)


def _add_headless_service(
    builder: _Builder,
    fqdn: str,
    spec: Obj,
    slices: list[Obj],
    pods_by_key: dict[tuple[str, str], Obj],
) -> None:
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    for eps in sorted(slices, key=name_of):
        if eps.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue  # FQDN slices carry no addresses DNS can serve
        named_ports = [p for p in eps.get("ports") or [] if p.get("name") and p.get("port")]
        for endpoint in eps.get("endpoints") or []:
            # A nil `ready` means unknown, which consumers treat as ready.
            ready = (endpoint.get("conditions") or {}).get("ready") is not False
            if not (ready or publish_not_ready):
                continue
            for ip in _valid_ips(endpoint.get("addresses") or []):
                host = _endpoint_hostname(endpoint, fqdn, ip, pods_by_key)
                host_fqdn = f"{host}.{fqdn}".lower()
                builder.address(fqdn, ip)
                builder.address(host_fqdn, ip)
                builder.ptr(ip, host_fqdn)
                for port in named_ports:
                    builder.srv(_srv_name(port, fqdn), int(port["port"]), host_fqdn)


def _endpoint_hostname(
    endpoint: Obj, service_fqdn: str, ip: str, pods_by_key: dict[tuple[str, str], Obj]
) -> str:
    """The endpoint's hostname; else the pod's when its subdomain names this Service (what
    the EndpointSlice controller would have copied); else CoreDNS's dashed IP."""
    if endpoint.get("hostname"):
        return str(endpoint["hostname"])
    ref = endpoint.get("targetRef") or {}
    if ref.get("kind") == "Pod":
        pod = pods_by_key.get((str(ref.get("namespace", "")), str(ref.get("name", ""))))
        pod_spec = (pod or {}).get("spec") or {}
        service_name = service_fqdn.split(".", 1)[0]
        if pod_spec.get("hostname") and pod_spec.get("subdomain") == service_name:
            return str(pod_spec["hostname"])
    return dashed_ip(ip)


def _srv_name(port: Obj, service_fqdn: str) -> str:
    protocol = str(port.get("protocol") or "TCP").lower()
    return f"_{port['name']}._{protocol}.{service_fqdn}".lower()


def _address_rr(name: str, ip: str, ttl: int) -> RR:
    if ipaddress.ip_address(ip).version == 4:
        return RR(name, QTYPE.A, rdata=A(ip), ttl=ttl)
    return RR(name, QTYPE.AAAA, rdata=AAAA(ip), ttl=ttl)


def _ancestors(name: str, zone: str) -> Iterable[str]:
    """The name and each parent down to its zone: the zone, or for reverse names the
    `in-addr.arpa`/`ip6.arpa` apex."""
    apex = zone if is_in_zone(name, zone) else ".".join(name.split(".")[-2:])
    while True:
        yield name
        if name == apex or "." not in name:
            return
        name = name.split(".", 1)[1]


def is_in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def dashed_ip(ip: str) -> str:
    """`10.244.1.5` -> `10-244-1-5`, `fd00::5` -> `fd00--5` (CoreDNS's endpoint names)."""
    return ip.replace(".", "-").replace(":", "-")


def parse_dashed_ip(label: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    parts = label.split("-")
    text = ".".join(parts) if len(parts) == 4 else ":".join(parts)
    if len(parts) == 4 and not all(p.isdigit() and len(p) <= 3 for p in parts):
        return None  # reject forms like `0x1` that ipaddress would not, for clarity
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def reverse_zones(cidr: str) -> list[str]:
    """The reverse zones covering a CIDR exactly: octet-aligned for IPv4, nibble-aligned
    for IPv6 (a /12 gives sixteen /16 zones)."""
    network = ipaddress.ip_network(cidr, strict=False)
    step = 8 if network.version == 4 else 4
    aligned = -(-network.prefixlen // step) * step
    zones = []
    for subnet in network.subnets(new_prefix=aligned):
        labels = subnet.network_address.reverse_pointer.split(".")
        drop = (network.max_prefixlen - aligned) // step
        zones.append(".".join(labels[drop:]))
    return zones


def soa_record(apex: str, table: DnsTable) -> RR:
    rdata = SOA(
        mname=f"ns.dns.{table.zone}.",
        rname=f"hostmaster.{table.zone}.",
        # serial, refresh, retry, expire, minimum (the negative-caching TTL)
        times=(table.serial, 7200, 1800, 86400, table.ttl),
    )
    return RR(apex, QTYPE.SOA, rdata=rdata, ttl=table.ttl)


def resolve(table: DnsTable, name: str, qtype: int, apex: str) -> Resolution:
    """Answer `name`/`qtype` (name lowercase, without the trailing dot) inside the
    authoritative zone `apex`: the cluster zone or one of the reverse zones."""
    answer: list[RR] = []
    current = name
    for _ in range(MAX_CNAME_CHAIN):
        if not (table.has_name(current) or current == apex):
            rcode = RCODE.NXDOMAIN
            return Resolution(rcode, tuple(answer), (soa_record(apex, table),))
        found = _records_at(table, current, qtype, apex)
        cnames = table.rrset(current, QTYPE.CNAME)
        if found or not cnames or qtype == QTYPE.CNAME:
            answer.extend(found)
            break
        answer.extend(cnames)
        current = str(cnames[0].rdata.label).rstrip(".").lower()
        if not is_in_zone(current, table.zone) and current not in table.names:
            return Resolution(RCODE.NOERROR, tuple(answer), external_target=current)
    else:
        return Resolution(RCODE.SERVFAIL)
    if not answer:
        return Resolution(RCODE.NOERROR, authority=(soa_record(apex, table),))
    return Resolution(RCODE.NOERROR, tuple(answer), additional=_srv_targets(table, answer))


def _records_at(table: DnsTable, name: str, qtype: int, apex: str) -> list[RR]:
    found: list[RR] = []
    if name == apex and qtype in (QTYPE.SOA, QTYPE.ANY):
        found.append(soa_record(apex, table))
    for rtype in TABLE_TYPES if qtype == QTYPE.ANY else (qtype,):
        found.extend(table.rrset(name, rtype))
    return found


def _srv_targets(table: DnsTable, answer: list[RR]) -> tuple[RR, ...]:
    """The addresses of SRV targets, which the spec allows in the additional section."""
    extra: list[RR] = []
    for rr in answer:
        if rr.rtype == QTYPE.SRV:
            target = str(rr.rdata.target).rstrip(".").lower()
            extra.extend(table.rrset(target, QTYPE.A))
            extra.extend(table.rrset(target, QTYPE.AAAA))
    return tuple(extra)


def describe(rrs: Iterable[RR]) -> list[tuple[str, str, str]]:
    """(owner, type, rdata text) triples: a readable form for logs and tests."""
    return [(str(rr.rname).rstrip("."), QTYPE[rr.rtype], str(rr.rdata)) for rr in rrs]
