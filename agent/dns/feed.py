"""Keeps a DNS server's table in step with the informer caches.

Any change to a Service marks the table stale, and so does a change of what the table
reads of the rest: the EndpointSlices of headless Services (only their endpoints have
names; a ClusterIP Service's slices change nothing here) and a Pod's hostname under a
subdomain (the name of a headless Service's endpoint). Other changes, readiness flips
and pod status writes above all, leave it as it is: they are most of a cluster's events,
and every agent watches them all. One task rebuilds it from the caches' current
contents (level-triggered: the events carry no data it uses) after a short pause that
coalesces bursts, in a worker thread so that a rebuild never stalls the queries, and
swaps it into the server; the rebuild keeps the records of every unchanged Service
(`TableBuilder`: 75 ms at 10,000 Services against 1.2-1.6 s from nothing). A change is
thus answered within the pause plus one rebuild, well under the 1 s the issue asks.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from agent.dns.records import SERVICE_NAME_LABEL, TableBuilder
from agent.dns.server import DnsServer
from minikube_py.api.types import Obj, labels_of, namespace_of

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05


Handler = Callable[[str, Obj, Obj | None], None]


class ObjectCache(Protocol):
    """What the feed needs of an informer (minikube_py.informer.Informer has it)."""

    def add_handler(self, handler: Handler) -> None: ...

    def items(self) -> list[Obj]: ...

    def get(self, key: str) -> Obj | None: ...


class DnsTableFeed:
    def __init__(
        self,
        server: DnsServer,
        services: ObjectCache,
        endpointslices: ObjectCache,
        pods: ObjectCache,
        *,
        zone: str = "cluster.local",
        ttl: int = 5,
    ) -> None:
        self.server = server
        self.services = services
        self.caches = (services, endpointslices, pods)
        self.builder = TableBuilder(zone, ttl)  # keeps unchanged Services' records
        self._stale = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        services.add_handler(self._mark_stale)
        endpointslices.add_handler(self._on_slice)
        pods.add_handler(self._on_pod)

    def start(self) -> None:
        """Build once now (the caches may already be synced) and on every change after."""
        self._stale.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dns-table-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _mark_stale(self, kind: str, new: Obj, old: Obj | None) -> None:
        self._stale.set()

    def _on_slice(self, kind: str, new: Obj, old: Obj | None) -> None:
        service_name = labels_of(new).get(SERVICE_NAME_LABEL)
        service = self.services.get(f"{namespace_of(new)}/{service_name}")
        if service is None or (service.get("spec") or {}).get("clusterIP") == "None":
            self._stale.set()  # a headless Service's, or one not known yet

    def _on_pod(self, kind: str, new: Obj, old: Obj | None) -> None:
        before, after = (None if old is None else pod_host(old)), pod_host(new)
        if (before, after) != (None, None) and (kind != "MODIFIED" or before != after):
            self._stale.set()

    async def _run(self) -> None:
        while True:
            await self._stale.wait()
            await asyncio.sleep(COALESCE_SECONDS)
            self._stale.clear()
            # Snapshots taken on the loop, where the informers write their caches.
            services, slices, pods = (cache.items() for cache in self.caches)
            try:
                table = await asyncio.to_thread(
                    self.builder.build, services, slices, pods, int(time.time())
                )
            except Exception:  # keep serving the last good table; the next change retries
                log.exception("building the DNS table failed")
                continue
            self.server.update(table)


def pod_host(pod: Obj) -> tuple[str, str] | None:
    """(hostname, subdomain) of a pod that has both: all the DNS table reads of a pod."""
    spec = pod.get("spec") or {}
    hostname, subdomain = spec.get("hostname"), spec.get("subdomain")
    return (str(hostname), str(subdomain)) if hostname and subdomain else None
