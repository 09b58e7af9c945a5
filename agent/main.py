"""The node agent process: `python -m agent --kubeconfig K --node-name N --node-ip IP ...`.

Runs in the network namespace of its node (a lab namespace, or a real host's own) and
wires the pieces together: it registers the Node and waits for its pod CIDR, sets up
the pod network (bridge, IPAM, routes to every other node's pod CIDR kept in step with
the Node objects), then runs side by side: the Lease/status heartbeat, the pod sync
loop, the Service proxy, the cluster DNS server on <node-ip>:53 and the agent server on
<node-ip>:10250. SIGTERM stops the agent and leaves its pods running: a new agent adopts
them.
"""

from __future__ import annotations

# First, so that what follows imports lean (resident memory): pyroute2, aiohttp's TLS.
import agent.lean_imports  # noqa: F401

# isort: split

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import threading
from pathlib import Path

import docker

from agent.dns.feed import DnsTableFeed
from agent.dns.records import build_dns_table
from agent.dns.server import DnsConfig, DnsServer, parse_address
from agent.ipam import IPAMStore
from agent.lb import AddressAnnouncer, keep_announcements
from agent.network import PodNetwork
from agent.node import AGENT_PORT, NodeAgent, machine_facts, node_resources
from agent.pods import WORKERS, CrashBackoff, PodSyncer
from agent.proxy import NodeFacts, Proxier
from agent.proxy.loop import keep_proxy
from agent.proxy.metrics import PROXY_METRICS
from agent.runtime import DockerRuntime
from agent.server import AgentServer
from minikube_py.api.types import Obj, name_of
from minikube_py.client import Client, Credentials, wait_ready
from minikube_py.informer import Informer

log = logging.getLogger("agent")

