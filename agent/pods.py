"""The pod sync loop: this node's pods, from the API to Docker and back.

Level-triggered, as the kubelet's pod workers: every change of a pod (informer), of one
of its containers (Docker `die` events), of a probe verdict, or the end of a
back-off enqueues the pod's key; `sync` compares the pod's spec with the containers
that really exist (found by their labels, so a restarted agent adopts them: nothing is
restarted, the address comes back from the persistent IPAM) and makes one step
towards it, then writes the status it observes.

The step: the configMap, secret, downwardAPI and projected volumes written
(agent.volumes; rewritten whenever their files change, so mounted files follow their
objects and the pod's labels and annotations); sandbox with an address from the
node's pod CIDR and a veth on `cni0`; init containers one at a time, in order; app
containers with their environment (agent.env: envFrom, values, fieldRef,
resourceFieldRef, ConfigMap and Secret keys, the Service variables) and volumes
(emptyDir and hostPath by the runtime); restarts by `restartPolicy` with the kubelet's
crash back-off (immediate the first time, then base, 2x base, ... up to the cap);
probes per running container; graceful deletion (the image's stop signal, the pod's
grace period, SIGKILL, then the API object is deleted with grace 0). Housekeeping
removes the containers, files and addresses of pods that no longer exist. ConfigMaps
and Secrets come from informers; a change of one syncs the pods that name it, so a
container waiting for a missing one (CreateContainerConfigError) starts once it exists.
Service account tokens (projected `serviceAccountToken` sources) come from the
TokenRequest API through agent.tokens, cached per pod and asked for again at 80% of
their lifetime: the periodic resync (every HOUSEKEEPING_SECONDS) syncs every running
pod's volumes, which rewrites the token file then. No informer says when a missing
ServiceAccount appears, so a pod waiting for a token is synced again after a short
back-off (agent.tokens.retry_delay: 0.5 s doubling to 8 s).

Start latency: pods sync concurrently (a worker each, up to `WORKERS`, as the kubelet's
per-pod workers), with their blocking Docker, netlink and IPAM (fsync) calls on the
loop's own threads; a new sandbox starts and gets its network while the first container
is created, which then starts at once. As the kubelet's pod config, an update that
changed only a pod's status (the agent's own write, the scheduler's) syncs nothing: in a
burst, every pod costs one sync, and the engine's time goes to starting containers.

The pure parts (phase, conditions, the container statuses, back-off, the objects a pod
names) are module functions with unit tests; `PodSyncer` is the adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import docker.errors
from docker.models.containers import Container

from agent.dns.pod_config import render_etc_hosts, render_resolv_conf
from agent.env import Lookup, PodFacts, container_env, service_env
from agent.ipam import IPAMStore
from agent.network import PodNetwork
from agent.probes import PROBE_FIELDS, CheckResult, ProbeKind, ProbeWorker
from agent.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_NODE_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_RESTART_COUNT,
    SANDBOX_NAME,
    DockerRuntime,
    RuntimeFailure,
    never_started,
    state_from_docker,
)
from agent.tokens import TokenError, TokenManager, retry_delay
from agent.volumes import (
    DATA_DIR,
    WRITTEN_KINDS,
    Files,
    VolumeError,
    volume_files,
    volume_objects,
    write_atomic,
)
from minikube_py.api.timestamps import now_rfc3339
from minikube_py.api.types import Obj, name_of, namespace_of, status_only_change
from minikube_py.client import ApiException, Client
from minikube_py.events import EventRecorder
from minikube_py.informer import Informer, WorkQueue, key_of

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Pods synced at once (the kubelet gives each pod a worker): enough for a burst of pods
# to keep the engine busy, few enough to bound the agent's threads and memory.
WORKERS = 32
# The kubelet's --event-qps and --event-burst defaults: a burst of pods does not send
# its Events all at once, in competition with the pods' own status writes.
EVENT_QPS, EVENT_BURST = 50.0, 100
HOUSEKEEPING_SECONDS = 10.0
DEFAULT_GRACE_SECONDS = 30


# --- pure: restarts ----------------------------------------------------------------------


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False


class CrashBackoff:
    """The kubelet's per-container restart back-off: the first restart is immediate,
    then each waits `base`, 2*base, ... up to `cap` after the container finished; an
    entry untouched for 2*cap is forgotten. Time is passed in, so it is pure."""

    def __init__(self, base: float = 10.0, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._entries: dict[tuple[str, str], tuple[float, float]] = {}  # delay, updated

    def remaining(self, key: tuple[str, str], finished_at: float, now: float) -> float:
        """Seconds left before the container may restart (0: now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        delay, updated = entry
        if now - updated > 2 * self.cap:
            del self._entries[key]
            return 0.0
        return max(0.0, finished_at + delay - now)

    def restarted(self, key: tuple[str, str], now: float) -> None:
        entry = self._entries.get(key)
        delay = self.base if entry is None else min(entry[0] * 2, self.cap)
        self._entries[key] = (delay, now)

    def forget(self, uid: str) -> None:
        for key in [k for k in self._entries if k[0] == uid]:
            del self._entries[key]


# --- pure: status ------------------------------------------------------------------------


@dataclasses.dataclass
class ContainerRecord:
    """What the agent knows of one Kubernetes container: its latest Docker instance
    (state from `state_from_docker`), the one before it, and the probe verdicts."""

    name: str
    image: str
    state: Obj
    restart_count: int = 0
    last_state: Obj = dataclasses.field(default_factory=dict)
    image_id: str = ""
    container_id: str = ""
    ready: bool = False
    started: bool = False

    def status(self) -> Obj:
        status: Obj = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.started,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _terminated(record: ContainerRecord) -> Obj | None:
    terminated: Obj | None = record.state.get("terminated")
    return terminated


def _succeeded(record: ContainerRecord) -> bool:
    terminated = _terminated(record)
    return terminated is not None and terminated.get("exitCode") == 0


def pod_phase(
    restart_policy: str, inits: list[ContainerRecord], apps: list[ContainerRecord]
) -> str:
    """The kubelet's getPhase: Pending until initialised and every container has run,
    then Running while any runs (or will be restarted), else Succeeded or Failed."""
    for record in inits:
        terminated = _terminated(record)
        if terminated and terminated.get("exitCode") != 0 and restart_policy == "Never":
            return "Failed"
    if not all(_succeeded(r) for r in inits):
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for record in apps:
        terminated = _terminated(record)
        if "running" in record.state:
            running += 1
        elif terminated is not None:
            stopped += 1
            succeeded += terminated.get("exitCode") == 0
        elif record.last_state.get("terminated"):
            stopped += 1  # waiting to restart after having run
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    if restart_policy == "Always":
        return "Running"
    if restart_policy == "OnFailure":
        return "Succeeded" if stopped == succeeded else "Running"
    return "Succeeded" if stopped == succeeded else "Failed"


def _condition(kind: str, ok: bool, reason: str, message: str, previous: Obj, now: str) -> Obj:
    status = "True" if ok else "False"
    old = previous.get(kind) or {}
    condition: Obj = {
        "type": kind,
        "status": status,
        "lastTransitionTime": old.get("lastTransitionTime", now)
        if old.get("status") == status
        else now,
    }
    if not ok:
        condition["reason"] = reason
        condition["message"] = message
    return condition


def pod_conditions(
    phase: str,
    inits: list[ContainerRecord],
    apps: list[ContainerRecord],
    previous: list[Obj],
    now: str,
) -> list[Obj]:
    """PodScheduled, Initialized, ContainersReady and Ready with kube's reasons."""
    before: dict[str, Obj] = {str(c.get("type")): c for c in previous}
    unfinished = [r.name for r in inits if not _succeeded(r)]
    unready = [r.name for r in apps if not r.ready]
    completed = phase in ("Succeeded", "Failed")
    initialized = not unfinished or completed
    ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    ready_message = "" if completed else f"containers with unready status: [{' '.join(unready)}]"
    scheduled = before.get("PodScheduled") or {
        "type": "PodScheduled",
        "status": "True",
        "lastTransitionTime": now,
    }
    ready = not unready and not completed
    conditions = [
        _condition(
            "Initialized",
            initialized,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(unfinished)}]",
            before,
            now,
        ),
        _condition("Ready", ready, ready_reason, ready_message, before, now),
        _condition("ContainersReady", ready, ready_reason, ready_message, before, now),
        scheduled,
    ]
    if completed:
        for condition in conditions[1:3]:
            condition.pop("message", None)
    return conditions


