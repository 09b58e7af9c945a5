"""The apiserver against raw etcd, measured in the same run on the same etcd.

Starts its own etcd and apiserver with the lab launcher in a temporary home (free
loopback ports), then for 1, 10 and 50 concurrent clients measures four operations
through the apiserver (HTTPS, bearer token, the project's async REST client) and
their raw peer straight on etcd through aetcd, with values of the same JSON size:

    create  POST a ConfigMap            vs  aetcd put of the stored JSON
    floor   POST a ConfigMap to bench/floor_server.py (the apiserver's HTTP and store
            layers alone: the most its creates could reach here)  vs  the same puts
    get     GET one ConfigMap           vs  aetcd get of one key
    list    LIST a namespace of 100     vs  aetcd get_prefix of 100 keys
    watch   events delivered to N watchers of one namespace while a writer puts
            objects into etcd           vs  N aetcd prefix watchers of the same puts

and prints throughput (operations or delivered events per second), p50 and p99
latency (for watch: from the put to the event's arrival), and the ratio of our
throughput to raw etcd's. On a shared machine throughput follows the load of the
moment; the CPU time the apiserver (all its processes) and this client spent per
operation of ours move far less, so they are printed too: they show where the work
goes and that this client is not the bottleneck. Everything it started is stopped and
removed at the end.

    .venv/bin/python bench/api.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aetcd

from minikube_py.client import ApiException, Client, Credentials
from minikube_py.heap import settle_heap
from minikube_py.lab import Lab, free_port, private_lab

CONCURRENCY = (1, 10, 50)
LIST_SIZE = 100
PAYLOAD_BYTES = 512  # the ConfigMap's data, so objects are a realistic ~1 KiB of JSON


@dataclass
class Result:
    ops: int
    seconds: float
    latencies: list[float]  # seconds
    server_cpu: float = 0.0  # CPU seconds of the apiserver's processes
    client_cpu: float = 0.0  # CPU seconds of this process

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    def cpu_per_op(self, seconds: float) -> float:
        return seconds / self.ops * 1000

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def config_map(namespace: str, name: str, stamp: float = 0.0) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"payload": "x" * PAYLOAD_BYTES, "sent": repr(stamp)},
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the apiserver's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for p in (pid, *map(int, children)):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class CpuMeter:
    """CPU spent by the apiserver and by this process over a phase."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def start(self) -> tuple[float, float]:
        return cpu_seconds(self.server_pid), time.process_time()

    def stop(self, started: tuple[float, float], result: Result) -> Result:
        result.server_cpu = cpu_seconds(self.server_pid) - started[0]
        result.client_cpu = time.process_time() - started[1]
        return result


