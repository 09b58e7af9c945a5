"""Services on a real 3-node lab, the same suite in both proxy modes (issue 5).

One lab per mode (module-scoped, parametrized over LabConfig.proxy_mode) with its own
cluster name, node subnet, pod CIDR, service CIDR and LoadBalancer pool (inside the node
subnet, so the host reaches it on the bridge and nothing leaves the machine). Workloads
are busybox: `web` answers HTTP with "<pod name> <client address>" (httpd CGI), `scaled`
is scaled to zero and back, `udp` has no listener at all: which pod a UDP datagram
reached is read from the pod's own `Udp NoPorts` counter. Requests from pods run inside
the pod containers (`wget` under `timeout 2`); requests from the host use sockets.
The announcing node is deleted in the last test; the lab is removed at the end with a
check that no container, namespace, route or link of it is left.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from pyroute2 import IPRoute

from agent.proxy.iptables import is_own_chain
from agent.runtime import LABEL_NODE_NAME
from minikube_py import labnet
from minikube_py.client import Client, Credentials
from minikube_py.nodes import running_private_lab
from minikube_py.probe import first_answer, slices_turn
from minikube_py.services import ServiceUrlError, service_url, tunnel
from tests.e2e.test_agent import AgentLab, busybox_deployment, busybox_pod, wait_for

pytestmark = pytest.mark.e2e

NS = "svc"
SLEEP = "trap 'exit 0' TERM; sleep 100000 & wait"
WHO = (
    r"mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\n"
    r"echo $(hostname) $REMOTE_ADDR\n' > /www/cgi-bin/who && chmod +x /www/cgi-bin/who"
    r" && trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"
)


@dataclass
class ServicesLab(AgentLab):
    mode: str
    subnet: str

    @property
    def host_ip(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)

    def client(self) -> Client:
        return Client(Credentials.from_kubeconfig(self.lab.admin_kubeconfig), user_agent="test")

    def service(self, name: str) -> Any:
        return self.get("service", name, NS)

    def pods(self, app: str) -> list[Any]:
        found = self.kubectl("get", "pods", "-n", NS, "-l", f"app={app}", "-o", "json")
        return [p for p in json.loads(found)["items"] if not p["metadata"].get("deletionTimestamp")]

    def exec(self, pod: str, command: str) -> str:
        _, output = self.container(NS, pod, "main").exec_run(["sh", "-c", command])
        return str(output.decode(errors="replace"))

    def netns(self, node: str) -> str:
        return labnet.netns_name(self.nodes.cluster, self.nodes.index_of(node))

    def in_node(self, node: str, *argv: str) -> str:
        return subprocess.run(
            labnet.netns_command(self.netns(node), list(argv)),
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip


def workloads() -> list[dict[str, Any]]:
    def service(name: str, app: str, port: int = 80, target: int = 8080, **spec: Any) -> Any:
        protocol = spec.pop("protocol", "TCP")
        ports = [{"port": port, "targetPort": target, "protocol": protocol}]
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": ports, **spec},
        }

    return [
        busybox_deployment("web", 3, WHO),
        busybox_deployment("scaled", 1, WHO),
        busybox_deployment("udp", 2, SLEEP),
        service("web", "web"),
        service("web-np", "web", type="NodePort"),
        service("web-lb", "web", type="LoadBalancer"),
        service("web-local", "web", type="NodePort", externalTrafficPolicy="Local"),
        service(
            "web-sticky",
            "web",
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
        ),
        service("scaled", "scaled", type="NodePort"),
        service("udp", "udp", port=9000, target=9000, type="NodePort", protocol="UDP"),
    ]


@pytest.fixture(scope="module", params=["nftables", "iptables"])
def svc_lab(
    request: Any,
    docker_engine: docker.DockerClient,
    local_images: dict[str, str],
    tmp_path_factory: Any,
) -> Iterator[ServicesLab]:
    if shutil.which("kubectl") is None or shutil.which("etcd") is None:
        pytest.fail("kubectl and etcd are needed", pytrace=False)
    mode = request.param
    octet = 100 + secrets.randbelow(50)
    home = tmp_path_factory.mktemp(f"svc-lab-{mode}")
    # its own service CIDR too, so that tunnel routes never meet another lab's
    lab_config = {"service_cidr": f"10.{octet + 100}.0.0/16", "nodes": 3, "proxy_mode": mode}
    with running_private_lab(home, "s", octet, 3, **lab_config) as (nodes, names):
        svc = ServicesLab(nodes.lab, nodes, names, docker_engine, mode, nodes.subnet)
        svc.kubectl("create", "namespace", NS)
        apply_retrying_eof(svc, *workloads())
        apply_retrying_eof(svc, *(busybox_pod(f"client-{n[-2:]}", n, SLEEP) for n in names))
        wait_for(lambda: _all_running(svc), 60, "every pod Running")
        yield svc
    cluster = nodes.cluster
    for name in names:
        left = docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_NODE_NAME}={name}"}
        )
        assert not left, f"containers of {name} left behind"
    with IPRoute() as ipr:
        assert not ipr.link_lookup(ifname=labnet.bridge_name(cluster))
        assert not [r for r in ipr.get_routes(family=2, proto=labnet.LAB_ROUTE_PROTO)
                    if r.get_attr("RTA_PRIORITY") == labnet.route_metric(cluster)]  # fmt: skip


def apply_retrying_eof(svc: ServicesLab, *objects: dict[str, Any]) -> None:
    """`kubectl apply`, again when the apiserver dropped the connection (seen as "EOF"
    on a POST now and then; reported to the lead). Apply is idempotent."""
    for attempt in range(3):
        try:
            svc.apply(NS, *objects)
            return
        except AssertionError as error:
            if "EOF" not in str(error) or attempt == 2:
                raise


def _all_running(svc: ServicesLab) -> bool:
    pods = svc.get("pods", namespace=NS)["items"]
    return len(pods) == 9 and all(
        p.get("status", {}).get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
        for p in pods
    )


def http_get(url: str, timeout: float = 2.0) -> str:
    host = urllib.parse.urlsplit(url).hostname
    assert ipaddress.IPv4Address(host).is_private, f"{url}: not a lab address"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def who_many(svc: ServicesLab, pod: str, url: str, count: int) -> list[str]:
    """`count` answers of `url` from inside `pod`: their first words (pod names)."""
    script = f"for i in $(seq {count}); do timeout 2 wget -qO- {url}; done"
    return [line.split()[0] for line in svc.exec(pod, script).splitlines() if line.strip()]


def node_port(svc: ServicesLab, name: str) -> int:
    return int(svc.service(name)["spec"]["ports"][0]["nodePort"])


def cluster_ip(svc: ServicesLab, name: str) -> str:
    return str(svc.service(name)["spec"]["clusterIP"])


def test_cluster_ip_reaches_every_endpoint_from_each_node(svc_lab: ServicesLab) -> None:
    web = {p["metadata"]["name"] for p in svc_lab.pods("web")}
    url = f"http://{cluster_ip(svc_lab, 'web')}/cgi-bin/who"
    for node in svc_lab.names:
        seen = set(who_many(svc_lab, f"client-{node[-2:]}", url, 30))
        assert seen == web, f"from {node}: {seen} != {web}"


def test_node_port_from_host_through_every_node(svc_lab: ServicesLab) -> None:
    urls = asyncio.run(_urls(svc_lab, "web-np"))
    port = node_port(svc_lab, "web-np")
    assert sorted(urls) == sorted(f"http://{svc_lab.node_ip(n)}:{port}" for n in svc_lab.names)
    web = {p["metadata"]["name"] for p in svc_lab.pods("web")}
    for url in urls:
        seen = {http_get(url + "/cgi-bin/who").split()[0] for _ in range(20)}
        assert seen <= web and len(seen) > 1, f"{url}: {seen}"


async def _urls(svc: ServicesLab, name: str) -> list[str]:
    async with svc.client() as client:
        return await service_url(client, name, NS)


def test_cluster_ip_service_url_points_at_tunnel(svc_lab: ServicesLab) -> None:
    with pytest.raises(ServiceUrlError, match="minikube-py tunnel"):
        asyncio.run(_urls(svc_lab, "web"))


def test_tunnel_makes_cluster_ips_answer_from_the_host(svc_lab: ServicesLab) -> None:
    url = f"http://{cluster_ip(svc_lab, 'web')}/cgi-bin/who"
    with pytest.raises(OSError):
        http_get(url, timeout=1)  # `unreachable` without the tunnel
    stop = threading.Event()
    thread = threading.Thread(target=tunnel, args=(svc_lab.lab, stop, lambda _: None))
    thread.start()
    try:
        answer = wait_for(lambda: _try_get(url), 10, "the ClusterIP through the tunnel")
        assert answer.split()[0] in {p["metadata"]["name"] for p in svc_lab.pods("web")}
    finally:
        stop.set()
        thread.join(10)
    route = subprocess.run(
        ["ip", "route", "show", svc_lab.lab.config.service_cidr],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "unreachable" in route and "via" not in route


def _try_get(url: str) -> str | None:
    try:
        return http_get(url, timeout=1)
    except OSError:
        return None


def lb_address(svc: ServicesLab) -> str:
    def assigned() -> str | None:
        ingress = svc.service("web-lb").get("status", {}).get("loadBalancer", {}).get("ingress")
        return ingress[0]["ip"] if ingress else None

    ip = wait_for(assigned, 10, "a LoadBalancer address")
    assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(svc.subnet)
    return ip


def announcers(svc: ServicesLab, ip: str) -> list[str]:
    return [n for n in svc.names if f" {ip}/32 " in svc.in_node(n, "ip", "-o", "-4", "addr")]


def test_load_balancer_answers_from_the_host(svc_lab: ServicesLab) -> None:
    ip = lb_address(svc_lab)
    assert asyncio.run(_urls(svc_lab, "web-lb")) == [f"http://{ip}:80"]
    route = subprocess.run(["ip", "route", "get", ip], capture_output=True, text=True).stdout
    assert f"dev {labnet.bridge_name(svc_lab.nodes.cluster)}" in route
    wait_for(lambda: len(announcers(svc_lab, ip)) == 1, 10, "one node announcing")
    web = {p["metadata"]["name"] for p in svc_lab.pods("web")}
    seen = {http_get(f"http://{ip}/cgi-bin/who").split()[0] for _ in range(20)}
    assert seen <= web and len(seen) > 1


def test_hairpin(svc_lab: ServicesLab) -> None:
    url = f"http://{cluster_ip(svc_lab, 'web')}/cgi-bin/who"
    pod = svc_lab.pods("web")[0]["metadata"]["name"]
    assert pod in who_many(svc_lab, pod, url, 20)


def test_session_affinity_client_ip_sticks(svc_lab: ServicesLab) -> None:
    url = f"http://{cluster_ip(svc_lab, 'web-sticky')}/cgi-bin/who"
    for node in svc_lab.names:
        answers = who_many(svc_lab, f"client-{node[-2:]}", url, 10)
        assert len(answers) == 10 and len(set(answers)) == 1, answers


def test_external_traffic_policy_local_keeps_the_client_address(svc_lab: ServicesLab) -> None:
    port = node_port(svc_lab, "web-local")
    by_node: dict[str, set[str]] = {}
    for pod in svc_lab.pods("web"):
        by_node.setdefault(pod["spec"]["nodeName"], set()).add(pod["metadata"]["name"])
    for node, local in by_node.items():
        for _ in range(5):
            name, client = http_get(f"http://{svc_lab.node_ip(node)}:{port}/cgi-bin/who").split()
            # httpd listens on a dual-stack socket: IPv4 peers come IPv4-mapped
            assert name in local and client.strip("[]").removeprefix("::ffff:") == svc_lab.host_ip


POLL = 0.01


@dataclass
class Programming:
    latency: float  # seconds from the slice change to the first SYN answered as wanted
    lost: int  # SYNs before that one that got no answer, or an ICMP error instead


async def _programming_latency(
    svc: ServicesLab, name: str, url_port: tuple[str, int], want_endpoints: bool
) -> Programming:
    """How soon after the EndpointSlice of `name` shows (or loses) its ready endpoints in
    the API the host sees the Service answer (or refuse): from the moment the slice is
    seen, a SYN every POLL seconds, each judged by the kernel on its own
    (minikube_py.probe). An earlier probe that judged by its own timing counted SYNs
    answered in 0.1 ms as unanswered on a loaded machine (seen with a packet capture on
    the lab bridge), adding ~120 ms to those samples."""
    wanted = "connected" if want_endpoints else "refused"
    deadline = time.monotonic() + 30
    async with svc.client() as client:
        seen_at = await slices_turn(client, NS, name, want_endpoints, POLL, deadline)
    assert seen_at is not None, (
        f"{name}: the slice never {'got' if want_endpoints else 'lost'} endpoints"
    )
    answer = await first_answer(url_port, wanted, POLL, deadline)
    assert answer is not None, f"{name}: no {'answer' if want_endpoints else 'refusal'} in 30 s"
    return Programming(answer.sent_at - seen_at, answer.lost)


def test_scale_to_zero_refuses_then_scale_back_flows(svc_lab: ServicesLab) -> None:
    target = (svc_lab.node_ip(svc_lab.names[0]), node_port(svc_lab, "scaled"))
    latencies = []
    for _ in range(5):
        svc_lab.kubectl("scale", "-n", NS, "deployment/scaled", "--replicas=0")
        # SYNs may be lost here: to the endpoint being torn down, until its rules go
        refusing = asyncio.run(_programming_latency(svc_lab, "scaled", target, False))
        svc_lab.kubectl("scale", "-n", NS, "deployment/scaled", "--replicas=1")
        flowing = asyncio.run(_programming_latency(svc_lab, "scaled", target, True))
        assert flowing.lost == 0, flowing
        latencies += [refusing.latency, flowing.latency]
    samples = sorted(round(x, 3) for x in latencies)
    print(f"[{svc_lab.mode}] scale to zero and back: programming latencies {samples}")
    assert max(samples) < 1.0


def udp_no_ports(svc: ServicesLab, pod: str) -> int:
    """The pod's `Udp: NoPorts`: datagrams that reached it (nothing listens there)."""
    pid = svc.container(NS, pod, "main").attrs["State"]["Pid"]
    header, values = [
        line.split() for line in Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
        if line.startswith("Udp:")
    ][:2]  # fmt: skip
    return int(values[header.index("NoPorts")])


