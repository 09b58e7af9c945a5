"""The OpenAPI documents kube-apiserver publishes, rendered from apiserver/schema.py.

`kubectl` reads them: `explain` walks `components.schemas`; client-side `apply`
takes merge keys and patch strategies from the `x-kubernetes-patch-*` extensions;
and kubectl's query-parameter verifier looks for a PATCH operation carrying the
kind's `x-kubernetes-group-version-kind` and a `fieldValidation` parameter before it
trusts the server to validate fields. So the documents follow kube-apiserver's
shape: schemas named after the Go packages (`io.k8s.api.core.v1.Pod`), references
wrapped in `allOf` in v3, one path entry per resource path with kube's operation
ids, actions and query parameters.

Everything is computed once from the resource catalogue and the schema tree, into an
intermediate list of operations that renders either as OpenAPI v3 (one document per
group version, `GET /openapi/v3/<gv>`) or as Swagger 2.0 (`GET /openapi/v2`). The
returned dicts are shared by every request: callers must not mutate them.
"""

import functools
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from apiserver.schema import SchemaNode, model_description, model_for, model_node
from minikube_py.api.resources import RESOURCES, Resource

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"

# Definition packages of the client models that are not core/v1 (the default).
_PACKAGES: Mapping[str, frozenset[str]] = {
    _META: frozenset(
        {
            "Condition",
            "DeleteOptions",
            "LabelSelector",
            "LabelSelectorRequirement",
            "ListMeta",
            "ManagedFieldsEntry",
            "ObjectMeta",
            "OwnerReference",
            "Preconditions",
            "ShardInfo",
            "Status",
            "StatusCause",
            "StatusDetails",
            "WatchEvent",
        }
    ),
    "io.k8s.api.apps.v1": frozenset(
        {
            *(
                f"{kind}{suffix}"
                for kind in ("Deployment", "ReplicaSet", "StatefulSet")
                for suffix in ("", "List", "Spec", "Status", "Condition")
            ),
            "DeploymentStrategy",
            "RollingUpdateDeployment",
            "RollingUpdateStatefulSetStrategy",
            "StatefulSetOrdinals",
            "StatefulSetPersistentVolumeClaimRetentionPolicy",
            "StatefulSetUpdateStrategy",
        }
    ),
    "io.k8s.api.discovery.v1": frozenset(
        {
            "EndpointSlice",
            "EndpointSliceList",
            "Endpoint",
            "EndpointConditions",
            "EndpointHints",
            "EndpointPort",
            "ForNode",
            "ForZone",
        }
    ),
    "io.k8s.api.coordination.v1": frozenset({"Lease", "LeaseList", "LeaseSpec"}),
    "io.k8s.api.autoscaling.v1": frozenset({"Scale", "ScaleSpec", "ScaleStatus"}),
}
_MODEL_NAME = re.compile(r"^(?P<group>[A-Z][a-z]+)?V\d+(?:alpha\d+|beta\d+)?(?P<kind>.+)$")

# The apimachinery types schema.py names (SchemaNode.named), as kube publishes them.
_NAMED_SCHEMAS: Mapping[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name -> (definition, v3 schema, v2 schema)
    "Time": (
        f"{_META}.Time",
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date-time"},
    ),
    "MicroTime": (
        f"{_META}.MicroTime",
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date-time"},
    ),
    "Quantity": (
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        {"oneOf": [{"type": "string"}, {"type": "number"}]},
        {"type": "string"},
    ),
    "IntOrString": (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        {
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        },
        {"type": "string", "format": "int-or-string"},
    ),
    "FieldsV1": (f"{_META}.FieldsV1", {"type": "object"}, {"type": "object"}),
    "RawExtension": (
        "io.k8s.apimachinery.pkg.runtime.RawExtension",
        {"type": "object"},
        {"type": "object"},
    ),
}
_NAMED_DESCRIPTIONS: Mapping[str, str] = {
    "Time": "Time is a wrapper around time.Time, serialized as RFC 3339 in UTC.",
    "MicroTime": "MicroTime is a version of Time with microsecond precision.",
    "Quantity": "Quantity is a fixed-point number with an SI or binary suffix, like 100m or 2Gi.",
    "IntOrString": "IntOrString holds either an int32 or a string.",
    "FieldsV1": "FieldsV1 is the set of fields a manager owns, in the structured-merge-diff trie.",
    "RawExtension": "RawExtension holds an embedded object of any kind.",
}
_PATCH_BODY = f"{_META}.Patch"
_PATCH_DESCRIPTION = "Patch gives a concrete name and type to the Kubernetes PATCH request body."