async def run_concurrently(clients: int, total: int, op: Callable[[int], Awaitable[Any]]) -> Result:
    """`total` calls of `op(i)` shared by `clients` workers, each call timed."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return Result(total, time.perf_counter() - started, latencies)


# ------------------------------------------------------------------ watch


async def watch_fanout(
    clients: int,
    events: int,
    subscribe: Callable[[asyncio.Event, Callable[[bytes | str], None]], Awaitable[None]],
    put: Callable[[int], Awaitable[None]],
) -> Result:
    """`clients` watchers each receive `events` puts; latency is put-to-arrival, taken
    from the send time each value carries."""
    latencies: list[float] = []
    remaining = clients * events
    finished = asyncio.Event()
    ready = [asyncio.Event() for _ in range(clients)]

    def on_value(sent: bytes | str) -> None:
        nonlocal remaining
        latencies.append(time.perf_counter() - float(sent))
        remaining -= 1
        if remaining == 0:
            finished.set()

    watchers = [asyncio.ensure_future(subscribe(r, on_value)) for r in ready]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
    started = time.perf_counter()
    for i in range(events):
        await put(i)
    done = asyncio.ensure_future(finished.wait())
    try:
        # a watcher that ends early (the server broke its stream) fails the phase now
        await asyncio.wait([done, *watchers], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        elapsed = time.perf_counter() - started
        broken = next((w for w in watchers if w.done()), None)
        if broken is not None:
            raise RuntimeError(f"a watcher ended early: {broken.exception()!r}")
        if not finished.is_set():
            raise TimeoutError(f"{remaining} of {clients * events} events never arrived")
    finally:
        for task in (done, *watchers):
            task.cancel()
        await asyncio.gather(done, *watchers, return_exceptions=True)
    return Result(clients * events, elapsed, latencies)


# ------------------------------------------------------------------ the two sides


@dataclass
class Server:
    """An HTTPS server the bench measures: its client and its CPU meter."""

    api: Client
    meter: CpuMeter


class Bench:
    def __init__(self, ours: Server, floor: Server, etcd: aetcd.Client, scale: float) -> None:
        self.api = ours.api
        self.server = ours
        self.floor_server = floor
        self.etcd = etcd
        self.scale = scale
        self.run_id = uuid.uuid4().hex[:6]

    async def ours(
        self, clients: int, phase: Awaitable[Result], server: Server | None = None
    ) -> Result:
        """One phase through the apiserver (or `server`), with the CPU it cost. Its
        `clients` connections are opened first: a TLS handshake is not part of any
        operation (the raw peer's one gRPC channel is open too)."""
        server = server or self.server
        await asyncio.gather(*(server.api.request("GET", "/version") for _ in range(clients)))
        settle_heap()
        started = server.meter.start()
        return server.meter.stop(started, await phase)

    async def raw(self, phase: Awaitable[Result]) -> Result:
        """One phase straight on etcd. Both sides start with this process's heap settled
        (`settle_heap`): a full collection of it in mid-phase (~35 ms) held every request
        in flight at once, 50 of 2,000 at 50 clients, so the p99 measured the bench's own
        collector rather than the server."""
        settle_heap()
        return await phase

    def n(self, base: int) -> int:
        return max(10, int(base * self.scale))

    async def namespace(self, name: str) -> str:
        await self.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    async def stored_json(self) -> bytes:
        """The bytes the apiserver stores for one benchmark ConfigMap: the raw peer
        writes values of exactly this size."""
        ns = await self.namespace(f"size-{self.run_id}")
        await self.api.create(config_map(ns, "probe"))
        got = await self.etcd.get(f"/registry/configmaps/{ns}/probe".encode())
        assert got is not None
        return bytes(got.value)

    async def create(self, clients: int, value: bytes) -> tuple[Result, Result]:
        return await self.creates(self.server, "create", clients, value)

    async def floor(self, clients: int, value: bytes) -> tuple[Result, Result]:
        return await self.creates(self.floor_server, "floor", clients, value)

    async def creates(
        self, server: Server, name: str, clients: int, value: bytes
    ) -> tuple[Result, Result]:
        """ConfigMap creates through `server`, then raw etcd puts of `value`."""
        ns = await self.namespace(f"{name}-{clients}-{self.run_id}")
        total = self.n(2000)
        ours = await self.ours(
            clients,
            run_concurrently(
                clients, total, lambda i: server.api.create(config_map(ns, f"cm-{i}"))
            ),
            server,
        )
        prefix = f"/raw/{name}-{clients}-{self.run_id}/"
        raw = await self.raw(
            run_concurrently(
                clients, total, lambda i: self.etcd.put(f"{prefix}{i}".encode(), value)
            )
        )
        return ours, raw

    async def get(self, clients: int, value: bytes) -> tuple[Result, Result]:
        ns = f"create-{clients}-{self.run_id}"  # the objects the create phase made
        prefix = f"/raw/create-{clients}-{self.run_id}/"
        stored = self.n(2000)
        total = self.n(2000)
        ours = await self.ours(
            clients,
            run_concurrently(
                clients, total, lambda i: self.api.get("ConfigMap", f"cm-{i % stored}", ns)
            ),
        )
        raw = await self.raw(
            run_concurrently(
                clients, total, lambda i: self.etcd.get(f"{prefix}{i % stored}".encode())
            )
        )
        return ours, raw

    async def list(self, clients: int, value: bytes) -> tuple[Result, Result]:
        ns = f"list-{self.run_id}"
        prefix = f"/raw/list-{self.run_id}/"
        total = self.n(150)

        async def list_ours(_: int) -> None:
            got = await self.api.list("ConfigMap", ns)
            assert len(got["items"]) == LIST_SIZE

        async def list_raw(_: int) -> None:
            got = await self.etcd.get_prefix(prefix.encode())
            assert len(got.kvs) == LIST_SIZE

        return (
            await self.ours(clients, run_concurrently(clients, total, list_ours)),
            await self.raw(run_concurrently(clients, total, list_raw)),
        )

    async def fill_list_namespace(self, value: bytes) -> None:
        ns = await self.namespace(f"list-{self.run_id}")
        for i in range(LIST_SIZE):
            await self.api.create(config_map(ns, f"cm-{i}"))
            await self.etcd.put(f"/raw/list-{self.run_id}/{i}".encode(), value)

    async def watch(self, clients: int, value: bytes) -> tuple[Result, Result]:
        ns = await self.namespace(f"watch-{clients}-{self.run_id}")
        key_prefix = f"/registry/configmaps/{ns}/"
        raw_prefix = f"/raw/watch-{clients}-{self.run_id}/"
        events = self.n(300)

        def stamped(i: int) -> bytes:
            return json.dumps(config_map(ns, f"cm-{i}", time.perf_counter())).encode()

        async def subscribe_ours(
            ready: asyncio.Event, on_value: Callable[[bytes | str], None]
        ) -> None:
            listed = await self.api.list("ConfigMap", ns)
            rv = listed["metadata"]["resourceVersion"]
            stream = self.api.watch("ConfigMap", ns, rv)
            ready.set()
            async for _, obj in stream:
                on_value(obj["data"]["sent"])

        async def subscribe_raw(
            ready: asyncio.Event, on_value: Callable[[bytes | str], None]
        ) -> None:
            watch = await self.etcd.watch_prefix(raw_prefix.encode())
            ready.set()
            try:
                async for ev in watch:
                    on_value(json.loads(ev.kv.value)["data"]["sent"])
            finally:
                await watch.cancel()

        async def put_ours(i: int) -> None:
            await self.etcd.put(f"{key_prefix}cm-{i}".encode(), stamped(i))

        async def put_raw(i: int) -> None:
            await self.etcd.put(f"{raw_prefix}{i}".encode(), stamped(i))

        return (
            await self.ours(clients, watch_fanout(clients, events, subscribe_ours, put_ours)),
            await self.raw(watch_fanout(clients, events, subscribe_raw, put_raw)),
        )


# ------------------------------------------------------------------ main


def start_floor_server(lab: Lab) -> tuple[subprocess.Popen[bytes], int]:
    """bench/floor_server.py on the lab's etcd, certificate and tokens."""
    port = free_port()
    pki = lab.home / "pki"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("floor_server.py")),
            "--etcd-servers",
            lab.etcd_servers(),
            "--secure-port",
            str(port),
            "--tls-cert-file",
            str(pki / "apiserver.crt"),
            "--tls-private-key-file",
            str(pki / "apiserver.key"),
            "--token-file",
            str(lab.home / "tokens"),
        ]
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("bench/floor_server.py did not start") from None
            time.sleep(0.1)


