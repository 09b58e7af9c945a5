"""The node agent on a real two-node lab: etcd, apiserver, controllers, dockerd, netns.

One lab per module (its own cluster name, node subnet and cluster CIDR, so parallel
runs never share an address), made through minikube_py.nodes as `minikube-py start`
makes it, and removed at the end with a check that no container or namespace of it is
left. Each test works in its own namespace and deletes what it created. The agent
server is called directly with its token (what the apiserver does for kubectl).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import docker
import pytest
import yaml

from agent.runtime import LABEL_CONTAINER_NAME, LABEL_NODE_NAME, LABEL_POD_NAME
from minikube_py.lab import Lab
from minikube_py.nodes import LabNodes, running_private_lab

pytestmark = pytest.mark.e2e

T = TypeVar("T")
BUSYBOX = "minikube-py/busybox:latest"


@dataclass
class AgentLab:
    lab: Lab
    nodes: LabNodes
    names: list[str]
    docker: docker.DockerClient

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.lab.admin_kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def get(self, kind: str, name: str = "", namespace: str = "") -> Any:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        return json.loads(self.kubectl(*args, *(["-n", namespace] if namespace else [])))

    def apply(self, namespace: str, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))

    def node(self, name: str) -> Any:
        return self.get("node", name)

    def node_ip(self, name: str) -> str:
        addresses = self.node(name)["status"]["addresses"]
        return str(next(a["address"] for a in addresses if a["type"] == "InternalIP"))

    def container(self, namespace: str, pod: str, container: str) -> Any:
        found = self.docker.containers.list(
            filters={"label": [f"{LABEL_POD_NAME}={pod}", f"{LABEL_CONTAINER_NAME}={container}"]}
        )
        assert found, f"no running container {container} of {namespace}/{pod}"
        return found[0]

    @property
    def token(self) -> str:
        return self.lab.agent_token_file.read_text().strip()


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


def pod_ready(pod: Any) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def wait_ready(agent_lab: AgentLab, namespace: str, name: str, timeout: float = 20) -> Any:
    def ready() -> Any:
        pod = agent_lab.get("pod", name, namespace)
        return pod if pod_ready(pod) else None

    return wait_for(ready, timeout, f"pod {name} Ready")


def busybox_pod(name: str, node: str, command: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {"name": "main", "image": BUSYBOX, "command": ["sh", "-c", command], **container}
            ],
        },
    }


def busybox_deployment(name: str, replicas: int, command: str) -> dict[str, Any]:
    """A Deployment of `busybox_pod`s (container `main`) labelled app=<name>."""
    template = busybox_pod(name, "", command)["spec"]
    del template["nodeName"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": template},
        },
    }


# Exits at once on SIGTERM, so graceful deletion takes no grace period.
SERVE = "trap 'exit 0' TERM; httpd -f -p 8080 -h /etc & wait"


@pytest.fixture(scope="module")
def agent_lab(
    docker_engine: docker.DockerClient, local_images: dict[str, str], tmp_path_factory: Any
) -> Iterator[AgentLab]:
    if shutil.which("kubectl") is None or shutil.which("etcd") is None:
        pytest.fail("kubectl and etcd are needed", pytrace=False)
    home = tmp_path_factory.mktemp("agent-lab")
    with running_private_lab(home, "a", 150 + secrets.randbelow(50), 2) as (nodes, names):
        yield AgentLab(nodes.lab, nodes, names, docker_engine)
    cluster = nodes.cluster
    for name in [f"{cluster}-n1", f"{cluster}-n2"]:
        left = docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_NODE_NAME}={name}"}
        )
        assert not left, f"containers of {name} left behind"


@pytest.fixture
def ns(agent_lab: AgentLab) -> Iterator[str]:
    name = "t-" + uuid.uuid4().hex[:6]
    agent_lab.kubectl("create", "namespace", name)
    yield name
    # owners first, so that nothing recreates the pods
    agent_lab.kubectl("delete", "deployments,services,configmaps", "--all", "-n", name,
                      "--wait=false", check=False)  # fmt: skip
    agent_lab.kubectl("delete", "pods", "--all", "-n", name, "--grace-period=3", "--timeout=30s",
                      check=False)  # fmt: skip
    agent_lab.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_deployment_spreads_over_nodes_and_pods_talk_across_them(
    agent_lab: AgentLab, ns: str
) -> None:
    agent_lab.apply(ns, busybox_deployment("web", 4, SERVE))

    def all_ready() -> list[Any] | None:
        pods = agent_lab.get("pods", namespace=ns)["items"]
        return pods if len(pods) == 4 and all(pod_ready(p) for p in pods) else None

    pods = wait_for(all_ready, 30, "4 ready pods")
    by_node: dict[str, list[Any]] = {}
    for pod in pods:
        by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
    assert set(by_node) == set(agent_lab.names)
    for node_name, on_node in by_node.items():
        cidr = ipaddress.IPv4Network(agent_lab.node(node_name)["spec"]["podCIDR"])
        for pod in on_node:
            assert ipaddress.IPv4Address(pod["status"]["podIP"]) in cidr
            assert pod["status"]["hostIP"] == agent_lab.node_ip(node_name)
    assert len({p["status"]["podIP"] for p in pods}) == 4

    # pod on node 1 -> pod on node 2, by IP: httpd serves the target's /etc/hostname
    source, target = by_node[agent_lab.names[0]][0], by_node[agent_lab.names[1]][0]
    client = agent_lab.container(ns, source["metadata"]["name"], "main")
    request = (
        f"printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target['status']['podIP']} 8080"
    )
    code, output = client.exec_run(["sh", "-c", request])
    assert code == 0, output
    assert output.decode().splitlines()[-1] == target["metadata"]["name"]


async def test_agent_server_logs_exec_and_port_forward(agent_lab: AgentLab, ns: str) -> None:
    node = agent_lab.names[0]
    agent_lab.apply(
        ns,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-svc"},
         "spec": {"selector": {"app": "none"}, "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"},
         "data": {"greeting": "hello from a configmap"}},
    )  # fmt: skip
    pod = busybox_pod(
        "talker", node, "for i in 1 2 3; do echo line$i; done; " + SERVE,
        env=[{"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        volumeMounts=[{"name": "conf", "mountPath": "/conf"},
                      {"name": "work", "mountPath": "/work"}],
    )  # fmt: skip
    pod["spec"]["volumes"] = [
        {"name": "conf", "configMap": {"name": "conf"}},
        {"name": "work", "emptyDir": {}},
    ]
    pod["spec"]["initContainers"] = [
        {"name": "init", "image": BUSYBOX, "command": ["sh", "-c", "echo done > /work/flag"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
    ]  # fmt: skip
    agent_lab.apply(ns, pod)
    running = wait_ready(agent_lab, ns, "talker")
    pod_ip = running["status"]["podIP"]
    init = running["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["reason"] == "Completed" and init["ready"]
    cluster_ip = agent_lab.get("service", "my-svc", ns)["spec"]["clusterIP"]
    base = f"http://{agent_lab.node_ip(node)}:10250"
    auth = {"Authorization": f"Bearer {agent_lab.token}"}

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/containerLogs/{ns}/talker/main") as response:
            assert response.status == 401  # no token, no logs
        url = f"{base}/containerLogs/{ns}/talker/main"
        async with session.get(url, headers=auth, params={"tailLines": "2"}) as response:
            assert response.status == 200
            assert await response.text() == "line2\nline3\n"
        params = {"follow": "true", "timestamps": "true"}
        async with session.get(url, headers=auth, params=params) as response:
            first = await asyncio.wait_for(response.content.readline(), 5)
            assert first.decode().split(" ", 1)[1] == "line1\n"

        async def run(command: list[str], stdin: bytes | None = None) -> dict[int, bytes]:
            params = [("command", c) for c in command] + [("stdout", "1"), ("stderr", "1")]
            if stdin is not None:
                params.append(("stdin", "1"))
            received: dict[int, bytes] = {}
            async with session.ws_connect(
                f"{base}/exec/{ns}/talker/main", headers=auth, params=params,
                protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"),
            ) as ws:  # fmt: skip
                assert ws.protocol == "v5.channel.k8s.io"
                if stdin is not None:
                    await ws.send_bytes(b"\x00" + stdin)
                    await ws.send_bytes(b"\xff\x00")  # v5: close stdin
                async for message in ws:
                    channel = message.data[0]
                    received[channel] = received.get(channel, b"") + message.data[1:]
            return received

        out = await asyncio.wait_for(run(["sh", "-c", "echo out; echo err >&2; exit 3"]), 10)
        assert out[1] == b"out\n" and out[2] == b"err\n"
        status = json.loads(out[3])
        assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
        assert json.loads((await run(["true"]))[3])["status"] == "Success"
        assert (await asyncio.wait_for(run(["cat"], stdin=b"piped\n"), 10))[1] == b"piped\n"

        env = dict(
            line.split("=", 1)
            for line in (await run(["env"]))[1].decode().splitlines()
            if "=" in line
        )
        assert env["MY_NAME"] == "talker" and env["MY_IP"] == pod_ip
        assert env["MY_SVC_SERVICE_HOST"] == cluster_ip
        assert env["MY_SVC_SERVICE_PORT_HTTP"] == "80"
        assert (await run(["cat", "/conf/greeting"]))[1] == b"hello from a configmap"
        assert (await run(["cat", "/work/flag"]))[1] == b"done\n"  # the init container's
        lookup = await run(["nslookup", f"my-svc.{ns}.svc.cluster.local"])
        assert cluster_ip in lookup[1].decode(), lookup
        resolv = (await run(["cat", "/etc/resolv.conf"]))[1].decode()
        assert f"nameserver {agent_lab.node_ip(node)}" in resolv
        assert f"search {ns}.svc.cluster.local" in resolv
        assert f"{pod_ip}\ttalker" in (await run(["cat", "/etc/hosts"]))[1].decode()

        async with session.ws_connect(
            f"{base}/portForward/{ns}/talker", headers=auth, params={"port": "8080"},
            protocols=("v4.channel.k8s.io",),
        ) as ws:  # fmt: skip
            opening = [await ws.receive_bytes() for _ in range(2)]
            assert opening == [b"\x00\x90\x1f", b"\x01\x90\x1f"]  # 8080, little-endian
            await ws.send_bytes(b"\x00GET /hostname HTTP/1.0\r\n\r\n")
            reply = b""
            while b"talker" not in reply:
                reply += (await asyncio.wait_for(ws.receive_bytes(), 5))[1:]
            assert reply.startswith(b"HTTP/1.")

    # the same through the apiserver, as kubectl sees it
    assert agent_lab.kubectl("logs", "talker", "-n", ns, "--tail=1") == "line3\n"
    assert agent_lab.kubectl("exec", "talker", "-n", ns, "--", "cat", "/conf/greeting") == (
        "hello from a configmap"
    )

    # graceful deletion: the container stops, then the agent removes the pod object
    agent_lab.kubectl("delete", "pod", "talker", "-n", ns, "--timeout=20s")
    assert not agent_lab.docker.containers.list(
        all=True, filters={"label": f"{LABEL_POD_NAME}=talker"}
    )
    events = agent_lab.get("events", namespace=ns)["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "talker"}
    assert {"Pulled", "Created", "Started", "Killing"} <= reasons


def test_probes_restart_unhealthy_and_unready_containers(agent_lab: AgentLab, ns: str) -> None:
    node = agent_lab.names[1]
    liveness = busybox_pod(
        "unhealthy", node, SERVE,
        livenessProbe={"httpGet": {"path": "/missing", "port": 8080},
                       "periodSeconds": 1, "failureThreshold": 2},
    )  # fmt: skip
    readiness = busybox_pod(
        "flaky", node, SERVE,
        readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
    )  # fmt: skip
    crasher = busybox_pod("crasher", node, "echo about to fail; exit 1")
    agent_lab.apply(ns, liveness, readiness, crasher)

    def restarted() -> Any:
        pod = agent_lab.get("pod", "unhealthy", ns)
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        return pod if statuses[0].get("restartCount", 0) >= 1 else None

    pod = wait_for(restarted, 25, "a liveness restart")
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 0
    events = agent_lab.get("events", namespace=ns)["items"]
    mine = [e for e in events if e["involvedObject"]["name"] == "unhealthy"]
    assert any(e["reason"] == "Unhealthy" and "Liveness" in e["message"] for e in mine)
    assert any(e["reason"] == "Killing" for e in mine)

    def ready(want: bool) -> bool:
        return pod_ready(agent_lab.get("pod", "flaky", ns)) == want

    time.sleep(2)
    assert ready(False)  # no /tmp/ready yet
    container = agent_lab.container(ns, "flaky", "main")
    container.exec_run(["touch", "/tmp/ready"])
    wait_for(lambda: ready(True), 10, "Ready")
    container.exec_run(["rm", "/tmp/ready"])
    wait_for(lambda: ready(False), 10, "not Ready")
    flaky = agent_lab.get("pod", "flaky", ns)
    assert flaky["status"]["phase"] == "Running"
    assert flaky["status"]["containerStatuses"][0]["restartCount"] == 0

    # restarted at once after the first exit, then held back. By now the first back-off
    # (10 s) may have run out, so the crasher may be between a restart and its next
    # exit: wait for the back-off that follows.
    seen: list[Any] = []

    def backing_off() -> Any:
        status = agent_lab.get("pod", "crasher", ns)["status"]["containerStatuses"][0]
        seen.append(status)
        return status if "waiting" in status["state"] else None

    try:
        crashing = wait_for(backing_off, 10, "the crasher backing off")
    except AssertionError as e:
        raise AssertionError(f"{e}; its last status: {seen[-1] if seen else None}") from None
    assert crashing["restartCount"] >= 1
    assert crashing["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert crashing["lastState"]["terminated"]["exitCode"] == 1
    events = agent_lab.get("events", namespace=ns)["items"]
    assert any(e["reason"] == "BackOff" for e in events if e["involvedObject"]["name"] == "crasher")


def test_a_pod_reaches_the_api_with_its_service_account(agent_lab: AgentLab, ns: str) -> None:
    """The real kubectl (static: mounted from the host) runs inside a pod with no
    kubeconfig, so it configures itself as every in-cluster client does: the `kubernetes`
    Service's variables, and the token, CA and namespace of the mounted token volume."""
    kubectl = os.path.realpath(str(shutil.which("kubectl")))
    mount = {"name": "kubectl", "mountPath": "/bin/kubectl", "readOnly": True}
    pod = busybox_pod("in-cluster", agent_lab.names[1], SERVE, volumeMounts=[mount])
    pod["spec"]["volumes"] = [{"name": "kubectl", "hostPath": {"path": kubectl, "type": "File"}}]
    agent_lab.apply(ns, pod)  # the namespace is new: its account may not exist yet
    wait_ready(agent_lab, ns, "in-cluster", timeout=40)
    container = agent_lab.container(ns, "in-cluster", "main")

    def run(*argv: str) -> str:
        code, (out, err) = container.exec_run(list(argv), demux=True)
        assert code == 0, f"{argv}: {(out or b'').decode()} {(err or b'').decode()}"
        return str((out or b"").decode())

    secrets_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert run("cat", f"{secrets_dir}/namespace") == ns
    ca = (agent_lab.lab.home / "pki" / "ca.crt").read_text()
    assert run("cat", f"{secrets_dir}/ca.crt") == ca
    token = run("cat", f"{secrets_dir}/token")
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["sub"] == f"system:serviceaccount:{ns}:default"
    assert payload["kubernetes.io"]["pod"]["name"] == "in-cluster"

    # TLS verified against the mounted CA, at the Service's ClusterIP, in the pod's namespace
    assert run("kubectl", "get", "pods", "-o", "name").split() == ["pod/in-cluster"]
    assert "configmap/kube-root-ca.crt" in run("kubectl", "get", "configmaps", "-o", "name")

    # the token is bound to its pod: it stops working once the pod is gone
    agent_lab.kubectl("--token", token, "get", "serviceaccount", "default", "-n", ns)
    agent_lab.kubectl("delete", "pod", "in-cluster", "-n", ns, "--grace-period=1")

    def refused() -> bool:
        answer = subprocess.run(
            ["kubectl", "--kubeconfig", str(agent_lab.lab.admin_kubeconfig), "--token", token,
             "get", "serviceaccounts", "-n", ns],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return answer.returncode != 0 and "Unauthorized" in answer.stderr

    wait_for(refused, 20, "the deleted pod's token to be refused")


def test_drain_evicts_a_nodes_pods_and_their_replacements_go_elsewhere(
    agent_lab: AgentLab, ns: str
) -> None:
    """`kubectl drain` finds the Eviction API in discovery, so it evicts (not deletes)
    the node's pods, which end gracefully; the Deployment replaces them on the node left
    schedulable."""
    drained, kept = agent_lab.names[1], agent_lab.names[0]
    agent_lab.apply(ns, busybox_deployment("drainee", 2, SERVE))

    def ready_pods() -> list[Any] | None:
        pods = [
            p
            for p in agent_lab.get("pods", namespace=ns)["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]
        return pods if len(pods) == 2 and all(pod_ready(p) for p in pods) else None

    before = wait_for(ready_pods, 30, "2 ready pods")
    evicted = [p["metadata"]["name"] for p in before if p["spec"]["nodeName"] == drained]
    assert evicted, "the scheduler spreads the replicas: one is on each node"
    try:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(agent_lab.lab.admin_kubeconfig), "drain", drained,
             "--pod-selector=app=drainee", "--timeout=60s"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        said = proc.stdout + proc.stderr
        assert proc.returncode == 0, said
        for name in evicted:
            assert f"evicting pod {ns}/{name}" in said, said
            assert f"pod/{name} evicted" in said, said
        assert agent_lab.node(drained)["spec"]["unschedulable"] is True
        after = wait_for(ready_pods, 30, "2 ready pods again")
        assert {p["spec"]["nodeName"] for p in after} == {kept}
    finally:
        agent_lab.kubectl("uncordon", drained)


def test_killed_agent_adopts_its_pods_and_removes_orphans(agent_lab: AgentLab, ns: str) -> None:
    node = agent_lab.names[0]
    agent_lab.apply(ns, busybox_pod("keeper", node, SERVE), busybox_pod("goner", node, SERVE))
    for name in ("keeper", "goner"):
        wait_ready(agent_lab, ns, name)
    before = agent_lab.get("pod", "keeper", ns)["status"]
    containers = {c.id for c in agent_lab.docker.containers.list(
        filters={"label": f"{LABEL_POD_NAME}=keeper"})}  # fmt: skip

    pid = agent_lab.lab.pid(f"agent-{node}")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: agent_lab.lab.pid(f"agent-{node}") is None, 5, "the agent to die")
    # while the agent is away, a pod is removed from the API behind its back
    agent_lab.kubectl("delete", "pod", "goner", "-n", ns, "--grace-period=0", "--force")
    agent_lab.nodes.start_agent(node)

    def goner_gone() -> bool:
        # sparse: a full listing inspects each container, and one may go in between
        return not agent_lab.docker.containers.list(
            all=True, sparse=True, filters={"label": f"{LABEL_POD_NAME}=goner"}
        )

    wait_for(goner_gone, 20, "the orphan's containers to go")
    after = agent_lab.get("pod", "keeper", ns)["status"]
    assert {c.id for c in agent_lab.docker.containers.list(
        filters={"label": f"{LABEL_POD_NAME}=keeper"})} == containers  # fmt: skip
    assert after["podIP"] == before["podIP"]
    assert after["containerStatuses"][0]["restartCount"] == 0
    assert after["containerStatuses"][0]["state"] == before["containerStatuses"][0]["state"]
    assert pod_ready(agent_lab.get("pod", "keeper", ns))


def test_stopped_agent_makes_node_not_ready_and_pods_move(agent_lab: AgentLab, ns: str) -> None:
    lost, kept = agent_lab.names[1], agent_lab.names[0]
    tolerations = [
        {"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 1}
        for k in ("not-ready", "unreachable")
    ]  # fmt: skip
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "mover"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "mover"}},
            "template": {
                "metadata": {"labels": {"app": "mover"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "tolerations": tolerations,
                    "containers": [
                        {"name": "web", "image": BUSYBOX, "command": ["sh", "-c", SERVE]}
                    ],
                },
            },
        },
    }
    agent_lab.apply(ns, deployment)

    def ready_pods() -> list[Any]:
        pods = agent_lab.get("pods", namespace=ns)["items"]
        return [p for p in pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]

    wait_for(lambda: len(ready_pods()) == 4, 45, "4 ready pods")
    assert any(p["spec"]["nodeName"] == lost for p in ready_pods())
    agent_lab.nodes.stop_agent(lost)
    try:

        def node_not_ready() -> bool:
            conditions = agent_lab.node(lost)["status"]["conditions"]
            return any(c["type"] == "Ready" and c["status"] != "True" for c in conditions)

        wait_for(node_not_ready, 30, f"{lost} NotReady")

        def moved() -> bool:
            pods = ready_pods()
            return len(pods) == 4 and all(p["spec"]["nodeName"] == kept for p in pods)

        wait_for(moved, 40, "pods recreated on the other node")
    finally:
        agent_lab.nodes.start_agent(lost)
        agent_lab.nodes.wait_ready([lost], 30)
