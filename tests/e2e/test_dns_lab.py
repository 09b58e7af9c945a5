"""Cluster DNS on a real two-node lab, asked by `dig` from the host and by pods.

One lab per module, built as `minikube-py start --nodes 2 --dns-upstream ...` builds it
(its own cluster name, node subnet, cluster CIDR and ports), removed at the end with a
check that nothing of it is left. Its agents forward names outside the cluster to a
fake upstream that this module runs on the host's address on the lab bridge, so no
query ever leaves the machine. One namespace holds a StatefulSet `web` behind a headless
Service `web`, a ClusterIP Service `front` over the same pods and a client pod; the
namespace `test` holds the guide's ExternalName `test-service`. Latency checks write
through the project's REST client (no kubectl start-up in the measurement) and ask the
node's DNS directly over UDP every 10 ms.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
import yaml
from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord

from agent.runtime import LABEL_NODE_NAME
from minikube_py import labnet
from minikube_py.api.types import Obj
from minikube_py.client import Client, Credentials
from minikube_py.lab import Lab, LabConfig, free_port
from minikube_py.nodes import LabNodes
from tests.e2e.test_agent import BUSYBOX, SERVE, pod_ready, wait_for

pytestmark = pytest.mark.e2e

T = TypeVar("T")

ZONE = "cluster.local"
UPSTREAM_ZONE = "upstream.test"  # every name under it gets UPSTREAM_ADDRESS
UPSTREAM_ADDRESS = "192.0.2.53"  # TEST-NET-1: data in answers, never a destination
EXTERNAL_NAME = "test.service.com"  # the guide's ExternalName target, answered by the fake
EXTERNAL_ADDRESS = "192.0.2.80"
SILENT_LABEL = "silent"  # the fake upstream never answers names starting with it
SOA_TEXT = f"ns.dns.{ZONE}. hostmaster.{ZONE}."
CHANGE_DEADLINE = 1.0  # the issue: a Service or endpoint change is answered within 1 s


# -- the fake upstream -------------------------------------------------------------


class FakeUpstream:
    """A UDP resolver on the host side of the lab bridge: it answers `*.upstream.test`
    and `test.service.com`, says NXDOMAIN to other names, ignores `silent*` names (an
    upstream that has died mid-question) and counts every question it sees."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
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
            if name.startswith(SILENT_LABEL):
                continue
            reply = query.reply(aa=0)
            address = {EXTERNAL_NAME: EXTERNAL_ADDRESS}.get(name, UPSTREAM_ADDRESS)
            if name == EXTERNAL_NAME or name.endswith("." + UPSTREAM_ZONE):
                if query.q.qtype == QTYPE.A:
                    reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=60))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
                soa = SOA("ns.example.test.", "root.example.test.", (1, 60, 60, 60, 30))
                reply.add_auth(RR("example.test", QTYPE.SOA, rdata=soa, ttl=30))
            self.sock.sendto(reply.pack(), client)

    @property
    def flag(self) -> str:
        return "{}:{}".format(*self.address)

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


# -- the lab -----------------------------------------------------------------------


@dataclass
class DnsLab:
    lab: Lab
    nodes: LabNodes
    names: list[str]
    upstream: FakeUpstream
    client: Client
    loop: asyncio.AbstractEventLoop
    ns: str = ""

    def kubectl(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.lab.admin_kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def exec(self, pod: str, command: str, namespace: str = "") -> str:
        """`sh -c command` in a pod through kubectl exec; its stdout (exit code ignored,
        the callers check the output, which says more)."""
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.lab.admin_kubeconfig), "exec", pod,
             "-n", namespace or self.ns, "--", "sh", "-c", command],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return proc.stdout + proc.stderr

    def api(self, call: Coroutine[Any, Any, T]) -> T:
        """Run one call of the REST client (its own loop: these tests are synchronous)."""
        return self.loop.run_until_complete(call)

    def get(self, kind: str, name: str, namespace: str = "") -> Obj:
        return self.api(self.client.get(kind, name, namespace))

    def node_ip(self, index: int) -> str:
        addresses = self.get("Node", self.names[index])["status"]["addresses"]
        return str(next(a["address"] for a in addresses if a["type"] == "InternalIP"))

    def cluster_ip(self, name: str) -> str:
        return str(self.get("Service", name, self.ns)["spec"]["clusterIP"])


