"""The pod sync loop: this node's pods, from the API to Docker and back.

Level-triggered, as the kubelet's pod workers: every change of a pod (informer), of one
of its containers (Docker `die` events), of a probe verdict, or the end of a
back-off enqueues the pod's key; `sync` compares the pod's spec with the containers
that really exist (found by their labels, so a restarted agent adopts them: nothing is
restarted, the address comes back from the persistent IPAM) and makes one step
towards it, then writes the status it observes.

The step: sandbox with an address from the node's pod CIDR and a veth on `cni0`; init
containers one at a time, in order; app containers with their environment (values,
fieldRef, the Service variables) and volumes (emptyDir and hostPath by the runtime,
configMap and secret written here); restarts by `restartPolicy` with the kubelet's
crash back-off (immediate the first time, then base, 2x base, ... up to the cap);
probes per running container; graceful deletion (the image's stop signal, the pod's
grace period, SIGKILL, then the API object is deleted with grace 0). Housekeeping
removes the containers, files and addresses of pods that no longer exist.

The pure parts (Service environment, fieldRef values, phase, conditions, the container
statuses, back-off) are module functions with unit tests; `PodSyncer` is the adapter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container

from agent.dns.pod_config import render_etc_hosts, render_resolv_conf
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
    resolve_env,
    state_from_docker,
)
from minikube_py.api.types import Obj, name_of, namespace_of
from minikube_py.client import ApiException, Client
from minikube_py.informer import Informer, WorkQueue, key_of

log = logging.getLogger(__name__)

WORKERS = 16
HOUSEKEEPING_SECONDS = 10.0
DEFAULT_GRACE_SECONDS = 30
REMOVE_ATTEMPTS = 5


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- pure: environment -----------------------------------------------------------------


def _env_name(service_name: str) -> str:
    return service_name.upper().replace("-", "_")


def _is_service_ip_set(service: Obj) -> bool:
    ip = service.get("spec", {}).get("clusterIP") or ""
    return ip not in ("", "None")


def service_env(
    services: Iterable[Obj], namespace: str, enable_links: bool = True
) -> dict[str, str]:
    """The Kubernetes Service variables of a pod in `namespace`: the `kubernetes`
    Service of `default` always, the pod's namespace's Services with `enableServiceLinks`
    (theirs win on a name clash, as in the kubelet)."""
    chosen: dict[str, Obj] = {}
    for service in services:
        if not _is_service_ip_set(service):
            continue
        ns, name = namespace_of(service), name_of(service)
        if ns == "default" and name == "kubernetes":
            chosen.setdefault(name, service)
        elif ns == namespace and enable_links:
            chosen[name] = service
    env: dict[str, str] = {}
    for name, service in sorted(chosen.items()):
        spec = service["spec"]
        ip = spec["clusterIP"]
        ports = spec.get("ports") or []
        prefix = _env_name(name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        if not ports:
            continue
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
        first = ports[0]
        env[f"{prefix}_PORT"] = (
            f"{str(first.get('protocol') or 'TCP').lower()}://{ip}:{first['port']}"
        )
        for port in ports:
            protocol = str(port.get("protocol") or "TCP")
            link = f"{prefix}_PORT_{port['port']}_{protocol.upper()}"
            env[link] = f"{protocol.lower()}://{ip}:{port['port']}"
            env[f"{link}_PROTO"] = protocol.lower()
            env[f"{link}_PORT"] = str(port["port"])
            env[f"{link}_ADDR"] = ip
    return env


def field_values(pod: Obj, pod_ip: str, host_ip: str) -> dict[str, str]:
    """fieldRef paths a container's env may name -> their values."""
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    values = {
        "metadata.name": name_of(pod),
        "metadata.namespace": namespace_of(pod),
        "metadata.uid": str(metadata.get("uid", "")),
        "spec.nodeName": str(spec.get("nodeName", "")),
        "spec.serviceAccountName": str(spec.get("serviceAccountName", "")),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    for kind in ("labels", "annotations"):
        for key, value in (metadata.get(kind) or {}).items():
            values[f"metadata.{kind}['{key}']"] = str(value)
    return values


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


# --- pure: volumes ------------------------------------------------------------------------


def volume_files(volume: Obj, source: Obj | None) -> dict[str, tuple[bytes, int]]:
    """Files (relative path -> content, mode) of a configMap or secret volume from its
    object (None when it does not exist). Raises RuntimeFailure as the kubelet would."""
    kind = "configMap" if "configMap" in volume else "secret"
    ref = volume[kind]
    name = ref.get("name") if kind == "configMap" else ref.get("secretName")
    if source is None:
        if ref.get("optional"):
            return {}
        raise RuntimeFailure("CreateContainerConfigError", f'{kind.lower()} "{name}" not found')
    data: dict[str, bytes] = {}
    if kind == "configMap":
        data.update({k: str(v).encode() for k, v in (source.get("data") or {}).items()})
        data.update({k: base64.b64decode(v) for k, v in (source.get("binaryData") or {}).items()})
    else:
        data.update({k: base64.b64decode(v) for k, v in (source.get("data") or {}).items()})
        data.update({k: str(v).encode() for k, v in (source.get("stringData") or {}).items()})
    mode = int(ref.get("defaultMode", 0o644))
    items = ref.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if ref.get("optional"):
                continue
            raise RuntimeFailure(
                "CreateContainerConfigError",
                f"couldn't find key {item['key']} in {kind} {namespace_of(source)}/{name}",
            )
        files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
    return files


def write_volume(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for relative, (content, mode) in files.items():
        path = directory / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            raise RuntimeFailure(
                "CreateContainerConfigError", f"volume path {relative!r} must stay inside"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)


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
        node_name: str,
        node_ip: str,
        dns_ip: str,
        host_resolv_conf: str,
        cluster_domain: str = "cluster.local",
        backoff: CrashBackoff | None = None,
        record_event: Recorder | None = None,
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.network = network
        self.ipam = ipam
        self.pods = pods
        self.services = services
        self.node_name = node_name
        self.node_ip = node_ip
        self.dns_ip = dns_ip
        self.host_resolv_conf = host_resolv_conf
        self.cluster_domain = cluster_domain
        self.backoff = backoff or CrashBackoff()
        self.record_event = record_event or EventRecorder(client, node_name).record
        self.queue: WorkQueue[str] = WorkQueue()
        self.states: dict[str, PodState] = {}  # by pod uid
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events_stream: Any = None
        self._background: set[asyncio.Task[None]] = set()
        pods.add_handler(lambda _kind, new, _old: self.queue.add(key_of(new)))

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Sync forever (the informers must be started; this waits for their sync)."""
        self._loop = asyncio.get_running_loop()
        await self.pods.synced.wait()
        await self.services.synced.wait()
        threading.Thread(target=self._watch_docker, name="docker-events", daemon=True).start()
        await asyncio.gather(self.queue.run_workers(self.sync, WORKERS), self._housekeeping())

    def stop(self) -> None:
        if self._events_stream is not None:
            self._events_stream.close()

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
                attributes = event.get("Actor", {}).get("Attributes", {})
                key = f"{attributes.get(LABEL_POD_NAMESPACE)}/{attributes.get(LABEL_POD_NAME)}"
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
        listed = await asyncio.to_thread(
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
        containers = await asyncio.to_thread(self._containers, uid)
        if phase in ("Succeeded", "Failed") and not any(c.status == "running" for c in containers):
            await self._stop_probes(state)
            return
        requeue = await self._step(pod, state, containers)
        await self._write_status(pod, state, containers)
        if requeue is not None:
            self.queue.add_after(key, requeue)

    def _containers(self, uid: str) -> list[Container]:
        found: list[Container] = self.runtime.client.containers.list(
            all=True,
            ignore_removed=True,
            filters={"label": [f"{LABEL_POD_UID}={uid}", f"{LABEL_NODE_NAME}={self.node_name}"]},
        )
        return found

    @staticmethod
    def _instances(containers: list[Container], name: str) -> list[Container]:
        """The Docker instances of one Kubernetes container, newest first."""
        mine = [c for c in containers if _labels(c).get(LABEL_CONTAINER_NAME) == name]
        return sorted(mine, key=_restart_count, reverse=True)

    async def _step(self, pod: Obj, state: PodState, containers: list[Container]) -> float | None:
        """One step towards the spec; returns seconds after which to look again.

        `containers` is kept up to date with what the step starts and removes, so the
        status is written without asking Docker again."""
        uid = str(pod["metadata"]["uid"])
        spec = pod.get("spec", {})
        sandboxes = self._instances(containers, SANDBOX_NAME)
        if not sandboxes or sandboxes[0].status != "running":
            if sandboxes:  # the sandbox died (engine restart): the pod starts over
                await asyncio.to_thread(self.runtime.remove_pod, uid)
                await self._stop_probes(state)
            containers[:] = [await self._start_sandbox(pod)]
            sandboxes = containers[:]
        sandbox = sandboxes[0]
        pod_ip = self.ipam.allocate(uid)
        policy = spec.get("restartPolicy") or "Always"

        for init in spec.get("initContainers") or []:
            instances = self._instances(containers, init["name"])
            if instances and instances[0].status == "running":
                return None  # its `die` event brings us back
            if instances:
                exit_code = int(instances[0].attrs["State"].get("ExitCode") or 0)
                if exit_code == 0:
                    continue
                if policy == "Never":
                    return None
            return await self._maybe_start(pod, state, init, containers, sandbox, pod_ip)

        requeue: float | None = None
        for app in spec.get("containers") or []:
            instances = self._instances(containers, app["name"])
            if instances and instances[0].status in ("running", "paused", "restarting"):
                self._ensure_probes(pod, state, app, instances[0], pod_ip)
                continue
            if instances:
                exit_code = int(instances[0].attrs["State"].get("ExitCode") or 0)
                if instances[0].status != "created" and not should_restart(policy, exit_code):
                    continue
            delay = await self._maybe_start(pod, state, app, containers, sandbox, pod_ip)
            if delay is not None:
                requeue = delay if requeue is None else min(requeue, delay)
        return requeue

    async def _start_sandbox(self, pod: Obj) -> Container:
        uid = str(pod["metadata"]["uid"])
        pod_ip = self.ipam.allocate(uid)
        hosts = render_etc_hosts(pod, pod_ip, self.cluster_domain)
        resolv = render_resolv_conf(pod, self.dns_ip, self.host_resolv_conf, self.cluster_domain)

        def start() -> Container:
            sandbox = self.runtime.run_sandbox(pod, hosts=hosts, resolv_conf=resolv)
            self.network.attach_sandbox(int(sandbox.attrs["State"]["Pid"]), uid, pod_ip)
            return sandbox

        return await asyncio.to_thread(start)

    async def _maybe_start(
        self,
        pod: Obj,
        state: PodState,
        spec: Obj,
        containers: list[Container],
        sandbox: Container,
        pod_ip: str,
    ) -> float | None:
        """Start the container now, or say how long its back-off still holds."""
        uid = str(pod["metadata"]["uid"])
        name = spec["name"]
        instances = self._instances(containers, name)
        field_path = (
            f"spec.{'initContainers' if self._is_init(pod, name) else 'containers'}{{{name}}}"
        )
        restart_count = 0
        if instances:
            previous = instances[0]
            restart_count = _restart_count(previous) + 1
            finished = _docker_seconds(previous.attrs["State"].get("FinishedAt"))
            wait = self.backoff.remaining((uid, name), finished, time.time())
            if wait > 0:
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
            self.backoff.restarted((uid, name), time.time())
        env = resolve_env(
            spec,
            field_values(pod, pod_ip, self.node_ip),
            service_env(
                self.services.items(),
                namespace_of(pod),
                pod.get("spec", {}).get("enableServiceLinks", True) is not False,
            ),
        )
        try:
            volumes = await self._prepare_volumes(pod)
            pulled = await asyncio.to_thread(
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
            container = await asyncio.to_thread(
                self.runtime.run_container,
                pod,
                spec,
                sandbox,
                env=env,
                restart_count=restart_count,
                prepared_volumes=volumes,
            )
        except RuntimeFailure as failure:
            state.waiting[name] = {"reason": failure.reason, "message": failure.message}
            self.record_event(pod, "Warning", "Failed", f"Error: {failure.message}", field_path)
            return self.backoff.base
        state.waiting.pop(name, None)
        self.record_event(pod, "Normal", "Created", f"Created container {name}", field_path)
        self.record_event(pod, "Normal", "Started", f"Started container {name}", field_path)
        # Keep the newest instance and the one before it (lastState, logs --previous).
        for old in instances[1:]:
            with contextlib.suppress(docker.errors.NotFound):
                await asyncio.to_thread(old.remove, force=True)
            containers.remove(old)
        containers.append(container)
        if not self._is_init(pod, name):
            self._ensure_probes(pod, state, spec, container, pod_ip)
        return None

    @staticmethod
    def _backoff_text(wait: float, finished: float) -> str:
        total = max(1, round(wait + time.time() - finished))
        return f"{total // 60}m{total % 60}s" if total >= 60 else f"{total}s"

    @staticmethod
    def _is_init(pod: Obj, name: str) -> bool:
        return any(c["name"] == name for c in pod.get("spec", {}).get("initContainers") or [])

    async def _prepare_volumes(self, pod: Obj) -> dict[str, Path]:
        prepared: dict[str, Path] = {}
        uid = str(pod["metadata"]["uid"])
        for volume in pod.get("spec", {}).get("volumes") or []:
            if "configMap" in volume:
                kind, name = "ConfigMap", volume["configMap"].get("name")
            elif "secret" in volume:
                kind, name = "Secret", volume["secret"].get("secretName")
            else:
                continue
            try:
                source: Obj | None = await self.client.get(kind, name, namespace_of(pod))
            except ApiException as error:
                if error.code != 404:
                    raise
                source = None
            directory = self.runtime.pod_dir(uid) / "volumes" / volume["name"]
            await asyncio.to_thread(write_volume, directory, volume_files(volume, source))
            prepared[volume["name"]] = directory
        return prepared

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
                record.image_id = f"docker://{latest.attrs.get('Image', '')}"
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
            containers = await asyncio.to_thread(self._containers, uid)
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
        for attempt in range(REMOVE_ATTEMPTS):
            try:
                await asyncio.to_thread(self.runtime.remove_pod, uid)
                break
            except docker.errors.NotFound:
                # Another pod's container vanished while the runtime listed them all.
                if attempt == REMOVE_ATTEMPTS - 1:
                    raise
        await asyncio.to_thread(self.network.detach_sandbox, uid)
        self.ipam.release(uid)
        self.backoff.forget(uid)


class EventRecorder:
    """core/v1 Events about pods, reported as the kubelet of this node."""

    def __init__(self, client: Client, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, pod: Obj, kind: str, reason: str, message: str, field_path: str) -> None:
        task = asyncio.ensure_future(self._send(pod, kind, reason, message, field_path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, pod: Obj, kind: str, reason: str, message: str, field_path: str) -> None:
        now = now_rfc3339()
        metadata = pod.get("metadata", {})
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{name_of(pod)}.{time.time_ns():x}",
                "namespace": namespace_of(pod),
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": name_of(pod),
                "namespace": namespace_of(pod),
                "uid": metadata.get("uid", ""),
                "fieldPath": field_path,
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.create(event, namespace_of(pod))
        except (ApiException, OSError) as error:
            log.debug("event %s for %s not recorded: %s", reason, name_of(pod), error)
