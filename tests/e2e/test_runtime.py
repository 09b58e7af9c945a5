"""Pods on a real dockerd wired by the real pod network, in namespaces standing for nodes.

Every pod has a unique uid and is removed by it; every namespace and lab network has a
unique name and is removed by it. Traffic goes only to the test's own pods and nodes.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container
from pyroute2 import netns as pyroute2_netns

from agent.ipam import IPAMStore
from agent.network import PodNetwork, host_veth_name
from agent.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_NODE_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_RESTART_COUNT,
    DockerRuntime,
    ExecSession,
    RuntimeFailure,
    StreamSession,
    never_started,
    pod_hostname,
    resource_limits,
    security_options,
    state_from_docker,
)
from agent.volumes import write_atomic
from minikube_py import labnet
from minikube_py.images import applet_paths, build_rootfs

pytestmark = pytest.mark.e2e

HOSTS = "127.0.0.1\tlocalhost\n"
RESOLV = "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\n"


@pytest.fixture
def runtime(
    docker_engine: docker.DockerClient, local_images: dict[str, str], tmp_path: Path
) -> DockerRuntime:
    return DockerRuntime(docker_engine, tmp_path / "agent", node_name="node-a")


@pytest.fixture
def new_pod(runtime: DockerRuntime) -> Iterator[Callable[..., dict]]:
    """Makes pod objects with unique uids; their containers are removed afterwards."""
    uids = []

    def make(name: str, **spec: object) -> dict:
        uids.append(f"e2e-{uuid.uuid4()}")
        return {
            "metadata": {"name": name, "namespace": "default", "uid": uids[-1]},
            "spec": {"containers": [], **spec},
        }

    yield make
    for uid in uids:
        runtime.remove_pod(uid)


@pytest.fixture
def node_netns() -> Iterator[str]:
    """A bare namespace standing for a node."""
    name = f"mkpy-rt{secrets.token_hex(3)}"
    pyroute2_netns.create(name)
    yield name
    pyroute2_netns.remove(name)


def in_netns(netns: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        labnet.netns_command(netns, argv), capture_output=True, text=True, timeout=20
    )


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def run_sandbox(runtime: DockerRuntime, pod: dict, *, hosts: str, resolv_conf: str) -> Container:
    """The pod's sandbox, created and started in one step."""
    sandbox = runtime.create_sandbox(pod, hosts=hosts, resolv_conf=resolv_conf)
    runtime.start_container(sandbox)
    return sandbox


def run_container(
    runtime: DockerRuntime,
    pod: dict,
    spec: dict,
    sandbox: Container,
    *,
    env: dict[str, str],
    restart_count: int = 0,
    prepared_volumes: dict[str, Path] | None = None,
) -> Container:
    """One of the pod's containers, its image ensured, created and started in one step."""
    runtime.ensure_image(spec["image"], spec.get("imagePullPolicy"))
    container = runtime.create_container(
        pod, spec, sandbox, env=env, restart_count=restart_count, prepared_volumes=prepared_volumes
    )
    runtime.start_container(container)
    return container


def start_pod(
    runtime: DockerRuntime,
    network: PodNetwork,
    ipam: IPAMStore,
    pod: dict,
) -> tuple[Container, str]:
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    ip = ipam.allocate(pod["metadata"]["uid"])
    network.attach_sandbox(runtime.sandbox_pid(sandbox), pod["metadata"]["uid"], ip)
    return sandbox, ip


SLEEPER = {
    "name": "main",
    "image": "minikube-py/busybox:latest",
    "imagePullPolicy": "Never",
    "args": ["sleep", "60"],
}
HTTPD = {
    "name": "web",
    "image": "minikube-py/busybox:latest",
    "imagePullPolicy": "IfNotPresent",
    "command": ["sh", "-c"],
    "args": ["echo hello-$(POD_NAME) > /www/index.html && exec httpd -f -p 8080 -h /www"],
    "volumeMounts": [{"name": "www", "mountPath": "/www"}],
}