@pytest.fixture(scope="module")
def dns_lab(
    docker_engine: docker.DockerClient, local_images: dict[str, str], tmp_path_factory: Any
) -> Iterator[DnsLab]:
    for tool in ("kubectl", "etcd", "dig"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed", pytrace=False)
    cluster = "d" + secrets.token_hex(3)
    octet = 150 + secrets.randbelow(50)
    subnet = f"192.168.{octet}.0/24"
    bridge_ip = str(ipaddress.IPv4Network(subnet).network_address + 1)
    home: Path = tmp_path_factory.mktemp("dns-lab")
    config = LabConfig(
        name=cluster,
        apiserver_port=free_port(),
        etcd_client_port=free_port(),
        etcd_peer_port=free_port(),
        nodes=2,
        bind_addresses=["127.0.0.1", bridge_ip],
    )
    lab = Lab(home, config, kubeconfig_path=home / "kubeconfig")
    labnet.stale_cleanup(cluster)
    upstream: FakeUpstream | None = None
    nodes = LabNodes(lab, subnet, f"10.{octet}.0.0/16")
    loop = asyncio.new_event_loop()
    client = None
    try:
        nodes.create_network()
        # The bridge address exists from here on; the agents get the fake as upstream
        # the way `minikube-py start --dns-upstream HOST:PORT` passes it (LabConfig).
        upstream = FakeUpstream(bridge_ip)
        lab.config.dns_upstreams = [upstream.flag]
        # Made again: LabNodes takes the upstreams from LabConfig when made, as in `start`.
        nodes = LabNodes(lab, subnet, f"10.{octet}.0.0/16")
        lab.start_control_plane()
        names = [nodes.add(i, wait=False) for i in (1, 2)]
        nodes.wait_ready(names, 30)
        client = Client(Credentials.from_kubeconfig(lab.admin_kubeconfig), user_agent="dns-lab")
        yield DnsLab(lab, nodes, names, upstream, client, loop)
    finally:
        if client is not None:
            loop.run_until_complete(client.close())
        loop.close()
        nodes.delete_all()
        lab.stop()
        if upstream is not None:
            upstream.stop()
    for name in [f"{cluster}-n1", f"{cluster}-n2"]:
        left = docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_NODE_NAME}={name}"}
        )
        assert not left, f"containers of {name} left behind"


def statefulset(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "serviceName": "web",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {"name": "web", "image": BUSYBOX, "command": ["sh", "-c", SERVE]}
                    ],
                },
            },
        },
    }


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def apps(dns_lab: DnsLab) -> DnsLab:
    """The namespace's workloads, Ready, with the headless Service's endpoints named."""
    ns = dns_lab.ns = "dns-" + secrets.token_hex(3)
    dns_lab.kubectl("create", "namespace", ns)
    dns_lab.kubectl("create", "namespace", "test")
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": {
            "nodeName": dns_lab.names[0],
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {"name": "main", "image": BUSYBOX,
                 "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}
            ],
        },
    }  # fmt: skip
    objects = [
        service("web", clusterIP="None", selector={"app": "web"},
                ports=[{"name": "http", "port": 8080, "protocol": "TCP"}]),
        service("front", selector={"app": "web"},
                ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]),
        service("alias", type="ExternalName", externalName=f"front.{ns}.svc.{ZONE}"),
        statefulset(2),
        client,
    ]  # fmt: skip
    dns_lab.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(objects))
    dns_lab.kubectl(
        "apply", "-n", "test", "-f", "-",
        input=yaml.safe_dump(service("test-service", type="ExternalName",
                                     externalName=EXTERNAL_NAME)),
    )  # fmt: skip

    def ready() -> bool:
        pods = dns_lab.api(dns_lab.client.list("Pod", ns))["items"]
        names = {p["metadata"]["name"] for p in pods if pod_ready(p)}
        return {"web-0", "web-1", "client"} <= names and len(ready_endpoints(dns_lab)) == 2

    wait_for(ready, 60, "web-0, web-1 and client Ready with 2 ready endpoints")
    return dns_lab


def ready_endpoints(dns_lab: DnsLab, service_name: str = "web") -> dict[str, str]:
    """hostname -> address of the Service's ready endpoints."""
    selector = f"kubernetes.io/service-name={service_name}"
    slices = dns_lab.api(dns_lab.client.list("EndpointSlice", dns_lab.ns, selector))["items"]
    return {
        endpoint.get("hostname") or endpoint["addresses"][0]: endpoint["addresses"][0]
        for eps in slices
        for endpoint in eps.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
    }


