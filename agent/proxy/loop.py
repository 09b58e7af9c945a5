"""The proxy's control loop in the agent: informers -> `Proxier` syncs -> metrics.

Every Service or EndpointSlice change wakes the loop, which re-plans everything (cheap,
pure) and hands the Proxier the Services whose plan differs. Syncs start at least
`coalesce` seconds apart (kube-proxy's minSyncPeriod): a change after a quiet spell is
applied at once, the rest of a burst is batched into the next sync. Independently of
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
from agent.proxy.model import build_plan, service_key, slice_service_key
from minikube_py.informer import Informer

log = logging.getLogger(__name__)


def _record_programming(changed: list[str], services: Informer, slices: Informer) -> None:
    applied = time.time()
    by_key = {service_key(s): s for s in services.items()}
    for key in changed:
        own = [s for s in slices.items() if slice_service_key(s) == key]
        changed_at = change_time(by_key.get(key), own)
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
    for informer in (services, slices):
        informer.add_handler(lambda *_: changed.set())
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
            try:
                plan = build_plan(services.items(), slices.items(), proxier.node)
                updates = {
                    key: plan.get(key, ())
                    for key in plan.keys() | proxier.plan.keys()
                    if plan.get(key, ()) != proxier.plan.get(key, ())
                }
                if updates or first:
                    last_sync = time.monotonic()
                    result = await loop.run_in_executor(executor, proxier.sync, updates)
                    first = False
                    PROXY_METRICS.record_sync(proxier.mode, result.duration_seconds, result.rules)
                    _record_programming(sorted(updates), services, slices)
            except Exception:
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
