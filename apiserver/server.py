"""`python -m apiserver`: the apiserver process.

Connects to etcd (or memory for tests), makes sure the built-in objects exist (the
`default`, `kube-system`, `kube-public`, `kube-node-lease` namespaces and the
`kubernetes` Service with its Endpoints pointing at this server), then serves HTTPS.
With `--workers N` it forks N-1 more serving processes on the same port (see
`WorkerPool`): more CPU for a machine with cores to spare; on 2 shared cores one
process serves best (docs/performance.md). The event loop is uvloop's: its TLS and
loop cost a create about 9% less CPU than asyncio's (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import uvloop
from aiohttp import web

from apiserver.app import ApiServer
from apiserver.errors import ApiError
from apiserver.nodeproxy import NodeProxy
from apiserver.registry import ClusterConfig, Registry, WriteOptions
from apiserver.storage import EtcdStore, MemoryStore, Store, parse_endpoints
from apiserver.tokens import ServiceAccountTokens, TokenIssuer
from minikube_py.api.resources import BY_KIND, Resource
from minikube_py.api.types import Obj
from minikube_py.heap import settle_heap

log = logging.getLogger("apiserver")

PR_SET_PDEATHSIG = 1  # prctl option, from <linux/prctl.h>
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
STORE_WAIT_SECONDS = 30.0
STORE_RETRY_SECONDS = 0.05


async def bootstrap(registry: Registry, advertise_ip: str, port: int) -> None:
    """Create the objects every cluster has; existing ones are left as they are."""
    opts = WriteOptions(field_manager="kube-apiserver")
    ns = BY_KIND["Namespace"]
    for name in SYSTEM_NAMESPACES:
        await _create_missing(registry, ns, "", {"metadata": {"name": name}}, opts)
    first_ip = registry.ranges.service_cidr.network_address + 1
    svc = {
        "metadata": {
            "name": "kubernetes",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": str(first_ip),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None",
        },
    }
    await _create_missing(registry, BY_KIND["Service"], "default", svc, opts)
    endpoints = {
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [
            {
                "addresses": [{"ip": advertise_ip}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }
    await registry.update(BY_KIND["Endpoints"], "default", "kubernetes", endpoints, opts)


async def bootstrap_when_store_answers(
    registry: Registry, advertise_ip: str, port: int, timeout: float = STORE_WAIT_SECONDS
) -> None:
    """`bootstrap`, retried while the store is unavailable (503): the lab launches etcd
    and the apiserver together, so etcd is usually still starting when this runs. A
    short interval: the lab's start waits on this, and etcd answers within a second."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await bootstrap(registry, advertise_ip, port)
            return
        except ApiError as e:
            if e.code != 503 or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(STORE_RETRY_SECONDS)


async def _create_missing(
    registry: Registry, res: Resource, namespace: str, body: Obj, opts: WriteOptions
) -> None:
    try:
        await registry.create(res, namespace, body, opts)
    except ApiError as e:
        if e.code != 409:
            raise


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The serving context. Clients authenticate with bearer tokens, not certificates,
    so it loads no CA store (`create_default_context` would parse the system's: 1 MB)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def run(
    args: argparse.Namespace, workers: WorkerPool | None = None, is_worker: bool = False
) -> None:
    """Serve until SIGTERM. `workers`: the primary's forked workers, released to serve
    once the bootstrap is done and stopped with it. A worker skips the bootstrap."""
    store: Store
    if args.etcd_servers == "memory":
        store = MemoryStore()
    else:
        store = EtcdStore(parse_endpoints(args.etcd_servers))
    registry = Registry(
        store,
        ClusterConfig(
            service_cidr=args.service_cluster_ip_range,
            node_port_range=tuple(int(x) for x in args.service_node_port_range.split("-")),  # type: ignore[arg-type]
        ),
    )
    tokens = {t.strip() for t in Path(args.token_file).read_text().split() if t.strip()}
    advertise = args.advertise_address or args.bind_address[0]
    node_proxy = None
    if args.agent_token_file:
        node_proxy = NodeProxy(registry, Path(args.agent_token_file).read_text().strip())
    service_accounts = None
    if args.service_account_signing_key_file:
        issuer = TokenIssuer(Path(args.service_account_signing_key_file).read_bytes())
        service_accounts = ServiceAccountTokens(registry, issuer)
    server = ApiServer(
        registry, tokens, f"{advertise}:{args.secure_port}", node_proxy, service_accounts
    )
    if not is_worker:
        await bootstrap_when_store_answers(registry, advertise, args.secure_port)
    admission_caches = asyncio.ensure_future(registry.run_caches())
    settle_heap()  # what is alive now lives as long as the process
    # clients (Go's transport) keep idle connections for 90 s: closing them sooner races
    # with a request just being sent on one, which the client sees as EOF
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, keepalive_timeout=3600
    )
    await runner.setup()
    ctx = tls_context(Path(args.tls_cert_file), Path(args.tls_private_key_file))
    for addr in args.bind_address:
        await web.TCPSite(
            runner, addr, args.secure_port, ssl_context=ctx, reuse_port=args.workers > 1
        ).start()
    log.info("serving on %s port %d", ",".join(args.bind_address), args.secure_port)
    stop = asyncio.Event()
    failed = False
    if workers is not None:

        def worker_exited(pid: int, status: int) -> None:
            nonlocal failed
            log.error("worker %d exited (wait status %d): stopping the apiserver", pid, status)
            failed = True
            stop.set()

        workers.release(worker_exited)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if workers is not None:
        await workers.stop()
    await runner.cleanup()
    admission_caches.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await admission_caches
    if node_proxy is not None:
        await node_proxy.close()
    await store.close()
    if failed:
        raise SystemExit(1)


