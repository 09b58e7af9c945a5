"""The agent's Node (status, Lease), its routes, the lab's pod CIDRs, the exec Status."""

from __future__ import annotations

import pytest

from agent.main import pod_routes
from agent.node import MachineFacts, lease_body, new_node, node_status
from agent.server import exit_status
from minikube_py.nodes import node_pod_cidr

FACTS = MachineFacts(
    cpus=4,
    memory_kib=8_000_000,
    machine_id="m1",
    boot_id="b1",
    kernel_version="6.1.0",
    os_image="Debian GNU/Linux 12 (bookworm)",
    architecture="amd64",
    container_runtime_version="docker://20.10.24",
    agent_version="v1.32.0-minikube-py",
    hostname="host",
)


def test_node_status_golden() -> None:
    status = node_status(FACTS, "192.168.49.2", "n1", {}, "T1")
    assert status["addresses"] == [
        {"type": "InternalIP", "address": "192.168.49.2"},
        {"type": "Hostname", "address": "n1"},
    ]
    assert status["capacity"] == {"cpu": "4", "memory": "8000000Ki", "pods": "110"}
    assert status["allocatable"] == status["capacity"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["nodeInfo"]["containerRuntimeVersion"] == "docker://20.10.24"
    assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0-minikube-py"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"] == {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": "T1",
        "lastTransitionTime": "T1",
    }
    assert {t: c["reason"] for t, c in conditions.items()} == {
        "Ready": "KubeletReady",
        "MemoryPressure": "KubeletHasSufficientMemory",
        "DiskPressure": "KubeletHasNoDiskPressure",
        "PIDPressure": "KubeletHasSufficientPID",
    }


def test_transition_time_kept_while_status_holds_and_reset_when_it_flips() -> None:
    previous = {
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "T0"},
            {"type": "MemoryPressure", "status": "True", "lastTransitionTime": "T0"},
        ]
    }
    conditions = {
        c["type"]: c for c in node_status(FACTS, "ip", "n1", previous, "T5")["conditions"]
    }
    assert conditions["Ready"]["lastTransitionTime"] == "T0"
    assert conditions["Ready"]["lastHeartbeatTime"] == "T5"
    assert conditions["MemoryPressure"]["lastTransitionTime"] == "T5"


def test_new_node_and_lease() -> None:
    node = new_node("n1", "10.244.1.0/24")
    assert node["spec"] == {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert new_node("n2", None)["spec"] == {}
    lease = lease_body({"metadata": {"name": "n1", "uid": "u1"}}, 40)
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert lease["spec"]["holderIdentity"] == "n1"
    assert lease["spec"]["leaseDurationSeconds"] == 40


def test_pod_routes_to_other_nodes_only() -> None:
    def node(name: str, cidr: str | None, ip: str | None) -> dict:
        addresses = [{"type": "InternalIP", "address": ip}] if ip else []
        return {
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": addresses},
        }

    nodes = [
        node("me", "10.244.1.0/24", "192.168.49.2"),
        node("b", "10.244.2.0/24", "192.168.49.3"),
        node("no-cidr", None, "192.168.49.4"),
        node("no-ip", "10.244.5.0/24", None),
    ]
    assert pod_routes(nodes, "me") == {"10.244.2.0/24": "192.168.49.3"}


def test_lab_node_pod_cidrs() -> None:
    assert node_pod_cidr("10.244.0.0/16", 1) == "10.244.1.0/24"
    assert node_pod_cidr("10.244.0.0/16", 255) == "10.244.255.0/24"
    with pytest.raises(ValueError):
        node_pod_cidr("10.244.0.0/16", 256)


def test_exec_exit_status_as_the_kubelet_sends_it() -> None:
    assert exit_status(0) == {"metadata": {}, "status": "Success"}
    failure = exit_status(3)
    assert failure["reason"] == "NonZeroExitCode"
    assert failure["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