def definition_name(model: str) -> str:
    """The OpenAPI definition name of a client model (`V1Pod` -> `io.k8s.api.core.v1.Pod`)."""
    match = _MODEL_NAME.match(model)
    if match is None:
        raise ValueError(f"not a client model name: {model!r}")
    kind = match["kind"]
    if match["group"]:  # the generator prefixes a group only to break name clashes
        group = match["group"].lower()
        return f"io.k8s.api.{group}.v1.{kind}"
    for package, kinds in _PACKAGES.items():
        if kind in kinds:
            return f"{package}.{kind}"
    return f"io.k8s.api.core.v1.{kind}"


# Query parameters: name -> (JSON type, description).
_QUERY: Mapping[str, tuple[str, str]] = {
    "pretty": ("string", "If 'true', the output is pretty printed."),
    "allowWatchBookmarks": ("boolean", "Request watch events of type BOOKMARK."),
    "continue": ("string", "The continue token of a previous paginated list call."),
    "fieldSelector": ("string", "Restrict the returned objects by their fields."),
    "labelSelector": ("string", "Restrict the returned objects by their labels."),
    "limit": ("integer", "The maximum number of objects to return in one list call."),
    "resourceVersion": ("string", "The resource version a request may be served from."),
    "resourceVersionMatch": ("string", "How resourceVersion applies to list calls."),
    "sendInitialEvents": ("boolean", "Start a watch with synthetic events for existing objects."),
    "timeoutSeconds": ("integer", "Timeout for the list/watch call."),
    "watch": ("boolean", "Watch for changes to the described resources."),
    "dryRun": ("string", "When present (All), modifications are not persisted."),
    "fieldManager": ("string", "The name of the actor making these changes."),
    "fieldValidation": (
        "string",
        "How to handle unknown or duplicate fields in the request object:"
        " Ignore, Warn (the default) or Strict.",
    ),
    "force": ("boolean", "Force Apply requests, taking over conflicting fields."),
    "gracePeriodSeconds": ("integer", "Seconds before the object is deleted; zero deletes now."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy."),
    "propagationPolicy": ("string", "Garbage collection policy: Orphan, Background or Foreground."),
    "container": ("string", "The container to address; defaults to the only one."),
    "follow": ("boolean", "Follow the log stream."),
    "limitBytes": ("integer", "Stop after this many bytes of log."),
    "previous": ("boolean", "Logs of the previous, terminated container."),
    "sinceSeconds": ("integer", "Only logs newer than this many seconds."),
    "tailLines": ("integer", "Only this many lines from the end of the log."),
    "timestamps": ("boolean", "Prefix every line with its timestamp."),
    "command": ("string", "The command to execute, one argv item per parameter."),
    "stdin": ("boolean", "Redirect the standard input stream."),
    "stdout": ("boolean", "Redirect the standard output stream."),
    "stderr": ("boolean", "Redirect the standard error stream."),
    "tty": ("boolean", "Allocate a TTY."),
    "ports": ("integer", "The ports to forward."),
    "path": ("string", "The URL path to proxy to."),
}
_LIST_QUERY = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_WRITE_QUERY = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_QUERY = (*_WRITE_QUERY, "force")
_DELETE_QUERY = ("dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy")
_DELETE_COLLECTION_QUERY = tuple(
    sorted({*_DELETE_QUERY, *_LIST_QUERY} - {"allowWatchBookmarks", "watch"})
)
_LOG_QUERY = (
    "container",
    "follow",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "tailLines",
    "timestamps",
)
_EXEC_QUERY = ("command", "container", "stderr", "stdin", "stdout", "tty")

_JSON_TYPES = ("application/json",)  # what this apiserver answers in (no protobuf)
_WATCH_TYPES = (*_JSON_TYPES, "application/json;stream=watch")
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_STATUS_TEXT = {"200": "OK", "201": "Created", "202": "Accepted", "401": "Unauthorized"}
_STRING = ""  # response "schema" of log and connect operations: a plain string


_PARAM_NAMESPACE = ("namespace", "object name and auth scope, such as for teams and projects")
_DELETE_OPTIONS = f"{_META}.DeleteOptions"
_WATCH_EVENT = f"{_META}.WatchEvent"
_STATUS = f"{_META}.Status"


@dataclass(frozen=True)
class _Operation:
    """One HTTP method on one path, independent of the OpenAPI version."""

    method: str
    action: str  # x-kubernetes-action
    operation_id: str
    description: str
    gvk: tuple[str, str, str]
    response: str  # definition name, or _STRING
    codes: tuple[str, ...] = ("200",)
    query: tuple[str, ...] = ()
    body: str | None = None  # definition name of the request body
    body_types: tuple[str, ...] = ("*/*",)
    produces: tuple[str, ...] = _JSON_TYPES


@dataclass(frozen=True)
class _Path:
    path: str
    path_params: tuple[tuple[str, str], ...]  # (name, description)
    query: tuple[str, ...]  # shared by every operation of the path
    operations: tuple[_Operation, ...]


def _gv_path(group: str, version: str) -> str:
    """`api/v1`, `apis/apps/v1`: the group version's URL prefix without the slash."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation_id(
    r: Resource, verb: str, infix: str = "", suffix: str = "", scoped: bool = True
) -> str:
    """kube's operation ids: `listCoreV1NamespacedPod`, `deleteAppsV1CollectionNamespaced...`."""
    group = (r.group.split(".")[0] or "core").capitalize()
    namespaced = "Namespaced" if scoped and r.namespaced else ""
    return f"{verb}{group}{r.version.capitalize()}{infix}{namespaced}{r.kind}{suffix}"


def _write_ops(
    r: Resource, suffix: str, what: str, gvk: tuple[str, str, str], model: str
) -> tuple[_Operation, ...]:
    """get, put and patch of one object (the object itself or a subresource)."""
    return (
        _Operation(
            "get", "get", _operation_id(r, "read", suffix=suffix), f"read {what}", gvk, model
        ),
        _Operation(
            "put",
            "put",
            _operation_id(r, "replace", suffix=suffix),
            f"replace {what}",
            gvk,
            model,
            codes=("200", "201"),
            query=_WRITE_QUERY,
            body=model,
        ),
        _Operation(
            "patch",
            "patch",
            _operation_id(r, "patch", suffix=suffix),
            f"partially update {what}",
            gvk,
            model,
            codes=("200", "201"),
            query=_PATCH_QUERY,
            body=_PATCH_BODY,
            body_types=_PATCH_TYPES,
        ),
    )


def _resource_paths(r: Resource) -> Iterator[_Path]:
    """Every path kube-apiserver serves for a resource, with its operations."""
    model = definition_name(model_for(r.kind))
    list_model = definition_name(f"{model_for(r.kind)}List")
    gvk = (r.group, r.version, r.kind)
    prefix = "/" + _gv_path(r.group, r.version)
    scope = "namespaces/{namespace}/" if r.namespaced else ""
    scope_params = (_PARAM_NAMESPACE,) if r.namespaced else ()
    name_params = (("name", f"name of the {r.kind}"), *scope_params)
    collection = f"{prefix}/{scope}{r.plural}"
    item = f"{collection}/{{name}}"
    list_what = f"list or watch objects of kind {r.kind}"
    watch_what = f"watch changes to a list of {r.kind}"

    yield _Path(
        collection,
        scope_params,
        ("pretty",),
        (
            _Operation(
                "get",
                "list",
                _operation_id(r, "list"),
                list_what,
                gvk,
                list_model,
                query=_LIST_QUERY,
                produces=_WATCH_TYPES,
            ),
            _Operation(
                "post",
                "post",
                _operation_id(r, "create"),
                f"create a {r.kind}",
                gvk,
                model,
                codes=("200", "201", "202"),
                query=_WRITE_QUERY,
                body=model,
            ),
            _Operation(
                "delete",
                "deletecollection",
                _operation_id(r, "delete", "Collection"),
                f"delete collection of {r.kind}",
                gvk,
                _STATUS,
                query=_DELETE_COLLECTION_QUERY,
                body=_DELETE_OPTIONS,
            ),
        ),
    )
    yield _Path(
        item,
        name_params,
        ("pretty",),
        (
            *_write_ops(r, "", f"the specified {r.kind}", gvk, model),
            _Operation(
                "delete",
                "delete",
                _operation_id(r, "delete"),
                f"delete a {r.kind}",
                gvk,
                model,
                codes=("200", "202"),
                query=_DELETE_QUERY,
                body=_DELETE_OPTIONS,
            ),
        ),
    )

    watch_query = ("pretty", *_LIST_QUERY)
    watch = f"{prefix}/watch/{scope}{r.plural}"
    yield _Path(
        watch,
        scope_params,
        watch_query,
        (
            _Operation(
                "get",
                "watchlist",
                _operation_id(r, "watch", suffix="List"),
                watch_what,
                gvk,
                _WATCH_EVENT,
                produces=_WATCH_TYPES,
            ),
        ),
    )
    yield _Path(
        f"{watch}/{{name}}",
        name_params,
        watch_query,
        (
            _Operation(
                "get",
                "watch",
                _operation_id(r, "watch"),
                f"watch changes to an object of kind {r.kind}",
                gvk,
                _WATCH_EVENT,
                produces=_WATCH_TYPES,
            ),
        ),
    )
    if r.namespaced:
        yield _Path(
            f"{prefix}/{r.plural}",
            (),
            watch_query,
            (
                _Operation(
                    "get",
                    "list",
                    _operation_id(r, "list", suffix="ForAllNamespaces", scoped=False),
                    list_what,
                    gvk,
                    list_model,
                    produces=_WATCH_TYPES,
                ),
            ),
        )
        yield _Path(
            f"{prefix}/watch/{r.plural}",
            (),
            watch_query,
            (
                _Operation(
                    "get",
                    "watchlist",
                    _operation_id(r, "watch", suffix="ListForAllNamespaces", scoped=False),
                    watch_what,
                    gvk,
                    _WATCH_EVENT,
                    produces=_WATCH_TYPES,
                ),
            ),
        )
    for sub in r.subresources:
        yield from _subresource_paths(r, sub, f"{item}/{sub}", name_params)


def _subresource_paths(
    r: Resource, sub: str, path: str, name_params: tuple[tuple[str, str], ...]
) -> Iterator[_Path]:
    model = definition_name(model_for(r.kind))
    gvk = (r.group, r.version, r.kind)
    suffix = sub.capitalize()
    what = f"{sub} of the specified {r.kind}"
    if sub in ("status", "ephemeralcontainers"):
        yield _Path(path, name_params, ("pretty",), _write_ops(r, suffix, what, gvk, model))
    elif sub == "scale":
        scale = definition_name("V1Scale")
        scale_gvk = ("autoscaling", "v1", "Scale")
        yield _Path(path, name_params, ("pretty",), _write_ops(r, suffix, what, scale_gvk, scale))
    elif sub == "finalize":
        yield _Path(
            path,
            name_params,
            ("pretty",),
            (
                _Operation(
                    "put",
                    "put",
                    _operation_id(r, "replace", suffix=suffix),
                    f"replace {what}",
                    gvk,
                    model,
                    codes=("200", "201"),
                    query=_WRITE_QUERY,
                    body=model,
                ),
            ),
        )
    elif sub == "binding":
        binding = definition_name("V1Binding")
        yield _Path(
            path,
            name_params,
            ("pretty",),
            (
                _Operation(
                    "post",
                    "post",
                    _operation_id(r, "create", suffix=suffix),
                    f"create binding of a {r.kind}",
                    ("", "v1", "Binding"),
                    binding,
                    codes=("200", "201", "202"),
                    query=_WRITE_QUERY,
                    body=binding,
                ),
            ),
        )
    elif sub == "log":
        yield _Path(
            path,
            name_params,
            ("pretty", *_LOG_QUERY),
            (
                _Operation(
                    "get",
                    "get",
                    _operation_id(r, "read", suffix=suffix),
                    f"read log of the specified {r.kind}",
                    gvk,
                    _STRING,
                    produces=("text/plain", "application/json"),
                ),
            ),
        )
    else:  # exec, portforward, proxy: connections the server upgrades or forwards
        yield from _connect_paths(r, sub, path, name_params)


def _connect_paths(
    r: Resource, sub: str, path: str, name_params: tuple[tuple[str, str], ...]
) -> Iterator[_Path]:
    options = {"exec": "PodExecOptions", "portforward": "PodPortForwardOptions"}.get(
        sub, f"{r.kind}ProxyOptions"
    )
    query = {"exec": _EXEC_QUERY, "portforward": ("ports",)}.get(sub, ("path",))
    methods = ("get", "post", "put", "patch", "delete") if sub == "proxy" else ("get", "post")
    variants = [(path, name_params, query, sub.capitalize())]
    if sub == "proxy":
        with_path = (*name_params, ("path", "path to the resource"))
        variants.append((f"{path}/{{path}}", with_path, (), "ProxyWithPath"))
    for url, params, variant_query, suffix in variants:
        yield _Path(
            url,
            params,
            variant_query,
            tuple(
                _Operation(
                    method,
                    "connect",
                    _operation_id(r, "connect", method.capitalize(), suffix),
                    f"connect {method.upper()} requests to {sub} of {r.kind}",
                    (r.group, r.version, options),
                    _STRING,
                    produces=("*/*",),
                )
                for method in methods
            ),
        )


# --- schemas ----------------------------------------------------------------------


def _ref(name: str, v3: bool) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}" if v3 else f"#/definitions/{name}"}


