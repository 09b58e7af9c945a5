"""Golden and property tests of the cluster DNS table (Kubernetes DNS spec 1.1.0)."""

import ipaddress
from typing import Any

import pytest
from dnslib import QTYPE, RCODE
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.dns.records import (
    DnsTable,
    TableBuilder,
    build_dns_table,
    describe,
    parse_dashed_ip,
    resolve,
    reverse_zones,
)
from minikube_py.api.types import Obj


def service(
    name: str,
    namespace: str = "default",
    *,
    cluster_ip: str = "",
    cluster_ips: list[str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    type_: str = "ClusterIP",
    external_name: str = "",
    publish_not_ready: bool = False,
) -> Obj:
    spec: Obj = {"type": type_, "ports": ports or []}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = cluster_ips or [cluster_ip]
    if external_name:
        spec["externalName"] = external_name
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def endpoint(
    *addresses: str,
    ready: bool | None = True,
    hostname: str | None = None,
    pod: str | None = None,
    namespace: str = "default",
) -> Obj:
    ep: Obj = {"addresses": list(addresses), "conditions": {}}
    if ready is not None:
        ep["conditions"]["ready"] = ready
        ep["conditions"]["serving"] = ready
        ep["conditions"]["terminating"] = False
    if hostname:
        ep["hostname"] = hostname
    if pod:
        ep["targetRef"] = {"kind": "Pod", "name": pod, "namespace": namespace}
    return ep


def endpointslice(
    service_name: str,
    endpoints: list[Obj],
    *,
    namespace: str = "default",
    ports: list[dict[str, Any]] | None = None,
    address_type: str = "IPv4",
    suffix: str = "abcde",
) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-{suffix}",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "ports": ports or [],
        "endpoints": endpoints,
    }


def pod(name: str, namespace: str = "default", **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


ZONE = "cluster.local"


def table_of(
    services: list[Obj], slices: list[Obj] | None = None, pods: list[Obj] | None = None
) -> DnsTable:
    return build_dns_table(services, slices or [], pods or [], zone=ZONE, ttl=5)


def ask(table: DnsTable, name: str, qtype: str, apex: str = ZONE) -> tuple[str, list[Any]]:
    """(rcode, answer records) for a question, in readable form."""
    found = resolve(table, name, getattr(QTYPE, qtype), apex)
    return RCODE.get(found.rcode), describe(found.answer)


WEB = service(
    "web",
    cluster_ip="10.96.0.10",
    ports=[
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"port": 8080},  # unnamed: no SRV
    ],
)
DB = service("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432}])
DB_SLICE = endpointslice(
    "db",
    [
        endpoint("10.244.1.5", hostname="db-0"),
        endpoint("10.244.2.7"),
        endpoint("10.244.2.9", ready=False, hostname="db-2"),
        endpoint("10.244.3.3", ready=None),  # unknown readiness counts as ready
    ],
    ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}],
)


# -- golden: one test per record kind ----------------------------------------------


def test_cluster_ip_service_has_an_a_record() -> None:
    table = table_of([WEB])
    assert ask(table, "web.default.svc.cluster.local", "A") == (
        "NOERROR",
        [("web.default.svc.cluster.local", "A", "10.96.0.10")],
    )


def test_dual_stack_cluster_ips_give_a_and_aaaa() -> None:
    svc = service("web", cluster_ip="10.96.0.10", cluster_ips=["10.96.0.10", "fd00:10:96::a"])
    table = table_of([svc])
    assert ask(table, "web.default.svc.cluster.local", "AAAA") == (
        "NOERROR",
        [("web.default.svc.cluster.local", "AAAA", "fd00:10:96::a")],
    )
    rcode, answer = ask(
        table,
        "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa",
        "PTR",
        "ip6.arpa",
    )
    assert rcode == "NOERROR"
    assert answer == [
        (
            "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa",
            "PTR",
            "web.default.svc.cluster.local.",
        )
    ]


