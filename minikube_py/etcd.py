"""Running etcd members as child processes: the lab's store, and the tests' clusters.

A member is described by its name, data dir and ports; `start_member` launches it
detached (its own session, output to a log file) so it outlives the CLI that started
it, and `wait_healthy` polls its /health endpoint on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ETCD_BINARY = "etcd"


@dataclass(frozen=True)
class Member:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"


def find_etcd() -> str:
    path = shutil.which(ETCD_BINARY) or (
        "/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None
    )
    if path is None:
        raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
    return path


def start_member(
    member: Member, log_file: Path, cluster: list[Member] | None = None
) -> subprocess.Popen[bytes]:
    """Start one member; `cluster` lists every member when it is part of a cluster."""
    members = cluster or [member]
    member.data_dir.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        find_etcd(),
        "--name",
        member.name,
        "--data-dir",
        str(member.data_dir),
        "--listen-client-urls",
        member.client_url,
        "--advertise-client-urls",
        member.client_url,
        "--listen-peer-urls",
        member.peer_url,
        "--initial-advertise-peer-urls",
        member.peer_url,
        "--initial-cluster",
        ",".join(f"{m.name}={m.peer_url}" for m in members),
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        f"mkpy-{members[0].name}",
        # revisions kept for watch resumption; etcd compacts older ones itself
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "100000",
        "--quota-backend-bytes",
        str(2 * 1024**3),
        "--log-level",
        "warn",
    ]
    env = {**os.environ, "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")}
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def healthy(member: Member, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{member.client_url}/health", timeout=timeout) as r:
            return bool(json.loads(r.read()).get("health") in ("true", True))
    except (OSError, ValueError):
        return False


def wait_healthy(members: list[Member], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(healthy(m) for m in members):
            return
        time.sleep(0.1)
    raise TimeoutError(f"etcd not healthy after {timeout:.0f}s: {[m.name for m in members]}")