def _property(node: SchemaNode, v3: bool) -> dict[str, Any]:
    """A field's schema; v3 wraps references in allOf, as kube-apiserver does."""
    prop: dict[str, Any]
    target = definition_name(node.model) if node.model else ""
    if node.named:
        target = _NAMED_SCHEMAS[node.named][0]
    if target:
        prop = {"allOf": [_ref(target, v3)]} if v3 else _ref(target, v3)
        if v3 and node.type == "object":
            prop["default"] = {}
    elif node.type in ("array", "map") and node.element is not None:
        key = "items" if node.type == "array" else "additionalProperties"
        prop = {"type": node.type.replace("map", "object"), key: _property(node.element, v3)}
    elif node.type == "any":
        prop = {}
    else:
        prop = {"type": node.type, **({"format": node.format} if node.format else {})}
    if node.description:
        prop["description"] = node.description
    patch = node.patch
    extensions = {
        "x-kubernetes-list-map-keys": list(patch.map_keys),
        "x-kubernetes-list-type": patch.list_type,
        "x-kubernetes-patch-merge-key": patch.merge_key,
        "x-kubernetes-patch-strategy": patch.strategy,
    }
    prop.update({key: value for key, value in extensions.items() if value})
    return prop


def _gvk_extension(model: str) -> list[dict[str, str]]:
    """`x-kubernetes-group-version-kind` of a top-level kind or its list."""
    for r in RESOURCES:
        for candidate, kind in (
            (model_for(r.kind), r.kind),
            (f"{model_for(r.kind)}List", f"{r.kind}List"),
        ):
            if candidate == model:
                return [{"group": r.group, "kind": kind, "version": r.version}]
    if model == "V1Scale":
        return [{"group": "autoscaling", "kind": "Scale", "version": "v1"}]
    if model == "V1Binding":
        return [{"group": "", "kind": "Binding", "version": "v1"}]
    return []


