"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

kubectl sends `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` and prints the
columns the server chooses, so these column lists and cell formats are what users
see. They follow kube-apiserver's printers (pkg/printers/internalversion): the server
always returns every column, wide (priority 1) ones included, and kubectl hides those
unless asked for `-o wide`.

Column descriptions are the API's field docs (the long ones cut to their first
sentence): kubectl never prints them. Everything here is a pure function of the objects
and the current time.
"""

from datetime import UTC, datetime
from typing import Any

from minikube_py.api.types import Obj

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is "
    "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#metadata"
)
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."


def _column(
    name: str, description: str, type_: str = "string", priority: int = 0, format_: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


_NAME = _column("Name", _NAME_DOC, format_="name")
_AGE = _column("Age", _AGE_DOC)

_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "Pod": [
        _NAME,
        _column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _column("Status", "The aggregate status of the containers in this pod."),
        _column(
            "Restarts",
            "The number of times the containers in this pod have been "
            "restarted and when the last container in this pod has restarted.",
        ),
        _AGE,
        _column(
            "IP",
            "podIP address allocated to the pod. Routable at least within the cluster. "
            "Empty if not yet allocated.",
            priority=1,
        ),
        _column("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
        _column(
            "Nominated Node",
            "nominatedNodeName is set only when this pod preempts other "
            "pods on the node, but it cannot be scheduled right away as preemption "
            "victims receive their graceful termination periods.",
            priority=1,
        ),
        _column(
            "Readiness Gates",
            "If specified, all readiness gates will be evaluated for pod readiness.",
            priority=1,
        ),
    ],
    "Service": [
        _NAME,
        _column("Type", "type determines how the Service is exposed."),
        _column(
            "Cluster-IP",
            "clusterIP is the IP address of the service and is usually assigned randomly.",
        ),
        _column(
            "External-IP",
            "externalIPs is a list of IP addresses for which nodes in the "
            "cluster will also accept traffic for this service.",
        ),
        _column("Port(s)", "The list of ports that are exposed by this service."),
        _AGE,
        _column(
            "Selector",
            "Route service traffic to pods with label keys and values matching this selector.",
            priority=1,
        ),
    ],
    "Endpoints": [
        _NAME,
        _column("Endpoints", "The set of all endpoints is the union of all subsets."),
        _AGE,
    ],
    "EndpointSlice": [
        _NAME,
        _column(
            "AddressType",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        _column(
            "Ports",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        _column("Endpoints", "endpoints is a list of unique endpoints in this slice."),
        _AGE,
    ],
    "Node": [
        _NAME,
        _column("Status", "The status of the node"),
        _column("Roles", "The roles of the node"),
        _AGE,
        _column("Version", "Kubelet Version reported by the node."),
        _column("Internal-IP", "List of addresses reachable to the node.", priority=1),
        _column("External-IP", "List of addresses reachable to the node.", priority=1),
        _column("OS-Image", "OS Image reported by the node from /etc/os-release.", priority=1),
        _column(
            "Kernel-Version", "Kernel Version reported by the node from 'uname -r'.", priority=1
        ),
        _column(
            "Container-Runtime",
            "ContainerRuntime Version reported by the node through runtime remote API.",
            priority=1,
        ),
    ],
    "Namespace": [_NAME, _column("Status", "The status of the namespace"), _AGE],
    "Deployment": [
        _NAME,
        _column("Ready", "Number of the pod with ready state"),
        _column(
            "Up-to-date",
            "Total number of non-terminating pods targeted by this deployment "
            "that have the desired template spec.",
        ),
        _column(
            "Available",
            "Total number of available non-terminating pods (ready for at least "
            "minReadySeconds) targeted by this deployment.",
        ),
        _AGE,
        _column("Containers", _CONTAINERS_DOC, priority=1),
        _column("Images", _IMAGES_DOC, priority=1),
        _column("Selector", "Label selector for pods.", priority=1),
    ],
    "ReplicaSet": [
        _NAME,
        _column("Desired", "Replicas is the number of desired pods.", "integer"),
        _column(
            "Current",
            "Replicas is the most recently observed number of non-terminating pods.",
            "integer",
        ),
        _column(
            "Ready",
            "The number of non-terminating pods targeted by this ReplicaSet with a Ready "
            "Condition.",
            "integer",
        ),
        _AGE,
        _column("Containers", _CONTAINERS_DOC, priority=1),
        _column("Images", _IMAGES_DOC, priority=1),
        _column(
            "Selector",
            "Selector is a label query over pods that should match the replica count.",
            priority=1,
        ),
    ],
    "StatefulSet": [
        _NAME,
        _column("Ready", "Number of the pod with ready state"),
        _AGE,
        _column("Containers", _CONTAINERS_DOC, priority=1),
        _column("Images", _IMAGES_DOC, priority=1),
    ],
    "ConfigMap": [
        _NAME,
        _column("Data", "Data contains the configuration data."),
        _AGE,
    ],
    "Secret": [
        _NAME,
        _column("Type", "Used to facilitate programmatic handling of secret data."),
        _column("Data", "Data contains the secret data."),
        _AGE,
    ],
    "Event": [
        _column(
            "Last Seen", "The time at which the most recent occurrence of this event was recorded."
        ),
        _column(
            "Type", "Type of this event (Normal, Warning), new types could be added in the future"
        ),
        _column(
            "Reason",
            "This should be a short, machine understandable string that gives "
            "the reason for the transition into the object's current status.",
        ),
        _column("Object", "The object that this event is about."),
        _column(
            "Subobject",
            "If referring to a piece of an object instead of an entire "
            "object, this string should contain a valid JSON/Go field access statement.",
            priority=1,
        ),
        _column("Source", "The component reporting this event.", priority=1),
        _column("Message", "A human-readable description of the status of this operation."),
        _column("First Seen", "The time at which the event was first recorded.", priority=1),
        _column("Count", "The number of times this event has occurred.", priority=1),
        _column("Name", _NAME_DOC, priority=1, format_="name"),
    ],
    "ServiceAccount": [
        _NAME,
        _column(
            "Secrets",
            "Secrets is a list of the secrets in the same namespace that pods "
            "running using this ServiceAccount are allowed to use.",
        ),
        _AGE,
    ],
    "Lease": [
        _NAME,
        _column("Holder", "holderIdentity contains the identity of the holder of a current lease."),
        _AGE,
    ],
}


def table_columns(kind: str) -> list[dict[str, Any]]:
    """The metav1.TableColumnDefinitions for `kind`; a name and age for unknown kinds."""
    return [dict(c) for c in _COLUMNS.get(kind, [_NAME, _AGE])]


def table_row_cells(kind: str, obj: Obj, now: datetime) -> list[Any]:
    """The row's cells in column order, wide columns included."""
    printer = _PRINTERS.get(kind)
    if printer is None:
        return [_name(obj), _age(obj, now)]
    return printer(obj, now)


