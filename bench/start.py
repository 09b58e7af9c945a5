"""Lab start time and memory: `minikube-py start --nodes 3` until every node is Ready.

Runs the real CLI with a private state dir, then reads the resident memory of each
process it started (from /proc, by the pids the lab recorded), and deletes the lab. As
the same-run peer it times a bare etcd start (the store alone: what any control plane
must wait for) and prints the ratio. Goals from the issue: start under 5 s (kind takes
about 33 s, k3d about 20 s in minikube's time-to-k8s benchmark); control plane under
150 MB, an agent under 60 MB.

Run as root: .venv/bin/python bench/start.py [--nodes 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minikube_py.etcd import Member, start_member, wait_healthy
from minikube_py.lab import Lab, free_port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bare_etcd_seconds(tmp: Path) -> float:
    member = Member("bench-etcd", tmp / "etcd-peer", free_port(), free_port())
    started = time.monotonic()
    proc = start_member(member, tmp / "etcd-peer.log")
    try:
        wait_healthy([member])
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/start.py needs root")
    tmp = Path(tempfile.mkdtemp(prefix="mkpy-bench-start-"))
    env = {
        **os.environ,
        "MINIKUBE_PY_HOME": str(tmp / "home"),
        "KUBECONFIG": str(tmp / "kubeconfig"),
    }
    cli = [sys.executable, "-m", "minikube_py.cli"]
    try:
        peer = bare_etcd_seconds(tmp)
        started = time.monotonic()
        subprocess.run(
            [*cli, "start", "--nodes", str(args.nodes)],
            env=env,
            check=True,
            stderr=subprocess.DEVNULL,
            timeout=300,
        )
        took = time.monotonic() - started
        lab = Lab(tmp / "home")
        memory = {c: rss_mb(pid) for c, pid in lab.status().items() if pid}
    finally:
        subprocess.run([*cli, "delete"], env=env, stderr=subprocess.DEVNULL, timeout=300)
        shutil.rmtree(tmp, ignore_errors=True)

    control_plane = sum(v for k, v in memory.items() if not k.startswith("agent-"))
    agents = {k: v for k, v in memory.items() if k.startswith("agent-")}
    print(
        f"start --nodes {args.nodes} to all nodes Ready: {took:.1f} s "
        f"(goal < 5 s; kind ~33 s, k3d ~20 s)"
    )
    print(f"bare etcd start in the same run: {peer:.2f} s; ratio lab/etcd: {took / peer:.1f}x")
    print("resident memory (MB):")
    for component, mb in sorted(memory.items()):
        print(f"  {component:28} {mb:7.1f}")
    print(f"  {'control plane total':28} {control_plane:7.1f} (goal < 150)")
    if agents:
        print(f"  {'largest agent':28} {max(agents.values()):7.1f} (goal < 60)")


if __name__ == "__main__":
    main()