def test_udp_client_moves_after_its_endpoint_dies(svc_lab: ServicesLab) -> None:
    target = (svc_lab.node_ip(svc_lab.names[0]), node_port(svc_lab, "udp"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((svc_lab.host_ip, 0))  # one source port: one conntrack flow

        def receiver() -> str | None:
            running = [p["metadata"]["name"] for p in svc_lab.pods("udp")
                       if p["status"].get("phase") == "Running"]  # fmt: skip
            before = {name: udp_no_ports(svc_lab, name) for name in running}
            for _ in range(3):
                sock.sendto(b"ping", target)
            time.sleep(0.2)
            hit = [n for n, count in before.items() if udp_no_ports(svc_lab, n) >= count + 3]
            return hit[0] if len(hit) == 1 else None

        first = wait_for(receiver, 10, "a UDP endpoint receiving")
        assert receiver() == first  # the flow sticks to its endpoint
        svc_lab.kubectl("delete", "pod", "-n", NS, first, "--grace-period=1", "--wait=false")
        moved = wait_for(lambda: (r := receiver()) and r != first and r, 20, "the flow moving")
        assert moved != first


def test_agent_metrics(svc_lab: ServicesLab) -> None:
    request = urllib.request.Request(
        f"http://{svc_lab.node_ip(svc_lab.names[0])}:10250/metrics",
        headers={"Authorization": f"Bearer {svc_lab.token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    count = re.search(r"^kubeproxy_network_programming_duration_seconds_count (\d+)$", text, re.M)
    assert count and int(count.group(1)) > 0
    rules = re.search(rf'^minikube_py_proxy_rules{{mode="{svc_lab.mode}"}} (\d+)$', text, re.M)
    assert rules and int(rules.group(1)) > 20
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count" in text


def test_flushed_rules_are_repaired_within_the_resync_period(svc_lab: ServicesLab) -> None:
    node = svc_lab.names[1]
    url = f"http://{svc_lab.node_ip(node)}:{node_port(svc_lab, 'web-np')}/cgi-bin/who"
    http_get(url)
    if svc_lab.mode == "nftables":
        svc_lab.in_node(node, "nft", "flush", "ruleset")
    else:
        saved = svc_lab.in_node(node, "iptables-save", "-t", "nat")
        for chain in [line[1:].split()[0] for line in saved.splitlines() if line[:1] == ":"]:
            if is_own_chain(chain):
                svc_lab.in_node(node, "iptables", "-t", "nat", "-F", chain)
    assert _try_get(url) is None, "the flush did not break the NodePort"
    started = time.monotonic()
    wait_for(lambda: _try_get(url), 40, "the proxy repairing its rules")
    assert time.monotonic() - started < 35  # resync period 30 s, plus one request


def test_network_programming_latency_of_new_services(svc_lab: ServicesLab) -> None:
    """Programming latency without pod start or termination in it: each new NodePort
    Service selects the already ready `web` pods, so its EndpointSlice is ready as it
    appears; measured from the slice showing in the API to the host connecting. Every SYN
    must be answered: by the node (nothing listens there) before the rules, by the
    no-endpoints reject while the Service has no slice yet, by a pod after.

    Its 117-156 ms samples of earlier rounds were a fault found this way: after a node
    deletion the EndpointSlice controller kept that node's pods as ready endpoints, so
    1 SYN in 3 died on the host's `unreachable` route for the node's pod CIDR. Now, as in
    Kubernetes, slices leave out pods whose Node is gone and PodGC deletes them."""
    target_ip = svc_lab.node_ip(svc_lab.names[0])
    results = []
    for i in range(10):
        name = f"probe-{i}"
        manifest = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        }
        apply_retrying_eof(svc_lab, manifest)
        target = (target_ip, node_port(svc_lab, name))
        results.append(asyncio.run(_programming_latency(svc_lab, name, target, True)))
        svc_lab.kubectl("delete", "service", "-n", NS, name)
    samples = sorted(round(r.latency, 3) for r in results)
    lost = sum(r.lost for r in results)
    print(f"[{svc_lab.mode}] new Service programming latencies {samples}, {lost} SYNs lost")
    assert max(samples) < 1.0 and lost == 0


def test_load_balancer_moves_when_its_node_is_deleted(svc_lab: ServicesLab) -> None:
    ip = lb_address(svc_lab)
    (announcing,) = wait_for(lambda: announcers(svc_lab, ip), 10, "an announcing node")
    svc_lab.nodes.delete(announcing)
    svc_lab.names.remove(announcing)
    started = time.monotonic()
    wait_for(lambda: len(announcers(svc_lab, ip)) == 1, 15, "another node announcing")
    answer = wait_for(lambda: _try_get(f"http://{ip}/cgi-bin/who"), 15, "the LoadBalancer")
    took = time.monotonic() - started
    assert answer.split()[0] in {p["metadata"]["name"] for p in svc_lab.pods("web")}
    print(f"[{svc_lab.mode}] LoadBalancer took over in {took:.2f}s")