def build_table(
    kind: str,
    objs: list[Obj],
    now: datetime,
    include_object: str = "Metadata",
    list_meta: dict[str, Any] | None = None,
) -> Obj:
    """A Table of `objs`; each row carries the object as `includeObject` asks:
    None (no object), Metadata (a PartialObjectMetadata) or Object (all of it)."""
    rows = []
    for obj in objs:
        row: Obj = {
            "cells": table_row_cells(kind, obj, now),
            "object": _row_object(obj, include_object),
        }
        conditions = _row_conditions(kind, obj)
        if conditions:
            row["conditions"] = conditions
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": table_columns(kind),
        "rows": rows,
    }


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def _row_conditions(kind: str, obj: Obj) -> list[Obj]:
    """Pods that have finished are marked Completed, as kube-apiserver marks them."""
    if kind != "Pod":
        return []
    phase = (obj.get("status") or {}).get("phase")
    messages = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in messages:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": messages[phase]}]


# --- formatting helpers ---------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """Kubernetes' duration.HumanDuration: `45s`, `3m2s`, `17m`, `5h3m`, `2d3h`, `1y20d`."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (`2024-01-02T03:04:05Z`, micro-times too), None if unset."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _since(value: str | None, now: datetime) -> str:
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return human_duration((now - moment).total_seconds())


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _age(obj: Obj, now: datetime) -> str:
    return _since((obj.get("metadata") or {}).get("creationTimestamp"), now)


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: `a=b,c=d` sorted by key, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def format_label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: `app=web,tier in (a,b),!legacy`, sorted by key."""
    selector = selector or {}
    parts = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, operator = expr.get("key", ""), expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        if operator == "Exists":
            parts.append((key, key))
        elif operator == "DoesNotExist":
            parts.append((key, f"!{key}"))
        else:
            parts.append((key, f"{key} {'in' if operator == 'In' else 'notin'} ({values})"))
    return ",".join(text for _, text in sorted(parts)) or "<none>"


def _container_cells(pod_spec: Obj) -> list[str]:
    containers = pod_spec.get("containers") or []
    return [
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    ]


def _list_with_more(items: list[str], empty: str = "<unset>", limit: int = 3) -> str:
    """`a,b,c + 2 more...`, as kubectl abbreviates long lists in a cell."""
    if len(items) > limit:
        return f"{','.join(items[:limit])} + {len(items) - limit} more..."
    return ",".join(items) or empty


# --- printers, one per kind ------------------------------------------------------------


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready, total, reason, restarts, last_restart = pod_status_summary(pod)
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({_since(last_restart, now)} ago)"
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        passed = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_cell = f"{passed}/{len(gates)}"
    pod_ips = status.get("podIPs") or []
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(pod, now),
        (pod_ips[0].get("ip") if pod_ips else "") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_cell,
    ]


def pod_status_summary(pod: Obj) -> tuple[int, int, str, int, str | None]:
    """(ready, total, STATUS, restarts, last restart time) as `kubectl get pods` shows them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    sidecars = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = 0
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    restarts, last_restart = 0, None
    sidecar_restarts, sidecar_last_restart = 0, None
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += cs.get("restartCount", 0)
        finished = _last_terminated_at(cs)
        last_restart = _later(last_restart, finished)
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += cs.get("restartCount", 0)
            sidecar_last_restart = _later(sidecar_last_restart, finished)
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if is_sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if terminated is not None:
            reason = "Init:" + _terminated_reason(terminated)
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _has_condition(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            last_restart = _later(last_restart, _last_terminated_at(cs))
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(status, "Ready") else "NotReady"

    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return ready, total, reason, restarts, last_restart


def _terminated_reason(terminated: Obj) -> str:
    if terminated.get("reason"):
        return str(terminated["reason"])
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode', 0)}"


def _last_terminated_at(container_status: Obj) -> str | None:
    terminated = (container_status.get("lastState") or {}).get("terminated") or {}
    return terminated.get("finishedAt")


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    a_time, b_time = parse_time(a), parse_time(b)
    assert a_time is not None and b_time is not None
    return b if b_time > a_time else a


def _has_condition(status: Obj, condition_type: str) -> bool:
    return any(
        c.get("type") == condition_type and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _service_cells(service: Obj, now: datetime) -> list[Any]:
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or []
    ports = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol", "TCP")
        if port.get("nodePort"):
            ports.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            ports.append(f"{port.get('port')}/{protocol}")
    return [
        _name(service),
        spec.get("type", ""),
        cluster_ips[0] if cluster_ips else "<none>",
        service_external_ip(service),
        ",".join(ports) or "<none>",
        _age(service, now),
        format_labels(spec.get("selector")),
    ]


def service_external_ip(service: Obj) -> str:
    """The EXTERNAL-IP cell, unclipped: kube-apiserver prints tables in the wide form."""
    spec = service.get("spec") or {}
    external_ips = spec.get("externalIPs") or []
    service_type = spec.get("type")
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or "<none>"
    if service_type == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ingress_addresses = {i.get("ip") or i.get("hostname") for i in ingress}
        addresses = sorted(a for a in ingress_addresses if a) + external_ips
        return ",".join(addresses) or "<pending>"
    if service_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _endpoints_cells(endpoints: Obj, now: datetime) -> list[Any]:
    addresses: list[str] = []
    for subset in endpoints.get("subsets") or []:
        ips = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            addresses += ips  # headless services may have no ports
        for port in ports:
            addresses += [_join_host_port(ip, port.get("port")) for ip in ips]
    # No subsets at all reads `<none>`; subsets with only unready addresses, nothing.
    cell = _list_with_more(addresses, empty="") if endpoints.get("subsets") else "<none>"
    return [_name(endpoints), cell, _age(endpoints, now)]


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoint_slice_cells(slice_: Obj, now: datetime) -> list[Any]:
    ports = []
    for port in slice_.get("ports") or []:
        if port.get("port") is not None:
            ports.append(str(port["port"]))
        else:
            ports.append(port.get("name") or "*")
    addresses = [a for e in slice_.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _name(slice_),
        slice_.get("addressType", ""),
        _list_with_more(ports),
        _list_with_more(addresses),
        _age(slice_, now),
    ]


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    states = []
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            states = ["Ready" if condition.get("status") == "True" else "NotReady"]
    states = states or ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for key, value in ((node.get("metadata") or {}).get("labels") or {}).items():
        role = key.removeprefix("node-role.kubernetes.io/")
        if role != key and role:
            roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}
    return [
        _name(node),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(node, now),
        info.get("kubeletVersion", ""),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _node_address(status: Obj, address_type: str) -> str:
    for address in status.get("addresses") or []:
        if address.get("type") == address_type:
            return str(address.get("address", ""))
    return "<none>"


def _namespace_cells(namespace: Obj, now: datetime) -> list[Any]:
    phase = (namespace.get("status") or {}).get("phase", "")
    return [_name(namespace), phase, _age(namespace, now)]


def _deployment_cells(deployment: Obj, now: datetime) -> list[Any]:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    return [
        _name(deployment),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(deployment, now),
        *_container_cells(template_spec),
        format_label_selector(spec.get("selector")),
    ]


def _replica_set_cells(replica_set: Obj, now: datetime) -> list[Any]:
    spec, status = replica_set.get("spec") or {}, replica_set.get("status") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    return [
        _name(replica_set),
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(replica_set, now),
        *_container_cells(template_spec),
        format_label_selector(spec.get("selector")),
    ]


def _stateful_set_cells(stateful_set: Obj, now: datetime) -> list[Any]:
    spec, status = stateful_set.get("spec") or {}, stateful_set.get("status") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    return [
        _name(stateful_set),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        _age(stateful_set, now),
        *_container_cells(template_spec),
    ]


def _config_map_cells(config_map: Obj, now: datetime) -> list[Any]:
    count = len(config_map.get("data") or {}) + len(config_map.get("binaryData") or {})
    return [_name(config_map), count, _age(config_map, now)]


def _secret_cells(secret: Obj, now: datetime) -> list[Any]:
    return [_name(secret), secret.get("type", ""), len(secret.get("data") or {}), _age(secret, now)]


def _event_cells(event: Obj, now: datetime) -> list[Any]:
    first_seen = (
        _since(event["firstTimestamp"], now)
        if event.get("firstTimestamp")
        else _since(event.get("eventTime"), now)
    )
    last_seen = _since(event["lastTimestamp"], now) if event.get("lastTimestamp") else first_seen
    count = event.get("count") or 1  # singleton events of the new API carry no count
    series = event.get("series")
    if series:
        last_seen = _since(series.get("lastObservedTime"), now)
        count = series.get("count", count)
    involved = event.get("involvedObject") or {}
    target = involved.get("kind", "").lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent", "")
    instance = source.get("host") or event.get("reportingInstance", "")
    return [
        last_seen,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        (event.get("message") or "").strip(),
        first_seen,
        count,
        _name(event),
    ]


def _service_account_cells(account: Obj, now: datetime) -> list[Any]:
    return [_name(account), len(account.get("secrets") or []), _age(account, now)]


def _lease_cells(lease: Obj, now: datetime) -> list[Any]:
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    return [_name(lease), holder, _age(lease, now)]


_PRINTERS = {
    "Pod": _pod_cells,
    "Service": _service_cells,
    "Endpoints": _endpoints_cells,
    "EndpointSlice": _endpoint_slice_cells,
    "Node": _node_cells,
    "Namespace": _namespace_cells,
    "Deployment": _deployment_cells,
    "ReplicaSet": _replica_set_cells,
    "StatefulSet": _stateful_set_cells,
    "ConfigMap": _config_map_cells,
    "Secret": _secret_cells,
    "Event": _event_cells,
    "ServiceAccount": _service_account_cells,
    "Lease": _lease_cells,
}
