"""LoadBalancer announcement on the node network (layer 2, as MetalLB's L2 mode).

The controller-manager gives each LoadBalancer Service an address from the pool in
`status.loadBalancer.ingress`; the proxy in every agent already DNATs traffic to it.
What remains is that the address be reachable: exactly one node answers ARP for it.

- `announcer` (pure) picks that node by rendezvous hashing of the Service key over the
  eligible nodes (Ready, without the `node.kubernetes.io/exclude-from-external-load-
  balancers` label): every agent computes the same answer from the same Node list, and
  when a node goes away only its Services move.
- `announced_addresses` (pure): the ingress IPs this node must hold.
- `AddressAnnouncer` (adapter) makes the interface that carries the node IP hold
  exactly those addresses, as /32s labelled `<ifname>:mkpylb` so it never touches an
  address it did not add, and sends a gratuitous ARP (request and reply) for each one
  it adds, so neighbours update an entry that still points at the previous node.
- `keep_announcements` re-runs it when the addresses wanted change, and periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from minikube_py.api.types import Obj, labels_of, name_of, namespace_of
from minikube_py.informer import Informer

log = logging.getLogger(__name__)

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
ADDRESS_LABEL_SUFFIX = ":mkpylb"
ETH_P_ARP = 0x0806
RESYNC_SECONDS = 30.0
BROADCAST_MAC = b"\xff" * 6


def eligible_nodes(nodes: Iterable[Obj]) -> list[str]:
    """Names of the nodes that may announce: Ready and not excluded, sorted."""
    names = []
    for node in nodes:
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        deleting = bool(node.get("metadata", {}).get("deletionTimestamp"))
        if ready and not deleting and EXCLUDE_LABEL not in labels_of(node):
            names.append(name_of(node))
    return sorted(names)


def announcer(service_key: str, candidates: Iterable[str]) -> str | None:
    """The node announcing `service_key` ("namespace/name"): highest rendezvous weight."""

    def weight(node: str) -> bytes:
        return hashlib.sha256(f"{node}\0{service_key}".encode()).digest()

    return max(candidates, key=weight, default=None)


def ingress_ips(service: Obj) -> list[str]:
    """The IPv4 ingress addresses of a LoadBalancer Service that nodes must announce
    (ipMode Proxy: the load balancer delivers to the nodes itself, nothing to announce)."""
    if (service.get("spec") or {}).get("type") != "LoadBalancer":
        return []
    found = []
    for ingress in (service.get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
        with contextlib.suppress(ValueError):
            if ingress.get("ipMode") != "Proxy":
                found.append(str(ipaddress.IPv4Address(ingress.get("ip") or "")))
    return found


def announced_addresses(services: Iterable[Obj], nodes: Iterable[Obj], own: str) -> set[str]:
    candidates = eligible_nodes(nodes)
    return {
        ip
        for service in services
        if announcer(f"{namespace_of(service)}/{name_of(service)}", candidates) == own
        for ip in ingress_ips(service)
    }


def gratuitous_arp(mac: bytes, ip: str, reply: bool) -> bytes:
    """An Ethernet broadcast frame announcing `ip` at `mac` (sender and target IP both
    `ip`; the request form, with an empty target MAC, is what most stacks act on)."""
    address = ipaddress.IPv4Address(ip).packed
    header = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    operation = 2 if reply else 1
    target_mac = BROADCAST_MAC if reply else b"\0" * 6
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, operation) + mac + address + target_mac + address
    return header + arp


class AddressAnnouncer:
    """Holds the announced addresses on the interface that carries `node_ip`."""

    def __init__(self, node_ip: str) -> None:
        self.node_ip = node_ip

    def _interface(self, ipr: IPRoute) -> tuple[int, str, bytes]:
        for address in ipr.get_addr(family=socket.AF_INET, address=self.node_ip):
            link = ipr.get_links(address["index"])[0]
            mac = bytes.fromhex(link.get_attr("IFLA_ADDRESS").replace(":", ""))
            return address["index"], link.get_attr("IFLA_IFNAME"), mac
        raise RuntimeError(f"no interface holds the node IP {self.node_ip}")

    def sync(self, wanted: set[str]) -> tuple[set[str], set[str]]:
        """Add the missing addresses (announcing each), remove ours no longer wanted;
        returns (added, removed)."""
        with IPRoute() as ipr:
            index, ifname, mac = self._interface(ipr)
            label = (ifname + ADDRESS_LABEL_SUFFIX)[:15]
            held = {
                a.get_attr("IFA_ADDRESS")
                for a in ipr.get_addr(family=socket.AF_INET, index=index)
                if a.get_attr("IFA_LABEL") == label
            }
            for ip in held - wanted:
                with contextlib.suppress(NetlinkError):  # already gone
                    ipr.addr("del", index=index, address=ip, prefixlen=32)
            for ip in wanted - held:
                ipr.addr("add", index=index, address=ip, prefixlen=32, label=label)
        for ip in sorted(wanted - held):
            self.announce(ifname, mac, ip)
        return wanted - held, held - wanted

    @staticmethod
    def announce(ifname: str, mac: bytes, ip: str) -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
            sock.bind((ifname, ETH_P_ARP))
            for reply in (False, True):
                sock.send(gratuitous_arp(mac, ip, reply))


async def keep_announcements(
    announcer_: AddressAnnouncer,
    services: Informer,
    nodes: Informer,
    own: str,
    resync_seconds: float = RESYNC_SECONDS,
) -> None:
    """Services and Nodes -> the addresses this node announces, until cancelled. The
    interface is synced when the addresses wanted change (not on every Service or Node
    event: a sync is several netlink dumps) and every `resync_seconds`, which repairs
    drift. A stopping agent keeps its addresses: the node (its proxy rules stay in the
    kernel) answers for them until another node takes over and announces."""
    changed = asyncio.Event()
    for informer in (services, nodes):
        informer.add_handler(lambda *_: changed.set())
    await services.synced.wait()
    await nodes.synced.wait()
    applied: set[str] | None = None  # what the last successful sync left; None: unknown
    while True:
        changed.clear()
        wanted = announced_addresses(services.items(), nodes.items(), own)
        if wanted != applied:
            try:
                added, removed = await asyncio.to_thread(announcer_.sync, wanted)
                applied = wanted
                if added or removed:
                    log.info("LoadBalancer addresses: announced %s, withdrew %s", added, removed)
            except Exception:
                applied = None
                log.exception("announcing LoadBalancer addresses failed; retrying later")
        try:
            await asyncio.wait_for(changed.wait(), resync_seconds)
        except TimeoutError:
            applied = None  # look at the interface again
