"""The Docker engine the lab runs pods on, and the host firewall rules the lab needs.

`ensure_dockerd` uses a running engine when one answers and otherwise starts
`/usr/sbin/dockerd` in its own session (so it outlives the caller), with its pidfile and
log under the lab's state directory; `stop_dockerd` stops only an engine started that way.

dockerd sets the host's iptables FORWARD policy to DROP and enables br_netfilter, which
drops the lab's bridged traffic on the host. `ensure_forward_rules` accepts what stays on
a lab's bridge (and drops what would leave it) in a chain of our own, `MKPY-FORWARD`,
jumped to from `DOCKER-USER` (Docker keeps that chain first in FORWARD) or from FORWARD
when Docker's chains are absent. Each rule carries a comment naming its owner (a
cluster), so `remove_forward_rules` removes exactly the rules that owner added.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

DOCKERD = "/usr/sbin/dockerd"
FORWARD_CHAIN = "MKPY-FORWARD"
START_TIMEOUT_SECONDS = 30.0


class DockerEngineError(RuntimeError):
    """No Docker engine answers and none could be started."""


def docker_answers() -> bool:
    try:
        client = docker.from_env(timeout=5)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False
    finally:
        client.close()


def ensure_dockerd(state_dir: Path, timeout: float = START_TIMEOUT_SECONDS) -> bool:
    """Make sure a Docker engine answers; returns True when this call started one."""
    if docker_answers():
        return False
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "dockerd.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [DOCKERD, "--pidfile", str(state_dir / "dockerd.pid")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_answers():
            return True
        if process.poll() is not None:
            raise DockerEngineError(
                f"dockerd exited with code {process.returncode}; see {log_path}:\n"
                + _tail(log_path)
            )
        time.sleep(0.2)
    raise DockerEngineError(
        f"dockerd did not answer within {timeout:.0f}s; see {log_path}:\n" + _tail(log_path)
    )


def stop_dockerd(state_dir: Path, timeout: float = 20.0) -> bool:
    """Stop the dockerd that `ensure_dockerd` started (by its pidfile); True if one ran."""
    pidfile = Path(state_dir) / "dockerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        # The pidfile may be stale and its pid reused: signal only a dockerd.
        if Path(f"/proc/{pid}/exe").resolve(strict=True) != Path(DOCKERD).resolve():
            return False
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check)


def _chain_exists(chain: str) -> bool:
    return _iptables("-S", chain, check=False).returncode == 0


def _jump_parent() -> str:
    return "DOCKER-USER" if _chain_exists("DOCKER-USER") else "FORWARD"


def forward_rules(owner: str, bridge: str) -> list[list[str]]:
    """Rule specs (without chain): the lab's bridge may forward to itself, nowhere else.

    Bridged node-to-node frames (br_netfilter) and traffic routed back into the lab pass;
    anything from the lab bound for another interface is dropped, so no lab packet
    leaves the machine through the host even where the host forwards.
    """
    comment = ["-m", "comment", "--comment", f"mkpy:{owner}"]
    return [
        ["-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT"],
        ["-i", bridge, *comment, "-j", "DROP"],
    ]


def ensure_forward_rules(owner: str, bridge: str) -> None:
    """Install the owner's rules in MKPY-FORWARD and the jump to it, idempotently."""
    if not _chain_exists(FORWARD_CHAIN):
        _iptables("-N", FORWARD_CHAIN)
    for rule in forward_rules(owner, bridge):
        if _iptables("-C", FORWARD_CHAIN, *rule, check=False).returncode != 0:
            _iptables("-A", FORWARD_CHAIN, *rule)
    parent = _jump_parent()
    if _iptables("-C", parent, "-j", FORWARD_CHAIN, check=False).returncode != 0:
        _iptables("-I", parent, "1", "-j", FORWARD_CHAIN)


def remove_forward_rules(owner: str) -> None:
    """Remove the owner's rules; the chain and its jumps go with the last rule."""
    if not _chain_exists(FORWARD_CHAIN):
        return
    for line in _iptables("-S", FORWARD_CHAIN).stdout.splitlines():
        words = shlex.split(line)
        if words[:2] == ["-A", FORWARD_CHAIN] and f"mkpy:{owner}" in words:
            _iptables("-D", FORWARD_CHAIN, *words[2:])
    if _iptables("-S", FORWARD_CHAIN).stdout.strip() == f"-N {FORWARD_CHAIN}":
        for parent in ("DOCKER-USER", "FORWARD"):
            while _iptables("-D", parent, "-j", FORWARD_CHAIN, check=False).returncode == 0:
                pass
        _iptables("-X", FORWARD_CHAIN)
