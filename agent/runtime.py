"""Pods as Docker containers: the agent's container runtime adapter.

A pod is a pause sandbox container with network `none` (the agent wires its network
namespace, see agent.network) plus one Docker container per Kubernetes container, each
joined to the sandbox's network and IPC namespaces (`container:<sandbox>`), as in
Kubernetes. As the kubelet's default, a container runs without a seccomp filter unless
its securityContext asks for RuntimeDefault (this also spares runc compiling Docker's
profile at every start). Every container
carries labels naming its pod (uid, name, namespace), its container name (`POD` for the
sandbox), its restart count and its node, so a restarted agent rebuilds its view from
Docker alone (`list_pod_containers`), and agents of several lab nodes can share one
engine without adopting each other's pods. Containers never restart by themselves:
restart policy and back-off are the agent's decisions. Container ports are informational,
as in Kubernetes: the pod's address serves every port (hostPort is not supported).

Per-pod files live under `<state_dir>/pods/<uid>/`: the hostname, hosts and resolv.conf
files the agent writes (bind-mounted into every container), emptyDir volumes and the
configMap and secret volumes agent.volumes writes.

`pod_containers` lists a pod's containers with one call and inspects only those whose
state changed since their last inspection: a pod's periodic sync costs one request.

Creating and starting are separate steps (`create_sandbox`, `create_container`,
`start_container`): a container joining the sandbox's network may be created while the
sandbox is still starting, and Docker wants the sandbox running only when the container
starts.

The pure parts (`$(VAR)` expansion, resources, mounts, state mapping) are module functions;
`DockerRuntime` is the thin adapter. Its methods block on the Docker API: call them from
asyncio in a thread. `exec` and `attach` are natively async: they speak
the hijacked stream on the Docker socket themselves (`StreamSession`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, overload

import docker
import docker.errors

# The argument mapping of `containers.create`, used without the inspect it ends with.
from docker.models.containers import Container, _create_container_args

from minikube_py.api.defaults import image_pull_policy
from minikube_py.api.quantity import parse_quantity
from minikube_py.api.types import Obj, name_of, namespace_of
from minikube_py.images import PAUSE_IMAGE

LABEL_POD_UID = "minikube-py.io/pod-uid"
LABEL_POD_NAME = "minikube-py.io/pod-name"
LABEL_POD_NAMESPACE = "minikube-py.io/pod-namespace"
LABEL_CONTAINER_NAME = "minikube-py.io/container-name"
LABEL_RESTART_COUNT = "minikube-py.io/restart-count"
LABEL_NODE_NAME = "minikube-py.io/node-name"
SANDBOX_NAME = "POD"
DOCKER_SOCKET = "/var/run/docker.sock"
_ZERO_TIME = "0001-01-01T00:00:00Z"


CONFIG_ERROR = "CreateContainerConfigError"  # the waiting reason of a spec that cannot run
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


class RuntimeFailure(Exception):
    """A container could not be made to run; `reason` is the Kubernetes waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


# --- pure helpers ---------------------------------------------------------------------

# `$$` escapes; `$(` opens a reference closed by the next `)`; anything else is literal.
_REFERENCE = re.compile(r"\$(?:(\$)|\(([^)]*)\))")