async def exec_output(runtime: DockerRuntime, container: Container, argv: list[str]) -> str:
    session = await runtime.exec(container, argv)
    chunks = []
    while (frame := await session.read()) is not None:
        chunks.append(frame[1])
    await session.close()
    return b"".join(chunks).decode()


# --- the runtime's pure mappings (no Docker needed) --------------------------------------


def test_resources_and_security_context_map_to_docker() -> None:
    spec = {
        "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}, "requests": {"cpu": "250m"}},
        "securityContext": {
            "runAsUser": 1000,
            "privileged": True,
            "capabilities": {"add": ["NET_ADMIN"]},
        },
    }
    pod = {
        "spec": {"securityContext": {"runAsUser": 1, "runAsGroup": 2, "supplementalGroups": [5]}}
    }
    assert resource_limits(spec) == {
        "nano_cpus": 1_500_000_000,
        "mem_limit": 2**30,
        "cpu_shares": 256,
    }
    assert resource_limits({"resources": {"requests": {"cpu": "1m"}}}) == {"cpu_shares": 2}
    assert security_options(pod, spec) == {
        "user": "1000:2",
        "group_add": ["5"],
        "privileged": True,
        "cap_add": ["NET_ADMIN"],
        "security_opt": ["seccomp=unconfined"],
    }
    # seccomp: Unconfined unless asked (the kubelet's default), the container's over the pod's
    assert security_options({"spec": {}}, {}) == {"security_opt": ["seccomp=unconfined"]}
    runtime_default = {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}
    assert security_options({"spec": runtime_default}, {}) == {}
    unconfined = {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}
    assert security_options({"spec": runtime_default}, unconfined) == {
        "security_opt": ["seccomp=unconfined"]
    }
    assert security_options({"spec": {}}, runtime_default) == {}
    with pytest.raises(RuntimeFailure) as localhost:
        security_options(
            {"spec": {}}, {"securityContext": {"seccompProfile": {"type": "Localhost"}}}
        )
    assert localhost.value.reason == "CreateContainerConfigError"
    # a lab node is a network namespace: pods never share the host's namespaces
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        with pytest.raises(RuntimeFailure, match=f"^CreateContainerConfigError: {field} is not"):
            security_options({"spec": {field: True}}, {})
    assert security_options({"spec": {"hostNetwork": False}}, {}) == {
        "security_opt": ["seccomp=unconfined"]
    }


def test_pod_hostname_is_spec_hostname_or_name() -> None:
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {}}) == "web-1"
    assert pod_hostname({"metadata": {"name": "web-1"}, "spec": {"hostname": "db"}}) == "db"
    assert pod_hostname({"metadata": {"name": "a" * 62 + "-b"}, "spec": {}}) == "a" * 62


def test_docker_states_map_to_container_states() -> None:
    started, finished = "2026-11-29T05:00:38.963022335Z", "2026-11-29T05:01:02.1Z"
    assert state_from_docker("c1", {"Status": "running", "StartedAt": started}) == {
        "running": {"startedAt": "2026-11-29T05:00:38Z"}
    }
    assert state_from_docker("c1", {"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"}) == {
        "waiting": {"reason": "ContainerCreating"}
    }
    exited = {"Status": "exited", "ExitCode": 0, "StartedAt": started, "FinishedAt": finished}
    assert state_from_docker("c1", exited) == {
        "terminated": {
            "exitCode": 0,
            "reason": "Completed",
            "startedAt": "2026-11-29T05:00:38Z",
            "finishedAt": "2026-11-29T05:01:02Z",
            "containerID": "docker://c1",
        }
    }
    oom = state_from_docker("c1", {**exited, "ExitCode": 137, "OOMKilled": True})
    assert oom["terminated"]["reason"] == "OOMKilled"
    assert state_from_docker("c1", {**exited, "ExitCode": 2})["terminated"]["reason"] == "Error"
    failed_start = {"Status": "created", "ExitCode": 127, "Error": "exec: not found"}
    assert state_from_docker("c1", failed_start)["terminated"] == {
        "exitCode": 127,
        "reason": "StartError",
        "message": "exec: not found",
        "containerID": "docker://c1",
    }


