"""A container's environment, as the kubelet makes it (makeEnvironmentVariables).

Pure: the pod, the container, the objects it names (through a `lookup` of ConfigMaps
and Secrets in the pod's namespace), the Service variables and the node's facts go in;
the variables come out, or a `RuntimeFailure` with the kubelet's
`CreateContainerConfigError` and its message when a non-optional source is missing.

Order and precedence are the kubelet's: `envFrom` sources in order (a later source
overrides an earlier one, `prefix` prepended, keys that are no valid variable name
skipped with a warning), then `env` in order overriding them; an `env` value may refer
to any variable defined before it, or to a Service variable, with `$(VAR)`. Service
variables come last and never override a variable the container defines. `$(VAR)` in
command and args expands against the final environment.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from agent.runtime import CONFIG_ERROR, RuntimeFailure, expand
from minikube_py.api.quantity import parse_quantity
from minikube_py.api.types import Obj, name_of, namespace_of

Lookup = Callable[[str, str], Obj | None]
"""(kind `ConfigMap` or `Secret`, name) -> the object in the pod's namespace, or None."""

# IsEnvVarName of Kubernetes 1.32 (validation.IsEnvVarName).
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_METADATA_KEY = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]")


# --- Service variables -------------------------------------------------------------------


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


# --- the downward API ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PodFacts:
    """What the agent knows of a running pod beyond its object."""

    pod_ips: tuple[str, ...]
    host_ips: tuple[str, ...]
    # the node's allocatable cpu and memory: a limit a container does not set
    allocatable: Mapping[str, str] = dataclasses.field(default_factory=dict)


def field_ref_value(pod: Obj, path: str, facts: PodFacts) -> str:
    """The value of a `fieldRef` (podFieldSelectorRuntimeValue)."""
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": name_of(pod),
        "metadata.namespace": namespace_of(pod),
        "metadata.uid": str(metadata.get("uid", "")),
        "spec.nodeName": str(spec.get("nodeName", "")),
        "spec.serviceAccountName": str(spec.get("serviceAccountName", "")),
        "status.podIP": facts.pod_ips[0] if facts.pod_ips else "",
        "status.podIPs": ",".join(facts.pod_ips),
        "status.hostIP": facts.host_ips[0] if facts.host_ips else "",
        "status.hostIPs": ",".join(facts.host_ips),
    }
    if path in simple:
        return simple[path]
    keyed = _METADATA_KEY.fullmatch(path)
    if keyed is None:
        raise RuntimeFailure(CONFIG_ERROR, f"unsupported fieldPath: {path}")
    return str((metadata.get(keyed.group(1)) or {}).get(keyed.group(2), ""))


def _milli(value: Decimal) -> int:
    return math.ceil(value * 1000)


def resource_field_value(pod: Obj, container: Obj, ref: Obj, facts: PodFacts) -> str:
    """The value of a `resourceFieldRef` (containerResourceRuntimeValue): the request or
    limit divided by `divisor` (default 1), rounded up; an unset limit is the node's
    allocatable, an unset request 0."""
    name = ref.get("containerName") or container["name"]
    spec = pod.get("spec", {})
    target = next(
        (
            c
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
            if c["name"] == name
        ),
        None,
    )
    if target is None:
        raise RuntimeFailure(CONFIG_ERROR, f"container {name} not found in pod {name_of(pod)}")
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    if kind not in ("limits", "requests") or resource not in (
        "cpu",
        "memory",
        "ephemeral-storage",
    ):
        raise RuntimeFailure(CONFIG_ERROR, f"unsupported container resource: {ref.get('resource')}")
    resources = target.get("resources") or {}
    quantity = (resources.get(kind) or {}).get(resource)
    if quantity is None and kind == "limits":
        quantity = facts.allocatable.get(resource)
    amount = parse_quantity(quantity or 0)
    divisor = parse_quantity(ref.get("divisor") or 0) or Decimal(1)
    if resource == "cpu":
        return str(math.ceil(_milli(amount) / _milli(divisor)))
    return str(math.ceil(math.ceil(amount) / math.ceil(divisor)))


# --- ConfigMaps and Secrets ------------------------------------------------------------------


def _config_map_data(config_map: Obj) -> dict[str, str]:
    return {k: str(v) for k, v in (config_map.get("data") or {}).items()}


def _secret_data(secret: Obj) -> dict[str, str]:
    data = {
        k: base64.b64decode(v).decode(errors="replace")
        for k, v in (secret.get("data") or {}).items()
    }
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


_SOURCES = {
    # reference field -> (kind, the word in "configmap "x" not found", data of the object)
    "configMapRef": ("ConfigMap", "configmap", _config_map_data),
    "configMapKeyRef": ("ConfigMap", "configmap", _config_map_data),
    "secretRef": ("Secret", "secret", _secret_data),
    "secretKeyRef": ("Secret", "secret", _secret_data),
}


def _source_data(field: str, ref: Obj, lookup: Lookup) -> dict[str, str] | None:
    """The data of the object a reference names; None when it is missing and optional."""
    kind, word, data_of = _SOURCES[field]
    found = lookup(kind, str(ref.get("name", "")))
    if found is not None:
        return data_of(found)
    if ref.get("optional"):
        return None
    raise RuntimeFailure(CONFIG_ERROR, f'{word} "{ref.get("name", "")}" not found')


@dataclasses.dataclass
class ContainerEnv:
    env: dict[str, str]
    # the kubelet's InvalidEnvironmentVariableNames warnings, one per envFrom source
    warnings: list[str]


def container_env(
    pod: Obj,
    container: Obj,
    lookup: Lookup,
    services: Mapping[str, str],
    facts: PodFacts,
) -> ContainerEnv:
    """The container's environment variables; `services` are its Service variables."""
    env: dict[str, str] = {}
    warnings: list[str] = []
    for source in container.get("envFrom") or []:
        field = "configMapRef" if "configMapRef" in source else "secretRef"
        ref = source.get(field) or {}
        data = _source_data(field, ref, lookup)
        if data is None:
            continue
        prefix = str(source.get("prefix") or "")
        invalid = []
        for key, value in data.items():
            if _ENV_VAR_NAME.fullmatch(prefix + key):
                env[prefix + key] = value
            else:
                invalid.append(prefix + key)
        if invalid:
            what = "configMap" if field == "configMapRef" else "secret"
            warnings.append(
                f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {what} "
                f"{namespace_of(pod)}/{ref.get('name', '')} were skipped since they are "
                "considered invalid environment variable names."
            )
    for var in container.get("env") or []:
        value = str(var.get("value") or "")
        source = var.get("valueFrom")
        if value:
            value = expand(value, env, services)
        elif source:
            if "fieldRef" in source:
                value = field_ref_value(pod, str(source["fieldRef"].get("fieldPath", "")), facts)
            elif "resourceFieldRef" in source:
                value = resource_field_value(pod, container, source["resourceFieldRef"], facts)
            else:
                field = "configMapKeyRef" if "configMapKeyRef" in source else "secretKeyRef"
                ref = source.get(field) or {}
                data = _source_data(field, ref, lookup)
                if data is None:
                    continue
                key = str(ref.get("key", ""))
                if key not in data:
                    if ref.get("optional"):
                        continue
                    kind = _SOURCES[field][0]
                    raise RuntimeFailure(
                        CONFIG_ERROR,
                        f"couldn't find key {key} in {kind} {namespace_of(pod)}/{ref.get('name')}",
                    )
                value = data[key]
        env[var["name"]] = value
    for name, value in services.items():
        env.setdefault(name, value)
    return ContainerEnv(env, warnings)
