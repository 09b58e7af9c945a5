"""Service proxy benchmark: nftables and iptables side by side, in one run.

Builds its own network namespaces (a "node" with a bridge, two "pod" namespaces
running `busybox httpd` and a client "pod"), then for each mode and each Service count
(every Service with 2 endpoints; one real target Service whose endpoints are the two
pods):
- full sync time (render + one atomic apply; planning timed apart),
- time to add one Service when that many exist, to change one Service's endpoints and
  to remove one Service (partial syncs; medians of 5),
- TCP connect latency through the target's ClusterIP from the node (p50/p99): the
  proxy decides on the SYN, so connect() time is what the ruleset costs,
- requests/s through the ClusterIP and straight to the pod IPs (new connection each), from
  a client pod (the Service path pods take: DNAT only) and from the node (whose source
  is outside the pod network, so the proxy also masquerades it, as kube-proxy does).
and prints ratios: iptables/nftables, 10k/10 Services, ClusterIP/direct. Everything
stays inside the namespaces it creates (mkpy-pxb-<random>), removed at the end.

Run as root: .venv/bin/python bench/proxy.py [--sizes 10,1000,10000] [--seconds 2]
"""

import argparse
import os
import socket
import statistics
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2.netns import popns, pushns

from agent.proxy import NodeFacts, Plan, Proxier, ServicePort, build_plan, plan_service
from agent.proxy.apply import Mode

FACTS = NodeFacts("node-a")
PODS = ("10.244.1.2", "10.244.1.3")
CLIENT_POD = "10.244.1.4"  # a pod with no server, for requests from the pod network
TARGET_IP = "10.96.0.250"
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # struct linger {on, 0 s}: close() sends a reset
Obj = dict[str, Any]
Address = tuple[str, int]


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def service(name: str, cluster_ip: str) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"clusterIP": cluster_ip, "ports": [{"port": 80}]},
    }


def endpoint_slice(name: str, ips: list[str]) -> Obj:
    return {
        "metadata": {
            "name": f"{name}-1",
            "namespace": "bench",
            "labels": {"kubernetes.io/service-name": name},
        },
        "ports": [{"port": 8080}],
        "endpoints": [{"addresses": [ip], "nodeName": "node-a"} for ip in ips],
    }


def synthetic(count: int) -> tuple[list[Obj], list[Obj]]:
    """`count` Services with 2 endpoints each, the last one ("zzz-target", sorted last so
    iptables walks past all the others) backed by the real pods."""
    services, slices = [], []
    for i in range(count - 1):
        name = f"svc-{i:05d}"
        services.append(service(name, f"10.96.{1 + i // 250}.{1 + i % 250}"))
        slices.append(
            endpoint_slice(
                name, [f"10.250.{i // 250}.{1 + i % 250}", f"10.251.{i // 250}.{1 + i % 250}"]
            )
        )
    services.append(service("zzz-target", TARGET_IP))
    slices.append(endpoint_slice("zzz-target", list(PODS)))
    return services, slices


@contextmanager
def inside(netns: str) -> Iterator[None]:
    pushns(netns)
    try:
        yield
    finally:
        popns()


@dataclass
class Lab:
    node: str
    client: str  # the client pod's namespace
    namespaces: list[str]
    servers: list[subprocess.Popen[bytes]]


