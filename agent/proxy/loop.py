"""The proxy's control loop in the agent: informers -> `Proxier` syncs -> metrics.

Every Service or EndpointSlice change marks its Service dirty and wakes the loop, which
re-plans only the dirty Services (pure; a whole-node plan at 10k Services takes about a
second, one Service microseconds) and hands the Proxier those whose plan differs. The
first sync plans everything; a failed sync keeps its Services dirty for the next one.
Syncs start at least `coalesce` seconds apart (kube-proxy's minSyncPeriod): a change
after a quiet spell is applied at once, the rest of a burst is batched into the next
sync. Independently of
changes, every `resync` seconds it runs the Proxier's drift check, so a flushed table is
repaired within one period even while changes keep coming. Each applied Service records
its network programming latency (see agent.proxy.metrics). Syncs run in a thread of
their own, so a sync never queues behind the agent's other blocking work (Docker calls)
in the default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from agent.proxy.apply import Proxier
from agent.proxy.metrics import PROXY_METRICS, change_time
from agent.proxy.model import (
    Plan,
    build_plan,
    plan_service,
    service_key,
    slice_service_key,
)
from minikube_py.api.types import Obj
from minikube_py.informer import Informer

log = logging.getLogger(__name__)


SLICES_BY_SERVICE = "proxy-service"  # informer index: EndpointSlices by "ns/service"


def _slice_services(endpoint_slice: Obj) -> list[str]:
    key = slice_service_key(endpoint_slice)
    return [key] if key else []


def _slices_of(slices: Informer, key: str) -> list[Obj]:
    return list(slices.by_index(SLICES_BY_SERVICE, key).values())


def _replan(keys: set[str], services: Informer, slices: Informer, proxier: Proxier) -> Plan:
    """The changed plans of the Services in `keys` (an empty tuple: no rules any more)."""
    updates: Plan = {}
    for key in keys:
        service = services.get(key)
        ports = plan_service(service, _slices_of(slices, key), proxier.node) if service else ()
        if ports != proxier.plan.get(key, ()):
            updates[key] = ports
    return updates


def _record_programming(changed: list[str], services: Informer, slices: Informer) -> None:
    applied = time.time()
    for key in changed:
        changed_at = change_time(services.get(key), _slices_of(slices, key))
        if changed_at is not None:
            PROXY_METRICS.record_programming(applied - changed_at)


async def keep_proxy(
    proxier: Proxier,
    services: Informer,
    slices: Informer,
    resync: float = 30.0,
    coalesce: float = 0.05,
) -> None:
    changed = asyncio.Event()
    dirty: set[str] = set()

    def on_service(_type: str, service: Obj, _old: Obj | None) -> None:
        dirty.add(service_key(service))
        changed.set()

    def on_slice(_type: str, endpoint_slice: Obj, old: Obj | None) -> None:
        for either in (endpoint_slice, old):
            dirty.update(_slice_services(either) if either else [])
        changed.set()

    slices.add_index(SLICES_BY_SERVICE, _slice_services)
    services.add_handler(on_service)
    slices.add_handler(on_slice)
    await services.synced.wait()
    await slices.synced.wait()
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(1, thread_name_prefix="proxy")
    next_resync = time.monotonic() + resync
    first = True  # the first sync is a full one, even with nothing to proxy
    last_sync = -coalesce
    try:
        while True:
            changed.clear()
            keys, dirty = set(dirty), set()
            try:
                if first:
                    plan = build_plan(services.items(), slices.items(), proxier.node)
                    keys = plan.keys() | proxier.plan.keys()
                    updates = {key: plan.get(key, ()) for key in keys}
                else:
                    updates = _replan(keys, services, slices, proxier)
                if updates or first:
                    last_sync = time.monotonic()
                    result = await loop.run_in_executor(executor, proxier.sync, updates)
                    first = False
                    PROXY_METRICS.record_sync(proxier.mode, result.duration_seconds, result.rules)
                    _record_programming(sorted(updates), services, slices)
            except Exception:
                dirty |= keys
                changed.set()  # retried after the coalescing wait
                log.exception("proxy sync failed; the next change or resync retries")
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + resync
                try:
                    repaired = await loop.run_in_executor(executor, proxier.resync)
                    if repaired is not None:
                        log.info("proxy rules drifted or a full sync was due: rewritten")
                        PROXY_METRICS.record_sync(
                            proxier.mode, repaired.duration_seconds, repaired.rules
                        )
                except Exception:
                    log.exception("proxy resync failed; the next period retries")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(next_resync - time.monotonic(), 0.0))
                await asyncio.sleep(max(0.0, last_sync + coalesce - time.monotonic()))
    finally:
        executor.shutdown(wait=False)