def pod_status(
    pod: Obj,
    inits: list[ContainerRecord],
    apps: list[ContainerRecord],
    pod_ip: str,
    host_ip: str,
    now: str,
) -> Obj:
    """The pod's whole status from what the agent observed."""
    previous = pod.get("status") or {}
    phase = pod_phase(pod.get("spec", {}).get("restartPolicy") or "Always", inits, apps)
    status: Obj = {
        "phase": phase,
        "conditions": pod_conditions(phase, inits, apps, previous.get("conditions") or [], now),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": previous.get("startTime") or now,
        "containerStatuses": [r.status() for r in apps],
        "qosClass": previous.get("qosClass") or qos_class(pod),
    }
    if inits:
        status["initContainerStatuses"] = [r.status() for r in inits]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def qos_class(pod: Obj) -> str:
    """Guaranteed when every container limits cpu and memory with requests equal to
    them; BestEffort when none asks for anything; Burstable otherwise."""
    containers = (pod.get("spec", {}).get("containers") or []) + (
        pod.get("spec", {}).get("initContainers") or []
    )
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        any_set = any_set or bool(limits or requests)
        for resource in ("cpu", "memory"):
            if (
                resource not in limits
                or requests.get(resource, limits[resource]) != limits[resource]
            ):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def status_differs(current: Obj, wanted: Obj) -> bool:
    """Whether writing `wanted` would change the stored status."""
    return any(current.get(key) != value for key, value in wanted.items())