def test_named_ports_of_a_cluster_ip_service_have_srv_to_the_service() -> None:
    table = table_of([WEB])
    assert ask(table, "_http._tcp.web.default.svc.cluster.local", "SRV") == (
        "NOERROR",
        [
            (
                "_http._tcp.web.default.svc.cluster.local",
                "SRV",
                "0 100 80 web.default.svc.cluster.local.",
            )
        ],
    )
    assert ask(table, "_dns._udp.web.default.svc.cluster.local", "SRV")[1] == [
        (
            "_dns._udp.web.default.svc.cluster.local",
            "SRV",
            "0 100 53 web.default.svc.cluster.local.",
        )
    ]
    srv = resolve(table, "_http._tcp.web.default.svc.cluster.local", QTYPE.SRV, ZONE)
    assert describe(srv.additional) == [("web.default.svc.cluster.local", "A", "10.96.0.10")]
    # The unnamed port and a wrong protocol have no record.
    assert ask(table, "_http._udp.web.default.svc.cluster.local", "SRV")[0] == "NXDOMAIN"


def test_cluster_ip_has_a_ptr() -> None:
    table = table_of([WEB])
    assert ask(table, "10.0.96.10.in-addr.arpa", "PTR", "96.10.in-addr.arpa") == (
        "NOERROR",
        [("10.0.96.10.in-addr.arpa", "PTR", "web.default.svc.cluster.local.")],
    )


def test_headless_service_has_one_a_per_ready_endpoint() -> None:
    table = table_of([DB], [DB_SLICE])
    assert ask(table, "db.default.svc.cluster.local", "A") == (
        "NOERROR",
        [
            ("db.default.svc.cluster.local", "A", "10.244.1.5"),
            ("db.default.svc.cluster.local", "A", "10.244.2.7"),
            ("db.default.svc.cluster.local", "A", "10.244.3.3"),
        ],
    )


def test_publish_not_ready_addresses_includes_not_ready_endpoints() -> None:
    svc = service("db", cluster_ip="None", publish_not_ready=True)
    table = table_of([svc], [DB_SLICE])
    addresses = [rdata for _, _, rdata in ask(table, "db.default.svc.cluster.local", "A")[1]]
    assert addresses == ["10.244.1.5", "10.244.2.7", "10.244.2.9", "10.244.3.3"]
    assert ask(table, "db-2.db.default.svc.cluster.local", "A")[1] == [
        ("db-2.db.default.svc.cluster.local", "A", "10.244.2.9")
    ]


