"""The lab's nodes: a network namespace per node with an agent inside (root only).

`LabNodes` drives what `minikube-py start --nodes N`, `node add`, `node delete NAME`
and `delete` need beyond the control plane:

- `create_network()`: the host bridge and host routes (minikube_py.labnet). The
  apiserver must also listen on the bridge address (`bridge_ip`), so the lab start
  creates the network first and puts that address in `LabConfig.bind_addresses`;
- `add(index)`: node i's namespace and veth, its pod CIDR (the i-th /24 of the cluster
  CIDR, also routed from the host), and its agent, spawned detached inside the namespace
  through `Lab.spawn("agent-<node>", ...)`; returns when the Node is Ready;
- `delete(name)`: stops that agent by its pid, removes its pod containers (by the
  node label), its namespace, its state and its Node object;
- `delete_all()`: every node, then the node network, and checks nothing is left.

The agents reach the apiserver at the bridge address with the lab's kubeconfig for
them (`agent.kubeconfig`) and serve the apiserver on <node-ip>:10250 with the token in
`Lab.agent_token_file`, which the apiserver presents (see agent.server).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors

from agent.runtime import LABEL_NODE_NAME
from minikube_py import kubeconfig, labnet
from minikube_py.client import ApiException, Client, Credentials
from minikube_py.docker_engine import ensure_dockerd
from minikube_py.images import ensure_images
from minikube_py.lab import Lab, Progress, private_lab

AGENT_KUBECONFIG = "agent.kubeconfig"


def node_pod_cidr(cluster_cidr: str, index: int) -> str:
    """Node i's pod CIDR: the i-th /24 of the cluster CIDR (10.244.i.0/24)."""
    network = ipaddress.IPv4Network(cluster_cidr)
    subnets = list(network.subnets(new_prefix=24)) if network.prefixlen <= 24 else []
    if not 0 < index < len(subnets):
        raise ValueError(f"node {index} has no /24 in {cluster_cidr}")
    return str(subnets[index])


