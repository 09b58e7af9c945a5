"""The control plane survives its parts failing: nothing is lost, nothing hangs.

Restarting the apiserver, or the whole control plane, keeps every object (uids,
resourceVersions, allocated ClusterIPs and their claims). While etcd is down clients
get a prompt 503, and the same apiserver process recovers when etcd returns. Against
a 3-member etcd cluster on loopback the apiserver keeps serving reads and writes when
the member it talks to is killed. Every wait is bounded.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from minikube_py.etcd import Member, start_member, wait_healthy
from minikube_py.lab import Lab, LabConfig, free_port
from tests.conftest import ControlPlane

REQUEST_TIMEOUT = 20  # seconds: any call slower than this counts as a hang


def core_api(kubeconfig: Path) -> Any:
    """Untyped: the generated client types every field Optional and every body as a
    model, and these tests pass plain dicts and assert on the values."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.retries = 0
    return client.CoreV1Api(client.ApiClient(cfg))


def service(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


def snapshot(core: Any) -> dict[str, tuple[str, str, str]]:
    """name -> (uid, resourceVersion, clusterIP) of every Service in default."""
    items = core.list_namespaced_service("default", _request_timeout=REQUEST_TIMEOUT).items
    return {
        s.metadata.name: (s.metadata.uid, s.metadata.resource_version, s.spec.cluster_ip)
        for s in items
    }


def test_restarts_lose_nothing(fresh_control_plane: ControlPlane) -> None:
    cp = fresh_control_plane
    core = core_api(cp.kubeconfig)
    for i in range(5):
        core.create_namespaced_service("default", service(f"keep-{i}"))
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "b"}})
    before = snapshot(core)
    assert len(before) == 6  # and the kubernetes Service

    old_pid = cp.lab.pid("apiserver")
    cp.lab.stop_component("apiserver")
    cp.lab.start_apiserver()
    assert cp.lab.pid("apiserver") != old_pid
    core = core_api(cp.kubeconfig)
    assert snapshot(core) == before

    # the whole control plane, etcd included
    cp.lab.stop()
    cp.lab.start_etcd()
    cp.lab.start_apiserver()
    core = core_api(cp.kubeconfig)
    assert snapshot(core) == before
    cm = core.read_namespaced_config_map("cfg", "default")
    assert cm.data == {"a": "b"}

    # the ClusterIP claims survived too: an explicit request for a held IP is refused
    held = before["keep-0"][2]
    taken = service("late")
    taken["spec"]["clusterIP"] = held
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_service("default", taken)
    assert refused.value.status == 422
    assert "provided IP is already allocated" in str(refused.value.body)


def test_etcd_outage_gives_503_and_recovers(fresh_control_plane: ControlPlane) -> None:
    cp = fresh_control_plane
    core = core_api(cp.kubeconfig)
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    apiserver = cp.lab.pid("apiserver")

    cp.lab.stop_component("etcd")
    for call in (
        lambda: core.read_namespaced_config_map(
            "before", "default", _request_timeout=REQUEST_TIMEOUT
        ),
        lambda: core.create_namespaced_config_map(
            "default", {"metadata": {"name": "during"}}, _request_timeout=REQUEST_TIMEOUT
        ),
    ):
        started = time.monotonic()
        with pytest.raises(ApiException) as down:
            call()
        assert down.value.status == 503
        assert time.monotonic() - started < 15

    cp.lab.start_etcd()
    deadline = time.monotonic() + 30
    while True:
        try:
            got = core.read_namespaced_config_map("before", "default", _request_timeout=5)
            break
        except ApiException as e:
            assert e.status == 503 and time.monotonic() < deadline, e
            time.sleep(0.5)
    assert got.metadata.name == "before"
    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    assert cp.lab.pid("apiserver") == apiserver  # recovered without a restart


# ------------------------------------------------------------------ etcd cluster


@dataclass
class EtcdCluster:
    members: list[Member]
    procs: list[subprocess.Popen[bytes]]

    @property
    def servers(self) -> str:
        return ",".join(m.client_url for m in self.members)

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait(10)


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    token = uuid.uuid4().hex[:6]
    members = [
        Member(f"mkpy-{token}-{i}", tmp_path / f"etcd{i}", free_port(), free_port())
        for i in range(3)
    ]
    procs = [start_member(m, tmp_path / f"etcd{i}.log", members) for i, m in enumerate(members)]
    try:
        wait_healthy(members, timeout=30)
        yield EtcdCluster(members, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def clustered_lab(tmp_path: Path, etcd_cluster: EtcdCluster) -> Iterator[Lab]:
    home = tmp_path / "lab"
    lab = Lab(
        home,
        LabConfig(
            name="t" + uuid.uuid4().hex[:6],
            apiserver_port=free_port(),
            etcd_servers=etcd_cluster.servers,
            nodes=0,
        ),
        kubeconfig_path=home / "kubeconfig",
    )
    lab.save_config()
    lab.start_etcd()  # nothing to start: the lab uses the cluster above
    try:
        lab.start_apiserver()
        lab.write_kubeconfig()
        yield lab
    finally:
        lab.stop()


def test_losing_one_etcd_member_is_invisible(clustered_lab: Lab, etcd_cluster: EtcdCluster) -> None:
    assert clustered_lab.kubeconfig_path is not None
    core = core_api(clustered_lab.kubeconfig_path)
    core.create_namespaced_config_map("default", {"metadata": {"name": "before"}})

    # the apiserver starts on the first endpoint: take exactly that one away
    etcd_cluster.kill(0)

    for i in range(10):
        started = time.monotonic()
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"after-{i}"}}, _request_timeout=REQUEST_TIMEOUT
        )
        got = core.read_namespaced_config_map("before", "default", _request_timeout=REQUEST_TIMEOUT)
        assert got.metadata.name == "before"
        assert time.monotonic() - started < 10
    names = {
        c.metadata.name
        for c in core.list_namespaced_config_map("default", _request_timeout=REQUEST_TIMEOUT).items
    }
    assert {"before", *(f"after-{i}" for i in range(10))} <= names
