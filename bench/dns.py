"""Cluster DNS against dnsmasq, measured with dnsperf in the same run.

Both servers serve the same synthetic cluster (ClusterIP and headless Services with
named ports) on their own loopback addresses, and neither forwards anywhere: our server
has no upstream, dnsmasq runs with --no-resolv and no --server. Before measuring, the
answers of both are compared for every query, so the two do the same work. Then, per
server: throughput (dnsperf at full speed, queries per second) and latency (dnsperf at
a fixed rate with per-query output, p99). Prints both and the ratios ours/dnsmasq.

    .venv/bin/python bench/dns.py [--seconds 5] [--services 300]
"""

import argparse
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnslib import QTYPE, DNSRecord

ZONE = "cluster.local"
NAMESPACES = ("default", "shop", "payments", "monitoring")


@dataclass
class Cluster:
    objects: dict[str, list[dict[str, Any]]]
    hosts: list[tuple[str, str]]  # (ip, name) for dnsmasq's addn-hosts
    srv: list[tuple[str, str, int]]  # (name, target, port) for dnsmasq's srv-host
    queries: list[tuple[str, str]]  # (name, type)


def synthetic_cluster(services: int, rng: random.Random) -> Cluster:
    objects: dict[str, list[dict[str, Any]]] = {"services": [], "endpointslices": [], "pods": []}
    hosts: list[tuple[str, str]] = []
    srv: list[tuple[str, str, int]] = []
    queries: list[tuple[str, str]] = []
    for n in range(services):
        ns, name = NAMESPACES[n % len(NAMESPACES)], f"svc-{n}"
        fqdn = f"{name}.{ns}.svc.{ZONE}"
        port_number = 8000 + n % 100
        port = {"name": "http", "port": port_number, "protocol": "TCP"}
        meta = {"name": name, "namespace": ns}
        if n % 10 == 0:  # one in ten is a headless StatefulSet-style Service
            objects["services"].append(
                {"metadata": meta, "spec": {"clusterIP": "None", "ports": [port]}}
            )
            endpoints = []
            for k in range(3):
                ip, host = f"10.244.{n % 250}.{k + 10}", f"{name}-{k}"
                conditions = {"ready": True}
                endpoints.append({"addresses": [ip], "hostname": host, "conditions": conditions})
                hosts += [(ip, fqdn), (ip, f"{host}.{fqdn}")]
                srv.append((f"_http._tcp.{fqdn}", f"{host}.{fqdn}", port_number))
                queries.append((f"{host}.{fqdn}", "A"))
            objects["endpointslices"].append(
                {
                    "metadata": {
                        "name": f"{name}-abcde",
                        "namespace": ns,
                        "labels": {"kubernetes.io/service-name": name},
                    },
                    "addressType": "IPv4",
                    "ports": [port],
                    "endpoints": endpoints,
                }
            )
        else:
            ip = f"10.96.{n // 250}.{n % 250 + 1}"
            objects["services"].append(
                {"metadata": meta, "spec": {"clusterIP": ip, "ports": [port]}}
            )
            hosts.append((ip, fqdn))
            srv.append((f"_http._tcp.{fqdn}", fqdn, port_number))
        queries += [(fqdn, "A"), (f"_http._tcp.{fqdn}", "SRV")]
    rng.shuffle(queries)
    return Cluster(objects, hosts, srv, queries)


def free_endpoint() -> tuple[str, int]:
    host = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return host, probe.getsockname()[1]


