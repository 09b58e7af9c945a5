"""Service proxy benchmark: nftables and iptables side by side, in one run.

Builds its own network namespaces (a "node" with a bridge and two "pod" namespaces
running `busybox httpd`), then for each mode and each Service count (every Service with
2 endpoints; one real target Service whose endpoints are the two pods):
- full sync time (render + one atomic apply; planning timed apart),
- time to add one Service when that many exist (a partial sync; median of 5),
- TCP connect latency through the target's ClusterIP from the node (p50/p99): the
  proxy decides on the SYN, so connect() time is what the ruleset costs,
- requests/s through the ClusterIP and straight to a pod IP (new connection each).
and prints ratios: iptables/nftables, 10k/10 Services, ClusterIP/direct. Everything
stays inside the namespaces it creates (mkpy-pxb-<random>), removed at the end.

Run as root: .venv/bin/python bench/proxy.py [--sizes 10,1000,10000] [--seconds 2]
"""

import argparse
import os
import socket
import statistics
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

from agent.proxy import NodeFacts, Plan, Proxier, build_plan, plan_service
from agent.proxy.apply import Mode

FACTS = NodeFacts("node-a")
PODS = ("10.244.1.2", "10.244.1.3")
TARGET_IP = "10.96.0.250"
Obj = dict[str, Any]


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
    namespaces: list[str]
    servers: list[subprocess.Popen[bytes]]


@contextmanager
def lab() -> Iterator[Lab]:
    suffix = uuid.uuid4().hex[:6]
    node = f"mkpy-pxb-{suffix}-n"
    pods = [f"mkpy-pxb-{suffix}-p{i}" for i in range(len(PODS))]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mkpy-pxb-") as www:
            for netns in (node, *pods):
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
            for i, (netns, ip) in enumerate(zip(pods, PODS, strict=True)):
                veth = f"mkpy-v{i}"
                sh(*n, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
                sh(*n, "link", "set", veth, "master", "mkpy-br0", "up")
                p = ["ip", "-n", netns]
                sh(*p, "link", "set", "lo", "up")
                sh(*p, "addr", "add", f"{ip}/24", "dev", "eth0")
                sh(*p, "link", "set", "eth0", "up")
                sh(*p, "route", "add", "default", "via", "10.244.1.1")
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
            yield Lab(node, [node, *pods], servers)
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
        for netns in (node, *pods):
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


def requests_per_second(netns: str, targets: list[tuple[str, int]], seconds: float) -> list[float]:
    """Requests/s to each target, one new connection per request. The targets take
    turns in short slices, so drift in the machine's load hits them alike."""
    done = [0] * len(targets)
    spent = [0.0] * len(targets)
    with inside(netns):
        for _ in range(20):
            for i, (ip, port) in enumerate(targets):
                start = time.perf_counter()
                end = start + seconds / 20
                while time.perf_counter() < end:
                    with socket.create_connection((ip, port), timeout=3) as conn:
                        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        while conn.recv(4096):
                            pass
                    done[i] += 1
                spent[i] += time.perf_counter() - start
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
        adds = []
        for k in range(5):
            name = f"extra-{k}"
            ports = plan_service(
                service(name, f"10.96.250.{k + 1}"),
                [endpoint_slice(name, ["10.252.0.1", "10.252.0.2"])],
                FACTS,
            )
            result = proxier.sync({f"bench/{name}": ports})
            assert not result.full
            adds.append(result.duration_seconds)
    finally:
        proxier.close()
    samples = [connect_seconds(node, TARGET_IP, 80) for _ in range(connects)]
    return Figures(
        plan_s,
        full.duration_seconds,
        full.rules,
        statistics.median(adds),
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
    rps: dict[str, tuple[float, float]] = {}
    for mode in modes:
        with lab() as the_lab:
            for count in sizes:
                results[mode, count] = measure(mode, the_lab.node, count, args.connects)
                f = results[mode, count]
                print(
                    f"{mode:9} {count:>6} services: plan {f.plan_s * 1000:8.1f} ms  "
                    f"full sync {f.full_s * 1000:8.1f} ms ({f.rules} rules)  "
                    f"add one {f.add_one_s * 1000:7.1f} ms  "
                    f"connect p50 {f.connect_p50_ms:.3f} ms p99 {f.connect_p99_ms:.3f} ms",
                    flush=True,
                )
            # the ruleset of the largest size is still loaded: the hardest case for rps
            via_service, direct = requests_per_second(
                the_lab.node, [(TARGET_IP, 80), (PODS[0], 8080)], args.seconds
            )
            rps[mode] = (via_service, direct)
            print(
                f"{mode:9} requests/s with {sizes[-1]} services: ClusterIP {via_service:.0f}, "
                f"pod IP {direct:.0f}, ratio {via_service / direct:.3f} (goal >= 0.95)",
                flush=True,
            )

    print("\nratios")
    small, large = sizes[0], sizes[-1]
    for mode in modes:
        f_small, f_large = results[mode, small], results[mode, large]
        print(
            f"{mode:9} connect p50 {large}/{small} services: "
            f"{f_large.connect_p50_ms / f_small.connect_p50_ms:.2f}x   add one at {large}: "
            f"{f_large.add_one_s * 1000:.1f} ms (goal < 20 ms; kube-proxy nftables ~141 ms)"
        )
    if set(modes) == {"nftables", "iptables"}:
        for count in sizes:
            n, i = results["nftables", count], results["iptables", count]
            print(
                f"iptables/nftables at {count:>6}: full sync {i.full_s / n.full_s:.2f}x  "
                f"add one {i.add_one_s / n.add_one_s:.2f}x  connect p50 "
                f"{i.connect_p50_ms / n.connect_p50_ms:.2f}x"
            )


if __name__ == "__main__":
    main()
