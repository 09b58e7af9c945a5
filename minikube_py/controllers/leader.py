"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

`decide` is the pure rule: take the Lease when it is missing, unheld or expired, renew
it when we hold it, otherwise stand by. Every write is a compare-and-swap on the
Lease's resourceVersion, so of two candidates racing for an expired Lease one wins
and the other gets 409 and stays a standby. Expiry is judged by when *this* process
last saw the record change (client-go's observedTime), not by the holder's clock.
On a clean shutdown the holder releases the Lease so a successor need not wait.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from minikube_py.api.timestamps import now_micro
from minikube_py.api.types import Obj
from minikube_py.client import ApiException, Client
from minikube_py.controllers.common import monotonic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderConfig:
    namespace: str = "kube-system"
    name: str = "minikube-py-controller-manager"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


def decide(spec: Obj | None, identity: str, observed_age: float, lease_duration: float) -> str:
    """'acquire', 'renew' or 'standby' for a Lease spec (None: no Lease yet);
    observed_age is how long ago this process saw the record last change."""
    if spec is None:
        return "acquire"
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        return "renew"
    duration = float(spec.get("leaseDurationSeconds") or lease_duration)
    if not holder or observed_age > duration:
        return "acquire"
    return "standby"


class LeaderElector:
    def __init__(self, client: Client, identity: str, config: LeaderConfig) -> None:
        self.client = client
        self.identity = identity
        self.config = config
        self._observed: tuple[str, float] = ("", 0.0)  # (record, monotonic when seen)

    def _observe(self, lease: Obj | None) -> float:
        record = repr(sorted((lease or {}).get("spec", {}).items()))
        if record != self._observed[0]:
            self._observed = (record, monotonic())
        return monotonic() - self._observed[1]

    def _spec(self, transitions: int, acquire_time: str) -> Obj:
        now = now_micro()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.config.lease_duration),
            "acquireTime": acquire_time or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        c = self.config
        try:
            lease: Obj | None = await self.client.get("Lease", c.name, c.namespace)
        except ApiException as e:
            if e.code != 404:
                raise
            lease = None
        action = decide(
            lease and lease.get("spec"), self.identity, self._observe(lease), c.lease_duration
        )
        if action == "standby":
            return False
        try:
            if lease is None:
                await self.client.create(
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": c.name, "namespace": c.namespace},
                        "spec": self._spec(0, ""),
                    }
                )
            else:
                spec = lease.get("spec", {})
                transitions = int(spec.get("leaseTransitions") or 0)
                if action == "acquire":
                    lease["spec"] = self._spec(transitions + 1, "")
                else:
                    lease["spec"] = self._spec(transitions, spec.get("acquireTime", ""))
                await self.client.update(lease)  # CAS: carries the resourceVersion read
        except ApiException as e:
            if e.code in (409, 422):
                return False
            raise
        return True

    async def acquire(self) -> None:
        """Returns once this process holds the Lease."""
        while True:
            try:
                if await self.try_acquire_or_renew():
                    log.info(
                        "%s acquired lease %s/%s",
                        self.identity,
                        self.config.namespace,
                        self.config.name,
                    )
                    return
            except (TimeoutError, ApiException, OSError) as e:
                log.warning("leader election: %s", e)
            await asyncio.sleep(self.config.retry_period)

    async def hold(self) -> None:
        """Renews until a renewal has failed for renew_deadline; then returns (lost)."""
        last_ok = monotonic()
        while True:
            await asyncio.sleep(self.config.retry_period)
            try:
                if await self.try_acquire_or_renew():
                    last_ok = monotonic()
                    continue
                log.warning("lease taken over by another holder")
                return
            except (TimeoutError, ApiException, OSError) as e:
                log.warning("lease renewal failed: %s", e)
            if monotonic() - last_ok > self.config.renew_deadline:
                return

    async def release(self) -> None:
        c = self.config
        try:
            lease = await self.client.get("Lease", c.name, c.namespace)
            if lease.get("spec", {}).get("holderIdentity") != self.identity:
                return
            lease["spec"] = {
                **lease["spec"],
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": now_micro(),
            }
            await self.client.update(lease)
        except (TimeoutError, ApiException, OSError) as e:
            log.warning("lease release failed: %s", e)