def expand(text: str, *mappings: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: a reference defined in the first mapping that has
    it becomes its value (inserted as is, never expanded again), `$$` becomes `$`, and
    everything else (undefined references, a lone `$`, an unclosed `$(`) stays."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2)
        for mapping in mappings:
            if name in mapping:
                return mapping[name]
        return match.group(0)

    return _REFERENCE.sub(replace, text)


def pod_hostname(pod: Obj) -> str:
    """spec.hostname, else the pod name, cut to the 63 characters of a DNS label."""
    hostname = pod.get("spec", {}).get("hostname") or name_of(pod)
    return hostname[:63].rstrip("-.")


def resource_limits(spec: Obj) -> dict[str, Any]:
    """Docker host-config arguments for the container's resources."""
    resources = spec.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    args: dict[str, Any] = {}
    if "cpu" in limits:
        args["nano_cpus"] = int(parse_quantity(limits["cpu"]) * Decimal(10**9))
    if "memory" in limits:
        args["mem_limit"] = int(parse_quantity(limits["memory"]))
    if "cpu" in requests:
        # The kubelet's mapping of a CPU request to cgroup shares (1 CPU = 1024, min 2).
        args["cpu_shares"] = max(2, int(parse_quantity(requests["cpu"]) * 1024))
    return args


def security_options(pod: Obj, spec: Obj) -> dict[str, Any]:
    """Docker arguments for the pod's and the container's securityContext."""
    pod_context = pod.get("spec", {}).get("securityContext") or {}
    context = {**pod_context, **(spec.get("securityContext") or {})}
    args: dict[str, Any] = {}
    user = context.get("runAsUser")
    group = context.get("runAsGroup")
    if user is not None:
        args["user"] = f"{user}:{group}" if group is not None else str(user)
    if pod_context.get("supplementalGroups"):
        args["group_add"] = [str(g) for g in pod_context["supplementalGroups"]]
    if context.get("privileged"):
        args["privileged"] = True
    if context.get("readOnlyRootFilesystem"):
        args["read_only"] = True
    capabilities = context.get("capabilities") or {}
    if capabilities.get("add"):
        args["cap_add"] = list(capabilities["add"])
    if capabilities.get("drop"):
        args["cap_drop"] = list(capabilities["drop"])
    args.update(seccomp_options(context.get("seccompProfile")))
    for field in HOST_NAMESPACES:
        # a lab node is a network namespace, not a host: its pods get namespaces of their own
        if pod.get("spec", {}).get(field):
            raise RuntimeFailure(CONFIG_ERROR, f"{field} is not supported by this agent")
    return args


def seccomp_options(profile: Mapping[str, Any] | None) -> dict[str, Any]:
    """Docker arguments for a seccompProfile. As the kubelet's default (seccompDefault
    off), a container without one runs Unconfined; RuntimeDefault is Docker's default
    profile. Localhost profiles (files on the node) are not supported."""
    kind = (profile or {}).get("type") or "Unconfined"
    if kind == "RuntimeDefault":
        return {}
    if kind == "Unconfined":
        return {"security_opt": ["seccomp=unconfined"]}
    raise RuntimeFailure(CONFIG_ERROR, f"seccompProfile type {kind!r} is not supported")


def _docker_time(value: str | None) -> str | None:
    """Docker's RFC 3339 with nanoseconds -> Kubernetes' whole-second RFC 3339."""
    if not value or value == _ZERO_TIME:
        return None
    return value[:19] + "Z"


def state_from_docker(container_id: str, state: Mapping[str, Any]) -> Obj:
    """A containerStatus `state` from Docker's `State` of the container."""
    status = state.get("Status")
    started = _docker_time(state.get("StartedAt"))
    if status in ("running", "paused", "restarting"):
        return {"running": {"startedAt": started}}
    if status == "created" and not state.get("Error"):
        return {"waiting": {"reason": "ContainerCreating"}}
    exit_code = int(state.get("ExitCode") or 0)
    if status == "created":
        reason, exit_code = "StartError", exit_code or 128
    elif state.get("OOMKilled"):
        reason = "OOMKilled"
    else:
        reason = "Completed" if exit_code == 0 else "Error"
    terminated: Obj = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": _docker_time(state.get("FinishedAt")),
        "containerID": f"docker://{container_id}",
    }
    if state.get("Error"):
        terminated["message"] = state["Error"]
    return {"terminated": {k: v for k, v in terminated.items() if v is not None}}


def never_started(state: Mapping[str, Any]) -> bool:
    """Whether Docker's `State` is of a container created and never asked to start (a
    failed start leaves an error): made beside a starting sandbox, it is started as it
    is rather than counted as a restart."""
    return state.get("Status") == "created" and not state.get("Error")


def pod_labels(pod: Obj, container_name: str, restart_count: int, node_name: str) -> dict[str, str]:
    metadata = pod.get("metadata", {})
    return {
        LABEL_NODE_NAME: node_name,
        LABEL_POD_UID: str(metadata.get("uid", "")),
        LABEL_POD_NAME: name_of(pod),
        LABEL_POD_NAMESPACE: namespace_of(pod),
        LABEL_CONTAINER_NAME: container_name,
        LABEL_RESTART_COUNT: str(restart_count),
    }


def docker_name(pod: Obj, container_name: str, restart_count: int) -> str:
    uid = pod.get("metadata", {}).get("uid", "")
    return f"mkpy_{container_name}_{name_of(pod)}_{namespace_of(pod)}_{uid}_{restart_count}"


# --- the adapter ----------------------------------------------------------------------


