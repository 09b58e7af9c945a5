"""Reaching Services from the host: `minikube-py service NAME [--url]` and `tunnel`.

`urls_for` (pure) turns a Service and the Nodes into the URLs a user opens from the
host, as `minikube service --url` does: NodePort -> http://<node InternalIP>:<nodePort>
per Ready node and port; LoadBalancer -> http://<ingress IP>:<port> (its NodePorts while
no address is assigned yet); ClusterIP and ExternalName -> `ServiceUrlError`, pointing at
`minikube-py tunnel`. `service_url` fetches the objects and applies it.

`tunnel(lab)` makes ClusterIPs answer on the host: labnet keeps the service CIDR
`unreachable` on the host; the tunnel replaces that very route (same destination,
metric and protocol, so labnet's cleanup still owns it) with one via a Ready node's
IP, where the proxy DNATs (and masquerades, the host being outside the cluster CIDR).
It follows the nodes: when its node stops being Ready it moves to another. On exit,
Ctrl-C or SIGTERM it puts the `unreachable` route back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterable

from pyroute2 import IPRoute

from minikube_py import labnet
from minikube_py.api.types import Obj, name_of
from minikube_py.client import ApiException, Client, Credentials
from minikube_py.lab import Lab

TUNNEL_POLL_SECONDS = 2.0


class ServiceUrlError(RuntimeError):
    pass


def ready_node_ips(nodes: Iterable[Obj]) -> list[str]:
    """InternalIPs of the Ready nodes, in node-name order."""
    found = []
    for node in sorted(nodes, key=name_of):
        status = node.get("status") or {}
        if not any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            continue
        found += [
            a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"
        ][:1]
    return found


def urls_for(service: Obj, nodes: Iterable[Obj]) -> list[str]:
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    name = f"{service['metadata'].get('namespace', 'default')}/{name_of(service)}"
    ports = spec.get("ports") or []
    if kind == "LoadBalancer":
        ingress = (service.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        addresses = [i["ip"] for i in ingress if i.get("ip")]
        if addresses:
            return [f"http://{ip}:{p['port']}" for ip in addresses for p in ports]
    if kind in ("NodePort", "LoadBalancer"):
        ips = ready_node_ips(nodes)
        if not ips:
            raise ServiceUrlError(f"service {name}: no Ready node to reach its NodePort on")
        return [f"http://{ip}:{p['nodePort']}" for ip in ips for p in ports if p.get("nodePort")]
    if kind == "ExternalName":
        raise ServiceUrlError(
            f"service {name} is an ExternalName Service ({spec.get('externalName')}): "
            "it has no address of its own"
        )
    raise ServiceUrlError(
        f"service {name} is type {kind} and not reachable from the host by itself: "
        "make it NodePort or LoadBalancer, or run `minikube-py tunnel` to reach "
        f"ClusterIPs ({spec.get('clusterIP')}) from the host"
    )


async def service_url(client: Client, name: str, namespace: str = "default") -> list[str]:
    """The URLs of Service `namespace/name` from the host; ServiceUrlError if none."""
    service = await client.get("Service", name, namespace)
    nodes = (await client.list("Node")).get("items") or []
    return urls_for(service, nodes)


def _route_service_cidr(lab: Lab, gateway: str | None) -> None:
    """Point the service CIDR at `gateway`, or back to `unreachable` (None)."""
    target = {"gateway": gateway} if gateway else {"type": "unreachable"}
    with IPRoute() as ipr:
        ipr.route(
            "replace",
            dst=lab.config.service_cidr,
            priority=labnet.route_metric(lab.config.name),
            proto=labnet.LAB_ROUTE_PROTO,
            **target,
        )


async def _ready_ips(lab: Lab) -> list[str]:
    creds = Credentials.from_kubeconfig(lab.admin_kubeconfig)
    async with Client(creds, user_agent="minikube-py/tunnel") as client:
        return ready_node_ips((await client.list("Node")).get("items") or [])


def tunnel(
    lab: Lab,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] = print,
) -> None:
    """Route the service CIDR via a Ready node until `stop` is set, Ctrl-C or SIGTERM;
    the `unreachable` route is back when it returns."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    current: str | None = None
    try:
        while not stop.is_set():
            with contextlib.suppress(OSError, ApiException, TimeoutError):
                ips = asyncio.run(_ready_ips(lab))
                if current not in ips:
                    current = ips[0] if ips else None
                    _route_service_cidr(lab, current)
                    progress(
                        f"tunnel: {lab.config.service_cidr} via {current}"
                        if current
                        else "tunnel: no Ready node; service CIDR unreachable until one is"
                    )
            stop.wait(TUNNEL_POLL_SECONDS)
    except KeyboardInterrupt:
        pass
    finally:
        _route_service_cidr(lab, None)
        progress(f"tunnel closed: {lab.config.service_cidr} unreachable from the host again")
