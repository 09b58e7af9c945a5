"""Defaulting: fill the fields Kubernetes fills when an object is created or updated.

`apply_defaults(kind, obj)` mutates the object in place, as the apiserver's defaulting
does between decoding a request and validating it. It also fills what kube-apiserver's
always-on admission plugins (Pod priority, service account, default tolerations) and
its Service storage (IP families) fill, because this apiserver has neither, and
`kubectl get -o yaml` should show the object a real cluster would.

Rules fill what is missing and never override a value the user wrote; the two
exceptions are Kubernetes' own (a `sessionAffinityConfig` that affinity None ignores is
dropped; a namespace's `kubernetes.io/metadata.name` label always carries its name).
Defaulting is therefore idempotent.
"""

from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

import orjson

from minikube_py.api.serviceaccounts import TOKEN_SECONDS_DEFAULT
from minikube_py.api.types import Obj

PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
VOLUME_DEFAULT_MODE = 0o644  # 420, what `kubectl get -o yaml` prints as defaultMode
# Added by the DefaultTolerationSeconds admission plugin.
DEFAULT_TOLERATIONS = (
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
)
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def apply_defaults(kind: str, obj: Obj) -> None:
    """Default `obj` of `kind` in place; kinds without defaults are left as they are.

    A JSON `null` is dropped first: Go's decoder reads it as the field's zero value, so
    `labels:` left empty in YAML means no labels, and gets defaulted like a missing field.
    """
    _drop_nulls(obj)
    defaulter = _DEFAULTERS.get(kind)
    if defaulter is not None:
        defaulter(obj)


def _drop_nulls(value: Any) -> None:
    # every write passes here: most bodies hold no null at all, which orjson's encoding
    # tells ten times faster than the walk (a loop over maps and lists only, with
    # C-speed scans for a null) that finds and drops them
    if b"null" not in orjson.dumps(value):
        return
    stack = [value]
    while stack:
        item = stack.pop()
        children = item.values() if type(item) is dict else item
        if type(item) is dict and None in children:
            for key in [k for k, v in item.items() if v is None]:
                del item[key]
        stack.extend(c for c in children if type(c) is dict or type(c) is list)


def image_pull_policy(image: str) -> str:
    """Always when the tag is `latest`, which an image with neither tag nor digest has;
    IfNotPresent otherwise."""
    reference, _, digest = image.partition("@")
    last = reference.rsplit("/", 1)[-1]  # a registry's `host:port/` is not a tag
    tag = last.rpartition(":")[2] if ":" in last else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


# --- Pod ------------------------------------------------------------------------------


def _default_pod(pod: Obj) -> None:
    """A Pod gets the PodSpec defaults plus those Kubernetes gives only to Pods, not to
    the pod templates of workloads (SetDefaults_Pod and the admission plugins)."""
    spec = pod.setdefault("spec", {})
    _default_pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            _default_requests_to_limits(container.setdefault("resources", {}))
            if spec.get("hostNetwork"):
                for port in container.get("ports") or []:
                    if "containerPort" in port:
                        port.setdefault("hostPort", port["containerPort"])
    # Priority admission: no PriorityClass exists, so every pod gets priority 0.
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    # ServiceAccount admission: the namespace's `default` account; the deprecated
    # `serviceAccount` field mirrors `serviceAccountName`.
    if "serviceAccount" in spec and "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec["serviceAccount"]
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    # DefaultTolerationSeconds admission.
    tolerations = spec.setdefault("tolerations", [])
    for toleration in DEFAULT_TOLERATIONS:
        if not any(_same_toleration(t, toleration) for t in tolerations):
            tolerations.append(dict(toleration))


def _default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything nested in it; shared by pods and templates."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            _default_container(container)
    for volume in spec.get("volumes") or []:
        _default_volume(volume)


def _same_toleration(a: Obj, b: Obj) -> bool:
    return a.get("key") == b["key"] and a.get("effect") == b["effect"]


def _default_requests_to_limits(resources: Obj) -> None:
    """A limit without a request makes the request equal to the limit."""
    if resources.get("limits"):
        requests = resources.setdefault("requests", {})
        for name, quantity in resources["limits"].items():
            requests.setdefault(name, quantity)


def _default_container(container: Obj) -> None:
    container.setdefault("imagePullPolicy", image_pull_policy(str(container.get("image", ""))))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})  # Go always serializes this struct
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe_key in _PROBES:
        probe = container.get(probe_key)
        if probe is not None:
            for field, value in PROBE_DEFAULTS.items():
                probe.setdefault(field, value)
            _default_handler(probe)
    for hook in (container.get("lifecycle") or {}).values():
        if isinstance(hook, dict):
            _default_handler(hook)
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if field_ref is not None:
            field_ref.setdefault("apiVersion", "v1")


def _default_handler(handler: Obj) -> None:
    http_get = handler.get("httpGet")
    if http_get is not None:
        http_get.setdefault("path", "/")
        http_get.setdefault("scheme", "HTTP")
    grpc = handler.get("grpc")
    if grpc is not None:
        grpc.setdefault("service", "")


