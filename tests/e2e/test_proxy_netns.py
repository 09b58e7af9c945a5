"""The Service proxy on a real kernel, in both modes, in network namespaces of its own.

Topology (all names carry a per-run suffix, all removed by exact name afterwards):
a "node" netns with bridge mkpy-br0 (10.244.1.1/24) and an uplink mkpy-node0 holding the
node IP 192.168.49.2, a LoadBalancer IP (as the announcing node holds it) and the
service CIDR route, whose far end is a "client" netns (192.168.49.10 and .11, hosts
outside the cluster); three "pod" netns (10.244.1.2-4)
joined by veths, each running `busybox httpd` on :8080 and a UDP responder on :5353
that answer with the pod's name.
The proxy's rules are applied in the node netns by `Proxier`, and real TCP connections
are made from the node netns and from a pod netns (the test thread enters the netns,
so the sockets live there). Needs root: fails, not skips, without it.
"""

import dataclasses
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netns import popns, pushns

from agent.proxy import ApplyError, NodeFacts, Proxier, build_plan, nftables, plan_service
from agent.proxy.apply import Mode, run
from agent.proxy.conntrack import delete_flows

pytestmark = pytest.mark.e2e

NODE_IP = "192.168.49.2"
PODS = {"p1": "10.244.1.2", "p2": "10.244.1.3", "p3": "10.244.1.4"}
WEB, EMPTY, STICKY, SELF, UDP = "10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.13", "10.96.0.14"
NODE_PORT = 30080
UDP_LOCAL_PORT, UDP_CLUSTER_PORT = 30053, 30054
CLIENT_IP = "192.168.49.10"  # a host outside the cluster, on the node network
OUTSIDER_IP = "192.168.49.11"  # the same host's second address: outside the source ranges
LB_IP, GUARDED_NODE_PORT = "192.168.49.200", 30081
FACTS = NodeFacts("node-a", ips=(NODE_IP,))
Obj = dict[str, Any]


def sh(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"


def service(name: str, ip: str, **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"port": 80, "targetPort": "http"}], **spec},
    }


def endpoint_slice(name: str, pods: list[str]) -> Obj:
    return {
        "metadata": {
            "name": f"{name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [PODS[p]], "conditions": {"ready": True}, "nodeName": "node-a"}
            for p in pods
        ],
    }


def udp_slice(pods: list[str], name: str = "udp") -> Obj:
    udp = endpoint_slice(name, pods)
    udp["ports"] = [{"name": "", "port": 5353, "protocol": "UDP"}]
    return udp


def udp_node_port(name: str, ip: str, node_port: int, policy: str) -> Obj:
    port = {"port": 53, "protocol": "UDP", "nodePort": node_port}
    return service(name, ip, type="NodePort", externalTrafficPolicy=policy, ports=[port])


SERVICES = [
    service("web", WEB, type="NodePort", ports=[{"port": 80, "nodePort": NODE_PORT}]),
    service("empty", EMPTY),
    service("sticky", STICKY, sessionAffinity="ClientIP"),
    service("self", SELF),
    service("udp", UDP, ports=[{"port": 53, "protocol": "UDP"}]),
    udp_node_port("udp-local", "10.96.0.15", UDP_LOCAL_PORT, "Local"),
    udp_node_port("udp-cluster", "10.96.0.16", UDP_CLUSTER_PORT, "Cluster"),
    {
        **service(
            "guarded",
            "10.96.0.17",
            type="LoadBalancer",
            ports=[{"port": 80, "nodePort": GUARDED_NODE_PORT}],
            # the node's own IP is in a range: the node itself may use the LB IP too
            loadBalancerSourceRanges=[f"{CLIENT_IP}/32", f"{NODE_IP}/32"],
        ),
        "status": {"loadBalancer": {"ingress": [{"ip": LB_IP}]}},
    },
]
SLICES = [
    endpoint_slice("web", ["p1", "p2", "p3"]),
    endpoint_slice("sticky", ["p1", "p2", "p3"]),
    endpoint_slice("self", ["p1"]),
    udp_slice(["p1", "p2"]),
    udp_slice(["p1"], "udp-local"),
    udp_slice(["p1"], "udp-cluster"),
    endpoint_slice("guarded", ["p1", "p2", "p3"]),
]
# every pod also answers UDP datagrams on :5353 with its name and the sender's address
UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    _, peer = s.recvfrom(512)
    s.sendto(f"{sys.argv[1]} {peer[0]}".encode(), peer)
