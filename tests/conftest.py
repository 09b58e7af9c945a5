"""Fixtures shared by every test: a real etcd and a real apiserver, started through the
same launcher `minikube-py start` uses, on free loopback ports in a temporary home.

`control_plane` is session-wide (tests isolate themselves with their own namespaces);
`fresh_control_plane` gives a test its own cluster to stop and restart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minikube_py.client import Client, Credentials
from minikube_py.lab import Lab, private_lab


@dataclass
class ControlPlane:
    lab: Lab
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def client(self, name: str = "test") -> Client:
        return Client(Credentials.from_kubeconfig(self.kubeconfig), user_agent=name)


def start_control_plane(home: Path) -> ControlPlane:
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run scripts/setup.sh", pytrace=False)
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed", pytrace=False)
    lab = private_lab(home, "t", nodes=0)
    lab.start_control_plane()
    return ControlPlane(lab, home / "kubeconfig")


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path_factory.mktemp("cluster"))
    yield cp
    cp.lab.stop()


@pytest.fixture
def fresh_control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path / "cluster")
    yield cp
    cp.lab.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace of this test's own, removed afterwards. As kube's e2e framework, it
    waits for the controllers' objects in it (account `default`, `kube-root-ca.crt`), so
    that they never show up in the middle of a test's watch."""
    name = "t-" + uuid.uuid4().hex[:8]
    control_plane.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 20
    while control_plane.kubectl(
        "get", "serviceaccount/default", "configmap/kube-root-ca.crt", "-n", name, check=False
    ).returncode:
        assert time.monotonic() < deadline, f"namespace {name}: no default account or CA"
        time.sleep(0.1)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