_VOLUME_SOURCES_WITH_MODE = ("configMap", "secret", "downwardAPI", "projected")
_VOLUME_SOURCE_KEYS = frozenset(
    {
        "emptyDir",
        "hostPath",
        "configMap",
        "secret",
        "downwardAPI",
        "projected",
        "persistentVolumeClaim",
        "nfs",
        "csi",
        "ephemeral",
        "image",
    }
)


def _default_volume(volume: Obj) -> None:
    if not _VOLUME_SOURCE_KEYS & volume.keys():
        volume["emptyDir"] = {}
    for source_key in _VOLUME_SOURCES_WITH_MODE:
        source = volume.get(source_key)
        if source is not None:
            source.setdefault("defaultMode", VOLUME_DEFAULT_MODE)
    if "hostPath" in volume:
        volume["hostPath"].setdefault("type", "")
    for source in (volume.get("projected") or {}).get("sources") or []:
        if "serviceAccountToken" in source:
            source["serviceAccountToken"].setdefault("expirationSeconds", TOKEN_SECONDS_DEFAULT)


def _default_pod_template(template: Obj) -> None:
    _default_pod_spec(template.setdefault("spec", {}))


# --- Service --------------------------------------------------------------------------


def _default_service(service: Obj) -> None:
    spec = service.setdefault("spec", {})
    service_type = spec.setdefault("type", "ClusterIP")
    affinity = spec.setdefault("sessionAffinity", "None")
    if affinity == "None":
        spec.pop("sessionAffinityConfig", None)
    elif affinity == "ClientIP":
        client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        if client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    if is_externally_accessible(spec):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if service_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    if service_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
        return  # ExternalName (or an invalid type) has no IPs and no proxying
    spec.setdefault("internalTrafficPolicy", "Cluster")
    # The IP-family fields are filled by kube's Service REST storage rather than its
    # defaulting functions; they depend only on the object, so they live here too.
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    headless_without_selector = spec.get("clusterIP") == "None" and not spec.get("selector")
    # Headless services without a selector may publish endpoints of any family.
    spec.setdefault(
        "ipFamilyPolicy", "RequireDualStack" if headless_without_selector else "SingleStack"
    )
    spec.setdefault("ipFamilies", [_ip_family(spec.get("clusterIP", ""))])


def is_externally_accessible(spec: Obj) -> bool:
    """Reachable from outside the cluster: node ports, a load balancer or external IPs."""
    return spec.get("type") in ("NodePort", "LoadBalancer") or (
        spec.get("type") == "ClusterIP" and bool(spec.get("externalIPs"))
    )


def _ip_family(cluster_ip: str) -> str:
    try:
        return "IPv6" if ip_address(cluster_ip).version == 6 else "IPv4"
    except ValueError:  # unallocated or None: the cluster's primary family
        return "IPv4"


# --- apps/v1 --------------------------------------------------------------------------


def _default_deployment(deployment: Obj) -> None:
    spec = deployment.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _default_pod_template(spec.setdefault("template", {}))


def _default_replica_set(replica_set: Obj) -> None:
    spec = replica_set.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _default_pod_template(spec.setdefault("template", {}))


def _default_stateful_set(stateful_set: Obj) -> None:
    spec = stateful_set.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    for claim in spec.get("volumeClaimTemplates") or []:
        claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        claim.setdefault("status", {}).setdefault("phase", "Pending")
    _default_pod_template(spec.setdefault("template", {}))


# --- the rest of the catalogue --------------------------------------------------------


def _default_namespace(namespace: Obj) -> None:
    metadata = namespace.setdefault("metadata", {})
    if metadata.get("name"):
        # Every namespace carries its own name as a label, so selectors can pick it.
        metadata.setdefault("labels", {})["kubernetes.io/metadata.name"] = metadata["name"]
    namespace.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    namespace.setdefault("status", {}).setdefault("phase", "Active")


def _default_node(node: Obj) -> None:
    status = node.get("status")
    if status and "capacity" in status:
        status.setdefault("allocatable", dict(status["capacity"]))


def _default_secret(secret: Obj) -> None:
    secret.setdefault("type", "Opaque")


def _default_endpoints(endpoints: Obj) -> None:
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _default_endpoint_slice(slice_: Obj) -> None:
    for port in slice_.get("ports") or []:
        port.setdefault("name", "")
        port.setdefault("protocol", "TCP")


_DEFAULTERS: dict[str, Callable[[Obj], Any]] = {
    "Pod": _default_pod,
    "Service": _default_service,
    "Deployment": _default_deployment,
    "ReplicaSet": _default_replica_set,
    "StatefulSet": _default_stateful_set,
    "Namespace": _default_namespace,
    "Node": _default_node,
    "Secret": _default_secret,
    "Endpoints": _default_endpoints,
    "EndpointSlice": _default_endpoint_slice,
}