def _model_schemas(model: str, v3: bool, out: dict[str, dict[str, Any]]) -> None:
    """The definition of a client model and of every model and named type it uses."""
    name = definition_name(model)
    if name in out:
        return
    node = model_node(model)
    schema: dict[str, Any] = {"description": model_description(model), "type": "object"}
    out[name] = schema
    schema["properties"] = {key: _property(child, v3) for key, child in node.fields.items()}
    if node.required:
        schema["required"] = sorted(node.required)
    gvk = _gvk_extension(model)
    if gvk:
        schema["x-kubernetes-group-version-kind"] = gvk
    for child in node.fields.values():
        _node_schemas(child, v3, out)


def _node_schemas(node: SchemaNode, v3: bool, out: dict[str, dict[str, Any]]) -> None:
    if node.type == "object":
        _model_schemas(node.model, v3, out)
    elif node.element is not None:
        _node_schemas(node.element, v3, out)
    elif node.named:
        name, v3_schema, v2_schema = _NAMED_SCHEMAS[node.named]
        out[name] = {
            "description": _NAMED_DESCRIPTIONS[node.named],
            **(v3_schema if v3 else v2_schema),
        }


def _schemas_for(models: list[str], v3: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        _PATCH_BODY: {"description": _PATCH_DESCRIPTION, "type": "object"}
    }
    for model in models:
        _model_schemas(model, v3, out)
    return dict(sorted(out.items()))