def referenced_objects(pod: Obj) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod's env and volumes name: a
    change of one of them is a reason to sync the pod."""
    spec = pod.get("spec", {})
    found = set()
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                found.add(("ConfigMap", str(source["configMapRef"].get("name", ""))))
            if "secretRef" in source:
                found.add(("Secret", str(source["secretRef"].get("name", ""))))
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                found.add(("ConfigMap", str(value_from["configMapKeyRef"].get("name", ""))))
            if "secretKeyRef" in value_from:
                found.add(("Secret", str(value_from["secretKeyRef"].get("name", ""))))
    for volume in spec.get("volumes") or []:
        found.update(volume_objects(volume))
    return found


# --- the adapter ---------------------------------------------------------------------------


@dataclasses.dataclass
class PodState:
    """The agent's memory of one pod, beyond what Docker and the API hold: lost on
    restart, rebuilt (probes restart; back-off starts over) as the kubelet's."""

    key: str
    # container name -> (Docker id of the instance probed, its probe workers)
    probes: dict[str, tuple[str, list[ProbeWorker]]] = dataclasses.field(default_factory=dict)
    verdicts: dict[tuple[str, ProbeKind], bool] = dataclasses.field(default_factory=dict)
    waiting: dict[str, Obj] = dataclasses.field(default_factory=dict)  # name -> waiting
    # written volume's name -> the files it shows
    shown_files: dict[str, Files] = dataclasses.field(default_factory=dict)
    volume_errors: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> message
    token_failures: int = 0  # syncs in a row whose volumes lacked a token
    written: Obj | None = None
    terminating: asyncio.Task[None] | None = None


def _labels(container: Container) -> dict[str, str]:
    labels: dict[str, str] = container.labels
    return labels


def _restart_count(container: Container) -> int:
    return int(_labels(container).get(LABEL_RESTART_COUNT, "0"))


def _docker_seconds(value: str | None) -> float:
    if not value or value.startswith("0001-"):
        return 0.0
    return datetime.datetime.fromisoformat(value[:19] + "+00:00").timestamp()


Recorder = Callable[[Obj, str, str, str, str], None]
"""(pod, type Normal|Warning, reason, message, fieldPath) -> an Event, sent in the background."""


