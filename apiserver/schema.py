"""What the apiserver knows about the shape of each served kind.

The field tree comes from the official `kubernetes` client's generated models: every
model class lists its attributes' types (`openapi_types`) and JSON keys
(`attribute_map`), so walking them from `V1Pod` yields the whole Pod schema without a
hand-kept copy of the Kubernetes types. The apiserver does not import the client (30 MB
and half a second per start): it reads what it needs of the models from
`schema_models.json`, generated from the client by apiserver/schema_table.py and read
on first use. What those models flatten away is added here as data, taken from the
Kubernetes API reference (the Go struct tags `patchStrategy`, `patchMergeKey` and the
`+listType`/`+listMapKey` markers, published as the `x-kubernetes-*` OpenAPI
extensions):

* `PATCH_METADATA`: merge keys, patch strategies and list types, which strategic merge
  patch (apiserver/patch.py, kubectl's client-side apply) needs;
* `NAMED_TYPES`: the apimachinery types the models turn into `str`/`object`/`datetime`
  (Quantity, IntOrString, MicroTime, FieldsV1, RawExtension), which the OpenAPI
  documents must name like kube-apiserver does.

A `SchemaNode` is immutable; an object node resolves its fields lazily from a per-model
cache, so each model is walked once and shared wherever it appears, while each field
keeps its own patch metadata (the same `V1Container` model sits under `containers` and
`initContainers`).
"""

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minikube_py.api.resources import BY_KIND
from minikube_py.api.types import Obj


@dataclass(frozen=True)
class PatchMeta:
    """The `x-kubernetes-*` patch extensions of one field."""

    strategy: str = ""  # "merge", "retainKeys", "merge,retainKeys"
    merge_key: str | None = None
    list_type: str = ""  # "atomic", "set", "map"; undeclared lists behave as atomic
    map_keys: tuple[str, ...] = ()


def _map_list(*keys: str, strategy: str = "merge") -> PatchMeta:
    """A list merged by key: the common `patchMergeKey` + `listType=map` pairing."""
    return PatchMeta(strategy, keys[0], "map", keys)


_BY_NAME = _map_list("name")
_BY_TYPE = _map_list("type")
_CONTAINER_LISTS = {
    "env": _BY_NAME,
    "ports": _map_list("containerPort", "protocol"),
    "volumeMounts": _map_list("mountPath"),
    "volumeDevices": _map_list("devicePath"),
}

# (client model, JSON field) -> patch metadata, for every field of the served kinds
# that declares any. Fields missing here are atomic lists, plain maps or structs.
PATCH_METADATA: Mapping[tuple[str, str], PatchMeta] = {
    ("V1ObjectMeta", "finalizers"): PatchMeta("merge", None, "set"),
    ("V1ObjectMeta", "ownerReferences"): _map_list("uid"),
    ("V1PodSpec", "containers"): _BY_NAME,
    ("V1PodSpec", "initContainers"): _BY_NAME,
    ("V1PodSpec", "ephemeralContainers"): _BY_NAME,
    ("V1PodSpec", "volumes"): _map_list("name", strategy="merge,retainKeys"),
    ("V1PodSpec", "imagePullSecrets"): _BY_NAME,
    ("V1PodSpec", "hostAliases"): _map_list("ip"),
    ("V1PodSpec", "topologySpreadConstraints"): _map_list("topologyKey", "whenUnsatisfiable"),
    ("V1PodSpec", "schedulingGates"): _BY_NAME,
    ("V1PodSpec", "resourceClaims"): _map_list("name", strategy="merge,retainKeys"),
    **{("V1Container", f): meta for f, meta in _CONTAINER_LISTS.items()},
    **{("V1EphemeralContainer", f): meta for f, meta in _CONTAINER_LISTS.items()},
    ("V1ResourceRequirements", "claims"): PatchMeta("", None, "map", ("name",)),
    ("V1ContainerRestartRuleOnExitCodes", "values"): PatchMeta(list_type="set"),
    ("V1PodStatus", "conditions"): _BY_TYPE,
    ("V1PodStatus", "podIPs"): _map_list("ip"),
    ("V1PodStatus", "hostIPs"): PatchMeta("merge", "ip", "atomic"),
    ("V1PodStatus", "resourceClaimStatuses"): _map_list("name", strategy="merge,retainKeys"),
    ("V1ContainerStatus", "volumeMounts"): _map_list("mountPath"),
    ("V1ContainerStatus", "allocatedResourcesStatus"): _BY_NAME,
    ("V1ResourceStatus", "resources"): PatchMeta("", None, "map", ("resourceID",)),
    ("V1NamespaceStatus", "conditions"): _BY_TYPE,
    ("V1ServiceSpec", "ports"): _map_list("port", "protocol"),
    ("V1ServiceStatus", "conditions"): _BY_TYPE,
    ("V1NodeSpec", "podCIDRs"): PatchMeta("merge", None, "set"),
    ("V1NodeStatus", "conditions"): _BY_TYPE,
    ("V1NodeStatus", "addresses"): _BY_TYPE,
    ("V1NodeAllocatableResourceClaimStatus", "containers"): PatchMeta(list_type="set"),
    ("V1PersistentVolumeClaimStatus", "conditions"): _BY_TYPE,
    ("V1ServiceAccount", "secrets"): _BY_NAME,
    ("V1DeploymentSpec", "strategy"): PatchMeta("retainKeys"),
    ("V1DeploymentStatus", "conditions"): _BY_TYPE,
    ("V1ReplicaSetStatus", "conditions"): _BY_TYPE,
    ("V1StatefulSetStatus", "conditions"): _BY_TYPE,
    ("V1Endpoint", "addresses"): PatchMeta(list_type="set"),
}