def ask(server: tuple[str, int], name: str, qtype: str) -> list[str]:
    """Sorted answer records (type and data, TTL left out) of one UDP query."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(DNSRecord.question(name, qtype).pack(), server)
        reply = DNSRecord.parse(sock.recv(65535))
    return sorted(f"{QTYPE[rr.rtype]} {rr.rdata}" for rr in reply.rr)


def wait_answering(server: tuple[str, int], name: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server at {server} exited: {process.returncode}")
        try:
            if ask(server, name, "A"):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"server at {server} never answered")


@contextmanager
def running(command: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def dnsperf(server: tuple[str, int], queries: Path, *extra: str) -> str:
    command = ["dnsperf", "-s", server[0], "-p", str(server[1]), "-d", str(queries), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def measure(server: tuple[str, int], queries: Path, seconds: float, rate: int) -> dict[str, float]:
    throughput = dnsperf(server, queries, "-l", str(seconds), "-c", "4", "-q", "200")
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", throughput).group(1))  # type: ignore[union-attr]
    lost = float(re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", throughput).group(1))  # type: ignore[union-attr]
    verbose = dnsperf(server, queries, "-l", str(seconds / 2), "-Q", str(rate), "-v")
    latencies = sorted(float(line.split()[-1]) for line in verbose.splitlines() if line[:2] == "> ")
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    return {"qps": qps, "lost_pct": lost, "p99_ms": p99 * 1000, "latency_samples": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="throughput phase per server")
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--latency-rate", type=int, default=5000, help="QPS of the p99 phase")
    args = parser.parse_args()
    for tool in ("dnsperf", "dnsmasq"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required (apt-get install {tool})")
    cluster = synthetic_cluster(args.services, random.Random(7))
    ours, theirs = free_endpoint(), free_endpoint()
    with tempfile.TemporaryDirectory(prefix="mkpy-dns-bench-") as tmp:
        work = Path(tmp)
        (work / "objects.json").write_text(json.dumps(cluster.objects))
        (work / "hosts").write_text("".join(f"{ip} {name}\n" for ip, name in cluster.hosts))
        conf = "".join(f"srv-host={n},{t},{p},0,100\n" for n, t, p in cluster.srv)
        (work / "dnsmasq.conf").write_text(conf)
        queries = work / "queries.txt"
        queries.write_text("".join(f"{name} {qtype}\n" for name, qtype in cluster.queries))
        our_command = [sys.executable, "-m", "agent.dns", "--listen", f"{ours[0]}:{ours[1]}"]
        our_command += ["--objects", str(work / "objects.json")]
        dnsmasq_command = [
            *("dnsmasq", "--no-daemon", "--conf-file=" + str(work / "dnsmasq.conf")),
            *("--no-resolv", "--no-hosts", "--addn-hosts=" + str(work / "hosts")),
            *(f"--listen-address={theirs[0]}", "--bind-interfaces", f"--port={theirs[1]}"),
            *(f"--local=/{ZONE}/", "--local-ttl=5", "--cache-size=10000", "--user=root"),
        ]
        with running(our_command) as our_process, running(dnsmasq_command) as dnsmasq_process:
            probe = cluster.queries[0][0] if cluster.queries[0][1] == "A" else cluster.hosts[0][1]
            wait_answering(ours, probe, our_process)
            wait_answering(theirs, probe, dnsmasq_process)
            mismatches = [
                (name, qtype)
                for name, qtype in cluster.queries
                if ask(ours, name, qtype) != ask(theirs, name, qtype)
            ]
            if mismatches:
                sys.exit(f"answers differ, the comparison would be unfair: {mismatches[:5]}")
            results = {
                "minikube-py": measure(ours, queries, args.seconds, args.latency_rate),
                "dnsmasq": measure(theirs, queries, args.seconds, args.latency_rate),
            }
    print(f"{len(cluster.queries)} distinct cluster queries, identical answers from both")
    print(
        f"{'server':<12} {'QPS':>10} {'lost %':>7} {'p99 ms':>8}  (p99 at {args.latency_rate} QPS)"
    )
    for name, r in results.items():
        print(f"{name:<12} {r['qps']:>10.0f} {r['lost_pct']:>7.2f} {r['p99_ms']:>8.3f}")
    ours_r, theirs_r = results["minikube-py"], results["dnsmasq"]
    print(f"ratio QPS ours/dnsmasq: {ours_r['qps'] / theirs_r['qps']:.2f}")
    print(f"ratio p99 ours/dnsmasq: {ours_r['p99_ms'] / theirs_r['p99_ms']:.2f} (lower is better)")


if __name__ == "__main__":
    main()
