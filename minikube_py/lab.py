"""The lab launcher: the processes of one cluster on this machine, and their state.

Everything lives under the state dir (`$MINIKUBE_PY_HOME`, default `~/.minikube-py`):
`pki/` (CA, serving cert), `tokens` (bearer tokens), `etcd/` (data), `logs/<component>.log`
and `run/<component>.pid`. Components run detached in their own sessions so they
outlive the CLI; `stop` ends them by the pids recorded here (never by pattern) and
keeps the data, `delete` also removes the state dir and the kubeconfig entry.
Starting is idempotent: a component whose pid is alive is left alone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from minikube_py import certs, kubeconfig
from minikube_py.etcd import Member, start_member, wait_healthy

Progress = Callable[[str], None]


def default_home() -> Path:
    return Path(os.environ.get("MINIKUBE_PY_HOME") or Path.home() / ".minikube-py")


@dataclass
class LabConfig:
    """Settings chosen at the first `start`, persisted in `config.json` so later
    commands (stop, status, node add) act on the same cluster."""

    name: str = "mkpy"
    apiserver_port: int = 8443
    bind_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    etcd_servers: str = ""  # empty: run our own etcd
    etcd_client_port: int = 23790
    etcd_peer_port: int = 23800
    service_cidr: str = "10.96.0.0/16"
    cluster_cidr: str = "10.244.0.0/16"  # pod addresses; node N gets the N-th /24
    node_subnet: str = "192.168.49.0/24"  # the node network; LoadBalancer pool .200-.250
    node_port_range: str = "30000-32767"
    nodes: int = 2
    node_indexes: list[int] = field(default_factory=list)  # lab nodes that exist
    proxy_mode: str = "nftables"
    dns_upstreams: list[str] = field(default_factory=list)
    apiserver_workers: int = 1  # serving processes on one port (more on machines with cores)

    @property
    def server_url(self) -> str:
        return f"https://{self.bind_addresses[0]}:{self.apiserver_port}"


class Lab:
    def __init__(
        self,
        home: Path | None = None,
        config: LabConfig | None = None,
        kubeconfig_path: Path | None = None,
    ) -> None:
        self.home = home or default_home()
        self.config = config or self._load_config() or LabConfig()
        self.kubeconfig_path = kubeconfig_path

    # ------------------------------------------------------------------ state files

    def _load_config(self) -> LabConfig | None:
        path = self.home / "config.json"
        if not path.exists():
            return None
        return LabConfig(**json.loads(path.read_text()))

    def save_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.json").write_text(json.dumps(asdict(self.config), indent=2))

    def log_path(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def _pid_path(self, component: str) -> Path:
        return self.home / "run" / f"{component}.pid"

    def pid(self, component: str) -> int | None:
        path = self._pid_path(component)
        try:
            pid = int(path.read_text())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def _record(self, component: str, proc: subprocess.Popen[bytes]) -> None:
        path = self._pid_path(component)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(proc.pid))

    def _secret(self, filename: str) -> Path:
        path = self.home / filename
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(24) + "\n")
            os.chmod(path, 0o600)
        return path

    def admin_token(self) -> str:
        """The bearer token of the admin user (kubeconfig, controllers, agents)."""
        return self._secret("tokens").read_text().split()[0]

    @property
    def agent_token_file(self) -> Path:
        """The token the apiserver presents to node agents; only they accept it."""
        return self._secret("agent-token")

    # ------------------------------------------------------------------ components

    def spawn(self, component: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Start a detached component unless its recorded pid is alive; returns the pid."""
        running = self.pid(component)
        if running:
            return running
        log = self.log_path(component)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        self._record(component, proc)
        return proc.pid

    def etcd_member(self) -> Member:
        return Member(
            "mkpy-etcd",
            self.home / "etcd",
            self.config.etcd_client_port,
            self.config.etcd_peer_port,
        )

    def etcd_servers(self) -> str:
        return self.config.etcd_servers or self.etcd_member().client_url

    def start_etcd(self, wait: bool = True) -> None:
        """Our own etcd, unless the lab uses external endpoints. With `wait=False` it
        returns once etcd is launched: the apiserver retries until the store answers."""
        if self.config.etcd_servers:
            return
        member = self.etcd_member()
        if not self.pid("etcd"):
            proc = start_member(member, self.log_path("etcd"))
            self._record("etcd", proc)
        if wait:
            wait_healthy([member], timeout=30)

    def start_apiserver(self, extra_ips: list[str] | None = None, wait: bool = True) -> None:
        pki = self.home / "pki"
        ips = sorted(
            {
                *self.config.bind_addresses,
                "127.0.0.1",
                *(extra_ips or []),
                _first_ip(self.config.service_cidr),
            }
        )
        crt, key = certs.ensure_serving_cert(
            pki,
            ips,
            [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )
        self.admin_token()
        argv = [
            sys.executable,
            "-m",
            "apiserver",
            "--etcd-servers",
            self.etcd_servers(),
            "--secure-port",
            str(self.config.apiserver_port),
            "--tls-cert-file",
            str(crt),
            "--tls-private-key-file",
            str(key),
            "--token-file",
            str(self.home / "tokens"),
            "--agent-token-file",
            str(self.agent_token_file),
            "--service-account-signing-key-file",
            str(certs.ensure_service_account_key(pki)),
            "--service-cluster-ip-range",
            self.config.service_cidr,
            "--service-node-port-range",
            self.config.node_port_range,
            "--workers",
            str(self.config.apiserver_workers),
        ]
        for addr in self.config.bind_addresses:
            argv += ["--bind-address", addr]
        # the `kubernetes` Service's endpoint: an address pods reach (the node bridge's)
        reachable = [a for a in self.config.bind_addresses if not a.startswith("127.")]
        if reachable:
            argv += ["--advertise-address", reachable[0]]
        self.spawn("apiserver", argv)
        if wait:
            self.wait_apiserver()

    def wait_apiserver(self, timeout: float = 30.0) -> None:
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.home / "pki" / "ca.crt"))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            for component in ("apiserver", *(() if self.config.etcd_servers else ("etcd",))):
                if not self.pid(component):
                    raise RuntimeError(
                        f"{component} exited; see {self.log_path(component)}:\n"
                        + _tail(self.log_path(component))
                    )
            try:
                with urllib.request.urlopen(
                    f"{self.config.server_url}/readyz", timeout=2, context=ctx
                ) as r:
                    if r.status == 200:
                        return
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise TimeoutError(f"apiserver not ready after {timeout:.0f}s: {last}")

    def write_kubeconfig(self) -> Path:
        """The user's kubeconfig context, and the lab's own copy its components use."""
        ca = (self.home / "pki" / "ca.crt").read_bytes()
        kubeconfig.write_context(
            self.config.server_url, ca, self.admin_token(), self.admin_kubeconfig
        )
        return kubeconfig.write_context(
            self.config.server_url, ca, self.admin_token(), self.kubeconfig_path
        )

    @property
    def admin_kubeconfig(self) -> Path:
        return self.home / "admin.kubeconfig"

    def start_controller_manager(self) -> None:
        import ipaddress

        subnet = ipaddress.IPv4Network(self.config.node_subnet)
        pool = f"{subnet.network_address + 200}-{subnet.network_address + 250}"
        self.spawn(
            "controller-manager",
            [
                sys.executable, "-m", "minikube_py.controllers",
                "--kubeconfig", str(self.admin_kubeconfig),
                "--leader-elect",
                "--cluster-cidr", self.config.cluster_cidr,
                "--load-balancer-pool", pool,
                "--root-ca-file", str(self.home / "pki" / "ca.crt"),
            ],
        )  # fmt: skip

    def start_control_plane(self, progress: Progress = lambda _: None, wait: bool = True) -> Path:
        """etcd, apiserver and controller-manager, launched together: the apiserver's
        start-up overlaps etcd's, and it retries until etcd answers. With `wait=False` it
        returns once the processes are launched (the caller overlaps other work, then
        `wait_apiserver`)."""
        self.save_config()
        progress(
            "starting etcd"
            if not self.config.etcd_servers
            else f"using etcd at {self.config.etcd_servers}"
        )
        self.start_etcd(wait=False)
        progress("starting apiserver and controller-manager")
        self.start_apiserver(wait=wait)
        path = self.write_kubeconfig()
        self.start_controller_manager()
        progress(f"kubeconfig context 'minikube-py' written to {path}")
        return path

    # ------------------------------------------------------------------ stop, delete

    def stop_component(self, component: str, timeout: float = 10.0) -> bool:
        pid = self.pid(component)
        if pid is None:
            self._pid_path(component).unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid(component):
            time.sleep(0.05)
        if self.pid(component):
            os.kill(pid, signal.SIGKILL)
        self._pid_path(component).unlink(missing_ok=True)
        return True

    def components(self) -> list[str]:
        run = self.home / "run"
        return sorted(p.stem for p in run.glob("*.pid")) if run.exists() else []

    def stop(self, progress: Progress = lambda _: None) -> None:
        # dependents first, the store last
        order = sorted(self.components(), key=lambda c: (c == "etcd", c == "apiserver", c))
        for component in order:
            if self.stop_component(component):
                progress(f"stopped {component}")

    def delete(self, progress: Progress = lambda _: None) -> None:
        import shutil

        self.stop(progress)
        kubeconfig.remove_context(self.kubeconfig_path)
        if self.home.exists():
            shutil.rmtree(self.home)
            progress(f"removed {self.home}")

    def status(self) -> dict[str, int | None]:
        return {c: self.pid(c) for c in self.components()}


def free_port() -> int:
    """A TCP port free on loopback right now (for private labs of tests and benches)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_lab(home: Path, prefix: str, **config: Any) -> Lab:
    """A lab of its own beside any other on the machine: a random cluster name starting
    with `prefix` and free loopback ports; `config` overrides other LabConfig fields."""
    settings: dict[str, Any] = {
        "name": prefix + secrets.token_hex(3),
        "apiserver_port": free_port(),
        "etcd_client_port": free_port(),
        "etcd_peer_port": free_port(),
        **config,
    }
    return Lab(home, LabConfig(**settings), kubeconfig_path=home / "kubeconfig")


def process_alive(pid: int) -> bool:
    """Alive and not a zombie: a detached component whose parent exited is reparented
    to a pid 1 that may never reap it, so `kill(pid, 0)` alone would say "alive"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _first_ip(cidr: str) -> str:
    import ipaddress

    return str(ipaddress.IPv4Network(cidr).network_address + 1)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
