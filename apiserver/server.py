"""`python -m apiserver`: the apiserver process.

Connects to etcd (or memory for tests), makes sure the built-in objects exist (the
`default`, `kube-system`, `kube-public`, `kube-node-lease` namespaces and the
`kubernetes` Service with its Endpoints pointing at this server), then serves HTTPS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
from pathlib import Path

from aiohttp import web

from apiserver.app import ApiServer
from apiserver.errors import ApiError
from apiserver.nodeproxy import NodeProxy
from apiserver.registry import ClusterConfig, Registry, WriteOptions
from apiserver.storage import EtcdStore, MemoryStore, Store, parse_endpoints
from minikube_py.api.resources import BY_KIND, Resource
from minikube_py.api.types import Obj

log = logging.getLogger("apiserver")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


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


async def _create_missing(
    registry: Registry, res: Resource, namespace: str, body: Obj, opts: WriteOptions
) -> None:
    try:
        await registry.create(res, namespace, body, opts)
    except ApiError as e:
        if e.code != 409:
            raise


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def run(args: argparse.Namespace) -> None:
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
    server = ApiServer(registry, tokens, f"{advertise}:{args.secure_port}", node_proxy)
    # etcd may still be starting: retry the bootstrap instead of failing the process
    for attempt in range(60):
        try:
            await bootstrap(registry, advertise, args.secure_port)
            break
        except ApiError as e:
            if e.code != 503 or attempt == 59:
                raise
            await asyncio.sleep(0.5)
    # clients (Go's transport) keep idle connections for 90 s: closing them sooner races
    # with a request just being sent on one, which the client sees as EOF
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, keepalive_timeout=3600
    )
    await runner.setup()
    ctx = tls_context(Path(args.tls_cert_file), Path(args.tls_private_key_file))
    for addr in args.bind_address:
        await web.TCPSite(runner, addr, args.secure_port, ssl_context=ctx).start()
    log.info("serving on %s port %d", ",".join(args.bind_address), args.secure_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    if node_proxy is not None:
        await node_proxy.close()
    await store.close()


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
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/16")
    p.add_argument("--service-node-port-range", default="30000-32767")
    args = p.parse_args(argv)
    args.bind_address = args.bind_address or ["127.0.0.1"]
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(parse_args(argv)))