def test_headless_endpoint_names_use_hostname_else_dashed_ip() -> None:
    table = table_of([DB], [DB_SLICE])
    assert ask(table, "db-0.db.default.svc.cluster.local", "A")[1] == [
        ("db-0.db.default.svc.cluster.local", "A", "10.244.1.5")
    ]
    assert ask(table, "10-244-2-7.db.default.svc.cluster.local", "A")[1] == [
        ("10-244-2-7.db.default.svc.cluster.local", "A", "10.244.2.7")
    ]
    # A not-ready endpoint is not published.
    assert ask(table, "db-2.db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"


def test_headless_srv_has_one_record_per_endpoint_with_its_addresses_additional() -> None:
    table = table_of([DB], [DB_SLICE])
    srv = resolve(table, "_pg._tcp.db.default.svc.cluster.local", QTYPE.SRV, ZONE)
    assert describe(srv.answer) == [
        (
            "_pg._tcp.db.default.svc.cluster.local",
            "SRV",
            "0 100 5432 db-0.db.default.svc.cluster.local.",
        ),
        (
            "_pg._tcp.db.default.svc.cluster.local",
            "SRV",
            "0 100 5432 10-244-2-7.db.default.svc.cluster.local.",
        ),
        (
            "_pg._tcp.db.default.svc.cluster.local",
            "SRV",
            "0 100 5432 10-244-3-3.db.default.svc.cluster.local.",
        ),
    ]
    assert [rdata for _, _, rdata in describe(srv.additional)] == [
        "10.244.1.5",
        "10.244.2.7",
        "10.244.3.3",
    ]


def test_headless_endpoint_addresses_have_ptr_to_their_endpoint_name() -> None:
    table = table_of([DB], [DB_SLICE])
    assert ask(table, "5.1.244.10.in-addr.arpa", "PTR", "244.10.in-addr.arpa")[1] == [
        ("5.1.244.10.in-addr.arpa", "PTR", "db-0.db.default.svc.cluster.local.")
    ]
    assert ask(table, "7.2.244.10.in-addr.arpa", "PTR", "244.10.in-addr.arpa")[1] == [
        ("7.2.244.10.in-addr.arpa", "PTR", "10-244-2-7.db.default.svc.cluster.local.")
    ]


def test_pod_hostname_and_subdomain_name_the_endpoint_when_the_slice_has_no_hostname() -> None:
    slice_ = endpointslice("db", [endpoint("10.244.1.8", pod="web-x")])
    pods = [pod("web-x", hostname="primary", subdomain="db")]
    table = table_of([DB], [slice_], pods)
    assert ask(table, "primary.db.default.svc.cluster.local", "A")[1] == [
        ("primary.db.default.svc.cluster.local", "A", "10.244.1.8")
    ]
    # A pod whose subdomain names another Service keeps the dashed-IP name.
    other = table_of([DB], [slice_], [pod("web-x", hostname="primary", subdomain="other")])
    assert ask(other, "primary.db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"
    assert ask(other, "10-244-1-8.db.default.svc.cluster.local", "A")[0] == "NOERROR"


def test_headless_service_without_ready_endpoints_is_nxdomain() -> None:
    not_ready = endpointslice("db", [endpoint("10.244.2.9", ready=False)])
    assert ask(table_of([DB], [not_ready]), "db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"
    assert ask(table_of([DB]), "db.default.svc.cluster.local", "A")[0] == "NXDOMAIN"


def test_slices_merge_and_repeat_endpoints_appear_once() -> None:
    first = endpointslice("db", [endpoint("10.244.1.5", hostname="db-0")], suffix="a")
    second = endpointslice(
        "db", [endpoint("10.244.1.5", hostname="db-0"), endpoint("10.244.1.6")], suffix="b"
    )
    other_ns = endpointslice("db", [endpoint("10.244.9.9")], namespace="other", suffix="c")
    table = table_of([DB], [first, second, other_ns])
    addresses = [rdata for _, _, rdata in ask(table, "db.default.svc.cluster.local", "A")[1]]
    assert addresses == ["10.244.1.5", "10.244.1.6"]


def test_external_name_is_a_cname_and_chased_inside_the_zone() -> None:
    internal = service("alias", type_="ExternalName", external_name="web.default.svc.cluster.local")
    external = service("search", type_="ExternalName", external_name="www.example.com.")
    table = table_of([WEB, internal, external])
    assert ask(table, "alias.default.svc.cluster.local", "A") == (
        "NOERROR",
        [
            ("alias.default.svc.cluster.local", "CNAME", "web.default.svc.cluster.local."),
            ("web.default.svc.cluster.local", "A", "10.96.0.10"),
        ],
    )
    assert ask(table, "alias.default.svc.cluster.local", "CNAME")[1] == [
        ("alias.default.svc.cluster.local", "CNAME", "web.default.svc.cluster.local.")
    ]
    found = resolve(table, "search.default.svc.cluster.local", QTYPE.A, ZONE)
    assert describe(found.answer) == [
        ("search.default.svc.cluster.local", "CNAME", "www.example.com.")
    ]
    assert found.external_target == "www.example.com"


def test_cname_to_a_missing_name_in_the_zone_is_nxdomain_with_the_cname() -> None:
    dangling = service(
        "alias", type_="ExternalName", external_name="gone.default.svc.cluster.local"
    )
    rcode, answer = ask(table_of([dangling]), "alias.default.svc.cluster.local", "A")
    assert rcode == "NXDOMAIN"
    assert answer == [
        ("alias.default.svc.cluster.local", "CNAME", "gone.default.svc.cluster.local.")
    ]


def test_cname_loop_is_servfail() -> None:
    a = service("a", type_="ExternalName", external_name="b.default.svc.cluster.local")
    b = service("b", type_="ExternalName", external_name="a.default.svc.cluster.local")
    assert ask(table_of([a, b]), "a.default.svc.cluster.local", "A")[0] == "SERVFAIL"


def test_pod_records_answer_any_dashed_ip() -> None:
    table = table_of([])
    assert ask(table, "10-244-1-5.anything.pod.cluster.local", "A") == (
        "NOERROR",
        [("10-244-1-5.anything.pod.cluster.local", "A", "10.244.1.5")],
    )
    assert ask(table, "fd00--5.default.pod.cluster.local", "AAAA")[1] == [
        ("fd00--5.default.pod.cluster.local", "AAAA", "fd00::5")
    ]
    assert ask(table, "10-244-1-5.default.pod.cluster.local", "AAAA") == ("NOERROR", [])
    assert ask(table, "10-244-1-256.default.pod.cluster.local", "A")[0] == "NXDOMAIN"
    assert ask(table, "web.default.pod.cluster.local", "A")[0] == "NXDOMAIN"
    assert ask(table, "10-244-1-5.a.b.pod.cluster.local", "A")[0] == "NXDOMAIN"
    assert ask(table, "default.pod.cluster.local", "A") == ("NOERROR", [])


def test_dns_version_txt() -> None:
    assert ask(table_of([]), "dns-version.cluster.local", "TXT") == (
        "NOERROR",
        [("dns-version.cluster.local", "TXT", '"1.1.0"')],
    )


def test_nodata_vs_nxdomain_carry_the_zone_soa() -> None:
    table = table_of([WEB])
    nodata = resolve(table, "web.default.svc.cluster.local", QTYPE.AAAA, ZONE)
    assert (nodata.rcode, nodata.answer) == (RCODE.NOERROR, ())
    nxdomain = resolve(table, "nope.default.svc.cluster.local", QTYPE.A, ZONE)
    assert nxdomain.rcode == RCODE.NXDOMAIN
    for found in (nodata, nxdomain):
        assert describe(found.authority) == [
            (
                "cluster.local",
                "SOA",
                "ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5",
            )
        ]
    # Empty non-terminals exist: NODATA, not NXDOMAIN.
    for name in (
        "default.svc.cluster.local",
        "svc.cluster.local",
        "_http._tcp.web.default.svc.cluster.local",
    ):
        assert ask(table, name, "TXT")[0] == "NOERROR", name
    assert ask(table, "_tcp.web.default.svc.cluster.local", "A")[0] == "NOERROR"


def test_zone_apex_answers_soa_and_any_lists_every_type() -> None:
    table = table_of([WEB])
    assert ask(table, "cluster.local", "SOA")[1][0][1] == "SOA"
    assert ask(table, "web.default.svc.cluster.local", "ANY")[1] == [
        ("web.default.svc.cluster.local", "A", "10.96.0.10")
    ]


def test_names_are_lowercased_and_ttl_and_zone_are_configurable() -> None:
    svc = service("Web", namespace="Prod", cluster_ip="10.96.0.11")
    table = build_dns_table([svc], [], [], zone="Example.Test.", ttl=30)
    assert table.zone == "example.test"
    found = resolve(table, "web.prod.svc.example.test", QTYPE.A, "example.test")
    assert [rr.ttl for rr in found.answer] == [30]
    assert table.rrset("dns-version.example.test", QTYPE.TXT)


def test_fqdn_endpointslices_and_services_without_ips_add_nothing() -> None:
    pending = service("pending")  # no clusterIP allocated yet
    broken = service("broken", cluster_ip="10.96.0.300")
    fqdn = endpointslice("db", [endpoint("db.example.com")], address_type="FQDN")
    table = table_of([pending, broken, DB], [fqdn])
    assert set(table.records) == {("dns-version.cluster.local", QTYPE.TXT)}


def test_reverse_zones_cover_a_cidr_exactly() -> None:
    assert reverse_zones("10.96.0.0/16") == ["96.10.in-addr.arpa"]
    assert reverse_zones("10.244.0.0/24") == ["0.244.10.in-addr.arpa"]
    assert reverse_zones("172.16.0.0/12") == [f"{n}.172.in-addr.arpa" for n in range(16, 32)]
    assert reverse_zones("fd00:10:96::/112") == [
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa"
    ]
    assert reverse_zones("10.0.0.0/7") == ["10.in-addr.arpa", "11.in-addr.arpa"]


@pytest.mark.parametrize(
    ("label", "address"),
    [
        ("10-1-2-3", "10.1.2.3"),
        ("fd00--1", "fd00::1"),
        ("10-1-2", None),
        ("10-1-2-x", None),
        ("0x1-1-1-1", None),
        ("", None),
    ],
)
def test_parse_dashed_ip(label: str, address: str | None) -> None:
    parsed = parse_dashed_ip(label)
    assert (str(parsed) if parsed else None) == address


# -- properties --------------------------------------------------------------------

label = st.from_regex(r"[a-zA-Z]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
named_port = st.fixed_dictionaries(
    {"name": label.map(str.lower), "port": st.integers(1, 65535)},
    optional={"protocol": st.sampled_from(["TCP", "UDP", "SCTP"])},
)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[Obj], list[Obj], list[Obj]]:
    namespaces = draw(st.lists(label, min_size=1, max_size=3))
    services, slices = [], []
    for name in draw(st.lists(label, max_size=8, unique_by=str.lower)):
        ns = draw(st.sampled_from(namespaces))
        kind = draw(st.sampled_from(["ClusterIP", "headless", "ExternalName"]))
        ports = draw(st.lists(named_port, max_size=2))
        if kind == "ExternalName":
            target = draw(label) + ".example.com"
            services.append(service(name, ns, type_="ExternalName", external_name=target))
            continue
        if kind == "ClusterIP":
            ips = draw(st.lists(st.one_of(ipv4, ipv6), min_size=1, max_size=2))
            services.append(service(name, ns, cluster_ip=ips[0], cluster_ips=ips, ports=ports))
        else:
            publish = draw(st.booleans())
            services.append(
                service(name, ns, cluster_ip="None", ports=ports, publish_not_ready=publish)
            )
        endpoints = [
            endpoint(
                draw(ipv4),
                ready=draw(st.sampled_from([True, False, None])),
                hostname=draw(st.one_of(st.none(), label)),
            )
            for _ in range(draw(st.integers(0, 4)))
        ]
        slices.append(endpointslice(name, endpoints, namespace=ns, ports=ports))
    return services, slices, []


def _is_under(name: str, apex: str) -> bool:
    return name == apex or name.endswith("." + apex)


@settings(max_examples=60, deadline=None)
@given(clusters())
def test_every_name_is_a_lowercase_fqdn_under_the_zone_or_a_reverse_zone(
    cluster: tuple[list[Obj], list[Obj], list[Obj]],
) -> None:
    table = build_dns_table(*cluster, zone=ZONE)
    for name in table.names | {name for name, _ in table.records}:
        assert name == name.lower() and not name.endswith(".") and ".." not in name
        assert any(_is_under(name, apex) for apex in (ZONE, "in-addr.arpa", "ip6.arpa")), name
    for (name, qtype), rrs in table.records.items():
        assert rrs and all(str(rr.rname).rstrip(".") == name and rr.rtype == qtype for rr in rrs)


@settings(max_examples=60, deadline=None)
@given(clusters(), st.lists(label, max_size=6), st.sampled_from(["A", "AAAA", "SRV", "PTR", "TXT"]))
def test_nxdomain_exactly_when_no_name_exists(
    cluster: tuple[list[Obj], list[Obj], list[Obj]], extra_labels: list[str], qtype: str
) -> None:
    table = build_dns_table(*cluster, zone=ZONE)
    existing = sorted(table.names)
    candidates = existing + [
        f"{lbl.lower()}.{existing[i % len(existing)]}" for i, lbl in enumerate(extra_labels)
    ]
    for name in candidates:
        apex = ZONE if _is_under(name, ZONE) else ".".join(name.split(".")[-2:])
        found = resolve(table, name, getattr(QTYPE, qtype), apex)
        assert (found.rcode == RCODE.NXDOMAIN) == (not table.has_name(name)), name
        if found.rcode != RCODE.NOERROR or found.external_target:
            continue
        assert found.answer or found.authority  # NODATA always carries the SOA


@settings(max_examples=60, deadline=None)
@given(clusters())
def test_headless_addresses_are_exactly_the_published_endpoints(
    cluster: tuple[list[Obj], list[Obj], list[Obj]],
) -> None:
    services, slices, pods = cluster
    table = build_dns_table(services, slices, pods, zone=ZONE)
    by_service = {
        (s["metadata"]["namespace"], s["metadata"]["labels"]["kubernetes.io/service-name"]): s
        for s in slices
    }
    for svc in services:
        if svc["spec"].get("clusterIP") != "None":
            continue
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        publish = svc["spec"].get("publishNotReadyAddresses", False)
        expected = {
            ipaddress.ip_address(address)
            for ep in by_service[(ns, name)]["endpoints"]
            if publish or ep["conditions"].get("ready") is not False
            for address in ep["addresses"]
        }
        fqdn = f"{name}.{ns}.svc.{ZONE}".lower()
        published = {ipaddress.ip_address(str(rr.rdata)) for rr in table.rrset(fqdn, QTYPE.A)}
        assert published == expected
        assert table.has_name(fqdn) == bool(expected)


def _rendered(table: DnsTable) -> tuple[dict[Any, list[str]], frozenset[str]]:
    return {key: [str(rr) for rr in rrs] for key, rrs in table.records.items()}, table.names


@settings(max_examples=60, deadline=None)
@given(st.lists(clusters(), min_size=1, max_size=4))
def test_a_table_built_again_from_kept_records_is_the_table_built_from_nothing(
    states: list[tuple[list[Obj], list[Obj], list[Obj]]],
) -> None:
    """One builder through a run of cluster states (Services added, changed, removed;
    each state is drawn anew, so most names change and some repeat), each built twice
    (the second time from kept records only), gives at each step the table of a fresh
    build, rrset order included."""
    builder = TableBuilder(ZONE)
    for services, slices, pods in states + states[:1]:
        fresh = _rendered(build_dns_table(services, slices, pods, zone=ZONE))
        for _ in range(2):
            assert _rendered(builder.build(services, slices, pods)) == fresh


def test_unchanged_services_keep_their_records_and_changed_ones_get_new() -> None:
    builder = TableBuilder(ZONE)
    web, db = service("web", cluster_ip="10.96.0.10"), service("db", cluster_ip="10.96.0.11")
    first = builder.build([web, db], [], [])
    moved = service("db", cluster_ip="10.96.0.12")
    second = builder.build([web, moved], [], [])
    web_key = (f"web.default.svc.{ZONE}", QTYPE.A)
    assert second.records[web_key][0] is first.records[web_key][0]  # kept, not made again
    db_name = f"db.default.svc.{ZONE}"
    assert ask(second, db_name, "A") == ("NOERROR", [(db_name, "A", "10.96.0.12")])
    assert ask(second, "11.0.96.10.in-addr.arpa", "PTR", "in-addr.arpa")[0] == "NXDOMAIN"


def test_an_rrset_of_several_services_follows_their_order_when_only_the_order_moves() -> None:
    """Two Services share a PTR name (one address): their rrset merges them in input
    order, so a build whose input only reorders them merges it again."""
    builder = TableBuilder(ZONE)
    a = service("a", cluster_ip="10.96.0.10")
    b = service("b", cluster_ip="10.96.0.10")
    for services in ([a, b], [b, a], [a, b]):
        fresh = _rendered(build_dns_table(services, [], [], zone=ZONE))
        assert _rendered(builder.build(services, [], [])) == fresh
    ptr = ("10.0.96.10.in-addr.arpa", QTYPE.PTR)
    assert [str(rr.rdata) for rr in builder.build([b, a], [], []).records[ptr]] == [
        f"b.default.svc.{ZONE}.",
        f"a.default.svc.{ZONE}.",
    ]
