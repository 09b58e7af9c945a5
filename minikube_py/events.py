"""core/v1 Events, as `kubectl describe` shows them, from the controllers and the agents.

`EventRecorder.record` never blocks a reconcile or a pod sync: events go into a bounded
queue that one background sender drains, so a burst of them is written one at a time
rather than as a flood of concurrent requests. The agent paces its sender as the
kubelet's `--event-qps` and `--event-burst` do (`TokenBucket`). Repeats of the same
(object, reason, message, field) within the process are aggregated the way kube's
recorder does: the first creates the Event, later ones PATCH `count` and
`lastTimestamp`. Cluster-scoped objects' events live in `default`, as in kube.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from minikube_py.api.timestamps import now_rfc3339
from minikube_py.api.types import Obj
from minikube_py.client import ApiException, Client

log = logging.getLogger(__name__)


def event_body(
    obj: Obj,
    type_: str,
    reason: str,
    message: str,
    component: str,
    timestamp: str,
    name_suffix: str,
    field_path: str = "",
    host: str = "",
) -> Obj:
    """The Event for `obj` (pure; `name_suffix` keeps names unique). `field_path` names
    the part of the object (a pod's container); `host` the node of the reporter."""
    md = obj.get("metadata", {})
    ns = md.get("namespace") or "default"
    involved = {
        "kind": obj.get("kind"),
        "apiVersion": obj.get("apiVersion"),
        "name": md.get("name"),
        "namespace": md.get("namespace", ""),
        "uid": md.get("uid"),
        "resourceVersion": md.get("resourceVersion"),
    }
    if field_path:
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{md.get('name')}.{name_suffix}", "namespace": ns},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component, **({"host": host} if host else {})},
        "reportingComponent": component,
        "reportingInstance": host,
        "count": 1,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "eventTime": None,
    }


class TokenBucket:
    """`qps` sends a second on average, `burst` at once after a quiet spell (pure: the
    caller passes the clock)."""

    def __init__(self, qps: float, burst: int, now: float) -> None:
        self.qps, self.burst = qps, burst
        self._tokens, self._at = float(burst), now

    def take(self, now: float) -> float:
        """Take one send; the seconds to wait before it."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps) - 1
        self._at = now
        return max(0.0, -self._tokens / self.qps)


class EventRecorder:
    def __init__(
        self,
        client: Client,
        component: str = "controller-manager",
        host: str = "",
        pace: tuple[float, int] | None = None,
        max_pending: int = 10_000,
    ) -> None:
        """`pace`: (qps, burst) of the sender; unpaced by default."""
        self.client = client
        self.component = component
        self.host = host
        self.pace = pace
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, str]] = asyncio.Queue(max_pending)
        self._seen: dict[tuple[Any, ...], tuple[str, str, int]] = {}  # -> ns, name, count
        self._task: asyncio.Task[None] | None = None

    def record(self, obj: Obj, type_: str, reason: str, message: str, field_path: str = "") -> None:
        self.start()
        with contextlib.suppress(asyncio.QueueFull):  # events are best effort, as in kube
            self._queue.put_nowait((obj, type_, reason, message, field_path))

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, "Normal", reason, message)

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.record(obj, "Warning", reason, message)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._send_loop(), name="events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self) -> None:
        while not self._queue.empty():
            await asyncio.sleep(0.01)

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(*self.pace, loop.time()) if self.pace else None
        while True:
            obj, type_, reason, message, field_path = await self._queue.get()
            if bucket is not None:
                await asyncio.sleep(bucket.take(loop.time()))
            try:
                await self._send(obj, type_, reason, message, field_path)
            except (TimeoutError, ApiException, OSError) as e:
                log.debug(
                    "event %s for %s dropped: %s", reason, obj.get("metadata", {}).get("name"), e
                )
            except Exception:
                log.exception("event %s dropped", reason)

    async def _send(self, obj: Obj, type_: str, reason: str, message: str, field_path: str) -> None:
        stamp = now_rfc3339()
        md = obj.get("metadata", {})
        agg = (
            md.get("uid"),
            md.get("namespace"),
            md.get("name"),
            type_,
            reason,
            message,
            field_path,
        )
        if agg in self._seen:
            ns, name, count = self._seen[agg]
            try:
                await self.client.patch(
                    "Event", name, {"count": count + 1, "lastTimestamp": stamp}, ns
                )
                self._seen[agg] = (ns, name, count + 1)
                return
            except ApiException as e:
                if e.code != 404:
                    raise
        body = event_body(
            obj, type_, reason, message, self.component, stamp, uuid.uuid4().hex[:16],
            field_path, self.host,
        )  # fmt: skip
        await self.client.create(body)
        if len(self._seen) > 4096:
            self._seen.clear()
        self._seen[agg] = (body["metadata"]["namespace"], body["metadata"]["name"], 1)