"""


@dataclass
class Lab:
    node: str
    client: str
    pods: dict[str, str]  # pod name -> netns
    proxier: Proxier
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)


@contextmanager
def inside(netns: str) -> Iterator[None]:
    pushns(netns)
    try:
        yield
    finally:
        popns()


def get(netns: str, ip: str, port: int = 80, source: str = "", timeout: float = 3) -> str:
    """One HTTP request from inside `netns` (from address `source`, when given); the
    body (the answering pod's name)."""
    with (
        inside(netns),
        socket.create_connection((ip, port), timeout, (source, 0) if source else None) as conn,
    ):
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    return reply.split(b"\r\n\r\n", 1)[1].decode().strip()


def ask_udp(netns: str, ip: str, port: int) -> str:
    """One datagram from inside `netns`; the reply ("pod sender-address")."""
    with inside(netns):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with client:
        client.settimeout(2)
        client.connect((ip, port))
        client.send(b"?")
        return client.recv(512).decode()


def answers(netns: str, ip: str, port: int = 80, want: int = 3, tries: int = 60) -> set[str]:
    """Who answers, asking until `want` distinct pods did (or `tries` ran out)."""
    seen: set[str] = set()
    for _ in range(tries):
        seen.add(get(netns, ip, port))
        if len(seen) == want:
            break
    return seen


def build_topology(
    suffix: str, tmp: Path
) -> tuple[str, str, dict[str, str], list[subprocess.Popen[bytes]]]:
    node, client = f"mkpy-px-{suffix}-n", f"mkpy-px-{suffix}-c"
    pods = {name: f"mkpy-px-{suffix}-{name}" for name in PODS}
    for netns in (node, client, *pods.values()):
        sh("ip", "netns", "add", netns)
    n = ["ip", "-n", node]
    sh(*n, "link", "set", "lo", "up")
    sh(*n, "link", "add", "mkpy-br0", "type", "bridge")
    sh(*n, "addr", "add", "10.244.1.1/24", "dev", "mkpy-br0")
    sh(*n, "link", "set", "mkpy-br0", "up")
    # the node's uplink, to a client netns standing for the rest of the node network
    sh(*n, "link", "add", "mkpy-node0", "type", "veth", "peer", "name", "eth0", "netns", client)
    sh(*n, "addr", "add", f"{NODE_IP}/24", "dev", "mkpy-node0")
    sh(*n, "addr", "add", f"{LB_IP}/32", "dev", "mkpy-node0")
    sh(*n, "link", "set", "mkpy-node0", "up")
    sh("ip", "-n", client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
    sh("ip", "-n", client, "addr", "add", f"{OUTSIDER_IP}/24", "dev", "eth0")
    sh("ip", "-n", client, "link", "set", "eth0", "up")
    sh(*n, "route", "add", "10.96.0.0/16", "dev", "mkpy-node0")
    sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    servers = []
    for i, (name, netns) in enumerate(pods.items(), start=1):
        veth = f"mkpy-v{i}"
        sh(*n, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        sh(*n, "link", "set", veth, "master", "mkpy-br0", "up")
        # hairpin: with br_netfilter a pod's packet DNATed back to itself must leave
        # through the port it came in by (what CNI's hairpinMode sets)
        sh(*n, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        p = ["ip", "-n", netns]
        sh(*p, "link", "set", "lo", "up")
        sh(*p, "addr", "add", f"{PODS[name]}/24", "dev", "eth0")
        sh(*p, "link", "set", "eth0", "up")
        sh(*p, "route", "add", "default", "via", "10.244.1.1")
        root = tmp / name
        root.mkdir()
        (root / "index.html").write_text(f"{name}\n")
        in_pod = ["ip", "netns", "exec", netns]
        httpd = ["busybox", "httpd", "-f", "-p", "8080", "-h", str(root)]
        servers.append(subprocess.Popen([*in_pod, *httpd]))
        servers.append(subprocess.Popen([*in_pod, sys.executable, "-c", UDP_SERVER, name]))
    return node, client, pods, servers


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    assert os.geteuid() == 0, "the proxy e2e tests need root (netns, nft, iptables)"
    suffix = uuid.uuid4().hex[:6]
    names = [f"mkpy-px-{suffix}-{p}" for p in ("n", "c", *PODS)]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        node, client, pods, servers = build_topology(suffix, tmp_path_factory.mktemp(request.param))
        proxier = Proxier(request.param, FACTS, node)
        proxier.sync(build_plan(SERVICES, SLICES, FACTS))
        deadline = time.monotonic() + 5
        while True:  # the servers are up once every pod answers directly
            try:
                for ip in PODS.values():
                    get(node, ip, 8080)
                    ask_udp(node, ip, 5353)
                break
            except OSError:
                assert time.monotonic() < deadline, "busybox httpd did not start"
                time.sleep(0.05)
        yield Lab(node, client, pods, proxier, servers)
        proxier.close()
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def test_cluster_ip_reaches_every_endpoint(lab: Lab) -> None:
    assert answers(lab.node, WEB) == {"p1", "p2", "p3"}
    assert answers(lab.pods["p3"], WEB) == {"p1", "p2", "p3"}


def test_service_without_endpoints_refuses_at_once(lab: Lab) -> None:
    for netns in (lab.node, lab.pods["p2"]):
        start = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            get(netns, EMPTY)
        assert time.monotonic() - start < 1


def test_hairpin_a_pod_reaches_itself_through_its_service(lab: Lab) -> None:
    assert get(lab.pods["p1"], SELF) == "p1"


def test_node_port_answers_on_the_node_ip(lab: Lab) -> None:
    assert answers(lab.node, NODE_IP, NODE_PORT) == {"p1", "p2", "p3"}
    assert answers(lab.pods["p2"], NODE_IP, NODE_PORT) == {"p1", "p2", "p3"}


def test_client_ip_affinity_sticks(lab: Lab) -> None:
    for netns in (lab.node, lab.pods["p3"]):
        assert len({get(netns, STICKY) for _ in range(12)}) == 1


def test_partial_sync_scales_to_zero_and_back(lab: Lab) -> None:
    web = SERVICES[0]
    result = lab.proxier.sync({"default/web": plan_service(web, [], FACTS)})
    assert not result.full
    with pytest.raises(ConnectionRefusedError):
        get(lab.node, WEB)
    lab.proxier.sync({"default/web": plan_service(web, [endpoint_slice("web", ["p2"])], FACTS)})
    assert answers(lab.node, WEB, tries=10) == {"p2"}
    lab.proxier.sync({"default/web": plan_service(web, [SLICES[0]], FACTS)})
    assert answers(lab.node, WEB) == {"p1", "p2", "p3"}
    assert not lab.proxier.drifted()


def test_flushed_rules_are_drift_and_a_resync_repairs_them(lab: Lab) -> None:
    assert not lab.proxier.drifted()
    assert lab.proxier.resync() is None
    if lab.proxier.mode == "nftables":
        sh("ip", "netns", "exec", lab.node, "nft", "flush", "table", "ip", nftables.TABLES[0])
    else:
        sh("ip", "netns", "exec", lab.node, "iptables", "-t", "nat", "-F", "MKPY-SERVICES")
    assert lab.proxier.drifted()
    result = lab.proxier.resync()
    assert result is not None and result.full
    assert not lab.proxier.drifted()
    assert answers(lab.node, WEB) == {"p1", "p2", "p3"}


def test_an_endpoint_change_retires_chains_and_a_resync_deletes_them(lab: Lab) -> None:
    """nftables flushes the chains of endpoints (or Services) that leave but deletes them
    later (a deletion makes nft load every chain first): they are no drift, and the
    periodic resync removes them. iptables-restore deletes them at once."""
    web = SERVICES[0]
    nft = lab.proxier.mode == "nftables"

    def chains() -> int:
        if nft:
            listing = run(["nft", "list", "ruleset"], lab.node)
            return sum(line.strip().startswith("chain ") for line in listing.splitlines())
        listing = run(["iptables-save", "-t", "nat"], lab.node)
        return sum(line.startswith(":") for line in listing.splitlines())

    def planned() -> int:
        """The chains a full sync of the current plan would leave (nftables)."""
        shape = nftables.expected_shape(lab.proxier.plan, FACTS)
        return sum(key.startswith("chain ") for key in shape)

    def web_with(pods: list[str]) -> None:
        ports = plan_service(web, [endpoint_slice("web", pods)], FACTS)
        assert not lab.proxier.sync({"default/web": ports}).full

    before = chains()
    web_with(["p2"])
    assert answers(lab.node, WEB, tries=10) == {"p2"}
    assert not lab.proxier.drifted()
    changed = chains()
    assert lab.proxier.resync() is None  # no full sync
    if nft:
        assert changed == before  # the retired chains are still there, empty
        assert chains() == planned() < before
    else:
        assert chains() == changed < before
    assert not lab.proxier.drifted()

    web_with(["p1", "p2", "p3"])
    web_with(["p3"])
    assert not lab.proxier.sync({"default/web": ()}).full  # the Service goes
    with pytest.raises(TimeoutError):  # no rule for its address any more
        get(lab.node, WEB, timeout=0.5)
    if nft:
        assert chains() > planned()  # its chains too are retired
    assert not lab.proxier.drifted()
    assert lab.proxier.resync() is None
    if nft:
        assert chains() == planned()
    lab.proxier.sync({"default/web": plan_service(web, [SLICES[0]], FACTS)})
    assert answers(lab.node, WEB) == {"p1", "p2", "p3"}
    assert chains() == before


def test_udp_client_moves_when_its_endpoint_leaves(lab: Lab) -> None:
    """The old endpoint keeps answering: only deleting the stale conntrack flow makes the
    same client socket reach the remaining endpoint."""
    with inside(lab.node):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with client:
        client.settimeout(2)
        client.connect((UDP, 53))
        client.send(b"?")
        first = client.recv(512).decode().split()[0]
        client.send(b"?")
        assert client.recv(512).decode().split()[0] == first  # one flow, one endpoint
        remaining = "p2" if first == "p1" else "p1"
        lab.proxier.sync(
            {"default/udp": plan_service(SERVICES[4], [udp_slice([remaining])], FACTS)}
        )
        client.send(b"?")
        assert client.recv(512).decode().split()[0] == remaining
    lab.proxier.sync({"default/udp": plan_service(SERVICES[4], [SLICES[3]], FACTS)})


def test_external_traffic_policy_local_keeps_the_client_address(lab: Lab) -> None:
    assert ask_udp(lab.client, NODE_IP, UDP_LOCAL_PORT) == f"p1 {CLIENT_IP}"
    # Cluster policy masquerades (the endpoint could be on another node)
    assert ask_udp(lab.client, NODE_IP, UDP_CLUSTER_PORT) == "p1 10.244.1.1"


def test_load_balancer_source_ranges_guard_only_the_load_balancer_ip(lab: Lab) -> None:
    assert get(lab.client, LB_IP, source=CLIENT_IP) in PODS
    with pytest.raises(TimeoutError):  # dropped, not refused
        get(lab.client, LB_IP, source=OUTSIDER_IP, timeout=1)
    # the NodePort of the same Service is not restricted, as in Kubernetes
    assert get(lab.client, NODE_IP, GUARDED_NODE_PORT, source=OUTSIDER_IP) in PODS
    # the node connects to the LB IP it holds from that IP: let through (kube-proxy's
    # allowFromNode, since a range holds the node's IP)
    assert get(lab.node, LB_IP) in PODS


def test_a_refused_sync_leaves_the_rules_whole_and_schedules_a_full_one(lab: Lab) -> None:
    web = plan_service(SERVICES[0], [SLICES[0]], FACTS)
    broken = tuple(dataclasses.replace(sp, cluster_ip="10.96.0.300") for sp in web)
    with pytest.raises(ApplyError):
        lab.proxier.sync({"default/web": broken})
    assert answers(lab.node, WEB) == {"p1", "p2", "p3"}
    assert lab.proxier.sync({}).full
    assert not lab.proxier.drifted()


def test_conntrack_deletion_in_the_node_namespace(lab: Lab) -> None:
    """Deleting flows that do not exist is not an error; a bad argument is."""
    delete_flows([["-D", "-p", "udp", "--orig-dst", "10.96.0.99"]], lab.node)
    with pytest.raises(RuntimeError):
        delete_flows([["-D", "-p", "udp", "--orig-dst", "not-an-ip"]], lab.node)


def test_switching_modes_removes_the_other_modes_rules(lab: Lab) -> None:
    """Last in the module: leaves the lab with no proxy rules at all."""
    in_node = ["ip", "netns", "exec", lab.node]

    def rules_present() -> dict[str, bool]:
        tables = subprocess.run([*in_node, "nft", "list", "tables"], capture_output=True, text=True)
        saved = subprocess.run([*in_node, "iptables-save"], capture_output=True, text=True)
        return {"nftables": "mkpy-proxy" in tables.stdout, "iptables": "MKPY-" in saved.stdout}

    other: Mode = "iptables" if lab.proxier.mode == "nftables" else "nftables"
    assert rules_present() == {lab.proxier.mode: True, other: False}
    switched = Proxier(other, FACTS, lab.node)
    switched.sync(build_plan(SERVICES, SLICES, FACTS))
    assert rules_present() == {lab.proxier.mode: False, other: True}
    assert answers(lab.node, WEB) == {"p1", "p2", "p3"}
    switched.remove()
    switched.close()
    assert rules_present() == {"nftables": False, "iptables": False}
