"""The pod network of one node: the agent's CNI, with pyroute2 and nftables.

Layout (all inside the node's network namespace; `netns=None` means the agent's own):
- bridge `cni0` holding the gateway address, the first host of the node's pod CIDR;
- per pod a veth pair: the host end `mkpy<hash of pod uid>` is a port of `cni0` in
  hairpin mode (a pod reaching itself through a Service comes back on the same port),
  the other end, `eth0`, is made inside the pod sandbox's namespace (found by the
  sandbox's pid), with the pod's address and a default route via the gateway;
- routes to other nodes' pod CIDRs via their node IPs, tagged with the routing protocol
  number `POD_ROUTE_PROTO` so that a sync touches only the routes it owns;
- nft table `mkpy-nat` masquerading pod traffic leaving the cluster CIDR;
- sysctls: IPv4 forwarding, and bridged traffic through the netfilter hooks (so the
  Service proxy also sees pod-to-pod traffic on `cni0`).

All calls block (netlink, subprocess): run them from asyncio in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from pyroute2 import AsyncIPRoute, IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError

from agent.ipam import gateway_of, pod_network

BRIDGE = "cni0"
POD_ROUTE_PROTO = 167
NAT_TABLE = "mkpy-nat"
SANDBOX_IFNAME = "eth0"
LOOPBACK_INDEX = 1  # the kernel's: `lo` is the first link of every network namespace


def host_veth_name(pod_uid: str) -> str:
    """The host end of a pod's veth: `mkpy` + 10 hex digits of the uid's hash (14 chars)."""
    return "mkpy" + hashlib.sha256(pod_uid.encode()).hexdigest()[:10]


def masquerade_ruleset(pod_cidr: str, cluster_cidr: str) -> str:
    """An nft script replacing the `mkpy-nat` table in one transaction."""
    return (
        f"table ip {NAT_TABLE}\n"
        f"delete table ip {NAT_TABLE}\n"
        f"table ip {NAT_TABLE} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    ip saddr {pod_cidr} ip daddr != {cluster_cidr} masquerade\n"
        "  }\n"
        "}\n"
    )


@contextlib.contextmanager
def entered_netns(netns: str | None) -> Iterator[None]:
    """Run the body with the calling thread in `netns` (a name or a path; None: stay).

    Files opened under /proc/sys/net and processes started inside see that namespace.
    """
    if netns is None:
        yield
        return
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        pyroute2_netns.setns(netns, flags=0)
        yield
    finally:
        pyroute2_netns.setns(saved, flags=0)
        os.close(saved)


def _write_sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    if path.exists():
        path.write_text(value)


class PodNetwork:
    """The pod network of the node whose pod CIDR is `pod_cidr`."""

    def __init__(
        self,
        pod_cidr: str,
        cluster_cidr: str = "10.244.0.0/16",
        netns: str | None = None,
    ) -> None:
        self.pod_cidr = str(pod_network(pod_cidr))
        self.cluster_cidr = cluster_cidr
        self.gateway = gateway_of(self.pod_cidr)
        self.prefixlen = pod_network(pod_cidr).prefixlen
        self.netns = netns

    def _ipr(self) -> IPRoute:
        return IPRoute(netns=self.netns, flags=0) if self.netns else IPRoute()

    def ensure_node(self) -> None:
        """Bridge with the gateway address, sysctls and masquerade; idempotent."""
        with self._ipr() as ipr:
            if not ipr.link_lookup(ifname=BRIDGE):
                ipr.link("add", ifname=BRIDGE, kind="bridge")
            index = ipr.link_lookup(ifname=BRIDGE)[0]
            for address in ipr.get_addr(index=index, family=2):
                have = (address.get_attr("IFA_ADDRESS"), address["prefixlen"])
                if have != (self.gateway, self.prefixlen):
                    ipr.addr("del", index=index, address=have[0], prefixlen=have[1])
            with contextlib.suppress(NetlinkError):  # already present
                ipr.addr("add", index=index, address=self.gateway, prefixlen=self.prefixlen)
            ipr.link("set", index=index, state="up")
        with entered_netns(self.netns):
            _write_sysctl("net.ipv4.ip_forward", "1")
            _write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
            subprocess.run(
                ["nft", "-f", "-"],
                input=masquerade_ruleset(self.pod_cidr, self.cluster_cidr),
                text=True,
                capture_output=True,
                check=True,
            )

    def attach_sandbox(
        self, sandbox_pid: int, pod_uid: str, ip: str, gateway: str | None = None
    ) -> str:
        """Wire the sandbox (by its pid) to `cni0` with `ip`; returns the host veth name.

        The veth's sandbox end is made inside the sandbox's namespace, already named
        `eth0`, and the host end is made a port of `cni0` and up in the same request.
        This thread enters each namespace to open a netlink socket there (rather than
        pyroute2's `netns=`, which forks a helper process), and runs the requests on
        one pyroute2 asyncio loop of its own: its blocking API runs a loop per request,
        which costs the agent more than the request."""
        host_name = host_veth_name(pod_uid)
        try:
            asyncio.run(self._attach(sandbox_pid, host_name, ip, gateway or self.gateway))
        except Exception:
            self.detach_sandbox(pod_uid)  # no half-wired veth left on the bridge
            raise
        return host_name

    async def _attach(self, sandbox_pid: int, host_name: str, ip: str, gateway: str) -> None:
        with entered_netns(self.netns):
            async with AsyncIPRoute() as ipr:
                for index in await ipr.link_lookup(ifname=host_name):  # an earlier attempt
                    await ipr.link("del", index=index)
                await ipr.link(
                    "add",
                    ifname=host_name,
                    kind="veth",
                    master=(await ipr.link_lookup(ifname=BRIDGE))[0],
                    state="up",
                    peer={"ifname": SANDBOX_IFNAME, "net_ns_pid": sandbox_pid},
                )
                host_index = (await ipr.link_lookup(ifname=host_name))[0]
                await ipr.brport("set", index=host_index, mode=1)  # hairpin
        with entered_netns(f"/proc/{sandbox_pid}/ns/net"):
            async with AsyncIPRoute() as sandbox:
                index = (await sandbox.link_lookup(ifname=SANDBOX_IFNAME))[0]
                await sandbox.addr("add", index=index, address=ip, prefixlen=self.prefixlen)
                await sandbox.link("set", index=index, state="up")
                await sandbox.link("set", index=LOOPBACK_INDEX, state="up")
                await sandbox.route("add", dst="0.0.0.0/0", gateway=gateway)

    def detach_sandbox(self, pod_uid: str) -> None:
        """Remove the pod's veth pair (gone already when the sandbox's namespace ended)."""
        with self._ipr() as ipr:
            for index in ipr.link_lookup(ifname=host_veth_name(pod_uid)):
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", index=index)

    def pod_routes(self) -> dict[str, str]:
        """The routes this node owns: other nodes' pod CIDR -> node IP."""
        with self._ipr() as ipr:
            owned = {}
            for route in ipr.get_routes(family=2, proto=POD_ROUTE_PROTO):
                dst = f"{route.get_attr('RTA_DST')}/{route['dst_len']}"
                owned[dst] = route.get_attr("RTA_GATEWAY")
            return owned

    def sync_pod_routes(self, routes: dict[str, str]) -> None:
        """Make the owned routes exactly `routes` (pod CIDR -> node IP); others untouched."""
        wanted = {str(ipaddress.IPv4Network(cidr)): node_ip for cidr, node_ip in routes.items()}
        wanted.pop(self.pod_cidr, None)  # our own CIDR is on cni0
        current = self.pod_routes()
        with self._ipr() as ipr:
            for cidr, node_ip in wanted.items():
                if current.get(cidr) != node_ip:
                    ipr.route("replace", dst=cidr, gateway=node_ip, proto=POD_ROUTE_PROTO)
            for cidr in current.keys() - wanted.keys():
                with contextlib.suppress(NetlinkError):
                    ipr.route("del", dst=cidr, proto=POD_ROUTE_PROTO)

    def teardown(self) -> None:
        """Remove the bridge, the owned routes and the masquerade table."""
        self.sync_pod_routes({})
        with self._ipr() as ipr:
            for index in ipr.link_lookup(ifname=BRIDGE):
                ipr.link("del", index=index)
        with entered_netns(self.netns):
            subprocess.run(
                ["nft", "delete", "table", "ip", NAT_TABLE], capture_output=True, check=False
            )