# (client model, JSON field) -> the apimachinery type the model flattened. For maps it
# names the value type (`resources.limits` is a map of Quantity).
NAMED_TYPES: Mapping[tuple[str, str], str] = {
    **{
        (model, field): "Quantity"
        for model, field in (
            ("V1ResourceRequirements", "limits"),
            ("V1ResourceRequirements", "requests"),
            ("V1VolumeResourceRequirements", "limits"),
            ("V1VolumeResourceRequirements", "requests"),
            ("V1PodSpec", "overhead"),
            ("V1PodStatus", "allocatedResources"),
            ("V1ContainerStatus", "allocatedResources"),
            ("V1NodeStatus", "capacity"),
            ("V1NodeStatus", "allocatable"),
            ("V1PersistentVolumeClaimStatus", "capacity"),
            ("V1PersistentVolumeClaimStatus", "allocatedResources"),
            ("V1EmptyDirVolumeSource", "sizeLimit"),
            ("V1ResourceFieldSelector", "divisor"),
        )
    },
    **{
        (model, field): "IntOrString"
        for model, field in (
            ("V1ServicePort", "targetPort"),
            ("V1HTTPGetAction", "port"),
            ("V1TCPSocketAction", "port"),
            ("V1RollingUpdateDeployment", "maxSurge"),
            ("V1RollingUpdateDeployment", "maxUnavailable"),
            ("V1RollingUpdateStatefulSetStrategy", "maxUnavailable"),
        )
    },
    **{
        (model, field): "MicroTime"
        for model, field in (
            ("CoreV1Event", "eventTime"),
            ("CoreV1EventSeries", "lastObservedTime"),
            ("V1LeaseSpec", "acquireTime"),
            ("V1LeaseSpec", "renewTime"),
        )
    },
    ("V1ManagedFieldsEntry", "fieldsV1"): "FieldsV1",
    ("V1WatchEvent", "object"): "RawExtension",
}

# Client scalar type -> (JSON schema type, format). `datetime` is meta/v1 Time unless
# NAMED_TYPES says MicroTime; `object` is free-form unless NAMED_TYPES names it.
_SCALARS: Mapping[str, tuple[str, str]] = {
    "str": ("string", ""),
    "int": ("integer", ""),
    "float": ("number", "double"),
    "bool": ("boolean", ""),
    "bytes": ("string", "byte"),
    "date": ("string", "date"),
    "datetime": ("string", "date-time"),
    "object": ("any", ""),
}
_LIST = re.compile(r"^(?:List\[(.+)\]|list\[(.+)\])$")
_DICT = re.compile(r"^(?:Dict\[str, (.+)\]|dict\(str, (.+)\))$")

# Kinds whose client model is not simply `V1<Kind>` (the generator prefixes the group
# when two groups define the same name: core/v1 Event vs events.k8s.io/v1 Event).
_KIND_MODELS: Mapping[str, str] = {"Event": "CoreV1Event"}

# Models of the API machinery beside the served kinds' own: request and response bodies
# and subresources, which the OpenAPI documents define too.
API_MODELS = ("V1Status", "V1DeleteOptions", "V1WatchEvent", "V1Scale", "V1Binding")

TABLE_PATH = Path(__file__).with_name("schema_models.json")