def _models_of(resources: list[Resource]) -> list[str]:
    """The client models a set of resources' paths mention (bodies and responses)."""
    models = ["V1Status", "V1DeleteOptions", "V1WatchEvent"]
    for r in resources:
        models += [model_for(r.kind), f"{model_for(r.kind)}List"]
        models += [
            m
            for sub, m in (("scale", "V1Scale"), ("binding", "V1Binding"))
            if sub in r.subresources
        ]
    return models


# --- rendering --------------------------------------------------------------------


def _parameter(name: str, where: str, description: str, json_type: str, v3: bool) -> dict[str, Any]:
    param: dict[str, Any] = {"description": description, "in": where, "name": name}
    if where == "path":
        param["required"] = True
    if v3:
        param["schema"] = {"type": json_type, "uniqueItems": True}
    else:
        param.update({"type": json_type, "uniqueItems": True})
    return param


def _query(names: tuple[str, ...], v3: bool) -> list[dict[str, Any]]:
    return [_parameter(name, "query", _QUERY[name][1], _QUERY[name][0], v3) for name in names]


def _render_path(p: _Path, v3: bool) -> dict[str, Any]:
    params = [_parameter(n, "path", d, "string", v3) for n, d in p.path_params]
    entry: dict[str, Any] = {"parameters": params + _query(p.query, v3)}
    for op in p.operations:
        entry[op.method] = _render_operation(op, v3)
    return entry


