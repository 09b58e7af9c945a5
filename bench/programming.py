"""Network programming latency in a real lab: nftables and iptables side by side.

For each proxy mode, starts its own 3-node lab (private node subnet, pod and service
CIDRs), runs a `web` Deployment of 3 busybox httpd pods, then per sample:
  * new Service: creates a NodePort Service selecting the ready `web` pods and measures,
    from the create's answer, the first SYN to a node's IP and nodePort that a pod
    answers (one SYN every 5 ms, each judged by the kernel on its own:
    minikube_py.probe), over the nodes in turn. That is kube's network programming
    latency and more: the EndpointSlice controller's reaction and write come first;
  * peer: the create request itself (the apiserver's write), measured in the same run;
  * scale: `web-scaled` (1 pod) to 0 and back to 1, each measured from its
    EndpointSlice losing (or getting) the ready endpoint in the API, until its NodePort
    refuses (or a pod answers);
and prints p50/p99 of each and the p99 ratio to the peer. A SYN that got no answer, or
an ICMP error, is counted as lost (the rules must never drop one). Traffic goes only to
the lab's own addresses; everything it made is removed at the end.

Run as root: .venv/bin/python bench/programming.py [--samples 30] [--modes nftables,iptables]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from minikube_py.client import Client, Credentials
from minikube_py.images import BUSYBOX_IMAGE, ensure_images
from minikube_py.lab import Lab
from minikube_py.nodes import running_private_lab
from minikube_py.probe import first_answer, slices_turn

NS = "bench"
POLL = 0.005
SERVE = "trap 'exit 0' TERM; httpd -f -p 8080 -h /etc & wait"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def deployment(name: str, replicas: int) -> dict[str, Any]:
    container = {"name": "main", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", SERVE]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
            },
        },
    }


def node_port_service(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "type": "NodePort",
            "selector": {"app": app},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }


async def wait_ready(client: Client, app: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = (await client.list("Pod", NS, label_selector=f"app={app}"))["items"]
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []
            )
        ]
        if len(ready) == count:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{app}: {count} pods not ready in 120 s")


async def answered(address: tuple[str, int], wanted: str, since: float) -> tuple[float, int]:
    """(seconds from `since` to the first SYN answered `wanted`, SYNs lost before it)."""
    answer = await first_answer(address, wanted, POLL, time.monotonic() + 30)
    if answer is None:
        raise TimeoutError(f"{address}: no {wanted} in 30 s")
    return answer.sent_at - since, answer.lost


async def measure_mode(client: Client, node_ips: list[str], samples: int) -> dict[str, Any]:
    new, writes, scale, lost = [], [], [], 0
    for i in range(samples):
        name = f"probe-{i}"
        started = time.monotonic()
        service = await client.create(node_port_service(name, "web"))
        created = time.monotonic()
        target = (node_ips[i % len(node_ips)], int(service["spec"]["ports"][0]["nodePort"]))
        latency, missed = await answered(target, "connected", created)
        new.append(latency)
        writes.append(created - started)
        lost += missed
        await client.delete("Service", name, NS)
    scaled = await client.get("Service", "web-scaled", NS)
    for i in range(max(1, samples // 6)):
        target = (node_ips[i % len(node_ips)], int(scaled["spec"]["ports"][0]["nodePort"]))
        for replicas, wanted in ((0, "refused"), (1, "connected")):
            await client.patch("Deployment", "web-scaled", {"spec": {"replicas": replicas}}, NS)
            seen = await slices_turn(
                client, NS, "web-scaled", bool(replicas), POLL, time.monotonic() + 60
            )
            if seen is None:
                raise TimeoutError("web-scaled: its slice did not follow the scale in 60 s")
            latency, missed = await answered(target, wanted, seen)
            scale.append(latency)
            lost += missed if replicas else 0  # not the SYNs to the pod going away
    return {"new": new, "writes": writes, "scale": scale, "lost": lost}


async def measure_lab(lab: Lab, samples: int) -> dict[str, Any]:
    async with Client(
        Credentials.from_kubeconfig(lab.admin_kubeconfig), user_agent="bench"
    ) as client:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for name, replicas in (("web", 3), ("web-scaled", 1)):
            await client.create(deployment(name, replicas))
        await client.create(node_port_service("web-scaled", "web-scaled"))
        await wait_ready(client, "web", 3)
        await wait_ready(client, "web-scaled", 1)
        node_ips = [
            a["address"]
            for n in (await client.list("Node"))["items"]
            for a in n["status"]["addresses"]
            if a["type"] == "InternalIP"
        ]
        return await measure_mode(client, node_ips, samples)


def run_lab(home: Path, mode: str, samples: int) -> dict[str, Any]:
    """A lab of its own in `mode`, measured; removed at the end."""
    octet = 100 + secrets.randbelow(50)
    config = {"service_cidr": f"10.{octet + 100}.0.0/16", "proxy_mode": mode}
    with running_private_lab(home / mode, "g", octet, 3, **config) as (nodes, _):
        return asyncio.run(measure_lab(nodes.lab, samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--modes", default="nftables,iptables")
    args = parser.parse_args()
    ensure_images(docker.from_env(timeout=120))
    home = Path(tempfile.mkdtemp(prefix="mkpy-bench-programming-"))
    try:
        for mode in args.modes.split(","):
            r = run_lab(home, mode, args.samples)
            new, writes, scale = r["new"], r["writes"], r["scale"]
            print(
                f"{mode:<9} new Service answering: p50 {statistics.median(new) * 1000:6.1f} ms"
                f"  p99 {percentile(new, 0.99) * 1000:6.1f} ms (goal p99 < 100 ms)"
                f" | its create: p50 {statistics.median(writes) * 1000:5.1f} ms"
                f"  p99 {percentile(writes, 0.99) * 1000:5.1f} ms"
                f" | p99 ratio {percentile(new, 0.99) / percentile(writes, 0.99):4.1f}x",
                flush=True,
            )
            print(
                f"{mode:<9} scale to 0 and back, from the slice's change:"
                f" p50 {statistics.median(scale) * 1000:6.1f} ms  max {max(scale) * 1000:6.1f} ms"
                f" | SYNs lost: {r['lost']}",
                flush=True,
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
