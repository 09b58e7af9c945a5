"""The real `kubectl port-forward` through the apiserver and the node agent, on a real lab.

The lab and namespace fixtures are test_agent's. kubectl 1.32 tunnels SPDY inside a
WebSocket by default and falls back to a plain `Upgrade: SPDY/3.1`; both are run
(the second with KUBECTL_PORT_FORWARD_WEBSOCKETS=false). Each forward is fetched
through twice, i.e. over two SPDY stream pairs of one session. The official Python
client speaks the channel protocol (`v4.channel.k8s.io`) instead, which the apiserver
relays to the agent as is.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kubernetes import client, config
from kubernetes.stream import portforward

from tests.e2e.test_agent import (  # noqa: F401  (agent_lab and ns are fixtures)
    SERVE,
    AgentLab,
    agent_lab,
    busybox_pod,
    ns,
    wait_ready,
)

pytestmark = pytest.mark.e2e

FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


@contextmanager
def port_forward(
    lab: AgentLab, namespace: str, target: str, remote: int, websockets: bool = True
) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """`kubectl port-forward` running, with the local port it chose and the pod's port."""
    env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": str(websockets).lower()}
    proc = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(lab.lab.admin_kubeconfig), "port-forward", "-n",
         namespace, target, f":{remote}", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = FORWARDING.search(line)
        assert found, (
            f"kubectl port-forward said {line!r}, {proc.stderr.read() if proc.stderr else ''}"
        )
        yield proc, int(found.group(1)), int(found.group(2))
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=10)


# /www/big spans many SPDY data frames; its content is known, so order and loss show
BIG = b"0123456789\n" * 300_000
WEB = (
    f"mkdir /www && cp /etc/hostname /www/ && yes 0123456789 | head -c {len(BIG)} > /www/big; "
    + SERVE.replace("/etc", "/www")
)


def serve_web(lab: AgentLab, namespace: str) -> None:
    """Pod `web` (httpd on 8080) behind Service `web` (port 80)."""
    pod = busybox_pod("web", lab.names[0], WEB)
    pod["metadata"]["labels"] = {"app": "web"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    lab.apply(namespace, pod, service)
    wait_ready(lab, namespace, "web")


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: bytes = response.read()
    return body


def check_kubectl(lab: AgentLab, namespace: str, websockets: bool) -> None:
    how = "WebSocket tunnel" if websockets else "SPDY upgrade"
    with port_forward(lab, namespace, "pod/web", 8080, websockets) as (_, local, _):
        assert fetch(local, "/hostname") == b"web\n", how
        assert fetch(local, "/big") == BIG, how  # a second connection, same session

    # kubectl resolves the Service to a pod and its target port on its own side
    with port_forward(lab, namespace, "svc/web", 80, websockets) as (_, local, remote):
        assert remote == 8080, how
        assert fetch(local, "/hostname") == b"web\n", how

    # nothing listens on 9999: the agent's refusal reaches kubectl on the error stream,
    # and kubectl gives up the forward as it does with a kubelet
    with port_forward(lab, namespace, "pod/web", 9999, websockets) as (proc, local, _):
        with pytest.raises(OSError):
            fetch(local, "/")
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.returncode == 1, how
        assert proc.stderr is not None
        error = proc.stderr.read()
        assert "error forwarding port 9999 to pod web" in error, (how, error)
        assert "lost connection to pod" in error, (how, error)


def check_python_client(lab: AgentLab, namespace: str) -> None:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(lab.lab.admin_kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        api = client.CoreV1Api(api_client)
        forward = portforward(
            api.connect_get_namespaced_pod_portforward, "web", namespace, ports="8080"
        )
        sock = forward.socket(8080)
        sock.settimeout(10)
        sock.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):  # the pod closing ends the forward
            reply += chunk
        sock.close()
        assert reply.startswith(b"HTTP/1.") and reply.endswith(b"\r\n\r\nweb\n"), reply
        assert forward.error(8080) is None


def test_port_forward_through_the_apiserver(agent_lab: AgentLab, ns: str) -> None:  # noqa: F811
    """One pod serves every check: its start and removal are most of this test's time."""
    serve_web(agent_lab, ns)
    check_kubectl(agent_lab, ns, websockets=True)  # kubectl's default
    check_kubectl(agent_lab, ns, websockets=False)  # its fallback, and older kubectl's way
    check_python_client(agent_lab, ns)