async def measure(lab: Lab, scale: float) -> list[tuple[str, int, Result, Result]]:
    assert lab.kubeconfig_path is not None
    creds = Credentials.from_kubeconfig(lab.kubeconfig_path)
    rows: list[tuple[str, int, Result, Result]] = []
    floor_proc, floor_port = start_floor_server(lab)
    floor_creds = replace(creds, server=f"https://127.0.0.1:{floor_port}")
    try:
        async with (
            Client(creds, user_agent="bench") as api,
            Client(floor_creds, user_agent="bench") as floor_api,
            aetcd.Client(host="127.0.0.1", port=lab.config.etcd_client_port) as etcd,
        ):
            server_pid = lab.pid("apiserver")
            assert server_pid is not None
            bench = Bench(
                Server(api, CpuMeter(server_pid)),
                Server(floor_api, CpuMeter(floor_proc.pid)),
                etcd,
                scale,
            )
            await run_phases(bench, rows)
    finally:
        floor_proc.terminate()
        floor_proc.wait()
    return rows


async def run_phases(bench: Bench, rows: list[tuple[str, int, Result, Result]]) -> None:
    value = await bench.stored_json()
    await bench.fill_list_namespace(value)
    for name in ("create", "floor", "get", "list", "watch"):
        for clients in CONCURRENCY:
            try:
                ours, raw = await getattr(bench, name)(clients, value)
            except (ApiException, RuntimeError, TimeoutError) as e:
                print(f"{name} at {clients} clients failed: {e!r}")
                continue
            rows.append((name, clients, ours, raw))
            print(f"  {name:6} x{clients:<3} done", flush=True)


def print_table(rows: list[tuple[str, int, Result, Result]]) -> None:
    header = (
        f"{'op':7}{'clients':>8}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'etcd ops/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}{'api cpu':>9}{'client':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, clients, ours, raw in rows:
        print(
            f"{name:7}{clients:>8}{ours.rate:>10.0f}{ours.percentile(0.5):>9.2f}"
            f"{ours.percentile(0.99):>9.2f}{raw.rate:>12.0f}{raw.percentile(0.5):>9.2f}"
            f"{raw.percentile(0.99):>9.2f}{ours.rate / raw.rate:>8.2f}"
            f"{ours.cpu_per_op(ours.server_cpu):>9.2f}{ours.cpu_per_op(ours.client_cpu):>8.2f}"
        )
    print("ratio = our throughput / raw etcd throughput (higher is better, 1.0 = parity)")
    print("floor = creates through bench/floor_server.py: the apiserver's HTTP and store layers")
    print("        alone, the most its creates could reach on this machine")
    print("api cpu, client = CPU ms per operation of ours: the apiserver's, this client's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply operation counts")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mkpy-bench-api-"))
    lab = private_lab(home, "bench", nodes=0)
    try:
        lab.save_config()
        lab.start_etcd()
        lab.start_apiserver()
        lab.write_kubeconfig()
        started = time.monotonic()
        rows = asyncio.run(measure(lab, args.scale))
        print(f"\nmeasured in {time.monotonic() - started:.0f}s")
        print_table(rows)
    finally:
        lab.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
