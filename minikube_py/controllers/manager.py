"""The controller-manager process: every controller over one set of shared informers,
run only while this process holds the leader Lease.

Losing the Lease (a renewal failing for the renew deadline, or another holder) stops
the controllers and informers and sends the process back to standby; SIGTERM releases
the Lease so a successor takes over at once rather than after its expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from minikube_py.client import Client
from minikube_py.controllers.common import Controller, Informers
from minikube_py.controllers.deployment import DeploymentController
from minikube_py.controllers.endpoints import EndpointsController
from minikube_py.controllers.gc import GarbageCollector, NamespaceController
from minikube_py.controllers.ipam import LoadBalancerController, NodeIpamController
from minikube_py.controllers.leader import LeaderConfig, LeaderElector
from minikube_py.controllers.nodelifecycle import NodeLifecycleController
from minikube_py.controllers.podgc import PodGarbageCollector
from minikube_py.controllers.replicaset import ReplicaSetController
from minikube_py.controllers.scheduler import Scheduler
from minikube_py.controllers.serviceaccounts import (
    RootCACertPublisher,
    ServiceAccountsController,
)
from minikube_py.controllers.statefulset import StatefulSetController
from minikube_py.events import EventRecorder

log = logging.getLogger(__name__)

CONTROLLERS: dict[str, type[Controller]] = {
    c.name: c
    for c in (
        Scheduler,
        EndpointsController,
        ReplicaSetController,
        DeploymentController,
        StatefulSetController,
        NodeLifecycleController,
        GarbageCollector,
        PodGarbageCollector,
        NamespaceController,
        LoadBalancerController,
        NodeIpamController,
        ServiceAccountsController,
        RootCACertPublisher,
    )
}


@dataclass
class ManagerConfig:
    controllers: list[str] = field(default_factory=lambda: list(CONTROLLERS))
    leader_elect: bool = False
    leader: LeaderConfig = field(default_factory=LeaderConfig)
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4()}")
    options: dict[str, Any] = field(default_factory=dict)  # passed to each controller


async def run_controllers(client: Client, config: ManagerConfig) -> None:
    informers = Informers(client)
    events = EventRecorder(client)
    controllers = [
        CONTROLLERS[name](client, informers, events, **config.options)
        for name in config.controllers
    ]
    events.start()
    try:
        await informers.start_and_sync()
        log.info("caches synced; running %s", ", ".join(c.name for c in controllers))
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        await informers.stop()
        await events.stop()


async def run(client: Client, config: ManagerConfig) -> None:
    if not config.leader_elect:
        await run_controllers(client, config)
        return
    elector = LeaderElector(client, config.identity, config.leader)
    try:
        while True:
            await elector.acquire()
            work = asyncio.create_task(run_controllers(client, config))
            hold = asyncio.create_task(elector.hold())
            try:
                await asyncio.wait({work, hold}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (work, hold):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            log.warning("%s lost the lease; standing by", config.identity)
    finally:
        await elector.release()


def main_async(client: Client, config: ManagerConfig) -> None:
    async def guarded() -> None:
        task = asyncio.create_task(run(client, config))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("stopped")
        finally:
            await client.close()

    asyncio.run(guarded())
