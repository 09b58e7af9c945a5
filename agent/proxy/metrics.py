"""The proxy's metrics, in the Prometheus text format, as kube-proxy names them.

- `kubeproxy_sync_proxy_rules_duration_seconds` (histogram): one sync, render to applied;
- `kubeproxy_network_programming_duration_seconds` (histogram): from the change in the
  API to the rules that carry it being in the kernel, per changed Service;
- `minikube_py_proxy_rules` (gauge, label `mode`): the rules the proxy holds in the kernel.

The change time of a Service is the latest of: its EndpointSlices'
`endpoints.kubernetes.io/last-change-trigger-time` annotation (RFC 3339 with fraction,
set by an EndpointSlice controller that records when the triggering Pod/Service change
happened), else the newest `managedFields[].time` or `creationTimestamp` of the Service
and its slices (whole seconds only, so latencies measured that way are coarse).
`PROXY_METRICS` is the proxy's registry; the agent server renders it on /metrics.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterable

from minikube_py.api.types import Obj

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
# kube-proxy's buckets: 1 ms doubling to ~16 s
BUCKETS = tuple(0.001 * 2**i for i in range(15))


def parse_time(text: str) -> float | None:
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def change_time(service: Obj | None, slices: Iterable[Obj]) -> float | None:
    """When the API last changed this Service's proxying (epoch seconds), or None."""
    slices = list(slices)
    triggers = [
        t
        for s in slices
        if (
            t := parse_time(
                (s.get("metadata", {}).get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION, "")
            )
        )
        is not None
    ]
    if triggers:
        return max(triggers)
    written = []
    for obj in ([service] if service else []) + slices:
        metadata = obj.get("metadata") or {}
        stamps = [m.get("time", "") for m in metadata.get("managedFields") or []]
        stamps.append(metadata.get("creationTimestamp") or "")
        written += [t for t in map(parse_time, stamps) if t is not None]
    return max(written, default=None)


class Histogram:
    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0
        self.samples: list[float] = []  # the last few, for percentiles in tests and bench

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value
        self.samples = [*self.samples[-999:], value]

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        lines += [
            f'{self.name}_bucket{{le="{bound:g}"}} {count}'
            for bound, count in zip(BUCKETS, self.counts, strict=True)
        ]
        lines += [
            f'{self.name}_bucket{{le="+Inf"}} {self.total}',
            f"{self.name}_sum {self.sum:.6f}",
            f"{self.name}_count {self.total}",
        ]
        return lines


class ProxyMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # syncs run in worker threads
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
        )
        self.network_programming = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
        )
        self.rules: dict[str, int] = {}

    def record_sync(self, mode: str, seconds: float, rules: int) -> None:
        with self._lock:
            self.sync_duration.observe(seconds)
            self.rules[mode] = rules

    def record_programming(self, seconds: float) -> None:
        with self._lock:
            self.network_programming.observe(max(seconds, 0.0))

    def render(self) -> str:
        with self._lock:
            lines = self.sync_duration.render() + self.network_programming.render()
            lines += [
                "# HELP minikube_py_proxy_rules Rules the proxy holds in the kernel",
                "# TYPE minikube_py_proxy_rules gauge",
            ]
            lines += [f'minikube_py_proxy_rules{{mode="{m}"}} {n}' for m, n in self.rules.items()]
        return "\n".join(lines) + "\n"


PROXY_METRICS = ProxyMetrics()
