"""Golden tests of the pods' resolv.conf and /etc/hosts, per dnsPolicy."""

from typing import Any

from agent.dns.pod_config import parse_resolv_conf, render_etc_hosts, render_resolv_conf
from minikube_py.api.types import Obj

HOST_RESOLV_CONF = """# written by the host
nameserver 192.168.1.1
nameserver 192.168.1.2
search corp.example lab.example
options edns0 timeout:2
"""


def pod(name: str = "web-0", namespace: str = "shop", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def resolv(p: Obj) -> str:
    return render_resolv_conf(p, "10.96.0.10", HOST_RESOLV_CONF, "cluster.local")


def test_cluster_first_is_the_default_and_appends_host_search_domains() -> None:
    expected = (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )
    assert resolv(pod()) == expected
    assert resolv(pod(dnsPolicy="ClusterFirst")) == expected


def test_default_copies_the_host_resolver() -> None:
    assert resolv(pod(dnsPolicy="Default")) == (
        "search corp.example lab.example\n"
        "nameserver 192.168.1.1\n"
        "nameserver 192.168.1.2\n"
        "options edns0 timeout:2\n"
    )


def test_cluster_first_on_the_host_network_falls_back_to_default() -> None:
    assert resolv(pod(hostNetwork=True)) == resolv(pod(dnsPolicy="Default"))
    with_host_net = resolv(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"))
    assert with_host_net == resolv(pod())


def test_none_uses_only_dns_config() -> None:
    p = pod(
        dnsPolicy="None",
        dnsConfig={
            "nameservers": ["1.2.3.4"],
            "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        },
    )
    assert resolv(p) == (
        "search ns1.svc.cluster-domain.example my.dns.search.suffix\n"
        "nameserver 1.2.3.4\n"
        "options ndots:2 edns0\n"
    )


def test_dns_config_merges_into_cluster_first() -> None:
    p = pod(
        dnsConfig={
            "nameservers": ["10.96.0.10", "1.1.1.1"],
            "searches": ["svc.cluster.local", "extra.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}],
        }
    )
    assert resolv(p) == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example"
        " lab.example extra.example\n"
        "nameserver 10.96.0.10\n"
        "nameserver 1.1.1.1\n"
        "options ndots:1 single-request\n"
    )


def test_limits_three_nameservers_and_32_search_domains() -> None:
    p = pod(
        dnsPolicy="None",
        dnsConfig={
            "nameservers": [f"10.0.0.{n}" for n in range(5)],
            "searches": [f"d{n}.example" for n in range(40)],
        },
    )
    lines = resolv(p).splitlines()
    assert len(lines[0].split()) == 1 + 32
    assert [line for line in lines if line.startswith("nameserver")] == [
        "nameserver 10.0.0.0",
        "nameserver 10.0.0.1",
        "nameserver 10.0.0.2",
    ]


def test_parse_resolv_conf_keeps_the_last_search_line() -> None:
    parsed = parse_resolv_conf("search a.example\n; comment\nsearch b.example.\nnameserver ::1\n")
    assert (parsed.searches, parsed.nameservers, parsed.options) == (["b.example"], ["::1"], [])


def test_etc_hosts_names_the_pod_with_its_fqdn_when_it_has_a_subdomain() -> None:
    hosts = render_etc_hosts(
        pod(hostname="db-0", subdomain="db"), "10.244.1.5", "cluster.local"
    ).splitlines()
    assert hosts[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in hosts
    assert hosts[-1] == "10.244.1.5\tdb-0.db.shop.svc.cluster.local\tdb-0"


def test_etc_hosts_without_subdomain_has_the_pod_name_and_host_aliases() -> None:
    p = pod(
        name="x" * 70 + "-y",
        hostAliases=[{"ip": "127.0.0.2", "hostnames": ["foo.local", "bar.local"]}],
    )
    hosts = render_etc_hosts(p, "10.244.1.6", "cluster.local").splitlines()
    assert hosts[-4:] == [
        "10.244.1.6\t" + "x" * 63,
        "",
        "# Entries added by HostAliases.",
        "127.0.0.2\tfoo.local\tbar.local",
    ]