# -- asking ------------------------------------------------------------------------


@dataclass
class Dig:
    status: str
    flags: set[str]
    answer: list[tuple[str, str, str]]  # (owner, type, rdata)
    authority: list[tuple[str, str, str]]
    seconds: float

    def rdatas(self, rtype: str) -> list[str]:
        return sorted(rdata for _, t, rdata in self.answer if t == rtype)


def dig(server: str, *args: str, tcp: bool = False) -> Dig:
    """The real `dig` from the host against a node's DNS."""
    command = ["dig", f"@{server}", "+tries=1", "+time=4", "+nocookie"]
    command += ["+noall", "+comments", "+answer", "+authority", *(["+tcp"] if tcp else []), *args]
    started = time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    seconds = time.monotonic() - started
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
    assert status, f"dig {' '.join(args)} got no reply:\n{output}"
    return Dig(status, flags, sections["ANSWER"], sections["AUTHORITY"], seconds)


def ask(server: str, name: str, qtype: str = "A", timeout: float = 0.5) -> DNSRecord | None:
    """One UDP question from the host (for tight polling); None when no reply came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((server, 53))
        sock.send(DNSRecord.question(name, qtype).pack())
        try:
            return DNSRecord.parse(sock.recv(65535))
        except TimeoutError:
            return None


def addresses(reply: DNSRecord | None) -> set[str]:
    if reply is None or reply.header.rcode != RCODE.NOERROR:
        return set()
    return {str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A}


def seconds_until(check: Callable[[], bool], limit: float = 5.0) -> float:
    """How long until `check` holds, polling every 10 ms; fails after `limit`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not answered within {limit:g}s")
        time.sleep(0.01)
    return time.monotonic() - started


def svc(name: str, ns: str) -> str:
    return f"{name}.{ns}.svc.{ZONE}"


# -- from the host -------------------------------------------------------------------


def test_every_record_type_from_the_host(apps: DnsLab) -> None:
    ns, node = apps.ns, apps.node_ip(0)
    front_ip = apps.cluster_ip("front")
    endpoints = ready_endpoints(apps)
    assert set(endpoints) == {"web-0", "web-1"}

    front = dig(node, svc("front", ns), "A")
    assert (front.status, front.rdatas("A")) == ("NOERROR", [front_ip])
    assert "aa" in front.flags
    # Both nodes serve the same table from their own informers.
    assert dig(apps.node_ip(1), svc("front", ns), "A").rdatas("A") == [front_ip]
    assert dig(node, svc("web", ns), "A").rdatas("A") == sorted(endpoints.values())
    for host, ip in endpoints.items():
        assert dig(node, f"{host}.{svc('web', ns)}", "A").rdatas("A") == [ip]
        assert dig(node, "-x", ip).rdatas("PTR") == [f"{host}.{svc('web', ns)}."]

    assert dig(node, f"_http._tcp.{svc('front', ns)}", "SRV").rdatas("SRV") == [
        f"0 100 80 {svc('front', ns)}."
    ]
    assert dig(node, f"_http._tcp.{svc('web', ns)}", "SRV").rdatas("SRV") == [
        f"0 100 8080 web-0.{svc('web', ns)}.",
        f"0 100 8080 web-1.{svc('web', ns)}.",
    ]
    assert dig(node, "-x", front_ip).rdatas("PTR") == [f"{svc('front', ns)}."]

    # The guide's ExternalName: the CNAME from the cluster, the target's A from upstream.
    external = dig(node, svc("test-service", "test"), "A")
    assert external.status == "NOERROR"
    assert external.answer == [
        (svc("test-service", "test"), "CNAME", f"{EXTERNAL_NAME}."),
        (EXTERNAL_NAME, "A", EXTERNAL_ADDRESS),
    ]

    # An ExternalName inside the zone: the CNAME and its target's records, all local.
    assert dig(node, svc("alias", ns), "A").answer == [
        (svc("alias", ns), "CNAME", f"{svc('front', ns)}."),
        (svc("front", ns), "A", front_ip),
    ]

    client_ip = apps.get("Pod", "client", ns)["status"]["podIP"]
    pod_name = f"{client_ip.replace('.', '-')}.{ns}.pod.{ZONE}"
    assert dig(node, pod_name, "A").rdatas("A") == [client_ip]
    assert dig(node, f"dns-version.{ZONE}", "TXT").rdatas("TXT") == ['"1.1.0"']
    # The same over TCP.
    assert dig(node, svc("front", ns), "A", tcp=True).rdatas("A") == [front_ip]