class LabNodes:
    def __init__(
        self,
        lab: Lab,
        subnet: str = labnet.DEFAULT_SUBNET,
        cluster_cidr: str = labnet.DEFAULT_POD_CIDR,
        dns_upstreams: list[str] | None = None,
    ) -> None:
        self.lab = lab
        self.cluster = lab.config.name
        self.subnet = subnet
        self.cluster_cidr = cluster_cidr
        # the controller-manager derives the pod CIDRs and the LoadBalancer pool from these
        lab.config.node_subnet, lab.config.cluster_cidr = subnet, cluster_cidr
        self.dns_upstreams = (
            dns_upstreams if dns_upstreams is not None else lab.config.dns_upstreams
        )

    @property
    def bridge_ip(self) -> str:
        """The host's address on the node network: the apiserver must listen on it too."""
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)

    def node_name(self, index: int) -> str:
        return f"{self.cluster}-n{index}"

    def index_of(self, name: str) -> int:
        match = re.fullmatch(rf"{re.escape(self.cluster)}-n(\d+)", name)
        if not match:
            raise ValueError(f"{name!r} is not a node of cluster {self.cluster}")
        return int(match.group(1))

    def indexes(self) -> list[int]:
        """The lab's nodes, as recorded in its config (they outlive `stop`)."""
        return sorted(self.lab.config.node_indexes)

    def _record(self, index: int, present: bool) -> None:
        recorded = set(self.lab.config.node_indexes)
        recorded = recorded | {index} if present else recorded - {index}
        self.lab.config.node_indexes = sorted(recorded)
        self.lab.save_config()

    def create_network(self) -> None:
        labnet.create_node_network(
            self.cluster, self.subnet, self.cluster_cidr, self.lab.config.service_cidr
        )

    def _agent_files(self) -> tuple[Path, Path]:
        """The agent token (made once) and the agents' kubeconfig (bridge address)."""
        token = self.lab.agent_token_file
        server = f"https://{self.bridge_ip}:{self.lab.config.apiserver_port}"
        ca = (self.lab.home / "pki" / "ca.crt").read_bytes()
        config = kubeconfig.write_context(
            server, ca, self.lab.admin_token(), self.lab.home / AGENT_KUBECONFIG
        )
        return token, config

    def agent_argv(self, node: labnet.NodeNet, name: str, pod_cidr: str) -> list[str]:
        token, config = self._agent_files()
        argv = [
            sys.executable, "-m", "agent",
            "--kubeconfig", str(config),
            "--node-name", name,
            "--node-ip", node.ip,
            "--state-dir", str(self.lab.home / "nodes" / name),
            "--pod-cidr", pod_cidr,
            "--cluster-cidr", self.cluster_cidr,
            "--service-cidr", self.lab.config.service_cidr,
            "--proxy-mode", self.lab.config.proxy_mode,
            "--agent-token-file", str(token),
        ]  # fmt: skip
        for upstream in self.dns_upstreams:
            argv += ["--dns-upstream", upstream]
        return node.command(argv)

    def add(
        self,
        index: int | None = None,
        wait: bool = True,
        timeout: float = 60.0,
        progress: Progress = lambda _: None,
    ) -> str:
        """Create node `index` (default: the next free one) and start its agent; idempotent."""
        if index is None:
            taken = set(self.indexes())
            index = next(i for i in range(1, 1000) if i not in taken)
        name = self.node_name(index)
        pod_cidr = node_pod_cidr(self.cluster_cidr, index)
        node = labnet.add_node(self.cluster, index, pod_cidr)
        self._record(index, present=True)
        progress(f"node {name}: namespace {node.netns}, address {node.ip}, pods {pod_cidr}")
        self.lab.spawn(f"agent-{name}", self.agent_argv(node, name, pod_cidr))
        if wait:
            self.wait_ready([name], timeout)
            progress(f"node {name} is Ready")
        return name

    def start(self, count: int, progress: Progress = lambda _: None) -> list[str]:
        """The whole lab: Docker engine and local images, the node network, the control
        plane (listening on the bridge too), then `count` nodes, returning when every
        node is Ready. Existing nodes beyond `count` are kept (and resumed)."""
        if ensure_dockerd(self.lab.home / "dockerd"):
            progress("started dockerd (no Docker engine was running)")
        if not self.indexes():
            # a fresh lab: namespaces and links of an earlier one by this name are stale
            labnet.stale_cleanup(self.cluster)
        self.create_network()
        progress(f"node network {self.subnet} on bridge mkpy-{self.cluster}")
        if self.bridge_ip not in self.lab.config.bind_addresses:
            self.lab.config.bind_addresses = [*self.lab.config.bind_addresses, self.bridge_ip]
        # every process starts at once; agents wait for the apiserver like kubelets do
        self.lab.start_control_plane(progress, wait=False)
        wanted = self.indexes() or list(range(1, count + 1))
        wanted += [max(wanted, default=0) + 1 + i for i in range(count - len(wanted))]
        names = [self.add(i, wait=False, progress=progress) for i in wanted]
        engine = docker.from_env(timeout=120)
        try:
            built = ensure_images(engine)
        finally:
            engine.close()
        if built:
            progress(f"built local images: {', '.join(built)}")
        self.lab.wait_apiserver()
        self.wait_ready(names)
        progress(f"{len(names)} node(s) Ready: {', '.join(names)}")
        return names

    def start_agent(self, name: str) -> int:
        """Start (again) the agent of an existing node; returns its pid."""
        index = self.index_of(name)
        node = labnet.add_node(self.cluster, index, node_pod_cidr(self.cluster_cidr, index))
        return self.lab.spawn(
            f"agent-{name}", self.agent_argv(node, name, node_pod_cidr(self.cluster_cidr, index))
        )

    def wait_ready(self, names: list[str], timeout: float = 60.0) -> None:
        asyncio.run(self._wait_ready(names, timeout))

    async def _wait_ready(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with self._client() as client:
            pending = set(names)
            while pending:
                for name in list(pending):
                    if not self.lab.pid(f"agent-{name}"):
                        log = self.lab.log_path(f"agent-{name}")
                        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                        raise RuntimeError(f"the agent of {name} exited; {log}:\n{tail}")
                    with contextlib.suppress(ApiException):
                        node = await client.get("Node", name)
                        conditions = node.get("status", {}).get("conditions") or []
                        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                            pending.discard(name)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nodes not Ready after {timeout:g}s: {sorted(pending)}")
                await asyncio.sleep(0.1)

    def _client(self) -> Client:
        return Client(Credentials.from_kubeconfig(self.lab.admin_kubeconfig), user_agent="lab")

    def stop_agent(self, name: str) -> bool:
        """Stop the node's agent (SIGTERM, then SIGKILL); its pods keep running."""
        return self.lab.stop_component(f"agent-{name}")

    def delete(self, name: str, progress: Progress = lambda _: None) -> None:
        """Remove the node: agent, pod containers, namespace, state and Node object."""
        index = self.index_of(name)
        self.stop_agent(name)
        removed = remove_node_containers(name)
        labnet.remove_node(self.cluster, index)
        self._record(index, present=False)
        shutil.rmtree(self.lab.home / "nodes" / name, ignore_errors=True)
        with contextlib.suppress(OSError, ApiException, TimeoutError):
            asyncio.run(self._delete_node_object(name))
        progress(f"deleted node {name} ({removed} containers)")

    async def _delete_node_object(self, name: str) -> None:
        async with self._client() as client:
            try:
                await client.delete("Node", name)
            except ApiException as error:
                if error.code != 404:
                    raise

    def delete_all(self, progress: Progress = lambda _: None) -> list[str]:
        """Every node and the node network; the control plane is the caller's."""
        for index in self.indexes():
            self.delete(self.node_name(index), progress)
        return labnet.delete_network(self.cluster)


def private_lab_nodes(home: Path, prefix: str, octet: int, **config: Any) -> LabNodes:
    """A lab of its own for a test or a benchmark, beside any other on the machine: a
    random cluster name starting with `prefix`, node network 192.168.<octet>.0/24, pod
    CIDR 10.<octet>.0.0/16, free loopback ports; `config` overrides LabConfig fields."""
    subnet = f"192.168.{octet}.0/24"
    bridge_ip = str(ipaddress.IPv4Network(subnet).network_address + 1)
    lab = private_lab(home, prefix, **{"bind_addresses": ["127.0.0.1", bridge_ip], **config})
    labnet.stale_cleanup(lab.config.name)
    return LabNodes(lab, subnet, f"10.{octet}.0.0/16")


@contextlib.contextmanager
def running_private_lab(
    home: Path, prefix: str, octet: int, count: int, **config: Any
) -> Iterator[tuple[LabNodes, list[str]]]:
    """`private_lab_nodes` started with `count` Ready nodes; everything it made is removed
    on exit (nodes, network, processes)."""
    nodes = private_lab_nodes(home, prefix, octet, **config)
    try:
        nodes.create_network()
        nodes.lab.start_control_plane()
        names = [nodes.add(i, wait=False) for i in range(1, count + 1)]
        nodes.wait_ready(names, 60)
        yield nodes, names
    finally:
        nodes.delete_all()
        nodes.lab.stop()


def remove_node_containers(node_name: str) -> int:
    """Force-remove every pod container the agent of `node_name` made; returns how many."""
    client = docker.from_env(timeout=60)
    try:
        removed = 0
        for container in client.containers.list(
            all=True, filters={"label": f"{LABEL_NODE_NAME}={node_name}"}
        ):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
                removed += 1
        return removed
    finally:
        client.close()