class PodSyncer:
    def __init__(
        self,
        client: Client,
        runtime: DockerRuntime,
        network: PodNetwork,
        ipam: IPAMStore,
        pods: Informer,
        services: Informer,
        config_maps: Informer,
        secrets: Informer,
        node_name: str,
        node_ip: str,
        dns_ip: str,
        host_resolv_conf: str,
        cluster_domain: str = "cluster.local",
        backoff: CrashBackoff | None = None,
        record_event: Recorder | None = None,
        allocatable: Mapping[str, str] | None = None,
        tokens: TokenManager | None = None,
    ) -> None:
        """`config_maps` and `secrets` are informers of every namespace's objects: env
        and volumes read them, and a change syncs the pods naming them. `allocatable`
        (the Node's) stands in for a limit a container does not set. `tokens` gets the
        service account tokens of projected volumes (by default through `client`)."""
        self.client = client
        self.runtime = runtime
        self.network = network
        self.ipam = ipam
        self.pods = pods
        self.services = services
        self.sources = {"ConfigMap": config_maps, "Secret": secrets}
        self.allocatable = dict(allocatable or {})
        self.node_name = node_name
        self.node_ip = node_ip
        self.dns_ip = dns_ip
        self.host_resolv_conf = host_resolv_conf
        self.cluster_domain = cluster_domain
        self.backoff = backoff or CrashBackoff()
        self.tokens = tokens or TokenManager(client)
        self.record_event = (
            record_event
            or EventRecorder(client, "kubelet", node_name, pace=(EVENT_QPS, EVENT_BURST)).record
        )
        self.queue: WorkQueue[str] = WorkQueue()
        self.states: dict[str, PodState] = {}  # by pod uid
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events_stream: Any = None
        self._background: set[asyncio.Task[None]] = set()
        # Blocking Docker and netlink calls of the sync loop, a thread per worker: asyncio's
        # default pool has cpu+4 threads, which would queue pods behind each other's calls.
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="pod-sync")
        pods.add_handler(self._pod_changed)
        config_maps.add_handler(lambda _event, new, _old: self._source_changed("ConfigMap", new))
        secrets.add_handler(lambda _event, new, _old: self._source_changed("Secret", new))

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Sync forever (the informers must be started; this waits for their sync)."""
        self._loop = asyncio.get_running_loop()
        await self.pods.synced.wait()
        await self.services.synced.wait()
        for informer in self.sources.values():
            await informer.synced.wait()
        threading.Thread(target=self._watch_docker, name="docker-events", daemon=True).start()
        await asyncio.gather(self.queue.run_workers(self.sync, WORKERS), self._housekeeping())

    def stop(self) -> None:
        if self._events_stream is not None:
            self._events_stream.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _blocking(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`call` on the sync loop's own threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def _pod_changed(self, _kind: str, new: Obj, old: Obj | None) -> None:
        if old is None or not status_only_change(old, new):
            self.queue.add(key_of(new))

    def _source_changed(self, kind: str, source: Obj) -> None:
        namespace, name = namespace_of(source), name_of(source)
        for pod in self.pods.items():
            if namespace_of(pod) == namespace and (kind, name) in referenced_objects(pod):
                self.queue.add(key_of(pod))

    def _lookup(self, namespace: str) -> Lookup:
        """The ConfigMaps and Secrets of `namespace`, from the informers' caches."""
        return lambda kind, name: self.sources[kind].get(f"{namespace}/{name}")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _watch_docker(self) -> None:
        """Container `die` events of this node -> their pod's key."""
        assert self._loop is not None
        self._events_stream = self.runtime.client.events(
            decode=True,
            filters={
                "type": "container",
                "event": ["die"],  # starts are the agent's own doing
                "label": [f"{LABEL_NODE_NAME}={self.node_name}"],
            },
        )
        with contextlib.suppress(Exception):  # the stream ends when stop() closes it
            for event in self._events_stream:
                actor = event.get("Actor", {})
                attributes = actor.get("Attributes", {})
                key = f"{attributes.get(LABEL_POD_NAMESPACE)}/{attributes.get(LABEL_POD_NAME)}"
                self.runtime.container_died(
                    str(attributes.get(LABEL_POD_UID, "")), str(actor.get("ID", ""))
                )
                self._loop.call_soon_threadsafe(self.queue.add, key)

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self.remove_orphans()
            except Exception:
                log.exception("housekeeping failed")
            for pod in self.pods.items():
                self.queue.add(key_of(pod))  # the periodic resync of every pod
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def remove_orphans(self) -> None:
        """Remove containers, files, veths and addresses of pods that no longer exist."""
        listed = await self._blocking(
            self.runtime.client.api.containers,
            all=True,
            filters={"label": [LABEL_POD_UID, f"{LABEL_NODE_NAME}={self.node_name}"]},
        )
        live = {str(p["metadata"].get("uid")) for p in self.pods.items()}
        present = {c["Labels"][LABEL_POD_UID] for c in listed}
        for uid in present - live:
            state = self.states.get(uid)
            if state is not None and state.terminating is not None:
                continue
            log.info("removing containers of pod %s, which no longer exists", uid)
            await self._teardown(uid)
        for uid in set(self.ipam.allocations()) - live - present:
            self.ipam.release(uid)

    # ------------------------------------------------------------------ one pod

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None:
            for uid, state in list(self.states.items()):
                if state.key == key and state.terminating is None:
                    await self._teardown(uid)
            return
        uid = str(pod["metadata"]["uid"])
        state = self.states.setdefault(uid, PodState(key))
        for other_uid, other in list(self.states.items()):  # a new pod of the same name
            if other.key == key and other_uid != uid and other.terminating is None:
                await self._teardown(other_uid)
        if pod["metadata"].get("deletionTimestamp"):
            if state.terminating is None:
                state.terminating = asyncio.create_task(self._terminate(pod, state))
            return
        phase = (pod.get("status") or {}).get("phase")
        containers = await self._blocking(self.runtime.pod_containers, uid)
        if phase in ("Succeeded", "Failed") and not any(c.status == "running" for c in containers):
            await self._stop_probes(state)
            return
        requeue = await self._step(pod, state, containers)
        await self._write_status(pod, state, containers)
        if requeue is not None:
            self.queue.add_after(key, requeue)

    @staticmethod
    def _instances(containers: list[Container], name: str) -> list[Container]:
        """The Docker instances of one Kubernetes container, newest first."""
        mine = [c for c in containers if _labels(c).get(LABEL_CONTAINER_NAME) == name]
        return sorted(mine, key=_restart_count, reverse=True)

    async def _step(self, pod: Obj, state: PodState, containers: list[Container]) -> float | None:
        """One step towards the spec; returns seconds after which to look again.

        `containers` is kept up to date with what the step starts and removes, so the
        status is written without asking Docker again. A new sandbox starts and gets
        its network while the first container to run is created (it joins the sandbox
        then, and starts only once the sandbox runs with its address)."""
        uid = str(pod["metadata"]["uid"])
        sandboxes = self._instances(containers, SANDBOX_NAME)
        new_sandbox = not sandboxes or sandboxes[0].status != "running"
        if new_sandbox and sandboxes:  # the sandbox died (engine restart): start over
            await self._blocking(self.runtime.remove_pod, uid)
            await self._stop_probes(state)
            state.shown_files.clear()  # they went with the pod's directory
            containers.clear()
        # As the kubelet: the volumes are set up before the sandbox is made.
        volumes = await self._sync_volumes(pod, state)
        if volumes is None:
            # A missing ConfigMap's or Secret's informer event brings us back; nothing
            # tells of a ServiceAccount, so a pod waiting for a token looks again soon.
            return retry_delay(state.token_failures) if state.token_failures else None
        pod_ip = await self._blocking(self.ipam.allocate, uid)  # it fsyncs: off the loop
        sandbox_ready: asyncio.Future[None] | None = None
        if new_sandbox:
            sandbox = await self._create_sandbox(pod, pod_ip)
            containers[:] = [sandbox]
            sandbox_ready = asyncio.ensure_future(
                self._blocking(self._start_sandbox, sandbox, uid, pod_ip)
            )
        else:
            sandbox = sandboxes[0]
        try:
            return await self._step_containers(
                pod, state, containers, sandbox, sandbox_ready, pod_ip, volumes
            )
        finally:
            if sandbox_ready is not None:
                await sandbox_ready  # a sandbox that failed to start fails the sync

    async def _step_containers(
        self,
        pod: Obj,
        state: PodState,
        containers: list[Container],
        sandbox: Container,
        sandbox_ready: asyncio.Future[None] | None,
        pod_ip: str,
        volumes: Mapping[str, Path],
    ) -> float | None:
        spec = pod.get("spec", {})
        policy = spec.get("restartPolicy") or "Always"
        start = functools.partial(
            self._maybe_start, pod, state, containers, sandbox, sandbox_ready, pod_ip, volumes
        )

        for init in spec.get("initContainers") or []:
            instances = self._instances(containers, init["name"])
            if instances and instances[0].status == "running":
                return None  # its `die` event brings us back
            if instances and not never_started(instances[0].attrs["State"]):
                exit_code = int(instances[0].attrs["State"].get("ExitCode") or 0)
                if exit_code == 0:
                    continue
                if policy == "Never":
                    return None
            return await start(init)

        requeue: float | None = None
        for app in spec.get("containers") or []:
            instances = self._instances(containers, app["name"])
            if instances and instances[0].status in ("running", "paused", "restarting"):
                self._ensure_probes(pod, state, app, instances[0], pod_ip)
                continue
            if instances and not never_started(instances[0].attrs["State"]):
                exit_code = int(instances[0].attrs["State"].get("ExitCode") or 0)
                if instances[0].status != "created" and not should_restart(policy, exit_code):
                    continue
            delay = await start(app)
            if delay is not None:
                requeue = delay if requeue is None else min(requeue, delay)
        return requeue

    async def _create_sandbox(self, pod: Obj, pod_ip: str) -> Container:
        hosts = render_etc_hosts(pod, pod_ip, self.cluster_domain)
        resolv = render_resolv_conf(pod, self.dns_ip, self.host_resolv_conf, self.cluster_domain)
        return await self._blocking(
            self.runtime.create_sandbox, pod, hosts=hosts, resolv_conf=resolv
        )

    def _start_sandbox(self, sandbox: Container, uid: str, pod_ip: str) -> None:
        self.runtime.start_container(sandbox)
        self.network.attach_sandbox(int(sandbox.attrs["State"]["Pid"]), uid, pod_ip)

    async def _maybe_start(
        self,
        pod: Obj,
        state: PodState,
        containers: list[Container],
        sandbox: Container,
        sandbox_ready: asyncio.Future[None] | None,
        pod_ip: str,
        volumes: Mapping[str, Path],
        spec: Obj,
    ) -> float | None:
        """Start the container now (once the sandbox is ready), or say how long its
        back-off still holds. An instance made but never started (the agent stopped in
        between) is started as it is."""
        name = spec["name"]
        instances = self._instances(containers, name)
        field_path = (
            f"spec.{'initContainers' if self._is_init(pod, name) else 'containers'}{{{name}}}"
        )
        if instances and never_started(instances[0].attrs["State"]):
            container = instances[0]
        else:
            delay = self._backoff(pod, state, name, instances, field_path)
            if delay is not None:
                return delay
            restart_count = _restart_count(instances[0]) + 1 if instances else 0
            try:
                container = await self._create(pod, spec, sandbox, pod_ip, volumes, restart_count)
            except RuntimeFailure as failure:
                return self._failed(pod, state, name, failure, field_path)
            self.record_event(pod, "Normal", "Created", f"Created container {name}", field_path)
            containers.append(container)
        if sandbox_ready is not None:
            await sandbox_ready
        try:
            await self._blocking(self.runtime.start_container, container)
        except RuntimeFailure as failure:
            return self._failed(pod, state, name, failure, field_path)
        state.waiting.pop(name, None)
        self.record_event(pod, "Normal", "Started", f"Started container {name}", field_path)
        # Keep the newest instance and the one before it (lastState, logs --previous).
        for old in self._instances(containers, name)[2:]:
            with contextlib.suppress(docker.errors.NotFound):
                await self._blocking(old.remove, force=True)
            containers.remove(old)
        if not self._is_init(pod, name):
            self._ensure_probes(pod, state, spec, container, pod_ip)
        return None

    def _backoff(
        self,
        pod: Obj,
        state: PodState,
        name: str,
        instances: list[Container],
        field_path: str,
    ) -> float | None:
        """Seconds the crash back-off still holds a restart (None: go ahead, counted as
        a restart)."""
        if not instances:
            return None
        uid = str(pod["metadata"]["uid"])
        finished = _docker_seconds(instances[0].attrs["State"].get("FinishedAt"))
        wait = self.backoff.remaining((uid, name), finished, time.time())
        if wait <= 0:
            self.backoff.restarted((uid, name), time.time())
            return None
        message = (
            f"back-off {self._backoff_text(wait, finished)} restarting failed "
            f"container={name} pod={name_of(pod)}_{namespace_of(pod)}({uid})"
        )
        if state.waiting.get(name, {}).get("reason") != "CrashLoopBackOff":
            self.record_event(
                pod,
                "Warning",
                "BackOff",
                "Back-off restarting failed container "
                f"{name} in pod {name_of(pod)}_{namespace_of(pod)}({uid})",
                field_path,
            )
        state.waiting[name] = {"reason": "CrashLoopBackOff", "message": message}
        return wait

    async def _create(
        self,
        pod: Obj,
        spec: Obj,
        sandbox: Container,
        pod_ip: str,
        volumes: Mapping[str, Path],
        restart_count: int,
    ) -> Container:
        """Pull the image as its policy says, resolve the environment, create the container."""
        field_path = (
            f"spec.{'initContainers' if self._is_init(pod, spec['name']) else 'containers'}"
            f"{{{spec['name']}}}"
        )
        pulled = await self._blocking(
            self.runtime.ensure_image, spec["image"], spec.get("imagePullPolicy")
        )
        self.record_event(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{spec["image"]}"'
            if pulled
            else f'Container image "{spec["image"]}" already present on machine',
            field_path,
        )
        made = container_env(
            pod,
            spec,
            self._lookup(namespace_of(pod)),
            service_env(
                self.services.items(),
                namespace_of(pod),
                pod.get("spec", {}).get("enableServiceLinks", True) is not False,
            ),
            PodFacts((pod_ip,), (self.node_ip,), self.allocatable),
        )
        for warning in made.warnings:
            self.record_event(
                pod, "Warning", "InvalidEnvironmentVariableNames", warning, field_path
            )
        container: Container = await self._blocking(
            self.runtime.create_container,
            pod,
            spec,
            sandbox,
            env=made.env,
            restart_count=restart_count,
            prepared_volumes=volumes,
        )
        return container

    def _failed(
        self, pod: Obj, state: PodState, name: str, failure: RuntimeFailure, field_path: str
    ) -> float:
        """Record why the container cannot run; retry after the back-off base."""
        state.waiting[name] = {"reason": failure.reason, "message": failure.message}
        self.record_event(pod, "Warning", "Failed", f"Error: {failure.message}", field_path)
        return self.backoff.base

    @staticmethod
    def _backoff_text(wait: float, finished: float) -> str:
        total = max(1, round(wait + time.time() - finished))
        return f"{total // 60}m{total % 60}s" if total >= 60 else f"{total}s"

    @staticmethod
    def _is_init(pod: Obj, name: str) -> bool:
        return any(c["name"] == name for c in pod.get("spec", {}).get("initContainers") or [])

    async def _sync_volumes(self, pod: Obj, state: PodState) -> dict[str, Path] | None:
        """Write the pod's configMap, secret, downwardAPI and projected volumes whose files
        changed; their directories by volume name, or None while one of them could never
        be set up (the pod's containers wait for it, as the kubelet's wait for their
        mounts)."""
        uid = str(pod["metadata"]["uid"])
        lookup = self._lookup(namespace_of(pod))
        facts = PodFacts((), (self.node_ip,), self.allocatable)
        prepared: dict[str, Path] = {}
        ready = True
        token_failed = False
        for volume in pod.get("spec", {}).get("volumes") or []:
            if not any(kind in volume for kind in WRITTEN_KINDS):
                continue
            name = volume["name"]
            directory = self.runtime.pod_dir(uid) / "volumes" / name
            try:
                tokens = await self.tokens.volume_tokens(pod, volume)
                files = volume_files(volume, lookup, pod, facts, tokens)
                if state.shown_files.get(name) != files:
                    await self._blocking(write_atomic, directory, files)
                    state.shown_files[name] = files
                state.volume_errors.pop(name, None)
            except VolumeError as error:
                token_failed = token_failed or isinstance(error, TokenError)
                message = f'MountVolume.SetUp failed for volume "{name}" : {error}'
                if state.volume_errors.get(name) != message:
                    self.record_event(pod, "Warning", "FailedMount", message, "")
                state.volume_errors[name] = message
                if not (directory / DATA_DIR).is_symlink():
                    ready = False  # never set up
                    continue
                # set up before (its object deleted since): its files stay
            prepared[name] = directory
        state.token_failures = state.token_failures + 1 if token_failed else 0
        return prepared if ready else None

    # ------------------------------------------------------------------ probes

    def _ensure_probes(
        self, pod: Obj, state: PodState, spec: Obj, container: Container, pod_ip: str
    ) -> None:
        previous = state.probes.get(spec["name"])
        if previous is not None:
            if previous[0] == container.id:
                return
            for worker in previous[1]:
                self._spawn(worker.stop())
            for kind in PROBE_FIELDS:
                state.verdicts.pop((previous[0], kind), None)
        key = key_of(pod)
        startup: asyncio.Event | None = asyncio.Event() if spec.get("startupProbe") else None
        workers: list[ProbeWorker] = []

        def on_result(kind: ProbeKind, result: CheckResult, passing: bool, changed: bool) -> None:
            if not result.success:
                self.record_event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    f"{kind.capitalize()} probe failed: {result.message}",
                    f"spec.containers{{{spec['name']}}}",
                )
            if not changed:
                return
            state.verdicts[(container.id, kind)] = passing
            if kind == "startup" and passing and startup is not None:
                startup.set()
            if not passing and kind in ("liveness", "startup"):
                self._spawn(self._kill_unhealthy(pod, spec, container, kind))
            self.queue.add(key)

        async def run(command: list[str], timeout: float) -> tuple[int | None, bytes]:
            return await self._exec_output(container, command, timeout)

        for kind, field in PROBE_FIELDS.items():
            probe = spec.get(field)
            if probe:
                worker = ProbeWorker(
                    kind,
                    probe,
                    spec,
                    pod_ip,
                    run,
                    on_result,
                    None if kind == "startup" else startup,
                )
                worker.start()
                workers.append(worker)
        state.probes[spec["name"]] = (container.id, workers)

    async def _exec_output(
        self, container: Container, command: list[str], timeout: float
    ) -> tuple[int | None, bytes]:
        session = await self.runtime.exec(container, command)
        output = bytearray()
        try:
            async with asyncio.timeout(timeout):
                while (frame := await session.read()) is not None:
                    output += frame[1]
        except TimeoutError:
            await session.close()
            return None, bytes(output)
        await session.close()
        return await session.exit_code(timeout), bytes(output)

    async def _kill_unhealthy(self, pod: Obj, spec: Obj, container: Container, kind: str) -> None:
        self.record_event(
            pod,
            "Normal",
            "Killing",
            f"Container {spec['name']} failed {kind} probe, will be restarted",
            f"spec.containers{{{spec['name']}}}",
        )
        grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        # Stops wait out the grace period: on asyncio's threads, never holding the
        # sync loop's (so do the stops of a deleted pod, in _terminate).
        await asyncio.to_thread(self.runtime.stop, container, int(grace))

    async def _stop_probes(self, state: PodState) -> None:
        for _, workers in state.probes.values():
            for worker in workers:
                await worker.stop()
        state.probes.clear()

    # ------------------------------------------------------------------ status

    def _records(
        self, pod: Obj, state: PodState, containers: list[Container], field: str
    ) -> list[ContainerRecord]:
        records = []
        for spec in pod.get("spec", {}).get(field) or []:
            instances = self._instances(containers, spec["name"])
            record = ContainerRecord(
                name=spec["name"],
                image=spec["image"],
                state={"waiting": {"reason": "PodInitializing"}},
            )
            if field == "containers":
                record.state = {"waiting": {"reason": "ContainerCreating"}}
            if instances:
                latest = instances[0]
                record.state = state_from_docker(latest.id, latest.attrs["State"])
                record.restart_count = _restart_count(latest)
                record.container_id = f"docker://{latest.id}"
                image_id = latest.attrs.get("Image")  # known once started
                record.image_id = f"docker://{image_id}" if image_id else ""
                if len(instances) > 1:
                    previous = instances[1]
                    record.last_state = state_from_docker(previous.id, previous.attrs["State"])
                running = "running" in record.state
                started = state.verdicts.get((latest.id, "startup"), not spec.get("startupProbe"))
                record.started = running and started
                ready = state.verdicts.get((latest.id, "readiness"), not spec.get("readinessProbe"))
                record.ready = record.started and ready
            waiting = state.waiting.get(spec["name"])
            if waiting is not None and "running" not in record.state:
                if "terminated" in record.state and record.state["terminated"].get("containerID"):
                    record.last_state = record.state
                record.state = {"waiting": waiting}
            if field == "initContainers":
                record.ready = _succeeded(record)
            records.append(record)
        return records

    async def _write_status(self, pod: Obj, state: PodState, containers: list[Container]) -> None:
        uid = str(pod["metadata"]["uid"])
        status = pod_status(
            pod,
            self._records(pod, state, containers, "initContainers"),
            self._records(pod, state, containers, "containers"),
            self.ipam.allocations().get(uid, ""),
            self.node_ip,
            now_rfc3339(),
        )
        if state.written == status or not status_differs(pod.get("status") or {}, status):
            return
        try:
            await self.client.patch(
                "Pod",
                name_of(pod),
                {"metadata": {"uid": uid}, "status": status},
                namespace_of(pod),
                sub="status",
            )
        except ApiException as error:
            if error.code not in (404, 409):
                raise
            return
        state.written = status

    # ------------------------------------------------------------------ deletion

    async def _terminate(self, pod: Obj, state: PodState) -> None:
        """Graceful deletion: stop every container within the grace period, clean up,
        then remove the API object."""
        uid = str(pod["metadata"]["uid"])
        grace = int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        try:
            await self._stop_probes(state)
            containers = await self._blocking(self.runtime.pod_containers, uid)
            running = [
                c
                for c in containers
                if c.status == "running" and _labels(c).get(LABEL_CONTAINER_NAME) != SANDBOX_NAME
            ]
            for container in running:
                name = _labels(container)[LABEL_CONTAINER_NAME]
                self.record_event(
                    pod,
                    "Normal",
                    "Killing",
                    f"Stopping container {name}",
                    f"spec.containers{{{name}}}",
                )
            await asyncio.gather(*(asyncio.to_thread(self.runtime.stop, c, grace) for c in running))
            await self._teardown(uid, keep_state=True)
            with contextlib.suppress(ApiException):
                await self.client.delete(
                    "Pod",
                    name_of(pod),
                    namespace_of(pod),
                    {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                )
        except Exception:
            log.exception("terminating pod %s failed; retrying", state.key)
            self.queue.add_after(state.key, 1.0)
        finally:
            self.states.pop(uid, None)

    async def _teardown(self, uid: str, keep_state: bool = False) -> None:
        state = self.states.get(uid) if keep_state else self.states.pop(uid, None)
        if state is not None:
            await self._stop_probes(state)
        await self._blocking(self.runtime.remove_pod, uid)
        await self._blocking(self.network.detach_sandbox, uid)
        self.ipam.release(uid)
        self.backoff.forget(uid)
        self.tokens.forget(uid)