def test_nxdomain_and_nodata_carry_the_soa(apps: DnsLab) -> None:
    node = apps.node_ip(0)
    nodata = dig(node, svc("front", apps.ns), "AAAA")
    assert (nodata.status, nodata.answer) == ("NOERROR", [])
    [(owner, rtype, rdata)] = nodata.authority
    assert (owner, rtype) == (ZONE, "SOA") and rdata.startswith(SOA_TEXT)
    # `web-0.web.<ns>.svc` exists, so its parent `web.<ns>.svc` does; an absent
    # sibling is NXDOMAIN, and so is a name under an existing one.
    nxdomain = dig(node, svc("nosuch", apps.ns), "A")
    assert (nxdomain.status, nxdomain.answer) == ("NXDOMAIN", [])
    [(owner, rtype, rdata)] = nxdomain.authority
    assert (owner, rtype) == (ZONE, "SOA") and rdata.startswith(SOA_TEXT)
    assert dig(node, f"web-9.{svc('web', apps.ns)}", "A").status == "NXDOMAIN"
    # An empty non-terminal (the namespace) exists: NODATA, not NXDOMAIN.
    assert dig(node, f"{apps.ns}.svc.{ZONE}", "A").status == "NOERROR"
    # The reverse zones of the service and pod ranges are the node's own: an unused
    # address is NXDOMAIN there and never asked upstream.
    cluster_cidr = ipaddress.IPv4Network(apps.nodes.cluster_cidr)
    for unused, zone in [
        ("10.96.255.254", "96.10.in-addr.arpa"),
        (
            str(cluster_cidr.network_address + 0xFEFE),
            f"{cluster_cidr.network_address.packed[1]}.10.in-addr.arpa",
        ),
    ]:
        reverse = dig(node, "-x", unused)
        assert (reverse.status, reverse.authority[0][:2]) == ("NXDOMAIN", (zone, "SOA"))
        assert apps.upstream.questions[ipaddress.ip_address(unused).reverse_pointer] == 0


def test_other_names_go_to_the_fake_upstream(apps: DnsLab) -> None:
    node = apps.node_ip(0)
    name = f"www-{secrets.token_hex(3)}.{UPSTREAM_ZONE}"
    forwarded = dig(node, name, "A")
    assert (forwarded.status, forwarded.rdatas("A")) == ("NOERROR", [UPSTREAM_ADDRESS])
    assert "aa" not in forwarded.flags
    assert apps.upstream.questions[name] == 1
    # Cached: the second question does not reach the upstream.
    assert dig(node, name, "A").rdatas("A") == [UPSTREAM_ADDRESS]
    assert apps.upstream.questions[name] == 1
    unknown = dig(node, f"nope-{secrets.token_hex(3)}.example.test", "A")
    assert unknown.status == "NXDOMAIN"


def test_a_dead_upstream_gives_servfail_quickly(apps: DnsLab) -> None:
    node = apps.node_ip(0)
    # An upstream that takes the question and never answers: the forward deadline.
    silent = f"{SILENT_LABEL}-{secrets.token_hex(3)}.{UPSTREAM_ZONE}"
    result = dig(node, silent, "A")
    print(f"\nsilent upstream -> SERVFAIL in {result.seconds * 1000:.0f} ms")
    assert result.status == "SERVFAIL"
    assert result.seconds < 2.8, f"SERVFAIL after {result.seconds:.2f}s"
    assert apps.upstream.questions[silent] >= 1
    # An upstream that is gone (nothing listens: refused at once).
    host, port = apps.upstream.address
    apps.upstream.stop()
    try:
        gone = dig(node, f"gone-{secrets.token_hex(3)}.{UPSTREAM_ZONE}", "A")
        print(f"no upstream listening -> SERVFAIL in {gone.seconds * 1000:.0f} ms")
        assert gone.status == "SERVFAIL"
        assert gone.seconds < 2.8, f"SERVFAIL after {gone.seconds:.2f}s"
        # Cluster names never depend on the upstream.
        assert dig(node, svc("front", apps.ns), "A").status == "NOERROR"
    finally:
        apps.upstream = FakeUpstream(host, port)
    back = f"back-{secrets.token_hex(3)}.{UPSTREAM_ZONE}"
    assert dig(node, back, "A").rdatas("A") == [UPSTREAM_ADDRESS]