@dataclass(frozen=True)
class SchemaNode:
    """One field's schema: an object (a client model), array, map, scalar or `any`.

    `type` uses JSON schema words ("object", "array", "string", ...) plus "map" for
    string-keyed maps and "any" for free-form values. `named` is the apimachinery type
    a scalar or free-form value really is ("Quantity", "Time", ...), or "".
    """

    type: str
    model: str = ""
    format: str = ""
    named: str = ""
    element: "SchemaNode | None" = None
    description: str = ""
    patch: PatchMeta = PatchMeta()

    @property
    def fields(self) -> Mapping[str, "SchemaNode"]:
        """Properties by JSON key (empty unless an object)."""
        return _model_fields(self.model) if self.type == "object" else {}

    @property
    def required(self) -> tuple[str, ...]:
        return _model_required(self.model) if self.type == "object" else ()

    def field(self, name: str) -> "SchemaNode | None":
        """A property of an object, or the value schema of a map (any key)."""
        if self.type == "map":
            return self.element
        return self.fields.get(name)

    @property
    def items(self) -> "SchemaNode | None":
        return self.element if self.type == "array" else None

    @property
    def merge_key(self) -> str | None:
        return self.patch.merge_key

    @property
    def patch_strategy(self) -> str:
        return self.patch.strategy

    @property
    def list_type(self) -> str:
        return self.patch.list_type

    @property
    def map_keys(self) -> tuple[str, ...]:
        return self.patch.map_keys


def model_for(kind: str) -> str:
    """The client model class name of a served kind (`Pod` -> `V1Pod`)."""
    if kind not in BY_KIND:
        raise KeyError(f"unknown kind {kind!r}")
    return _KIND_MODELS.get(kind, f"V1{kind}")


def model_node(model: str) -> SchemaNode:
    """An object node for a client model class (also for lists, Scale, Status, ...)."""
    return SchemaNode("object", model=model, description=model_description(model))


@functools.cache
def schema_for(kind: str) -> SchemaNode:
    """The root schema of a served kind."""
    return model_node(model_for(kind))


def model_description(model: str) -> str:
    """The model's own documentation: its class docstring up to the attribute list."""
    return str(_model_entry(model)["description"])


@functools.cache
def _model_table() -> Mapping[str, Mapping[str, Any]]:
    return json.loads(TABLE_PATH.read_text())


def _model_entry(model: str) -> Mapping[str, Any]:
    try:
        return _model_table()[model]
    except KeyError:
        raise KeyError(
            f"client model {model!r} is not in {TABLE_PATH.name} (python -m apiserver.schema_table)"
        ) from None


def referenced_model(type_str: str) -> str | None:
    """The client model a field's type names, through lists and maps (None: a scalar)."""
    node = _type_node(type_str, "", "", PatchMeta())
    while node.element is not None:
        node = node.element
    return node.model or None


def _type_node(type_str: str, named: str, description: str, patch: PatchMeta) -> SchemaNode:
    for pattern, kind in ((_LIST, "array"), (_DICT, "map")):
        match = pattern.match(type_str)
        if match:
            inner = match.group(1) or match.group(2)
            element = _type_node(inner, named, "", PatchMeta())
            return SchemaNode(kind, element=element, description=description, patch=patch)
    if type_str in _SCALARS:
        json_type, fmt = _SCALARS[type_str]
        if type_str == "datetime":
            named = named or "Time"
        return SchemaNode(json_type, format=fmt, named=named, description=description)
    return SchemaNode("object", model=type_str, description=description, patch=patch)


@functools.cache
def _model_fields(model: str) -> Mapping[str, SchemaNode]:
    return {
        key: _type_node(
            type_str,
            NAMED_TYPES.get((model, key), ""),
            description,
            PATCH_METADATA.get((model, key), PatchMeta()),
        )
        for key, type_str, description in _model_entry(model)["fields"]
    }


@functools.cache
def _model_required(model: str) -> tuple[str, ...]:
    return tuple(_model_entry(model)["required"])


def unknown_fields(kind: str, obj: Obj) -> list[str]:
    """Paths of fields the kind's schema does not know, in document order.

    Paths are written like kube-apiserver's strict decoding errors
    (`spec.containers[0].imagee`). Values of the wrong type are left to validation;
    free-form values (`any`) and maps accept any key.
    """
    found: list[str] = []
    _collect_unknown(schema_for(kind), obj, "", found)
    return found


def _collect_unknown(node: SchemaNode, value: Any, path: str, found: list[str]) -> None:
    if node.type == "object" and isinstance(value, dict):
        fields = node.fields
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            if key in fields:
                _collect_unknown(fields[key], child, child_path, found)
            else:
                found.append(child_path)
    elif node.type == "array" and node.element is not None and isinstance(value, list):
        for index, item in enumerate(value):
            _collect_unknown(node.element, item, f"{path}[{index}]", found)