class WorkerPool:
    """The worker processes of a primary apiserver, forked before any event loop, etcd
    client or thread exists. All of them listen on the apiserver's port with
    SO_REUSEPORT, so the kernel spreads connections over the processes; each has its
    own etcd client and caches, and `/metrics` counts the requests of the process that
    answers. A worker waits until the primary has bootstrapped the cluster, and ends
    with the primary (even a killed one); a worker that dies takes the primary down,
    so the failure shows instead of a silently smaller server."""

    def __init__(self, pids: list[int], release_fd: int) -> None:
        self.pids = pids
        self._release_fd = release_fd
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._stopping = False

    @staticmethod
    def fork(count: int) -> WorkerPool | None:
        """In the primary, the pool of `count` new workers; in each worker, None, once
        the primary has called `release` (or died)."""
        release_r, release_w = os.pipe()
        primary = os.getpid()
        pids = []
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                os.close(release_w)
                _end_with_parent(primary)
                os.read(release_r, 1)  # end of file: the primary closed its end
                os.close(release_r)
                return None
            pids.append(pid)
        os.close(release_r)
        return WorkerPool(pids, release_w)

    def release(self, on_exit: Callable[[int, int], None]) -> None:
        """Let the workers serve; `on_exit(pid, wait status)` when one ends before `stop`."""
        loop = asyncio.get_running_loop()
        for pid in self.pids:
            fd = os.pidfd_open(pid)  # readable once the process has ended
            exited: asyncio.Future[int] = loop.create_future()
            loop.add_reader(fd, self._reap, pid, fd, exited, on_exit)
            self._exits[pid] = exited
        os.close(self._release_fd)

    def _reap(
        self, pid: int, fd: int, exited: asyncio.Future[int], on_exit: Callable[[int, int], None]
    ) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        status = os.waitpid(pid, 0)[1]
        exited.set_result(status)
        if not self._stopping:
            on_exit(pid, status)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every worker; SIGKILL those still running after `timeout`."""
        self._stopping = True
        running = {pid: exited for pid, exited in self._exits.items() if not exited.done()}
        if not running:
            return
        for pid in running:
            os.kill(pid, signal.SIGTERM)
        _, late = await asyncio.wait(running.values(), timeout=timeout)
        for pid, exited in running.items():
            if exited in late:
                os.kill(pid, signal.SIGKILL)
        if late:
            await asyncio.wait(late)


def _end_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM when the parent process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)


def check_ports_free(addresses: list[str], port: int) -> None:
    """Fail when something already listens on the port. Sockets with SO_REUSEPORT
    would otherwise share it with another server of the same user, silently."""
    for addr in addresses:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, port))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="apiserver", description="minikube-py apiserver")
    p.add_argument(
        "--etcd-servers",
        default="http://127.0.0.1:2379",
        help="comma-separated etcd endpoints, or 'memory'",
    )
    p.add_argument(
        "--bind-address",
        action="append",
        default=None,
        help="address to listen on (repeatable; default 127.0.0.1)",
    )
    p.add_argument("--advertise-address", default="")
    p.add_argument("--secure-port", type=int, default=6443)
    p.add_argument("--tls-cert-file", required=True)
    p.add_argument("--tls-private-key-file", required=True)
    p.add_argument("--token-file", required=True, help="file of accepted bearer tokens")
    p.add_argument(
        "--agent-token-file",
        default="",
        help="token the apiserver presents to node agents (logs, exec)",
    )
    p.add_argument(
        "--service-account-signing-key-file",
        default="",
        help="EC private key (PEM) that signs service account tokens; without it the "
        "TokenRequest API is off",
    )
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/16")
    p.add_argument("--service-node-port-range", default="30000-32767")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serving processes sharing the port (each with its own etcd client)",
    )
    args = p.parse_args(argv)
    args.bind_address = args.bind_address or ["127.0.0.1"]
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.workers > 1 and args.etcd_servers == "memory":
        p.error("--workers above 1 needs etcd: a memory store is one process's own")
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s[%(process)d] %(message)s")
    args = parse_args(argv)
    workers = None
    if args.workers > 1:
        check_ports_free(args.bind_address, args.secure_port)
        workers = WorkerPool.fork(args.workers - 1)
        if workers is None:
            uvloop.run(run(args, is_worker=True))
            return
    uvloop.run(run(args, workers))
