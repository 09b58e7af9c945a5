"""Pod features of the node agent on a real one-node lab, through the real kubectl: the
environment from ConfigMaps, Secrets and the downward API (and the wait while a source
is missing), configMap/secret volumes that follow their object, downwardAPI and
projected volumes that follow the pod's labels and their objects, and `kubectl attach` /
`kubectl run -i --rm` reaching a container's main process.

A lab of its own (node network 192.168.50-99.x, which no other test module uses), made
and removed as in test_agent.py; each test works in its own namespace.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from test_agent import BUSYBOX, AgentLab, busybox_pod, wait_for, wait_ready

from agent.runtime import LABEL_NODE_NAME, LABEL_POD_NAME
from minikube_py.nodes import running_private_lab

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(
    docker_engine: docker.DockerClient, local_images: dict[str, str], tmp_path_factory: Any
) -> Iterator[AgentLab]:
    if shutil.which("kubectl") is None or shutil.which("etcd") is None:
        pytest.fail("kubectl and etcd are needed", pytrace=False)
    home = tmp_path_factory.mktemp("pod-api-lab")
    with running_private_lab(home, "p", 50 + secrets.randbelow(50), 1) as (nodes, names):
        yield AgentLab(nodes.lab, nodes, names, docker_engine)
    left = docker_engine.containers.list(
        all=True, sparse=True, filters={"label": f"{LABEL_NODE_NAME}={names[0]}"}
    )
    assert not left, "pod containers left behind"


@pytest.fixture
def ns(lab: AgentLab) -> Iterator[str]:
    name = "t-" + uuid.uuid4().hex[:6]
    lab.kubectl("create", "namespace", name)
    yield name
    lab.kubectl("delete", "pods", "--all", "-n", name, "--grace-period=1", "--timeout=30s",
                check=False)  # fmt: skip
    lab.kubectl("delete", "namespace", name, "--wait=false", check=False)


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def waiting(lab: AgentLab, ns: str, pod: str) -> Any:
    statuses = lab.get("pod", pod, ns).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("waiting")


def test_env_from_objects_waits_for_them_and_volumes_follow_changes(lab: AgentLab, ns: str) -> None:
    lab.apply(ns, config_map("files", **{"app.conf": "v1", "other": "x"}))
    pod = busybox_pod(
        "configured", lab.names[0], "trap 'exit 0' TERM; echo '$(GREETING)' > /tmp/g; "
        "while :; do sleep 1; done",
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                 {"secretRef": {"name": "creds"}}],
        env=[
            {"name": "WHO", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "who"}}},
            {"name": "GREETING", "value": "hello-$(WHO)-$$(WHO)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "NOPE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k",
                                                             "optional": True}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                "resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        ],
        resources={"limits": {"memory": "64Mi"}},
        volumeMounts=[{"name": "files", "mountPath": "/config"},
                      {"name": "files", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                      {"name": "picked", "mountPath": "/picked"}],
    )  # fmt: skip
    pod["metadata"]["labels"] = {"tier": "back"}
    pod["spec"]["volumes"] = [
        {"name": "files", "configMap": {"name": "files"}},
        {"name": "picked", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                      "items": [{"key": "token", "path": "sub/tok"}]}},
    ]  # fmt: skip
    lab.apply(ns, pod)

    # the secret volume cannot be set up yet: the containers wait for their mounts
    def failed_mount() -> Any:
        events = lab.get("events", namespace=ns)["items"]
        return [e for e in events if e["reason"] == "FailedMount"]

    mount_events = wait_for(failed_mount, 15, "a FailedMount event")
    assert 'secret "creds" not found' in mount_events[0]["message"]
    assert waiting(lab, ns, "configured")["reason"] == "ContainerCreating"

    lab.apply(ns, secret("creds", token="s3cret", USER="admin"))

    def config_error() -> Any:
        state = waiting(lab, ns, "configured")
        return state if state and state["reason"] == "CreateContainerConfigError" else None

    state = wait_for(config_error, 15, "CreateContainerConfigError")
    assert state["message"] == 'configmap "settings" not found'

    lab.apply(ns, config_map("settings", who="world", level="3"))
    running = wait_ready(lab, ns, "configured", timeout=15)  # started by the object's event

    def run(*command: str) -> str:
        return lab.kubectl("exec", "configured", "-n", ns, "--", *command)

    env = dict(line.split("=", 1) for line in run("env").splitlines() if "=" in line)
    assert {k: env.get(k) for k in ("CFG_who", "CFG_level", "USER", "WHO", "GREETING",
                                    "TOKEN", "MEM_MI", "TIER", "UID", "HOST_IP")} == {
        "CFG_who": "world", "CFG_level": "3", "USER": "admin", "WHO": "world",
        "GREETING": "hello-world-$(WHO)", "TOKEN": "s3cret", "MEM_MI": "64", "TIER": "back",
        "UID": running["metadata"]["uid"], "HOST_IP": running["status"]["hostIP"],
    }  # fmt: skip
    assert "NOPE" not in env
    assert run("cat", "/tmp/g") == "hello-world-$(WHO)\n"  # $(VAR) in the command too

    assert run("cat", "/picked/sub/tok") == "s3cret"
    assert run("stat", "-L", "-c", "%a", "/picked/sub/tok") == "400\n"
    assert sorted(run("ls", "/picked").split()) == ["sub"]
    assert "..data" in run("ls", "-a", "/config").split()

    # an update reaches the mounted directory (atomically), not the subPath file
    lab.apply(ns, config_map("files", **{"app.conf": "v2", "added": "y"}))
    wait_for(lambda: run("cat", "/config/app.conf") == "v2", 15, "the updated file")
    assert sorted(run("ls", "/config").split()) == ["added", "app.conf"]
    assert run("cat", "/etc/app.conf") == "v1"


def test_downward_api_and_projected_volumes_follow_the_pod_and_its_objects(
    lab: AgentLab, ns: str
) -> None:
    lab.apply(ns, config_map("app", mode="fast"))
    pod = busybox_pod(
        "described", lab.names[0], "trap 'exit 0' TERM; while :; do sleep 1; done",
        resources={"limits": {"memory": "32Mi"}},
        volumeMounts=[{"name": "info", "mountPath": "/info"},
                      {"name": "all", "mountPath": "/all"}],
    )  # fmt: skip
    pod["metadata"]["labels"] = {"tier": "front"}
    pod["spec"]["volumes"] = [
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "main",
                                                 "resource": "limits.memory", "divisor": "1Mi"}},
        ]}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "app"}},
            {"secret": {"name": "creds", "optional": True}},
            {"downwardAPI": {"items": [{"path": "pod/name",
                                        "fieldRef": {"fieldPath": "metadata.name"}}]}},
        ]}},
    ]  # fmt: skip
    lab.apply(ns, pod)
    wait_ready(lab, ns, "described")

    def run(*command: str) -> str:
        return lab.kubectl("exec", "described", "-n", ns, "--", *command)

    assert run("cat", "/info/labels") == 'tier="front"'
    assert run("cat", "/info/mem") == "32"
    assert run("cat", "/all/mode", "/all/pod/name") == "fastdescribed"
    assert sorted(run("ls", "/all").split()) == ["mode", "pod"]

    # a label change reaches the downward API file; a new object joins the projection
    lab.kubectl("label", "pod", "described", "-n", ns, "tier=back", "--overwrite")
    wait_for(lambda: run("cat", "/info/labels") == 'tier="back"', 15, "the new label")
    lab.apply(ns, secret("creds", token="t0k"))
    wait_for(lambda: run("cat", "/all/token") == "t0k", 15, "the secret in the projection")


def test_kubectl_attach_and_run_interactive(lab: AgentLab, ns: str) -> None:
    node = lab.names[0]
    chat = busybox_pod(
        "chat", node,
        'while read line; do echo "echo-$line"; [ "$line" = quit ] && exit 0; done',
        stdin=True,
    )  # fmt: skip
    chat["spec"]["restartPolicy"] = "Never"
    lab.apply(ns, chat)
    wait_ready(lab, ns, "chat")
    attached = subprocess.run(
        ["kubectl", "--kubeconfig", str(lab.lab.admin_kubeconfig), "attach", "chat", "-n", ns,
         "-i", "-c", "main"],
        input="ping\nquit\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    assert "echo-ping\necho-quit" in attached.stdout
    finished = wait_for(
        lambda: (p := lab.get("pod", "chat", ns))["status"]["phase"] == "Succeeded" and p,
        15, "chat to succeed",
    )  # fmt: skip
    assert finished["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0

    # `kubectl run -i --rm`: stdin and stdinOnce, so closing stdin ends the process
    ran = subprocess.run(
        ["kubectl", "--kubeconfig", str(lab.lab.admin_kubeconfig), "run", "once", "-n", ns,
         f"--image={BUSYBOX}", "--restart=Never", "-i", "--rm", "--command", "--",
         "sh", "-c", 'cat | sed "s/^/got-/"'],
        input="alpha\nbeta\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "got-alpha\ngot-beta\n" in ran.stdout
    assert 'pod "once" deleted' in ran.stdout
    wait_for(
        lambda: not lab.docker.containers.list(
            all=True, sparse=True, filters={"label": f"{LABEL_POD_NAME}=once"}
        ),
        15, "the run pod's containers to go",
    )  # fmt: skip