def _render_operation(op: _Operation, v3: bool) -> dict[str, Any]:
    group, version, kind = op.gvk
    tag = f"{(group.split('.')[0] or 'core')}_{version}"
    rendered: dict[str, Any] = {
        "description": op.description,
        "operationId": op.operation_id,
        "tags": [tag],
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": group, "kind": kind, "version": version},
    }
    params = _query(op.query, v3)
    response_schema = _ref(op.response, v3) if op.response else {"type": "string"}
    responses: dict[str, Any] = {}
    for code in (*op.codes, "401"):
        responses[code] = {"description": _STATUS_TEXT[code]}
        if code != "401":
            if v3:
                content = {mt: {"schema": response_schema} for mt in op.produces}
                responses[code]["content"] = content
            else:
                responses[code]["schema"] = response_schema
    if v3:
        if op.body is not None:
            content = {mt: {"schema": _ref(op.body, v3)} for mt in op.body_types}
            rendered["requestBody"] = {"content": content, "required": op.method != "delete"}
    else:
        rendered.update(
            {"consumes": list(op.body_types), "produces": list(op.produces), "schemes": ["https"]}
        )
        if op.body is not None:
            body = {"in": "body", "name": "body", "schema": _ref(op.body, v3)}
            params.insert(0, {**body, "required": op.method != "delete"})
    if params:
        rendered["parameters"] = params
    rendered["responses"] = responses
    return rendered


def _document(resources: list[Resource], v3: bool) -> dict[str, Any]:
    paths = {p.path: _render_path(p, v3) for r in resources for p in _resource_paths(r)}
    schemas = _schemas_for(_models_of(resources), v3)
    security = {
        "BearerToken": {
            "description": "Bearer Token authentication",
            "in": "header",
            "name": "authorization",
            "type": "apiKey",
        }
    }
    info = {"title": "Kubernetes", "version": "unversioned"}
    if v3:
        return {
            "openapi": "3.0.0",
            "info": info,
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": security},
        }
    return {
        "swagger": "2.0",
        "info": info,
        "paths": paths,
        "definitions": schemas,
        "securityDefinitions": security,
        "security": [{"BearerToken": []}],
    }


def document_hash(document: dict[str, Any]) -> str:
    """kube's content hash of a document: SHA-512 of its JSON, upper-case hex."""
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(encoded).hexdigest().upper()


@functools.cache
def _v3_documents() -> Mapping[str, dict[str, Any]]:
    by_gv: dict[str, list[Resource]] = {}
    for r in RESOURCES:
        by_gv.setdefault(_gv_path(r.group, r.version), []).append(r)
    return {gv: _document(resources, v3=True) for gv, resources in by_gv.items()}


@functools.cache
def openapi_v3_index() -> dict[str, Any]:
    """`GET /openapi/v3`: where each group version's document is, with its hash."""
    return {
        "paths": {
            gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={document_hash(doc)}"}
            for gv, doc in _v3_documents().items()
        }
    }


def openapi_v3_document(group_version_path: str) -> dict[str, Any] | None:
    """`GET /openapi/v3/<api/v1|apis/apps/v1>`; None for a group version not served."""
    return _v3_documents().get(group_version_path.strip("/"))


@functools.cache
def openapi_v2() -> dict[str, Any]:
    """`GET /openapi/v2`: one Swagger 2.0 document for every group version."""
    return _document(list(RESOURCES), v3=False)