def test_the_agents_get_the_upstream_from_the_lab_config(apps: DnsLab) -> None:
    """LabConfig.dns_upstreams (what `start --dns-upstream` sets) reaches every agent."""
    for name in apps.names:
        pid = apps.lab.pid(f"agent-{name}")
        assert pid is not None
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert argv[argv.index("--dns-upstream") + 1] == apps.upstream.flag


# -- from pods -----------------------------------------------------------------------


def test_pods_resolve_by_name_through_their_node(apps: DnsLab) -> None:
    ns = apps.ns
    resolv = apps.exec("client", "cat /etc/resolv.conf")
    assert f"nameserver {apps.node_ip(0)}" in resolv
    assert f"search {ns}.svc.{ZONE} svc.{ZONE} {ZONE}" in resolv
    assert "options ndots:5" in resolv
    front_ip = apps.cluster_ip("front")
    endpoints = ready_endpoints(apps)

    # busybox nslookup applies the first search domain to dotless names only; the
    # libc resolver behind wget below applies the whole path to anything under ndots:5.
    assert front_ip in apps.exec("client", "nslookup front")
    short_web = apps.exec("client", "nslookup web")
    assert all(ip in short_web for ip in endpoints.values()), short_web
    assert endpoints["web-0"] in apps.exec("client", f"nslookup web-0.{svc('web', ns)}")
    assert front_ip in apps.exec("client", f"nslookup {svc('front', ns)}")

    srv = apps.exec("client", f"nslookup -type=srv _http._tcp.web.{ns}.svc.{ZONE}")
    assert f"web-0.web.{ns}.svc.{ZONE}" in srv and f"web-1.web.{ns}.svc.{ZONE}" in srv, srv
    assert f"{svc('front', ns)}" in apps.exec("client", f"nslookup {front_ip}")
    txt = apps.exec("client", f"nslookup -type=txt dns-version.{ZONE}")
    assert "1.1.0" in txt, txt
    external = apps.exec("client", f"nslookup {svc('test-service', 'test')}")
    assert EXTERNAL_NAME in external and EXTERNAL_ADDRESS in external, external
    web0_ip = endpoints["web-0"]
    pod_name = f"{web0_ip.replace('.', '-')}.{ns}.pod.{ZONE}"
    assert web0_ip in apps.exec("client", f"nslookup {pod_name}")
    upstream_name = f"pod-{secrets.token_hex(3)}.{UPSTREAM_ZONE}"
    assert UPSTREAM_ADDRESS in apps.exec("client", f"nslookup {upstream_name}")

    # A StatefulSet pod knows its own FQDN from /etc/hosts.
    hosts = apps.exec("web-0", "cat /etc/hosts")
    assert f"{endpoints['web-0']}\tweb-0.{svc('web', ns)}\tweb-0" in hosts, hosts

    # Real traffic by name: the StatefulSet pod by its stable name, the Service by its
    # short name (through the proxy); httpd serves each pod's /etc/hostname.
    by_pod_name = apps.exec("client", "timeout 2 wget -qO- http://web-0.web:8080/hostname")
    assert by_pod_name.strip() == "web-0"
    by_service = apps.exec("client", "timeout 2 wget -qO- http://front/hostname")
    assert by_service.strip() in {"web-0", "web-1"}, by_service


# -- changes -------------------------------------------------------------------------


def test_service_create_and_delete_are_answered_within_a_second(apps: DnsLab) -> None:
    node, ns = apps.node_ip(1), apps.ns
    name = svc("late", ns)
    body = service("late", selector={"app": "web"}, ports=[{"port": 80, "targetPort": 8080}])
    started = time.monotonic()
    created = apps.api(apps.client.create(body, ns))
    took = seconds_until(lambda: addresses(ask(node, name)) == {created["spec"]["clusterIP"]})
    total = time.monotonic() - started
    print(f"\nService create -> A answered in {total * 1000:.0f} ms")
    assert total < CHANGE_DEADLINE, f"create answered after {total:.2f}s ({took:.2f}s)"

    def gone() -> bool:
        reply = ask(node, name)
        return reply is not None and reply.header.rcode == RCODE.NXDOMAIN

    started = time.monotonic()
    apps.api(apps.client.delete("Service", "late", ns))
    seconds_until(gone)
    total = time.monotonic() - started
    print(f"Service delete -> NXDOMAIN in {total * 1000:.0f} ms")
    assert total < CHANGE_DEADLINE, f"delete answered after {total:.2f}s"