@contextmanager
def lab() -> Iterator[Lab]:
    suffix = uuid.uuid4().hex[:6]
    node = f"mkpy-pxb-{suffix}-n"
    pods = [f"mkpy-pxb-{suffix}-p{i}" for i in range(len(PODS))]
    client = f"mkpy-pxb-{suffix}-c"
    servers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mkpy-pxb-") as www:
            for netns in (node, *pods, client):
                sh("ip", "netns", "add", netns)
            n = ["ip", "-n", node]
            sh(*n, "link", "set", "lo", "up")
            sh(*n, "link", "add", "mkpy-br0", "type", "bridge")
            sh(*n, "addr", "add", "10.244.1.1/24", "dev", "mkpy-br0")
            sh(*n, "link", "set", "mkpy-br0", "up")
            sh(*n, "link", "add", "mkpy-node0", "type", "veth", "peer", "name", "mkpy-node1")
            sh(*n, "addr", "add", "192.168.49.2/24", "dev", "mkpy-node0")
            sh(*n, "link", "set", "mkpy-node1", "up")
            sh(*n, "link", "set", "mkpy-node0", "up")
            sh(*n, "route", "add", "10.96.0.0/16", "dev", "mkpy-node0")
            sh("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            for i, (netns, ip) in enumerate([*zip(pods, PODS, strict=True), (client, CLIENT_POD)]):
                veth = f"mkpy-v{i}"
                sh(*n, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
                sh(*n, "link", "set", veth, "master", "mkpy-br0", "up")
                p = ["ip", "-n", netns]
                sh(*p, "link", "set", "lo", "up")
                sh(*p, "addr", "add", f"{ip}/24", "dev", "eth0")
                sh(*p, "link", "set", "eth0", "up")
                sh(*p, "route", "add", "default", "via", "10.244.1.1")
                if netns == client:
                    continue
                root = Path(www) / f"p{i}"
                root.mkdir()
                (root / "index.html").write_text(f"p{i}\n")
                servers.append(
                    subprocess.Popen(
                        [
                            "ip",
                            "netns",
                            "exec",
                            netns,
                            "busybox",
                            "httpd",
                            "-f",
                            "-p",
                            "8080",
                            "-h",
                            str(root),
                        ]
                    )
                )
            wait_for_servers(node)
            yield Lab(node, client, [node, *pods, client], servers)
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
        for netns in (node, *pods, client):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


def wait_for_servers(node: str) -> None:
    deadline = time.monotonic() + 5
    for ip in PODS:
        while True:
            try:
                connect_seconds(node, ip, 8080)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def connect_seconds(netns: str, ip: str, port: int) -> float:
    with inside(netns):
        start = time.perf_counter()
        conn = socket.create_connection((ip, port), timeout=3)
        elapsed = time.perf_counter() - start
        conn.close()
    return elapsed


def requests_per_second(
    netns: str, targets: list[tuple[Address, ...]], seconds: float
) -> list[float]:
    """Requests/s to each target (its addresses in turn), one new connection per
    request, over about `seconds` each. The targets take turns request by request (in
    alternating order), so drift in the machine's load hits them alike.

    The client resets each connection once it has read the whole answer (SO_LINGER 0),
    so no TIME_WAIT is left on either end. With an orderly close the server (which
    closes first) keeps every connection in TIME_WAIT for 60 s; masqueraded connections
    get a random source port (fully-random), and one that lands on such a TIME_WAIT
    has its SYN answered with a stale ACK and retried after 1 s (TcpExtTCPSynRetrans in
    the node's nstat: 2-4 per run), on either path at random: that, not the rules, moved
    the ratio between 0.87 and 1.1 from one run to the next."""
    done = [0] * len(targets)
    spent = [0.0] * len(targets)
    order = list(range(len(targets)))
    with inside(netns):
        end = time.perf_counter() + seconds * len(targets)
        while time.perf_counter() < end:
            for i in order:
                addresses = targets[i]
                start = time.perf_counter()
                with socket.create_connection(
                    addresses[done[i] % len(addresses)], timeout=3
                ) as conn:
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    while conn.recv(4096):
                        pass
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
                spent[i] += time.perf_counter() - start
                done[i] += 1
            order.reverse()
    return [n / t for n, t in zip(done, spent, strict=True)]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Figures:
    plan_s: float
    full_s: float
    rules: int
    add_one_s: float
    endpoints_s: float  # one Service's endpoints replaced
    remove_s: float
    connect_p50_ms: float
    connect_p99_ms: float


def measure(mode: Mode, node: str, count: int, connects: int) -> Figures:
    services, slices = synthetic(count)
    start = time.perf_counter()
    plan: Plan = build_plan(services, slices, FACTS)
    plan_s = time.perf_counter() - start
    proxier = Proxier(mode, FACTS, node)  # new Proxier: its first sync is a full one
    try:
        full = proxier.sync(plan)

        def partial(key: str, ports: tuple[ServicePort, ...]) -> float:
            result = proxier.sync({key: ports})
            assert not result.full
            return result.duration_seconds

        adds, changes, removals = [], [], []
        for k in range(5):
            name = f"extra-{k}"
            ports = plan_service(
                service(name, f"10.96.250.{k + 1}"),
                [endpoint_slice(name, ["10.252.0.1", "10.252.0.2"])],
                FACTS,
            )
            adds.append(partial(f"bench/{name}", ports))
            # one endpoint of an existing Service replaced, as when a pod is replaced
            name = f"svc-{k:05d}"
            ips = [f"10.253.0.{k + 1}", f"10.251.{k // 250}.{1 + k % 250}"]
            ports = plan_service(
                service(name, f"10.96.{1 + k // 250}.{1 + k % 250}"),
                [endpoint_slice(name, ips)],
                FACTS,
            )
            changes.append(partial(f"bench/{name}", ports))
        for k in range(5):
            removals.append(partial(f"bench/extra-{k}", ()))
    finally:
        proxier.close()
    samples = [connect_seconds(node, TARGET_IP, 80) for _ in range(connects)]
    return Figures(
        plan_s,
        full.duration_seconds,
        full.rules,
        statistics.median(adds),
        statistics.median(changes),
        statistics.median(removals),
        percentile(samples, 0.5) * 1000,
        percentile(samples, 0.99) * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000", help="Service counts")
    parser.add_argument("--modes", default="nftables,iptables")
    parser.add_argument("--connects", type=int, default=1000, help="connections per latency sample")
    parser.add_argument("--seconds", type=float, default=2.0, help="per requests/s figure")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/proxy.py needs root (network namespaces, nft, iptables)")
    sizes = [int(s) for s in args.sizes.split(",")]
    modes: list[Mode] = [m for m in ("nftables", "iptables") if m in args.modes.split(",")]
    results: dict[tuple[str, int], Figures] = {}
    for mode in modes:
        with lab() as the_lab:
            for count in sizes:
                results[mode, count] = measure(mode, the_lab.node, count, args.connects)
                f = results[mode, count]
                print(
                    f"{mode:9} {count:>6} services: plan {f.plan_s * 1000:8.1f} ms  "
                    f"full sync {f.full_s * 1000:8.1f} ms ({f.rules} rules)  "
                    f"add one {f.add_one_s * 1000:7.1f} ms  "
                    f"endpoints {f.endpoints_s * 1000:7.1f} ms  "
                    f"remove one {f.remove_s * 1000:7.1f} ms  "
                    f"connect p50 {f.connect_p50_ms:.3f} ms p99 {f.connect_p99_ms:.3f} ms",
                    flush=True,
                )
            # the ruleset of the largest size is still loaded: the hardest case for rps;
            # straight to the pods means both in turn, as the Service spreads its requests
            pods = tuple((ip, 8080) for ip in PODS)
            for client, netns in (("pod", the_lab.client), ("node", the_lab.node)):
                via_service, direct = requests_per_second(
                    netns, [((TARGET_IP, 80),), pods], args.seconds
                )
                print(
                    f"{mode:9} requests/s with {sizes[-1]} services from the {client}: "
                    f"ClusterIP {via_service:.0f}, pod IPs {direct:.0f}, "
                    f"ratio {via_service / direct:.3f} (goal >= 0.95)",
                    flush=True,
                )

    print("\nratios")
    small, large = sizes[0], sizes[-1]
    for mode in modes:
        f_small, f_large = results[mode, small], results[mode, large]
        print(
            f"{mode:9} connect p50 {large}/{small} services: "
            f"{f_large.connect_p50_ms / f_small.connect_p50_ms:.2f}x   add one at {large}: "
            f"{f_large.add_one_s * 1000:.1f} ms (goal < 20 ms; kube-proxy nftables ~141 ms)  "
            f"endpoints at {large}: {f_large.endpoints_s * 1000:.1f} ms  "
            f"remove one at {large}: {f_large.remove_s * 1000:.1f} ms"
        )
    if set(modes) == {"nftables", "iptables"}:
        for count in sizes:
            n, i = results["nftables", count], results["iptables", count]
            print(
                f"iptables/nftables at {count:>6}: full sync {i.full_s / n.full_s:.2f}x  "
                f"add one {i.add_one_s / n.add_one_s:.2f}x  "
                f"endpoints {i.endpoints_s / n.endpoints_s:.2f}x  connect p50 "
                f"{i.connect_p50_ms / n.connect_p50_ms:.2f}x"
            )


if __name__ == "__main__":
    main()
