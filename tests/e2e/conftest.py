"""Shared e2e fixtures: a real Docker engine and the lab's local images.

They fail loudly (never skip) when the machine cannot provide them: e2e tests exist to
prove the real thing works. A dockerd started here is left running for the rest of the
machine's life, like an installed service; its log is under E2E_STATE_DIR.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from minikube_py.docker_engine import DockerEngineError, ensure_dockerd
from minikube_py.images import BUSYBOX_IMAGE, PAUSE_IMAGE, ensure_images

E2E_STATE_DIR = Path(os.environ.get("MKPY_E2E_STATE_DIR", "/tmp/minikube-py-e2e"))


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("e2e tests need root (network namespaces, bridges, Docker)", pytrace=False)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    """A client of a Docker engine that answers, started here when none ran."""
    require_root()
    try:
        ensure_dockerd(E2E_STATE_DIR / "dockerd")
    except (DockerEngineError, OSError) as error:
        pytest.fail(f"no Docker engine: {error}", pytrace=False)
    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="session")
def local_images(docker_engine: docker.DockerClient) -> dict[str, str]:
    """The lab's images, built when missing: {'pause': name, 'busybox': name}."""
    ensure_images(docker_engine)
    return {"pause": PAUSE_IMAGE, "busybox": BUSYBOX_IMAGE}
