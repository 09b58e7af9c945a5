"""Several apiserver processes on one port (`--workers`) are one server to clients.

The primary bootstraps the cluster, then releases its forked workers; all listen on the
port with SO_REUSEPORT and share nothing but etcd. Against a real etcd: connections
land on every process; concurrent Service creates spread over the processes never
share a ClusterIP or NodePort (the claims are etcd transactions, not process state); a
namespace one process marks terminating refuses content on all of them at once (the
watch cache is checked by the create's own transaction); a second server on a taken
port fails instead of sharing it; SIGTERM stops every process, and a killed primary
takes its workers with it.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minikube_py import certs
from minikube_py.client import ApiException, Client, Credentials
from minikube_py.lab import Lab, free_port, private_lab

WORKERS = 3


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    creds: Credentials

    def children(self) -> list[int]:
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in text.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def start_server(lab: Lab, port: int, *extra: str) -> subprocess.Popen[bytes]:
    crt, key = certs.ensure_serving_cert(lab.home / "pki", ["127.0.0.1"], ["localhost"])
    lab.admin_token()
    argv = [
        sys.executable,
        "-m",
        "apiserver",
        "--etcd-servers",
        lab.etcd_servers(),
        "--secure-port",
        str(port),
        "--tls-cert-file",
        str(crt),
        "--tls-private-key-file",
        str(key),
        "--token-file",
        str(lab.home / "tokens"),
        "--service-cluster-ip-range",
        "10.96.0.0/26",  # 62 addresses and 64 ports for 40 Services: picks collide
        "--service-node-port-range",
        "30000-30063",
        *extra,
    ]
    log = open(lab.home / f"apiserver-{port}.log", "ab")  # noqa: SIM115 - the child's
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    ctx = ssl.create_default_context(cafile=server.creds.ca_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, "the apiserver exited while starting"
        try:
            with urllib.request.urlopen(f"{server.creds.server}/readyz", timeout=2, context=ctx):
                processes = {server.proc.pid, *server.children()}
                if len(processes) == WORKERS and port_pids(server.port, "listening") == processes:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("apiserver not ready")


def launch(lab: Lab) -> Server:
    port = free_port()
    proc = start_server(lab, port, "--workers", str(WORKERS))
    creds = Credentials(
        f"https://127.0.0.1:{port}", lab.admin_token(), str(lab.home / "pki" / "ca.crt")
    )
    server = Server(proc, port, creds)
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = private_lab(tmp_path_factory.mktemp("workers"), "workers", nodes=0)
    lab.save_config()
    lab.start_etcd()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def server(lab: Lab) -> Iterator[Server]:
    s = launch(lab)
    yield s
    s.stop()


def port_pids(port: int, state: str = "established") -> set[int]:
    """Pids holding sockets of the port in this state (listening, established)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", state, f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(part.split(",")[0]) for part in out.split("pid=")[1:]}


async def test_connections_reach_every_process(server: Server) -> None:
    clients = [Client(server.creds) for _ in range(30)]  # one connection each
    try:
        await asyncio.gather(*(c.get("Namespace", "default") for c in clients))
        assert port_pids(server.port) == {server.proc.pid, *server.children()}
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_concurrent_creates_across_processes_never_share_an_address(
    server: Server,
) -> None:
    clients = [Client(server.creds) for _ in range(20)]
    try:
        made = await asyncio.gather(
            *(
                clients[i % 20].create(
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": f"s{i}"},
                        "spec": {"type": "NodePort", "ports": [{"port": 80}]},
                    },
                    "default",
                )
                for i in range(40)
            )
        )
        assert len(port_pids(server.port)) == WORKERS
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    ips = {s["spec"]["clusterIP"] for s in made}
    ports = {s["spec"]["ports"][0]["nodePort"] for s in made}
    assert len(ips) == 40 and len(ports) == 40


async def test_a_namespace_terminating_on_one_process_is_closed_on_all(server: Server) -> None:
    clients = [Client(server.creds) for _ in range(12)]
    try:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "closing"}}
        await clients[0].create(ns)

        def config_map(name: str) -> dict[str, object]:
            return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}

        await asyncio.gather(
            *(c.create(config_map(f"early-{i}"), "closing") for i, c in enumerate(clients))
        )
        await asyncio.sleep(0.5)  # every process's watch cache now holds it open
        await clients[0].delete("Namespace", "closing")  # no namespace controller: it stays
        results = await asyncio.gather(
            *(c.create(config_map(f"late-{i}"), "closing") for i, c in enumerate(clients)),
            return_exceptions=True,
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert all(isinstance(r, ApiException) and r.code == 403 for r in results), results


def test_a_taken_port_is_refused(lab: Lab, server: Server) -> None:
    second = start_server(lab, server.port, "--workers", "2")
    try:
        assert second.wait(30) != 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    wait_ready(server)


def test_sigterm_stops_every_process(lab: Lab) -> None:
    s = launch(lab)
    workers = s.children()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(15) == 0
    assert not any(alive(pid) for pid in workers)


def test_a_killed_primary_takes_its_workers(lab: Lab) -> None:
    s = launch(lab)
    workers = s.children()
    s.proc.kill()
    s.proc.wait(5)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers)


def alive(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_need_etcd() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "apiserver",
            "--workers",
            "2",
            "--etcd-servers",
            "memory",
            "--tls-cert-file",
            "x",
            "--tls-private-key-file",
            "x",
            "--token-file",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "needs etcd" in done.stderr