AGENT_VERSION = "v1.32.0-minikube-py"
PROXY_COALESCE_SECONDS = 0.01
PROXY_RESYNC_SECONDS = 30.0
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--node-ip", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument(
        "--pod-cidr", help="register the Node with this pod CIDR (default: the control plane's)"
    )
    parser.add_argument(
        "--pod-cidr-wait",
        type=float,
        nargs="?",
        const=60.0,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the control plane to assign spec.podCIDR (default 60)",
    )
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
    parser.add_argument(
        "--service-cidr",
        default="10.96.0.0/16",
        help="the ClusterIP range, whose reverse zone the node's DNS answers itself",
    )
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument(
        "--cluster-dns", help="the nameserver pods use (default: this node's DNS, --node-ip)"
    )
    parser.add_argument("--proxy-mode", choices=("nftables", "iptables"), default="nftables")
    parser.add_argument(
        "--dns-upstream",
        action="append",
        default=[],
        type=parse_address,
        metavar="IP[:PORT]",
        help="where the node's DNS forwards names outside the cluster (repeatable)",
    )
    parser.add_argument(
        "--agent-token-file",
        type=Path,
        help="the bearer token the apiserver presents to the agent server (required to serve)",
    )
    parser.add_argument("--tls-cert-file", type=Path)
    parser.add_argument("--tls-private-key-file", type=Path)
    parser.add_argument(
        "--allow-pull",
        action="store_true",
        help="pull missing images from registries (off: local images only, as in the lab)",
    )
    parser.add_argument("--crash-backoff-seconds", type=float, default=10.0)
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def pod_routes(nodes: list[Obj], own_name: str) -> dict[str, str]:
    """Other nodes' pod CIDRs -> their InternalIP."""
    routes = {}
    for node in nodes:
        cidr = node.get("spec", {}).get("podCIDR")
        ip = next(
            (
                a["address"]
                for a in node.get("status", {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            None,
        )
        if cidr and ip and name_of(node) != own_name:
            routes[cidr] = ip
    return routes


async def keep_routes(network: PodNetwork, nodes: Informer, own_name: str) -> None:
    changed = asyncio.Event()
    nodes.add_handler(lambda *_: changed.set())
    await nodes.synced.wait()
    while True:
        try:
            await asyncio.to_thread(network.sync_pod_routes, pod_routes(nodes.items(), own_name))
        except Exception:
            log.exception("syncing pod routes failed")
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), PROXY_RESYNC_SECONDS)


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # no client certificates: no CA store
    context.load_cert_chain(args.tls_cert_file, args.tls_private_key_file)
    return context


async def run(args: argparse.Namespace) -> None:
    client = Client(
        Credentials.from_kubeconfig(args.kubeconfig),
        user_agent=f"agent/{args.node_name}",
        field_validation="Ignore",
    )
    # one pooled connection per pod-sync thread: with docker's default of 10, the
    # threads beyond it open and drop a connection per call during a burst
    docker_client = docker.from_env(timeout=120, max_pool_size=WORKERS)
    # the engine is a local socket: requests need not look for proxies and .netrc
    # credentials in the environment before every call
    docker_client.api.trust_env = False
    runtime = DockerRuntime(
        docker_client, args.state_dir, args.node_name, allow_pull=args.allow_pull
    )
    version = await asyncio.to_thread(docker_client.version)
    facts = machine_facts(f"docker://{version.get('Version', '')}", AGENT_VERSION)
    node_agent = NodeAgent(client, args.node_name, args.node_ip, facts, pod_cidr=args.pod_cidr)
    # like a kubelet, start before the apiserver answers and wait for it
    await wait_ready(client, timeout=120)
    await node_agent.register()
    pod_cidr = await node_agent.wait_pod_cidr(args.pod_cidr_wait)
    log.info("node %s registered with pod CIDR %s", args.node_name, pod_cidr)

    network = PodNetwork(pod_cidr, args.cluster_cidr)
    await asyncio.to_thread(network.ensure_node)
    ipam = IPAMStore(args.state_dir / "ipam.json", pod_cidr)

    my_pods = Informer(client, "Pod", field_selector=f"spec.nodeName={args.node_name}")
    all_pods = Informer(client, "Pod")
    services = Informer(client, "Service")
    slices = Informer(client, "EndpointSlice")
    nodes = Informer(client, "Node")
    config_maps = Informer(client, "ConfigMap")
    secrets = Informer(client, "Secret")
    informers = (my_pods, all_pods, services, slices, nodes, config_maps, secrets)

    dns = DnsServer(
        DnsConfig(
            listen=(args.node_ip, 53),
            upstreams=tuple(args.dns_upstream),
            reverse_cidrs=(args.service_cidr, args.cluster_cidr),
        ),
        build_dns_table([], [], [], zone=args.cluster_domain),
    )
    feed = DnsTableFeed(dns, services, slices, all_pods, zone=args.cluster_domain)
    proxier = Proxier(
        args.proxy_mode, NodeFacts(args.node_name, args.cluster_cidr, (args.node_ip,))
    )
    syncer = PodSyncer(
        client,
        runtime,
        network,
        ipam,
        my_pods,
        services,
        config_maps,
        secrets,
        node_name=args.node_name,
        node_ip=args.node_ip,
        dns_ip=args.cluster_dns or args.node_ip,
        host_resolv_conf=Path("/etc/resolv.conf").read_text()
        if Path("/etc/resolv.conf").exists()
        else "",
        cluster_domain=args.cluster_domain,
        backoff=CrashBackoff(base=args.crash_backoff_seconds),
        allocatable=node_resources(facts),
    )
    for informer in informers:
        informer.start()
    await dns.start()
    feed.start()
    server = None
    if args.agent_token_file:
        token = args.agent_token_file.read_text().strip()
        server = AgentServer(
            runtime,
            ipam,
            token,
            args.node_ip,
            AGENT_PORT,
            _ssl_context(args),
            metrics=lambda: PROXY_METRICS.render() + dns.metrics.render_prometheus(),
        )
        await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wait_for_signal() -> None:
        info = signal.sigwaitinfo(STOP_SIGNALS)
        log.info("received %s from pid %d", signal.Signals(info.si_signo).name, info.si_pid)
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_signal, name="signals", daemon=True).start()
    tasks = [
        asyncio.create_task(node_agent.heartbeat(), name="heartbeat"),
        asyncio.create_task(syncer.run(), name="pods"),
        asyncio.create_task(keep_routes(network, nodes, args.node_name), name="routes"),
        asyncio.create_task(
            keep_proxy(proxier, services, slices, PROXY_RESYNC_SECONDS, PROXY_COALESCE_SECONDS),
            name="proxy",
        ),
        asyncio.create_task(
            keep_announcements(AddressAnnouncer(args.node_ip), services, nodes, args.node_name),
            name="lb",
        ),
    ]
    log.info("agent of %s running", args.node_name)
    stopped = asyncio.create_task(stop.wait(), name="signal")
    done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    ended = next(iter(done))
    log.info("agent of %s stopping: %s ended", args.node_name, ended.get_name())
    for task in tasks:
        task.cancel()
    syncer.stop()
    await feed.stop()
    await dns.stop()
    if server is not None:
        await server.stop()
    for informer in informers:
        await informer.stop()
    await client.close()
    if ended is not stopped and ended.exception() is not None:
        raise RuntimeError(f"{ended.get_name()} failed") from ended.exception()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Blocked in every thread; one thread takes them with sigwaitinfo, to log the sender.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(run(args))