# --- images and the Docker adapter ------------------------------------------------------


def test_rootfs_links_every_applet() -> None:
    with tarfile.open(fileobj=io.BytesIO(build_rootfs())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    applets = applet_paths()
    assert len(applets) > 200
    for path in applets:
        assert members[path].issym() or path == "bin/busybox"
    assert members["bin/busybox"].isfile() and members["tmp"].mode == 0o1777


def test_pause_stops_promptly_on_sigterm(
    docker_engine: docker.DockerClient, local_images: dict[str, str]
) -> None:
    container = docker_engine.containers.run(
        local_images["pause"], detach=True, network_mode="none", labels={"mkpy-e2e": "pause"}
    )
    try:
        started = time.monotonic()
        container.stop(timeout=20)
        assert time.monotonic() - started < 3
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0
    finally:
        container.remove(force=True)


def test_pod_reachable_by_ip_from_its_node(
    runtime: DockerRuntime, new_pod: Callable[..., dict], node_netns: str, tmp_path: Path
) -> None:
    network = PodNetwork("10.244.1.0/24", netns=node_netns)
    network.ensure_node()
    ipam = IPAMStore(tmp_path / "ipam.json", network.pod_cidr)
    pod = new_pod("web", volumes=[{"name": "www", "emptyDir": {}}])
    uid = pod["metadata"]["uid"]
    sandbox, ip = start_pod(runtime, network, ipam, pod)
    spec = {
        **HTTPD,
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        "securityContext": {"runAsUser": 33},
    }
    web = run_container(runtime, pod, spec, sandbox, env={"POD_NAME": "web"})

    def served() -> bool:
        got = in_netns(
            node_netns, ["timeout", "2", "busybox", "wget", "-q", "-O-", f"http://{ip}:8080/"]
        )
        return got.stdout == "hello-web\n"

    eventually(served)
    assert runtime.container_state(web)["running"]["startedAt"].endswith("Z")
    host_config = web.attrs["HostConfig"]
    assert (host_config["NanoCpus"], host_config["Memory"]) == (500_000_000, 64 * 2**20)
    assert web.labels[LABEL_POD_UID] == uid
    assert web.labels[LABEL_CONTAINER_NAME] == "web"

    # The agent's files, the pod's hostname and user, seen from inside the container.
    assert asyncio.run(exec_output(runtime, web, ["cat", "/etc/resolv.conf"])) == RESOLV
    assert asyncio.run(exec_output(runtime, web, ["hostname"])) == "web\n"
    assert asyncio.run(exec_output(runtime, web, ["id", "-u"])) == "33\n"
    hairpin = in_netns(node_netns, ["ip", "-d", "link", "show", host_veth_name(uid)])
    assert "master cni0" in hairpin.stdout and "hairpin on" in hairpin.stdout

    runtime.remove_pod(uid)
    network.detach_sandbox(uid)
    assert in_netns(node_netns, ["ip", "link", "show", host_veth_name(uid)]).returncode != 0
    assert not runtime.pod_dir(uid).exists()


def test_pods_on_two_nodes_reach_each_other_by_pod_ip(
    runtime: DockerRuntime, new_pod: Callable[..., dict], tmp_path: Path
) -> None:
    cluster = "r" + secrets.token_hex(3)
    third_octet = 200 + secrets.randbelow(50)
    labnet.stale_cleanup(cluster)
    try:
        labnet.create_node_network(cluster, f"192.168.{third_octet}.0/24")
        cidrs = {1: "10.244.211.0/24", 2: "10.244.212.0/24"}
        nodes = {i: labnet.add_node(cluster, i, pod_cidr=cidrs[i]) for i in cidrs}
        networks = {i: PodNetwork(cidrs[i], netns=nodes[i].netns) for i in cidrs}
        for i, network in networks.items():
            network.ensure_node()
            network.sync_pod_routes({cidrs[j]: nodes[j].ip for j in cidrs if j != i})
        assert networks[1].pod_routes() == {cidrs[2]: nodes[2].ip}

        server = new_pod("server", volumes=[{"name": "www", "emptyDir": {}}])
        sandbox, server_ip = start_pod(
            runtime, networks[1], IPAMStore(tmp_path / "n1.json", cidrs[1]), server
        )
        run_container(runtime, server, HTTPD, sandbox, env={"POD_NAME": "server"})
        client = new_pod("client")
        client_sandbox, client_ip = start_pod(
            runtime, networks[2], IPAMStore(tmp_path / "n2.json", cidrs[2]), client
        )
        sleeper = run_container(
            runtime,
            client,
            {
                "name": "main",
                "image": "minikube-py/busybox:latest",
                "args": ["sleep", "60"],
                "imagePullPolicy": "Never",
            },
            client_sandbox,
            env={},
        )
        assert client_ip.startswith("10.244.212.")
        url = f"http://{server_ip}:8080/"

        def reached() -> bool:
            got = asyncio.run(
                exec_output(runtime, sleeper, ["timeout", "2", "wget", "-q", "-O-", url])
            )
            return got == "hello-server\n"

        eventually(reached)
        # Pod to pod keeps the pod's address; leaving the cluster CIDR (here to the other
        # node's address) is masqueraded to the node's.
        (tmp_path / "node-www").mkdir()
        (tmp_path / "node-www" / "index.html").write_text("node one\n")
        node_server = subprocess.Popen(
            nodes[1].command(
                [
                    "busybox",
                    "httpd",
                    "-f",
                    "-p",
                    f"{nodes[1].ip}:8081",
                    "-h",
                    str(tmp_path / "node-www"),
                ]
            )
        )
        try:
            wget_node = ["timeout", "2", "wget", "-q", "-O-", f"http://{nodes[1].ip}:8081/"]
            eventually(
                lambda: asyncio.run(exec_output(runtime, sleeper, wget_node)) == "node one\n"
            )
        finally:
            node_server.kill()
            node_server.wait()
        tracked = in_netns(nodes[2].netns, ["conntrack", "-L", "-p", "tcp"]).stdout
        assert f"src={server_ip} dst={client_ip} sport=8080" in tracked
        assert f"src={nodes[1].ip} dst={nodes[2].ip} sport=8081" in tracked
        # Routes owned by the node follow the desired set, and only they change.
        networks[1].sync_pod_routes({})
        assert networks[1].pod_routes() == {}
        assert "10.244.211.0/24 dev cni0" in in_netns(nodes[1].netns, ["ip", "route"]).stdout
    finally:
        labnet.stale_cleanup(cluster)


def test_a_container_made_while_its_sandbox_starts_runs_in_the_pod_network(
    runtime: DockerRuntime, new_pod: Callable[..., dict], node_netns: str
) -> None:
    """The agent's order for a new pod: create the sandbox, create the first container
    joining it, then start and wire the sandbox, then start the container. Started any
    earlier, a container fails with StartError and counts as started."""
    network = PodNetwork("10.244.2.0/24", netns=node_netns)
    network.ensure_node()
    pod = new_pod("early")
    uid = pod["metadata"]["uid"]
    sandbox = runtime.create_sandbox(pod, hosts=HOSTS, resolv_conf=RESOLV)
    spec = {"name": "main", "image": "minikube-py/busybox:latest", "args": ["sleep", "60"]}
    main = runtime.create_container(pod, spec, sandbox, env={})
    eager = runtime.create_container(pod, {**spec, "name": "eager"}, sandbox, env={})
    assert never_started(main.attrs["State"]) and never_started(eager.attrs["State"])
    with pytest.raises(RuntimeFailure) as too_early:
        runtime.start_container(eager)
    assert too_early.value.reason == "StartError"
    eager.reload()
    assert not never_started(eager.attrs["State"])
    assert state_from_docker(eager.id, eager.attrs["State"])["terminated"]["reason"] == (
        "StartError"
    )

    runtime.start_container(sandbox)
    network.attach_sandbox(int(sandbox.attrs["State"]["Pid"]), uid, "10.244.2.7")
    runtime.start_container(main)
    assert "running" in runtime.container_state(main)
    eth0 = asyncio.run(exec_output(runtime, main, ["ip", "-o", "-4", "addr", "show", "eth0"]))
    assert "10.244.2.7/24" in eth0
    routes = asyncio.run(exec_output(runtime, main, ["ip", "route"]))
    assert "default via 10.244.2.1 dev eth0" in routes
    runtime.remove_pod(uid)
    network.detach_sandbox(uid)
    assert in_netns(node_netns, ["ip", "link", "show", host_veth_name(uid)]).returncode != 0


def test_image_pull_policies_never_reach_a_registry_here(runtime: DockerRuntime) -> None:
    busybox = "minikube-py/busybox:latest"
    assert runtime.ensure_image(busybox, "IfNotPresent") is False
    with pytest.raises(RuntimeFailure) as never:
        runtime.ensure_image("minikube-py/absent:1", "Never")
    assert never.value.reason == "ErrImageNeverPull"
    offline = DockerRuntime(runtime.client, runtime.state_dir, "node-a", allow_pull=False)
    assert offline.ensure_image(busybox) is False  # default policy for :latest is Always
    with pytest.raises(RuntimeFailure) as missing:
        offline.ensure_image("minikube-py/absent:1", "IfNotPresent")
    assert missing.value.reason == "ErrImagePull"


def test_an_image_removed_after_it_was_seen_is_looked_for_again(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    # the runtime remembers images it saw, and a container of one removed since fails
    # with the image's own reason, not an engine error
    tag = f"minikube-py/e2e-gone:{secrets.token_hex(3)}"
    runtime.client.images.get("minikube-py/busybox:latest").tag(tag)
    pod = new_pod("gone")
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    spec = {"name": "app", "image": tag, "imagePullPolicy": "Never", "args": ["sleep", "60"]}
    try:
        assert runtime.ensure_image(tag, "Never") is False
    finally:
        runtime.client.images.remove(tag)
    assert runtime.ensure_image(tag, "Never") is False  # remembered: not asked again
    with pytest.raises(RuntimeFailure) as gone:
        runtime.create_container(pod, spec, sandbox, env={})
    assert gone.value.reason == "ErrImageNeverPull"
    with pytest.raises(RuntimeFailure):
        runtime.ensure_image(tag, "Never")  # forgotten once found gone


def test_restarted_agent_adopts_containers_by_label(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    pod = new_pod("adopt")
    uid = pod["metadata"]["uid"]
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    spec = {"name": "main", "image": "minikube-py/busybox:latest", "args": ["sleep", "60"]}
    main = run_container(
        runtime, pod, {**spec, "imagePullPolicy": "Never"}, sandbox, env={}, restart_count=2
    )

    restarted = DockerRuntime(runtime.client, runtime.state_dir, node_name="node-a")
    found = {c.id: c for c in restarted.list_pod_containers()[uid]}
    assert set(found) == {sandbox.id, main.id}
    assert found[main.id].labels[LABEL_RESTART_COUNT] == "2"
    assert found[main.id].labels[LABEL_POD_NAME] == "adopt"
    assert found[main.id].labels[LABEL_POD_NAMESPACE] == "default"
    assert found[main.id].labels[LABEL_NODE_NAME] == "node-a"
    assert found[sandbox.id].labels[LABEL_CONTAINER_NAME] == "POD"
    other_node = DockerRuntime(runtime.client, runtime.state_dir, node_name="node-b")
    assert uid not in other_node.list_pod_containers()
    restarted.remove_pod(uid)
    assert uid not in restarted.list_pod_containers()


def test_graceful_stop_sends_sigterm_then_sigkill(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    pod = new_pod("stopper")
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    loop = "echo ready; while :; do sleep 1 & wait $!; done"
    graceful = run_container(
        runtime,
        pod,
        {
            "name": "graceful",
            "image": "minikube-py/busybox:latest",
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", f"trap 'echo got-TERM; exit 7' TERM; {loop}"],
        },
        sandbox,
        env={},
    )
    stubborn = run_container(
        runtime,
        pod,
        {
            "name": "stubborn",
            "image": "minikube-py/busybox:latest",
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", f"trap '' TERM; {loop}"],
        },
        sandbox,
        env={},
    )
    eventually(lambda: b"ready" in runtime.logs(graceful) and b"ready" in runtime.logs(stubborn))

    started = time.monotonic()
    runtime.stop(graceful, grace_seconds=30)
    assert time.monotonic() - started < 5
    state = runtime.container_state(graceful)["terminated"]
    assert (state["exitCode"], state["reason"]) == (7, "Error")
    assert b"got-TERM" in runtime.logs(graceful, tail=1)
    assert state["finishedAt"] >= state["startedAt"]

    started = time.monotonic()
    runtime.stop(stubborn, grace_seconds=1)
    assert 0.9 < time.monotonic() - started < 6
    assert runtime.container_state(stubborn)["terminated"]["exitCode"] == 137


def test_exit_codes_logs_and_exec_stream(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    pod = new_pod("jobs")
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    image = {"image": "minikube-py/busybox:latest", "imagePullPolicy": "IfNotPresent"}
    done = run_container(
        runtime,
        pod,
        {"name": "done", **image, "command": ["sh", "-c", "echo one; echo two"]},
        sandbox,
        env={},
    )
    failed = run_container(
        runtime,
        pod,
        {"name": "failed", **image, "command": ["sh", "-c", "exit $(CODE)"], "workingDir": "/tmp"},
        sandbox,
        env={"CODE": "3"},
    )
    eventually(lambda: "terminated" in runtime.container_state(failed))
    eventually(lambda: "terminated" in runtime.container_state(done))
    assert runtime.container_state(done)["terminated"]["reason"] == "Completed"
    assert runtime.container_state(failed)["terminated"]["exitCode"] == 3
    assert runtime.logs(done) == b"one\ntwo\n"
    assert runtime.logs(done, tail=1) == b"two\n"
    assert runtime.logs(done, timestamps=True).split(b" ", 1)[0].endswith(b"Z")
    assert list(runtime.logs(done, follow=True)) != []  # a stopped container's stream ends

    with pytest.raises(RuntimeFailure) as missing:
        run_container(
            runtime,
            pod,
            {"name": "nope", "image": "minikube-py/absent:1", "imagePullPolicy": "Never"},
            sandbox,
            env={},
        )
    assert missing.value.reason == "ErrImageNeverPull"

    sleeper = run_container(
        runtime, pod, {"name": "shell", **image, "args": ["sleep", "60"]}, sandbox, env={}
    )

    async def talk() -> tuple[bytes, bytes, int | None]:
        session = await runtime.exec(sleeper, ["sh", "-c", "cat; echo err >&2; exit 4"], stdin=True)
        await session.write(b"through stdin\n")
        await session.close_stdin()
        out, err = b"", b""
        while (frame := await session.read()) is not None:
            if frame[0] == ExecSession.STDOUT:
                out += frame[1]
            else:
                err += frame[1]
        await session.close()
        return out, err, await session.exit_code()

    assert asyncio.run(talk()) == (b"through stdin\n", b"err\n", 4)


def test_attach_reaches_the_main_process_and_stdin_once_closes_its_stdin(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    pod = new_pod("attach")
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    image = {"image": "minikube-py/busybox:latest", "imagePullPolicy": "Never"}
    script = "while read line; do echo got-$line; echo err-$line >&2; done; echo stdin-closed"
    reader = run_container(
        runtime,
        pod,
        {"name": "reader", **image, "command": ["sh", "-c", script], "stdin": True,
         "stdinOnce": True},
        sandbox,
        env={},
    )  # fmt: skip
    terminal = run_container(
        runtime,
        pod,
        {"name": "terminal", **image, "command": ["sh"], "stdin": True, "tty": True},
        sandbox,
        env={},
    )
    chatter = run_container(
        runtime,
        pod,
        {"name": "chatter", **image, "stdin": True,
         "command": ["sh", "-c", 'while read l; do echo "got-$l"; [ "$l" = quit ] && exit; done']},
        sandbox,
        env={},
    )  # fmt: skip
    assert reader.attrs["Config"]["StdinOnce"] is True
    assert terminal.attrs["Config"]["StdinOnce"] is False

    async def talk() -> tuple[bytes, bytes]:
        session = await runtime.attach(reader, stdin=True)
        await session.write(b"one\ntwo\n")
        await session.close_stdin()
        out, err = b"", b""
        async with asyncio.timeout(20):
            while (frame := await session.read()) is not None:
                if frame[0] == StreamSession.STDOUT:
                    out += frame[1]
                else:
                    err += frame[1]
        await session.close()
        return out, err

    assert asyncio.run(talk()) == (b"got-one\ngot-two\nstdin-closed\n", b"err-one\nerr-two\n")
    eventually(lambda: "terminated" in runtime.container_state(reader))

    async def shell() -> bytes:
        session = await runtime.attach(terminal, stdin=True)
        await session.resize(33, 101)
        await session.write(b"stty size; exit 0\n")
        out = b""
        async with asyncio.timeout(20):
            while (frame := await session.read()) is not None:
                out += frame[1]
        await session.close()
        return out

    assert b"33 101" in asyncio.run(shell())  # one tty stream, sized by the client

    async def chat(line: bytes, stays: bool) -> bytes:
        session = await runtime.attach(chatter, stdin=True)
        await session.write(line)
        await session.close_stdin()  # without stdinOnce: the process's stdin stays open
        frame = await asyncio.wait_for(session.read(), 20)
        assert frame is not None
        if stays:
            with pytest.raises(TimeoutError):  # the process still waits for more
                await asyncio.wait_for(session.read(), 1)
        else:
            assert await asyncio.wait_for(session.read(), 20) is None
        await session.close()
        return frame[1]

    assert asyncio.run(chat(b"first\n", stays=True)) == b"got-first\n"
    assert asyncio.run(chat(b"quit\n", stays=False)) == b"got-quit\n"  # a second attach


def test_sub_path_binds_the_current_version_of_a_volume_file(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    pod = new_pod("subpath")
    uid = pod["metadata"]["uid"]
    directory = runtime.pod_dir(uid) / "volumes" / "config"
    write_atomic(directory, {"app.conf": (b"v1\n", 0o644)})
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    mounts = [
        {"name": "config", "mountPath": "/config"},
        {"name": "config", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
    ]
    main = run_container(
        runtime,
        pod,
        {"name": "main", "image": "minikube-py/busybox:latest", "imagePullPolicy": "Never",
         "args": ["sleep", "60"], "volumeMounts": mounts},
        sandbox,
        env={},
        prepared_volumes={"config": directory},
    )  # fmt: skip

    def read(path: str) -> str:
        return asyncio.run(exec_output(runtime, main, ["cat", path]))

    assert read("/config/app.conf") == read("/etc/app.conf") == "v1\n"
    write_atomic(directory, {"app.conf": (b"v2\n", 0o644)})
    assert read("/config/app.conf") == "v2\n"  # the directory mount follows the swap
    assert read("/etc/app.conf") == "v1\n"  # the subPath mount keeps its version

    escape = {"name": "config", "mountPath": "/x", "subPath": "link"}
    (directory / "link").symlink_to("/etc")
    with pytest.raises(RuntimeFailure, match="leaves its volume"):
        run_container(
        runtime,
            pod,
            {"name": "escape", "image": "minikube-py/busybox:latest",
             "imagePullPolicy": "Never", "volumeMounts": [escape]},
            sandbox,
            env={},
            prepared_volumes={"config": directory},
        )  # fmt: skip


def test_pod_containers_share_the_sandbox_ipc_and_run_unconfined_unless_asked(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    """As in Kubernetes: a pod's containers share its IPC namespace, and run without a
    seccomp filter unless the pod or container asks for RuntimeDefault."""
    pod = new_pod("ipc")
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    spec = dict(SLEEPER)
    main = run_container(runtime, pod, spec, sandbox, env={})
    confined = {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}
    strict = run_container(runtime, pod, {**spec, "name": "strict", **confined}, sandbox, env={})
    sandbox_ipc = Path(f"/proc/{runtime.sandbox_pid(sandbox)}/ns/ipc").readlink()
    for container in (main, strict):
        ipc = asyncio.run(exec_output(runtime, container, ["readlink", "/proc/1/ns/ipc"]))
        assert ipc.strip() == str(sandbox_ipc)

    def seccomp_mode(container: Container) -> str:
        status = asyncio.run(exec_output(runtime, container, ["cat", "/proc/1/status"]))
        return next(line.split()[1] for line in status.splitlines() if line.startswith("Seccomp:"))

    assert seccomp_mode(main) == "0"  # disabled
    assert seccomp_mode(strict) == "2"  # filtered


def test_pod_containers_are_inspected_again_only_when_their_state_changes(
    runtime: DockerRuntime, new_pod: Callable[..., dict]
) -> None:
    pod = new_pod("cached")
    uid = pod["metadata"]["uid"]
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    spec = dict(SLEEPER)
    main = run_container(runtime, pod, spec, sandbox, env={})
    first = {c.id: c for c in runtime.pod_containers(uid)}
    assert set(first) == {sandbox.id, main.id}
    assert all(first[c.id] is c for c in runtime.pod_containers(uid))  # unchanged: kept
    runtime.client.api.kill(main.id)  # behind the runtime's back, as a crash would be
    eventually(
        lambda: runtime.client.api.inspect_container(main.id)["State"]["Status"] != "running"
    )
    again = {c.id: c for c in runtime.pod_containers(uid)}
    assert again[sandbox.id] is first[sandbox.id]
    assert "terminated" in state_from_docker(main.id, again[main.id].attrs["State"])


def test_a_died_container_is_inspected_even_while_the_list_still_says_running(
    runtime: DockerRuntime, new_pod: Callable[..., dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker 20.10 sends a container's `die` event before its container list stops
    saying `running`. A pod synced on that event must see the exit all the same,
    not wait for the next periodic sync."""
    pod = new_pod("died")
    uid = pod["metadata"]["uid"]
    sandbox = run_sandbox(runtime, pod, hosts=HOSTS, resolv_conf=RESOLV)
    main = run_container(runtime, pod, dict(SLEEPER), sandbox, env={})
    runtime.pod_containers(uid)  # both inspected while running
    runtime.client.api.kill(main.id)
    eventually(
        lambda: runtime.client.api.inspect_container(main.id)["State"]["Status"] != "running"
    )
    listed = runtime.client.api.containers

    def list_from_before_the_exit(*args: object, **kwargs: object) -> list[dict]:
        return [{**c, "State": "running"} for c in listed(*args, **kwargs)]

    monkeypatch.setattr(runtime.client.api, "containers", list_from_before_the_exit)
    stale = {c.id: c for c in runtime.pod_containers(uid)}
    assert stale[main.id].status == "running"  # the list alone cannot tell
    runtime.container_died(uid, main.id)
    fresh = {c.id: c for c in runtime.pod_containers(uid)}
    assert "terminated" in state_from_docker(main.id, fresh[main.id].attrs["State"])
    assert fresh[sandbox.id] is stale[sandbox.id]  # the others are not inspected again
