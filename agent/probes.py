"""Container probes: liveness, readiness and startup, as the kubelet runs them.

Two layers. `ProbeTracker` is pure: it turns a sequence of single results into the
probe's verdict with Kubernetes' thresholds (`successThreshold` consecutive successes
to pass, `failureThreshold` consecutive failures to fail). The checks (`run_check`)
are the adapters: httpGet and tcpSocket connect from the agent's own network namespace
(the node's) to the pod IP, exec runs the command in the container through the runtime.

`ProbeWorker` is one probe of one container instance: it waits `initialDelaySeconds`,
checks every `periodSeconds` with `timeoutSeconds`, and calls back on each verdict
change. Liveness and readiness wait for the startup probe to have passed, as in kube.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp

from minikube_py.api.types import Obj

log = logging.getLogger(__name__)

ProbeKind = Literal["liveness", "readiness", "startup"]
PROBE_FIELDS: dict[ProbeKind, str] = {
    "liveness": "livenessProbe",
    "readiness": "readinessProbe",
    "startup": "startupProbe",
}


@dataclass(frozen=True)
class ProbeSettings:
    """A probe's timing and thresholds with the Kubernetes defaults filled in."""

    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: Obj) -> ProbeSettings:
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )


class ProbeTracker:
    """Consecutive results -> verdict. `passing` starts as `initial` (kube: readiness and
    startup start failing, liveness starts passing)."""

    def __init__(self, settings: ProbeSettings, initial: bool) -> None:
        self.settings = settings
        self.passing = initial
        self._successes = 0
        self._failures = 0

    def observe(self, success: bool) -> bool:
        """Record one result; returns True when the verdict changed."""
        if success:
            self._successes += 1
            self._failures = 0
            flip = not self.passing and self._successes >= self.settings.success_threshold
        else:
            self._failures += 1
            self._successes = 0
            flip = self.passing and self._failures >= self.settings.failure_threshold
        if flip:
            self.passing = not self.passing
            self._successes = self._failures = 0
        return flip


@dataclass(frozen=True)
class CheckResult:
    success: bool
    message: str = ""


Exec = Callable[[list[str], float], Awaitable[tuple[int | None, bytes]]]
"""Run a command in the probed container with a timeout: (exit code or None, output)."""


def resolve_port(port: int | str, container: Obj) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container.get('name')}")


async def run_check(
    probe: Obj, container: Obj, pod_ip: str, timeout: float, run: Exec
) -> CheckResult:
    """One check of `probe` against the container; never raises for a failed check."""
    try:
        if "exec" in probe:
            code, output = await run(list(probe["exec"].get("command") or []), timeout)
            if code is None:
                return CheckResult(False, f"command timed out after {timeout:g}s")
            text = output.decode(errors="replace").strip()
            return CheckResult(code == 0, text if code == 0 else f"exit code {code}: {text}")
        if "tcpSocket" in probe:
            host = probe["tcpSocket"].get("host") or pod_ip
            port = resolve_port(probe["tcpSocket"]["port"], container)
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return CheckResult(True)
        if "httpGet" in probe:
            return await _http_check(probe["httpGet"], container, pod_ip, timeout)
    except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as error:
        return CheckResult(False, _describe(probe, container, pod_ip, error))
    return CheckResult(False, "probe has no handler (exec, httpGet or tcpSocket)")


async def _http_check(get: Obj, container: Obj, pod_ip: str, timeout: float) -> CheckResult:
    scheme = str(get.get("scheme") or "HTTP").lower()
    host = get.get("host") or pod_ip
    port = resolve_port(get["port"], container)
    path = get.get("path") or "/"
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    headers = {"User-Agent": "kube-probe/1.30", "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in get.get("httpHeaders") or []})
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url, headers=headers, ssl=False, allow_redirects=False) as response,
    ):
        if 200 <= response.status < 400:
            return CheckResult(True)
        return CheckResult(False, f"HTTP probe failed with statuscode: {response.status}")


def _describe(probe: Obj, container: Obj, pod_ip: str, error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "probe timed out"
    if "httpGet" in probe:
        get = probe["httpGet"]
        url = f"http://{get.get('host') or pod_ip}:{get.get('port')}{get.get('path') or '/'}"
        return f'Get "{url}": {error}'
    return f"dial tcp {pod_ip}:{probe.get('tcpSocket', {}).get('port')}: {error}"


OnResult = Callable[[ProbeKind, CheckResult, bool, bool], None]
"""Called with (kind, result, passing, changed) after every failed check and every
verdict change: failures make `Unhealthy` events, changes move the pod's status."""


class ProbeWorker:
    """Runs one probe of one container instance until cancelled."""

    def __init__(
        self,
        kind: ProbeKind,
        probe: Obj,
        container: Obj,
        pod_ip: str,
        run: Exec,
        on_result: OnResult,
        started: asyncio.Event | None = None,
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.container = container
        self.pod_ip = pod_ip
        self.run = run
        self.on_result = on_result
        self.settings = ProbeSettings.of(probe)
        self.tracker = ProbeTracker(self.settings, initial=kind == "liveness")
        # liveness and readiness start once the startup probe (if any) has passed
        self.started = started
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"probe-{self.kind}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        if self.started is not None:
            await self.started.wait()
        await asyncio.sleep(self.settings.initial_delay)
        while True:
            result = await run_check(
                self.probe, self.container, self.pod_ip, self.settings.timeout, self.run
            )
            changed = self.tracker.observe(result.success)
            if changed or not result.success:
                try:
                    self.on_result(self.kind, result, self.tracker.passing, changed)
                except Exception:
                    log.exception("probe verdict handler failed")
            if self.kind == "startup" and self.tracker.passing:
                return  # a passed startup probe is not run again for this container
            await asyncio.sleep(self.settings.period)
