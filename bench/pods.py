"""Pod start latency: apply-to-Ready through the whole cluster vs raw `docker run`.

Starts its own two-node lab (etcd, apiserver, controllers, two agents in their network
namespaces, on a private node subnet and cluster CIDR), then for each batch size
creates that many bare pods at once (the scheduler places them) and measures, per pod,
the time from its create request to the first watch event showing it Ready. In the
same run, as the peer, it starts the same number of containers of the same image and
command with the Docker API (`docker run -d`: create + start, default network), all at
once from as many threads, and measures each call. Prints p50/p99 of both and the p99
ratio (goal: within 1.5x) for each of `--rounds` cluster/docker pairs, then the median
ratio: this machine's speed drifts from minute to minute, so one pair can land 1.3x or
2x. One pod and one container go first, unmeasured (their times are printed): the
lab's first pod pays one-off costs of a fresh cluster. Everything it made is removed
at the end (pods, containers, lab, namespaces).

Run as root: .venv/bin/python bench/pods.py [--sizes 1,10,50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

from minikube_py.client import Client, Credentials
from minikube_py.images import BUSYBOX_IMAGE, ensure_images
from minikube_py.lab import Lab
from minikube_py.nodes import running_private_lab

COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
BENCH_LABEL = "minikube-py.io/bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def pods_to_ready(client: Client, namespace: str, count: int) -> list[float]:
    """Seconds from each pod's create request to its first Ready event."""
    listed = await client.list("Pod", namespace)
    started: dict[str, float] = {}
    latencies: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        rv = listed["metadata"]["resourceVersion"]
        async for _, pod in client.watch("Pod", namespace, resource_version=rv):
            name = pod["metadata"]["name"]
            if name in started and name not in latencies and ready(pod):
                latencies[name] = time.perf_counter() - started[name]
                if len(latencies) == count:
                    done.set()
                    return

    async def create(i: int) -> None:
        name = f"bench-{count}-{i}"
        started[name] = time.perf_counter()
        await client.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "command": COMMAND}],
                },
            },
            namespace,
        )

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.05)  # the watch is open before the first create
    await asyncio.gather(*(create(i) for i in range(count)))
    await asyncio.wait_for(done.wait(), 120)
    watcher.cancel()
    for name in started:
        await client.delete("Pod", name, namespace, {"gracePeriodSeconds": 1})
    while (await client.list("Pod", namespace))["items"]:
        await asyncio.sleep(0.2)
    return list(latencies.values())


def docker_runs(engine: docker.DockerClient, count: int) -> list[float]:
    """Seconds of each `docker run -d` of the same image and command, all at once."""
    run_id = secrets.token_hex(4)

    def run(i: int) -> float:
        start = time.perf_counter()
        engine.containers.run(
            BUSYBOX_IMAGE, COMMAND, detach=True, name=f"mkpy-bench-{run_id}-{i}",
            labels={BENCH_LABEL: run_id},
        )  # fmt: skip
        return time.perf_counter() - start

    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(run, range(count)))
    finally:
        for container in engine.containers.list(
            all=True, filters={"label": f"{BENCH_LABEL}={run_id}"}
        ):
            container.remove(force=True)


async def measure(lab: Lab, engine: docker.DockerClient, sizes: list[int], rounds: int) -> None:
    async with Client(
        Credentials.from_kubeconfig(lab.admin_kubeconfig), user_agent="bench"
    ) as client:
        await client.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}
        )
        # Warm-up, not in the table: the lab's first pod pays first-use costs (e.g. the
        # apiserver's first Pod create) that a running cluster has long paid; the peer's
        # engine is warm already. Shown, so the cold figure is not hidden.
        cold = await pods_to_ready(client, "bench", 1)
        cold_raw = await asyncio.to_thread(docker_runs, engine, 1)
        print(f"first pod of the fresh lab (warm-up): {cold[0]:.3f}s, docker {cold_raw[0]:.3f}s")
        header = ("pods", "round", "cluster p50", "p99", "docker p50", "p99", "p99 ratio")
        widths = (5, 6, 12, 8, 11, 8, 10)
        print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
        for size in sizes:
            ratios = []
            for round_ in range(1, rounds + 1):
                cluster = await pods_to_ready(client, "bench", size)
                raw = await asyncio.to_thread(docker_runs, engine, size)
                ratios.append(percentile(cluster, 0.99) / percentile(raw, 0.99))
                print(
                    f"{size:>5} {round_:>6} {statistics.median(cluster):>11.3f}s"
                    f" {percentile(cluster, 0.99):>7.3f}s {statistics.median(raw):>10.3f}s"
                    f" {percentile(raw, 0.99):>7.3f}s {ratios[-1]:>9.2f}x",
                    flush=True,
                )
            if rounds > 1:
                print(f"{size:>5} {'median':>6} {'':>44} {statistics.median(ratios):>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=3, help="cluster/docker pairs per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    engine = docker.from_env(timeout=120)
    ensure_images(engine)
    home = Path(tempfile.mkdtemp(prefix="mkpy-bench-pods-"))
    try:
        with running_private_lab(home, "b", 100 + secrets.randbelow(50), 2) as (nodes, _):
            asyncio.run(measure(nodes.lab, engine, sizes, args.rounds))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
