"""`python -m minikube_py.controllers --kubeconfig PATH [--leader-elect] ...`

Defaults are the lab's (node monitor grace 10 s, pod eviction timeout 30 s, orphaned pod
quarantine 10 s, Lease 15 s); kube's own defaults are 40 s, 300 s and 40 s.
"""

from __future__ import annotations

# First: aiohttp imported without its CA stores, smaller TLS buffers (resident memory).
import minikube_py.lean_tls  # noqa: F401

# isort: split

import argparse
import logging
from pathlib import Path

from minikube_py.client import Client, Credentials
from minikube_py.controllers.leader import LeaderConfig
from minikube_py.controllers.manager import CONTROLLERS, ManagerConfig, main_async


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="minikube-py controller-manager")
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--leader-elect", action="store_true")
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    p.add_argument("--leader-elect-resource-name", default="minikube-py-controller-manager")
    p.add_argument("--identity", default="", help="leader election identity")
    p.add_argument(
        "--controllers",
        default=",".join(CONTROLLERS),
        help=f"comma-separated subset of: {', '.join(CONTROLLERS)}",
    )
    p.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=10.0,
        help="seconds without a node heartbeat before Ready=Unknown (kube: 40)",
    )
    p.add_argument(
        "--pod-eviction-timeout",
        type=float,
        default=30.0,
        help="seconds pods without a toleration stay on an unreachable node "
        "(kube's default toleration: 300)",
    )
    p.add_argument(
        "--pod-gc-orphan-quarantine",
        type=float,
        default=10.0,
        help="seconds a node must have been gone before its pods are deleted (kube: 40)",
    )
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--load-balancer-pool", default="192.168.49.200-192.168.49.250")
    p.add_argument(
        "--root-ca-file",
        type=Path,
        default=None,
        help="PEM CA bundle published as ConfigMap kube-root-ca.crt in every namespace "
        "(root-ca-cert-publisher; without it, that controller does nothing)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def read_root_ca(path: Path | None) -> str:
    """The PEM text of `--root-ca-file` ('' without one); an unreadable file or one
    without a certificate stops the process at start, as in kube."""
    if path is None:
        return ""
    try:
        text = path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"error reading root-ca-file at {path}: {e}") from e
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise SystemExit(f"root-ca-file at {path} holds no PEM certificate")
    return text


def manager_config(args: argparse.Namespace) -> ManagerConfig:
    names = [n.strip() for n in args.controllers.split(",") if n.strip()]
    unknown = set(names) - set(CONTROLLERS)
    if unknown:
        raise SystemExit(f"unknown controllers: {', '.join(sorted(unknown))}")
    config = ManagerConfig(
        controllers=names,
        leader_elect=args.leader_elect,
        leader=LeaderConfig(
            name=args.leader_elect_resource_name,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        ),
        options={
            "node_monitor_grace": args.node_monitor_grace_period,
            "pod_eviction_timeout": args.pod_eviction_timeout,
            "orphan_quarantine": args.pod_gc_orphan_quarantine,
            "cluster_cidr": args.cluster_cidr,
            "lb_pool": args.load_balancer_pool,
            "root_ca": read_root_ca(args.root_ca_file),
        },
    )
    if args.identity:
        config.identity = args.identity
    return config


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = manager_config(args)
    client = Client(
        Credentials.from_kubeconfig(args.kubeconfig),
        user_agent="minikube-py-controller-manager",
        field_manager="kube-controller-manager",
        field_validation="Ignore",
    )
    main_async(client, config)


if __name__ == "__main__":
    main()
