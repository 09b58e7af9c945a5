"""Controller latency at 10, 100 and 1,000 pods, against the raw apiserver write.

Starts its own lab control plane (etcd, apiserver, controller-manager) in a temporary
home, with simulated nodes (`SimNode`) playing the node agents. Per size N:
  * bound:    from creating a Deployment of N replicas to all N pods bound to nodes;
  * endpoint: from writing one pod's Ready=True status (the bench plays the probe) to
    that pod's address appearing as ready in the Service's EndpointSlice, for up to
    100 pods in turn (p50/p99).
Raw apiserver write latency (a pods/status PUT, the same write that starts the
endpoint measurement) is measured in the same run; each figure is printed with its
ratio to it. `watch` is the floor under the endpoint figure: from that same PUT to the
bench's own pod watch delivering the Ready pod (the controller's watch is no faster,
and its slice write then takes a write and a watch delivery more). `seen` splits the
endpoint figure: from the PUT to the endpoints controller first seeing the change, as
its slice's `endpoints.kubernetes.io/last-change-trigger-time` records it (the rest is
the controller's reconcile, its slice write and the slice's watch delivery). Before
measuring, the bench settles its own heap as the controller-manager does, so that its
collector's pauses over its informer caches are not counted. `missed` counts samples
whose address did not show ready within 10 s (counted as 10 s): on an overloaded host
the simulated nodes' Leases lapse and the node lifecycle controller marks their pods
not ready again, as it should. Ends by itself;
everything it started is stopped and removed.

    .venv/bin/python bench/controllers.py [--sizes 10,100,1000] [--samples 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minikube_py.api.types import Obj
from minikube_py.client import Client, Credentials
from minikube_py.controllers.common import parse_time, pod_ready
from minikube_py.controllers.endpoints import TRIGGER_TIME
from minikube_py.controllers.simnode import SimNode, running_status
from minikube_py.heap import settle_heap
from minikube_py.informer import Informer
from minikube_py.lab import Lab, private_lab


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def raw_writes(c: Client, pod: Obj, n: int) -> list[float]:
    """Latency of pods/status PUTs that change nothing the controllers react to."""
    out = []
    for i in range(n):
        status = {**pod["status"], "message": f"bench {i}"}
        t = time.perf_counter()
        pod = await c.update_status({**pod, "status": status})
        out.append(time.perf_counter() - t)
    return out


async def events_written(c: Client) -> int:
    async with c.session.get("/metrics") as resp:
        text = await resp.text()
    return sum(
        int(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith('apiserver_request_total{verb="POST",resource="events",')
    )


async def quiesce(c: Client, deadline: float) -> None:
    """Wait until no Event has been written for a second: the controllers' Events about
    the scale-up (two per pod) are still being sent after the last pod runs, and the
    figures are of a settled cluster."""
    written = await events_written(c)
    while time.perf_counter() < deadline:
        await asyncio.sleep(1.0)
        written, before = await events_written(c), written
        if written == before:
            return


async def one_size(c: Client, n: int, samples: int) -> dict[str, object]:
    ns = f"bench-{n}-{uuid.uuid4().hex[:4]}"
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await c.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
        ns,
    )
    settle = max(120.0, n * 0.5)  # seconds for the pods to bind, then to run (a busy host)
    bound: set[str] = set()
    all_bound = asyncio.Event()
    pods = Informer(c, "Pod", namespace=ns)
    ready_seen_at: dict[str, float] = {}  # pod IP -> when this process saw it Ready

    def on_pod(type_: str, pod: Obj, old: Obj | None) -> None:
        ip = pod["status"].get("podIP")
        if ip and pod_ready(pod) and ip not in ready_seen_at:
            ready_seen_at[ip] = time.perf_counter()
        if pod["spec"].get("nodeName"):
            bound.add(pod["metadata"]["name"])
            if len(bound) >= n:
                all_bound.set()

    pods.add_handler(on_pod)
    pods.start()
    await pods.synced.wait()
    t0 = time.perf_counter()
    await c.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": n,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        },
        ns,
    )
    await asyncio.wait_for(all_bound.wait(), timeout=settle)
    bind_seconds = time.perf_counter() - t0

    # wait until every pod runs (not ready) and every address is in a slice
    slices = Informer(c, "EndpointSlice", namespace=ns)
    waiting: dict[str, asyncio.Event] = {}
    seen_at: dict[str, float] = {}
    triggered_at: dict[str, float] = {}  # pod IP -> the trigger time of its slice (epoch)

    def on_slice(type_: str, sl: Obj, old: Obj | None) -> None:
        now = time.perf_counter()
        trigger = parse_time((sl["metadata"].get("annotations") or {}).get(TRIGGER_TIME))
        for ep in sl.get("endpoints") or []:
            ip = ep["addresses"][0]
            if ep["conditions"].get("ready") and ip in waiting and ip not in seen_at:
                seen_at[ip] = now
                if trigger is not None:
                    triggered_at[ip] = trigger
                waiting[ip].set()

    slices.add_handler(on_slice)
    slices.start()

    async def addresses() -> int:
        return sum(len(s.get("endpoints") or []) for s in slices.cache.values())

    deadline = time.perf_counter() + settle
    while await addresses() < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
    await quiesce(c, deadline)
    running = [p for p in pods.cache.values() if p["status"].get("podIP")]
    settle_heap()
    latencies, watched, seen = [], [], []
    for pod in running[:samples]:
        ip = pod["status"]["podIP"]
        waiting[ip] = asyncio.Event()
        pod = await c.get("Pod", pod["metadata"]["name"], ns)  # the latest version
        wall, t = time.time(), time.perf_counter()
        await c.update_status({**pod, "status": running_status(pod, ip, True)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiting[ip].wait(), 10)
        latencies.append(seen_at.get(ip, time.perf_counter()) - t)
        watched.append(ready_seen_at.get(ip, time.perf_counter()) - t)
        if ip in triggered_at:
            seen.append(triggered_at[ip] - wall)
    raw = await raw_writes(c, await c.get("Pod", running[-1]["metadata"]["name"], ns), 100)
    for inf in (pods, slices):
        await inf.stop()
    await c.delete("Namespace", ns)
    return {
        "n": n,
        "bind": bind_seconds,
        "ep": latencies,
        "raw": raw,
        "watch": watched,
        "seen": seen,
        "missed": len(waiting) - len(seen_at),
        "ready": sum(1 for p in running[:samples] if pod_ready(p)),
    }


async def run(lab: Lab, sizes: list[int], samples: int) -> None:
    c = Client(Credentials.from_kubeconfig(lab.admin_kubeconfig), user_agent="bench")
    nodes = [SimNode(c, f"bench-{i}", ready=False, pods="1000", cpu="64") for i in range(4)]
    for node in nodes:
        await node.start()
    try:
        print(
            f"{'pods':>6} {'bound (s)':>10} {'ep p50 ms':>10} {'ep p99 ms':>10} "
            f"{'raw p50 ms':>11} {'raw p99 ms':>11} {'p99 ratio':>10} "
            f"{'watch p50 ms':>13} {'watch p99 ms':>13} {'seen p50 ms':>12} {'seen p99 ms':>12} "
            f"{'missed':>6}"
        )
        for n in sizes:
            r = await one_size(c, n, samples)
            ep = [x * 1000 for x in r["ep"]]  # type: ignore[attr-defined]
            raw = [x * 1000 for x in r["raw"]]  # type: ignore[attr-defined]
            watch = [x * 1000 for x in r["watch"]]  # type: ignore[attr-defined]
            seen = [x * 1000 for x in r["seen"]] or [float("nan")]  # type: ignore[attr-defined]
            print(
                f"{n:>6} {r['bind']:>10.2f} {statistics.median(ep):>10.1f} "
                f"{pct(ep, 99):>10.1f} {statistics.median(raw):>11.1f} "
                f"{pct(raw, 99):>11.1f} {pct(ep, 99) / pct(raw, 99):>9.1f}x "
                f"{statistics.median(watch):>13.1f} {pct(watch, 99):>13.1f} "
                f"{statistics.median(seen):>12.1f} {pct(seen, 99):>12.1f} {r['missed']:>6}",
                flush=True,
            )
    finally:
        for node in nodes:
            await node.stop()
        await c.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--samples", type=int, default=100)
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mkpy-bench-controllers-"))
    lab = private_lab(home, "b", nodes=0)
    try:
        lab.start_control_plane()
        asyncio.run(run(lab, [int(s) for s in args.sizes.split(",")], args.samples))
    finally:
        lab.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