def ready_endpoints_of(ips: list[str]) -> list[Obj]:
    return [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]


def test_endpoint_scaling_is_answered_within_a_second(apps: DnsLab) -> None:
    """A selector-less headless Service whose EndpointSlice the test writes: the time
    from the write to the answer, with no pod start-up in it."""
    node, ns = apps.node_ip(0), apps.ns
    ports = [{"name": "http", "port": 8080, "protocol": "TCP"}]
    apps.api(apps.client.create(service("manual", clusterIP="None", ports=ports), ns))
    name = svc("manual", ns)
    base = ipaddress.IPv4Address("10.1.0.10")
    timings: list[float] = []

    def answers(ips: list[str]) -> Callable[[], bool]:
        return lambda: addresses(ask(node, name)) == set(ips)

    try:
        for count in (1, 3, 1):
            ips = [str(base + i) for i in range(count)]
            started = time.monotonic()
            if not timings:
                eps = {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": "manual-1",
                        "labels": {"kubernetes.io/service-name": "manual"},
                    },
                    "addressType": "IPv4",
                    "ports": ports,
                    "endpoints": ready_endpoints_of(ips),
                }
                apps.api(apps.client.create(eps, ns))
            else:
                patch = {"endpoints": ready_endpoints_of(ips)}
                apps.api(apps.client.patch("EndpointSlice", "manual-1", patch, ns))
            seconds_until(answers(ips))
            timings.append(time.monotonic() - started)
    finally:
        apps.api(apps.client.delete("Service", "manual", ns))
        apps.api(apps.client.delete("EndpointSlice", "manual-1", ns))
    print("\nendpoints 1 -> 3 -> 1 answered in " + ", ".join(f"{t * 1000:.0f} ms" for t in timings))
    assert max(timings) < CHANGE_DEADLINE, timings


def test_statefulset_scale_is_answered_once_the_endpoint_is_ready(apps: DnsLab) -> None:
    """Scaling the StatefulSet to 3: `web-2.web` answers within a second of the
    EndpointSlice showing web-2 ready (polled from the API side by side)."""
    node, ns = apps.node_ip(0), apps.ns

    def scale(replicas: int) -> None:
        apps.api(apps.client.patch("StatefulSet", "web", {"spec": {"replicas": replicas}}, ns))

    scale(3)
    name = f"web-2.{svc('web', ns)}"
    try:
        ready_at = answered_at = 0.0
        deadline = time.monotonic() + 45
        while not (ready_at and answered_at) and time.monotonic() < deadline:
            now = time.monotonic()
            if not ready_at and "web-2" in ready_endpoints(apps):
                ready_at = now
            if not answered_at and addresses(ask(node, name)):
                answered_at = now
            time.sleep(0.02)
        assert ready_at and answered_at, "web-2 never became a ready, answered endpoint"
        lag = answered_at - ready_at
        print(f"\nweb-2 ready endpoint -> A answered after {lag * 1000:.0f} ms")
        assert lag < CHANGE_DEADLINE, lag
    finally:
        scale(2)

    def scaled_down() -> bool:
        reply = ask(node, name)
        return reply is not None and reply.header.rcode == RCODE.NXDOMAIN

    wait_for(scaled_down, 30, "web-2.web to leave DNS after scaling down")


def test_dns_metrics_are_served_by_the_agent(apps: DnsLab) -> None:
    node = apps.node_ip(0)

    def answered_a_queries() -> int:
        request = urllib.request.Request(
            f"http://{node}:10250/metrics",
            headers={"Authorization": f"Bearer {apps.lab.agent_token_file.read_text().strip()}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
        found = re.search(
            r'^minikube_py_dns_responses_total\{type="A",rcode="NOERROR"\} (\d+)$', text, re.M
        )
        return int(found.group(1)) if found else 0

    before = answered_a_queries()
    for _ in range(3):
        assert dig(node, svc("front", apps.ns), "A").status == "NOERROR"
    assert answered_a_queries() >= before + 3
