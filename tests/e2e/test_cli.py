"""The `minikube-py` CLI as a user runs it: start, status, apply/get/delete without
kubectl, stop keeping state, start again, delete removing everything.

The control plane uses an etcd the test starts (`--etcd-servers`), which also exercises
the external-store path; the state dir and kubeconfig are private to the test.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from minikube_py.etcd import Member, start_member, wait_healthy
from minikube_py.lab import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[str]:
    member = Member("cli-etcd", tmp_path / "etcd", free_port(), free_port())
    proc = start_member(member, tmp_path / "etcd.log")
    wait_healthy([member])
    yield member.client_url
    proc.terminate()
    proc.wait(10)


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "minikube_py.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"minikube-py {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def test_control_plane_lifecycle_and_objects_without_kubectl(tmp_path: Path, etcd: str) -> None:
    home, kubeconfig = tmp_path / "home", tmp_path / "kubeconfig"
    env = {**os.environ, "MINIKUBE_PY_HOME": str(home), "KUBECONFIG": str(kubeconfig)}
    port = str(free_port())
    try:
        cli(env, "start", "--nodes", "0", "--etcd-servers", etcd, "--apiserver-port", port)
        status = cli(env, "status")
        assert "apiserver" in status.stdout and "Running" in status.stdout
        assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "minikube-py"

        applied = cli(env, "apply", "-f", "examples/guide/")
        assert "service/test-service serverside-applied" in applied.stdout
        services = cli(env, "get", "svc", "-A")
        assert "80:30000/TCP" in services.stdout
        assert "test.service.com" in services.stdout
        bad = cli(env, "get", "svc", "missing", check=False)
        assert bad.returncode == 1
        assert 'services "missing" not found' in bad.stderr

        # YAML read as kubectl sends it: a date is a string; what JSON cannot hold, refused
        manifest = tmp_path / "dated.yaml"
        manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dated}\n"
                            "data: {day: 2024-01-31}\n")  # fmt: skip
        cli(env, "apply", "-f", str(manifest))
        got = json.loads(cli(env, "get", "configmap", "dated", "-o", "json").stdout)
        assert got["data"] == {"day": "2024-01-31"}
        manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: huge}\n"
                            "data: {n: 1180591620717411303424}\n")  # fmt: skip
        refused = cli(env, "apply", "-f", str(manifest), check=False)
        assert refused.returncode == 1 and refused.stderr.strip().count("\n") == 0
        assert "64-bit" in refused.stderr

        # idempotent start, then stop keeping state and start again
        cli(env, "start", "--nodes", "0", "--etcd-servers", etcd, "--apiserver-port", port)
        cli(env, "stop")
        assert cli(env, "status", check=False).returncode == 1
        cli(env, "start", "--nodes", "0", "--etcd-servers", etcd, "--apiserver-port", port)
        assert "80:30000/TCP" in cli(env, "get", "svc").stdout

        removed = cli(env, "delete", "-f", "examples/guide/nodeport.yaml")
        assert 'service "test-service" deleted' in removed.stdout
        assert "test-service" not in cli(env, "get", "svc").stdout
    finally:
        cli(env, "delete", check=False)
    assert not home.exists()
    contexts = yaml.safe_load(kubeconfig.read_text()).get("contexts") or []
    assert all(c["name"] != "minikube-py" for c in contexts)


def test_bad_input_gets_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "MINIKUBE_PY_HOME": str(tmp_path / "none")}
    proc = cli(env, "get", "pods", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "run `minikube-py start` first" in proc.stderr


def test_own_etcd_starts_with_the_apiserver_and_its_failure_is_reported(tmp_path: Path) -> None:
    """`start` launches its own etcd and the apiserver together; an etcd that cannot
    start (its peer port taken) is reported with its log at once, and a later start
    recovers."""
    home, kubeconfig = tmp_path / "home", tmp_path / "kubeconfig"
    env = {**os.environ, "MINIKUBE_PY_HOME": str(home), "KUBECONFIG": str(kubeconfig)}
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    home.mkdir()
    config = {
        "name": "cli" + secrets.token_hex(3),
        "apiserver_port": free_port(),
        "etcd_client_port": free_port(),
        "etcd_peer_port": blocker.getsockname()[1],
    }
    (home / "config.json").write_text(json.dumps(config))
    try:
        started = time.monotonic()
        failed = cli(env, "start", "--nodes", "0", check=False)
        assert failed.returncode == 1
        assert "etcd exited" in failed.stderr and "address already in use" in failed.stderr
        assert time.monotonic() - started < 20  # not the apiserver's 30 s wait
        cli(env, "stop")

        blocker.close()
        cli(env, "start", "--nodes", "0")
        status = cli(env, "status").stdout
        assert all(f"{c}" in status for c in ("etcd", "apiserver", "controller-manager"))
        namespace = json.loads(cli(env, "get", "ns", "default", "-o", "json").stdout)
        assert namespace["metadata"]["name"] == "default"  # bootstrapped once etcd answered
    finally:
        blocker.close()
        cli(env, "delete", check=False)
    assert not home.exists()