class DockerRuntime:
    def __init__(
        self,
        client: docker.DockerClient,
        state_dir: Path,
        node_name: str,
        pause_image: str = PAUSE_IMAGE,
        docker_socket: str = DOCKER_SOCKET,
        allow_pull: bool = True,
    ) -> None:
        """`allow_pull=False` keeps the node off every registry (the lab, where nothing may
        leave the machine): images must be local, and Always uses the local copy."""
        self.client = client
        self.allow_pull = allow_pull
        self.state_dir = Path(state_dir)
        self.node_name = node_name
        self.pause_image = pause_image
        self.docker_socket = docker_socket
        # pod uid -> container id -> (Docker's state word when inspected, the container)
        self._inspected: dict[str, dict[str, tuple[str, Container]]] = {}
        # pod uid -> ids of its containers whose `die` event came since its last listing
        self._died: dict[str, set[str]] = {}
        # images seen present: not looked up again before each container made of them
        # (a container of one removed since is made after a fresh look, see `_create`)
        self._present: set[str] = set()

    def pod_dir(self, uid: str) -> Path:
        return self.state_dir / "pods" / uid

    def ensure_image(self, image: str, policy: str | None = None) -> bool:
        """Pull per imagePullPolicy (default by tag, as Kubernetes); True if pulled."""
        policy = policy or image_pull_policy(image)
        present = True
        if image not in self._present or (policy == "Always" and self.allow_pull):
            try:
                self.client.images.get(image)
                self._present.add(image)
            except docker.errors.ImageNotFound:
                present = False
        if policy == "Never" or (present and (policy == "IfNotPresent" or not self.allow_pull)):
            if not present:
                raise RuntimeFailure(
                    "ErrImageNeverPull",
                    f'Container image "{image}" is not present with pull policy of Never',
                )
            return False
        if not self.allow_pull:
            raise RuntimeFailure(
                "ErrImagePull", f'image "{image}" is not present and this node may not pull'
            )
        try:
            self.client.images.pull(image)
        except docker.errors.APIError as error:
            raise RuntimeFailure("ErrImagePull", str(error.explanation or error)) from error
        return True

    def create_sandbox(self, pod: Obj, *, hosts: str, resolv_conf: str) -> Container:
        """Write the pod's files and create its pause sandbox (network `none`), not started:
        the pod's containers can be created to join it while it starts."""
        uid = str(pod["metadata"]["uid"])
        etc = self.pod_dir(uid) / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        hostname = pod_hostname(pod)
        (etc / "hostname").write_text(hostname + "\n")
        (etc / "hosts").write_text(hosts)
        (etc / "resolv.conf").write_text(resolv_conf)
        pod_context = pod.get("spec", {}).get("securityContext") or {}
        profile = pod_context.get("seccompProfile") or {}
        options: dict[str, Any] = {
            "name": docker_name(pod, SANDBOX_NAME, 0),
            "hostname": hostname,
            "network_mode": "none",
            # and no libnetwork sandbox: runc makes the namespace, with no re-executed
            # dockerd to create it nor a libnetwork-setkey prestart hook (each a Go binary
            # start), which halves a sandbox's start; the agent wires it, `lo` included
            "network_disabled": True,
            "ipc_mode": "shareable",  # the pod's containers join it, as its network
            "log_config": {"type": "none"},  # pause writes nothing; no log file to keep
            "labels": pod_labels(pod, SANDBOX_NAME, 0, self.node_name),
            "detach": True,
            # pause needs no syscall a profile would deny: only RuntimeDefault is honoured
            **seccomp_options(profile if profile.get("type") == "RuntimeDefault" else None),
        }
        return self._create(self.pause_image, options, "IfNotPresent")

    def sandbox_pid(self, sandbox: Container) -> int:
        sandbox.reload()
        return int(sandbox.attrs["State"]["Pid"])

    def _mounts(self, pod: Obj, spec: Obj, prepared_volumes: Mapping[str, Path]) -> list[str]:
        uid = str(pod["metadata"]["uid"])
        sources: dict[str, Path] = dict(prepared_volumes)
        for volume in pod.get("spec", {}).get("volumes") or []:
            name = volume["name"]
            if name in sources:
                continue
            if "emptyDir" in volume:
                sources[name] = self.pod_dir(uid) / "volumes" / name
                sources[name].mkdir(parents=True, exist_ok=True)
                sources[name].chmod(0o777)  # as the kubelet: writable by any pod user
            elif "hostPath" in volume:
                sources[name] = _host_path(volume["hostPath"])
        binds = []
        targets = set()
        for mount in spec.get("volumeMounts") or []:
            if mount["name"] not in sources:
                raise RuntimeFailure(
                    CONFIG_ERROR,
                    f"volume {mount['name']!r} is not supported or not prepared",
                )
            source = sources[mount["name"]]
            sub_path = mount.get("subPath")
            if sub_path:
                if Path(sub_path).is_absolute() or ".." in Path(sub_path).parts:
                    raise RuntimeFailure(CONFIG_ERROR, f"subPath {sub_path!r} must stay inside")
                volume_root = source.resolve()
                source = source / sub_path
                if not source.exists():
                    source.mkdir(parents=True, exist_ok=True)
                # Bound as what it resolves to now: a configMap key (a link into the
                # current version) keeps that version, as a subPath mount does.
                source = source.resolve()
                if not source.is_relative_to(volume_root):
                    raise RuntimeFailure(CONFIG_ERROR, f"subPath {sub_path!r} leaves its volume")
            mode = "ro" if mount.get("readOnly") else "rw"
            binds.append(f"{source}:{mount['mountPath']}:{mode}")
            targets.add(mount["mountPath"])
        etc = self.pod_dir(uid) / "etc"
        for name in ("hostname", "hosts", "resolv.conf"):
            if f"/etc/{name}" not in targets:
                binds.append(f"{etc / name}:/etc/{name}:rw")
        return binds

    def create_container(
        self,
        pod: Obj,
        spec: Obj,
        sandbox: Container,
        *,
        env: Mapping[str, str],
        restart_count: int = 0,
        prepared_volumes: Mapping[str, Path] | None = None,
    ) -> Container:
        """Create (not start) one of the pod's containers in the sandbox's network. Its
        image must be present (`ensure_image`); the sandbox must exist, and run by the
        time this container starts.

        `env` is the resolved environment (agent.env.container_env); `$(VAR)` in command
        and args expand against it. `prepared_volumes` maps volume names the agent
        materialised itself (configMap, secret, ...) to host directories.
        Raises RuntimeFailure with the Kubernetes reason when it cannot be made.
        """
        options: dict[str, Any] = {
            "name": docker_name(pod, spec["name"], restart_count),
            "network_mode": f"container:{sandbox.id}",
            "ipc_mode": f"container:{sandbox.id}",
            "labels": pod_labels(pod, spec["name"], restart_count, self.node_name),
            "environment": dict(env),
            "volumes": self._mounts(pod, spec, prepared_volumes or {}),
            # docker-py sets StdinOnce exactly for a non-detached container with open
            # stdin (the Attach* flags it sets too are only read by a CLI client).
            "detach": not (spec.get("stdin") and spec.get("stdinOnce")),
            "stdin_open": bool(spec.get("stdin")),
            "tty": bool(spec.get("tty")),
            **resource_limits(spec),
            **security_options(pod, spec),
        }
        if spec.get("command"):
            options["entrypoint"] = [expand(part, env) for part in spec["command"]]
        if spec.get("args"):
            options["command"] = [expand(part, env) for part in spec["args"]]
        if spec.get("workingDir"):
            options["working_dir"] = spec["workingDir"]
        try:
            return self._create(spec["image"], options, spec.get("imagePullPolicy"))
        except docker.errors.APIError as error:
            raise RuntimeFailure("CreateContainerError", str(error.explanation)) from error

    def _create(self, image: str, options: dict[str, Any], policy: str | None) -> Container:
        """`containers.create` without the inspect docker-py makes after it (a call less
        per container in a burst): the model says what a fresh container's inspect
        would, and its first start refreshes it (`start_container`). An image found
        gone is looked for (and pulled, as `policy` allows) once more."""
        args = {**options, "image": image, "command": options.get("command")}
        args["version"] = self.client.api._version
        try:
            created = self.client.api.create_container(**_create_container_args(args))
        except docker.errors.ImageNotFound:
            self._present.discard(image)
            self.ensure_image(image, policy)
            created = self.client.api.create_container(**_create_container_args(args))
        fresh = {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0, "Error": ""}
        model: Container = self.client.containers.prepare_model(
            {
                "Id": created["Id"],
                "Name": f"/{options['name']}",
                "Config": {"Image": image, "Labels": options["labels"]},
                "State": {**fresh, "StartedAt": _ZERO_TIME, "FinishedAt": _ZERO_TIME},
            }
        )
        return model

    def start_container(self, container: Container) -> None:
        """Start a created container (the sandbox, or one joining it) and refresh its
        attributes (state, pid), which `pod_containers` then reuses. Raises
        RuntimeFailure(StartError) when it cannot run."""
        try:
            container.start()
        except docker.errors.APIError as error:
            raise RuntimeFailure("StartError", str(error.explanation)) from error
        finally:
            with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile
                container.reload()
            self._inspected.setdefault(container.labels[LABEL_POD_UID], {})[container.id] = (
                container.status,
                container,
            )

    def container_died(self, uid: str, container_id: str) -> None:
        """Docker's `die` event for a container of pod `uid`. Docker 20.10 sends it
        before its container list stops saying `running` (the list reads a copy of the
        state that is updated after the event), so `pod_containers` inspects this
        container next time whatever the list says. An inspection waits for the state's
        update."""
        self._died.setdefault(uid, set()).add(container_id)

    def pod_containers(self, uid: str) -> list[Container]:
        """The pod's containers on this node (any state), inspected.

        One list call; a container is inspected only when its state word (created,
        running, exited, ...) differs from the one of its last inspection (here, or by
        `start_container`), or when it died since (`container_died`). Containers never
        restart by themselves, so otherwise an unchanged word means unchanged details
        (pid, start and finish times, exit code)."""
        labels = [f"{LABEL_POD_UID}={uid}", f"{LABEL_NODE_NAME}={self.node_name}"]
        known = self._inspected.get(uid, {})
        died = self._died.pop(uid, set())
        current: dict[str, tuple[str, Container]] = {}
        for summary in self.client.api.containers(all=True, filters={"label": labels}):
            word = str(summary.get("State", ""))
            cached = known.get(summary["Id"])
            if cached is not None and cached[0] == word and summary["Id"] not in died:
                current[summary["Id"]] = cached
                continue
            with contextlib.suppress(docker.errors.NotFound):  # removed meanwhile
                container: Container = self.client.containers.get(summary["Id"])
                current[summary["Id"]] = (word, container)
        self._inspected[uid] = current
        return [container for _, container in current.values()]

    def list_pod_containers(self) -> dict[str, list[Container]]:
        """Every pod container of this node (running or not), by pod uid."""
        pods: dict[str, list[Container]] = {}
        labels = [LABEL_POD_UID, f"{LABEL_NODE_NAME}={self.node_name}"]
        for container in self.client.containers.list(all=True, filters={"label": labels}):
            pods.setdefault(container.labels[LABEL_POD_UID], []).append(container)
        return pods

    def stop(self, container: Container, grace_seconds: int) -> None:
        """The image's stop signal (SIGTERM by default), SIGKILL after the grace period."""
        with contextlib.suppress(docker.errors.NotFound):
            container.stop(timeout=max(0, int(grace_seconds)))

    def remove_pod(self, uid: str) -> None:
        """Remove the pod's containers (any state) and its files, volumes included."""
        labels = [f"{LABEL_POD_UID}={uid}", f"{LABEL_NODE_NAME}={self.node_name}"]
        for summary in self.client.api.containers(all=True, filters={"label": labels}):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(summary["Id"], force=True, v=True)
        self._inspected.pop(uid, None)
        self._died.pop(uid, None)
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)

    def container_state(self, container: Container) -> Obj:
        container.reload()
        return state_from_docker(container.id, container.attrs["State"])

    @overload
    def logs(
        self,
        container: Container,
        *,
        follow: Literal[False] = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> bytes: ...

    @overload
    def logs(
        self,
        container: Container,
        *,
        follow: Literal[True],
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[bytes]: ...

    def logs(
        self,
        container: Container,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> bytes | Iterator[bytes]:
        """stdout and stderr interleaved; with `follow`, an iterator of chunks that ends
        when the container stops (iterate it in a thread)."""
        return container.logs(
            stdout=True,
            stderr=True,
            stream=follow,
            follow=follow,
            timestamps=timestamps,
            tail="all" if tail is None else tail,
        )

    async def exec(
        self, container: Container, command: list[str], *, stdin: bool = False, tty: bool = False
    ) -> ExecSession:
        """Start `command` in the container; returns its stream."""
        created = await asyncio.to_thread(
            self.client.api.exec_create,
            container.id,
            command,
            stdin=stdin,
            tty=tty,
            stdout=True,
            stderr=True,
        )
        exec_id = created["Id"]
        body = json.dumps({"Detach": False, "Tty": tty}).encode()
        reader, writer = await self._hijack(f"/exec/{exec_id}/start", body)
        return ExecSession(self.client, exec_id, reader, writer, tty)

    async def attach(
        self, container: Container, *, stdin: bool, stdout: bool = True, stderr: bool = True
    ) -> AttachSession:
        """Attach to the streams of the container's main process (what `kubectl attach`
        and `kubectl run -i` reach). Only output written from now on is seen; closing
        stdin ends the process's stdin if the container has `stdinOnce`."""
        query = f"stream=1&stdin={int(stdin)}&stdout={int(stdout)}&stderr={int(stderr)}"
        reader, writer = await self._hijack(f"/containers/{container.id}/attach?{query}", b"")
        config = container.attrs.get("Config", {})
        return AttachSession(
            self.client,
            container.id,
            reader,
            writer,
            tty=bool(config.get("Tty")),
            stdin_once=bool(config.get("StdinOnce")),
        )

    async def _hijack(
        self, path: str, body: bytes
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """POST to the engine and take over the connection as a raw two-way stream."""
        reader, writer = await asyncio.open_unix_connection(self.docker_socket)
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: docker\r\n"
                "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        await writer.drain()
        status_line = (await reader.readline()).decode(errors="replace")
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        if status_line.split()[1:2] not in (["101"], ["200"]):
            writer.close()
            raise RuntimeFailure("StreamError", f"{path} answered {status_line.strip()}")
        return reader, writer


def _host_path(source: Obj) -> Path:
    path = Path(source["path"])
    kind = source.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise RuntimeFailure(CONFIG_ERROR, f"hostPath {path} is not a directory")
    elif kind == "File" and not path.is_file():
        raise RuntimeFailure(CONFIG_ERROR, f"hostPath {path} is not a file")
    return path


class StreamSession(abc.ABC):
    """A process's streams over a hijacked engine connection: read its output frames,
    write its stdin, resize its terminal."""

    STDOUT = 1
    STDERR = 2

    def __init__(
        self,
        client: docker.DockerClient,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tty: bool,
    ) -> None:
        self._client = client
        self._reader = reader
        self._writer = writer
        self._tty = tty

    async def read(self) -> tuple[int, bytes] | None:
        """The next output frame as (STDOUT or STDERR, data); None at the end."""
        if self._tty:
            data = await self._reader.read(65536)
            return (self.STDOUT, data) if data else None
        try:
            header = await self._reader.readexactly(8)
            # Docker's multiplexed stream: stream type, 3 zero bytes, big-endian size.
            data = await self._reader.readexactly(int.from_bytes(header[4:8], "big"))
        except asyncio.IncompleteReadError:
            return None
        return header[0], data

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close_stdin(self) -> None:
        if self._writer.can_write_eof():
            self._writer.write_eof()

    @abc.abstractmethod
    async def resize(self, rows: int, columns: int) -> None: ...

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class AttachSession(StreamSession):
    """The streams of a container's main process."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tty: bool,
        stdin_once: bool,
    ) -> None:
        super().__init__(client, reader, writer, tty)
        self.container_id = container_id
        self.stdin_once = stdin_once

    async def close_stdin(self) -> None:
        """End the process's stdin if the container has `stdinOnce`; otherwise only this
        session stops writing (the stdin stays open for the next attach, and Docker,
        told of the end, would cut the output short)."""
        if self.stdin_once:
            await super().close_stdin()

    async def resize(self, rows: int, columns: int) -> None:
        await asyncio.to_thread(
            self._client.api.resize, self.container_id, height=rows, width=columns
        )


class ExecSession(StreamSession):
    """A running exec; also learns its exit code."""

    def __init__(
        self,
        client: docker.DockerClient,
        exec_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tty: bool,
    ) -> None:
        super().__init__(client, reader, writer, tty)
        self.exec_id = exec_id

    async def resize(self, rows: int, columns: int) -> None:
        await asyncio.to_thread(
            self._client.api.exec_resize, self.exec_id, height=rows, width=columns
        )

    async def exit_code(self, timeout: float = 5.0) -> int | None:
        """The command's exit code, waiting up to `timeout` for it to end; else None."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            info = await asyncio.to_thread(self._client.api.exec_inspect, self.exec_id)
            if not info.get("Running"):
                return int(info["ExitCode"])
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.05)
