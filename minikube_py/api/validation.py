"""Validation: the field errors kube-apiserver returns for an invalid create or update.

`validate(kind, obj, old)` checks a defaulted object (and, on update, the stored one)
and returns every `FieldError`, worded exactly as Kubernetes words them, so that
`kubectl` users see the messages they know. `status_message` joins them into the
`Status.message` of the 422 Invalid response; the errors themselves become its
`details.causes`.

Messages are built from the same pieces as Kubernetes' `field.Error`: a type
("Invalid value", "Required value", ...), the bad value rendered as Go renders it
(`%q` for strings, `%#v` for maps and selectors), and a detail.
"""

import functools
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from minikube_py.api.defaults import is_externally_accessible
from minikube_py.api.labels import from_label_selector, matches
from minikube_py.api.quantity import parse_quantity
from minikube_py.api.resources import BY_KIND
from minikube_py.api.serviceaccounts import TOKEN_SECONDS_MIN
from minikube_py.api.types import Obj, clone


@dataclass(frozen=True)
class FieldError:
    reason: str  # metav1.CauseType
    field: str
    message: str  # the error body, without the field: 'Invalid value: 0: must be ...'

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


Errors = list[FieldError]


def status_message(kind: str, name: str, errors: list[FieldError]) -> str:
    """The Status message of a 422 Invalid: `Service "web" is invalid: <error>`, several
    errors as `[<error>, <error>]` (repeats dropped), kinds of a group qualified by it
    (`Deployment.apps "web" is invalid: ...`), as k8s.io/apimachinery's NewInvalid."""
    group = BY_KIND[kind].group
    qualified = f"{kind}.{group}" if group else kind
    unique = list(dict.fromkeys(map(str, errors)))
    if not unique:
        return f'{qualified} "{name}" is invalid'
    joined = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
    return f'{qualified} "{name}" is invalid: {joined}'


def validate(
    kind: str,
    obj: Obj,
    old: Obj | None = None,
    *,
    node_port_range: tuple[int, int] = (30000, 32767),
) -> list[FieldError]:
    """Every field error of `obj`; an update when `old` is given."""
    resource = BY_KIND[kind]
    errors = _validate_object_meta(
        obj.get("metadata") or {}, resource.namespaced, _NAME_RULES.get(kind, dns1123_subdomain)
    )
    if old is not None:
        errors += _validate_object_meta_update(obj.get("metadata") or {}, old.get("metadata") or {})
    validator = _VALIDATORS.get(kind)
    if validator is not None:
        errors += validator(_Context(obj, old, node_port_range))
    return errors


@dataclass(frozen=True)
class _Context:
    obj: Obj
    old: Obj | None
    node_port_range: tuple[int, int]

    @property
    def spec(self) -> Obj:
        return self.obj.get("spec") or {}

    @property
    def old_spec(self) -> Obj:
        return (self.old or {}).get("spec") or {}


# --- error constructors, as in k8s.io/apimachinery/pkg/util/validation/field ---------


def go_repr(value: Any) -> str:
    """The bad value as Go's field.Error prints it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return _go_string_map(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    # Go prints its internal struct here; compact JSON is the closest readable form.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def go_quote(text: str) -> str:
    """Go's `%q`: a double-quoted string with backslash escapes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{escaped}"'


def _go_string_map(value: dict[str, str] | None) -> str:
    if value is None:
        return "map[string]string(nil)"
    items = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items()))
    return "map[string]string{" + items + "}"


def go_label_selector(selector: Obj | None) -> str:
    """A metav1.LabelSelector as `%#v` prints it (immutable-selector messages show it)."""
    selector = selector or {}
    labels = _go_string_map(selector.get("matchLabels"))
    expressions = selector.get("matchExpressions")
    if expressions is None:
        exprs = "[]v1.LabelSelectorRequirement(nil)"
    else:
        parts = []
        for expr in expressions:
            values = expr.get("values")
            go_values = (
                "[]string(nil)"
                if values is None
                else "[]string{" + ", ".join(go_quote(v) for v in values) + "}"
            )
            parts.append(
                f"v1.LabelSelectorRequirement{{Key:{go_quote(expr.get('key', ''))}, "
                f"Operator:{go_quote(expr.get('operator', ''))}, Values:{go_values}}}"
            )
        exprs = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    return f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}"


class _Rendered(str):
    """A bad value already rendered in Go syntax."""


def _body(kind: str, detail: str) -> str:
    return f"{kind}: {detail}" if detail else kind


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, _body("Required value", detail))


def invalid(field: str, value: Any, detail: str) -> FieldError:
    rendered = value if isinstance(value, _Rendered) else go_repr(value)
    return FieldError("FieldValueInvalid", field, _body(f"Invalid value: {rendered}", detail))


def not_supported(field: str, value: Any, supported: Iterable[str]) -> FieldError:
    detail = "supported values: " + ", ".join(go_quote(v) for v in supported)
    return FieldError(
        "FieldValueNotSupported", field, f"Unsupported value: {go_repr(value)}: {detail}"
    )


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, f"Duplicate value: {go_repr(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, _body("Forbidden", detail))


def too_long(field: str, max_bytes: int) -> FieldError:
    unit = "byte" if max_bytes == 1 else "bytes"
    return FieldError(
        "FieldValueTooLong", field, f"Too long: may not be more than {max_bytes} {unit}"
    )


# --- string formats, as in k8s.io/apimachinery/pkg/util/validation -------------------

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"
_CONFIG_KEY = "[-._a-zA-Z0-9]+"
_PERCENT = "[0-9]+%"


def _regex_msg(what: str, regex: str, examples: Iterable[str]) -> str:
    shown = ",  or ".join(f"'{e}'" for e in examples)
    return f"{what} (e.g. {shown}, regex used for validation is '{regex}')"


DNS1123_LABEL_MSG = _regex_msg(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
    " and must start and end with an alphanumeric character",
    _DNS1123_LABEL,
    ("my-name", "123-abc"),
)
DNS1123_SUBDOMAIN_MSG = _regex_msg(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
    " '-' or '.', and must start and end with an alphanumeric character",
    _DNS1123_SUBDOMAIN,
    ("example.com",),
)
DNS1035_LABEL_MSG = _regex_msg(
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start"
    " with an alphabetic character, and end with an alphanumeric character",
    _DNS1035_LABEL,
    ("my-name", "abc-123"),
)
QUALIFIED_NAME_PART_MSG = _regex_msg(
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end"
    " with an alphanumeric character",
    _QUALIFIED_NAME,
    ("MyName", "my.name", "123-abc"),
)
QUALIFIED_NAME_MSG = (
    f"a qualified name {QUALIFIED_NAME_PART_MSG} with an optional DNS subdomain prefix and"
    " '/' (e.g. 'example.com/MyName')"
)
LABEL_VALUE_MSG = _regex_msg(
    "a valid label must be an empty string or consist of alphanumeric characters, '-',"
    " '_' or '.', and must start and end with an alphanumeric character",
    _LABEL_VALUE,
    ("MyValue", "my_value", "12345"),
)
CONFIG_KEY_MSG = _regex_msg(
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
    _CONFIG_KEY,
    ("key.name", "KEY_NAME", "key-name"),
)
PERCENT_MSG = _regex_msg(
    "a valid percent string must be a numeric string followed by an ending '%'",
    _PERCENT,
    ("1%", "93%"),
)
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
NON_NEGATIVE_MSG = "must be greater than or equal to 0"
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
IMMUTABLE_MSG = "field is immutable"


def _full(regex: str) -> re.Pattern[str]:
    """A pattern that must match all of the value (`$` would let a final newline by)."""
    return re.compile(rf"(?:{regex})\Z")


_DNS1123_LABEL_RE = _full(_DNS1123_LABEL)
_DNS1123_SUBDOMAIN_RE = _full(_DNS1123_SUBDOMAIN)
_DNS1035_LABEL_RE = _full(_DNS1035_LABEL)
_QUALIFIED_NAME_RE = _full(_QUALIFIED_NAME)
_LABEL_VALUE_RE = _full(_LABEL_VALUE)
_CONFIG_KEY_RE = _full(_CONFIG_KEY)
_PERCENT_RE = _full(_PERCENT)
_PORT_NAME_CHARS_RE = _full("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def dns1123_label(value: str) -> list[str]:
    msgs = _max_len(value, 63)
    return msgs + ([] if _DNS1123_LABEL_RE.match(value) else [DNS1123_LABEL_MSG])


def dns1123_subdomain(value: str) -> list[str]:
    msgs = _max_len(value, 253)
    return msgs + ([] if _DNS1123_SUBDOMAIN_RE.match(value) else [DNS1123_SUBDOMAIN_MSG])


def dns1035_label(value: str) -> list[str]:
    msgs = _max_len(value, 63)
    return msgs + ([] if _DNS1035_LABEL_RE.match(value) else [DNS1035_LABEL_MSG])


def qualified_name(value: str) -> list[str]:
    """`[prefix/]name`, the form of label and annotation keys."""
    msgs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        prefix_msgs = dns1123_subdomain(prefix) if prefix else ["must be non-empty"]
        msgs += ["prefix part " + m for m in prefix_msgs]
    else:
        return [QUALIFIED_NAME_MSG]
    if not name:
        msgs.append("name part must be non-empty")
    elif len(name) > 63:
        msgs.append("name part must be no more than 63 characters")
    if not _QUALIFIED_NAME_RE.match(name):
        msgs.append("name part " + QUALIFIED_NAME_PART_MSG)
    return msgs


def label_value(value: str) -> list[str]:
    msgs = _max_len(value, 63)
    return msgs + ([] if _LABEL_VALUE_RE.match(value) else [LABEL_VALUE_MSG])


def config_key(value: str) -> list[str]:
    msgs = _max_len(value, 253)
    if not _CONFIG_KEY_RE.match(value):
        msgs.append(CONFIG_KEY_MSG)
    if value == ".":
        msgs.append("must not be '.'")
    elif value == "..":
        msgs.append("must not be '..'")
    elif value.startswith(".."):
        msgs.append("must not start with '..'")
    return msgs


def port_name(value: str) -> list[str]:
    """IANA_SVC_NAME: what a named port (`http`, `dns-tcp`) must look like."""
    msgs = _max_len(value, 15)
    if not _PORT_NAME_CHARS_RE.match(value):
        msgs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(value):
        msgs.append("must contain at least one letter (a-z)")
    if "--" in value:
        msgs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        msgs.append("must not begin or end with a hyphen")
    return msgs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _port_number(value: Any, field: str) -> Errors:
    if not _is_int(value) or not 1 <= value <= 65535:
        # A missing port is Go's zero value.
        return [invalid(field, 0 if value is None else value, PORT_RANGE_MSG)]
    return []


def _port_num_or_name(value: Any, field: str) -> Errors:
    if isinstance(value, str):
        return [invalid(field, value, msg) for msg in port_name(value)]
    return _port_number(value, field)


def _non_negative(value: Any, field: str) -> Errors:
    if value is not None and (not _is_int(value) or value < 0):
        return [invalid(field, value, NON_NEGATIVE_MSG)]
    return []


@functools.lru_cache(maxsize=1 << 16)
def ip_version(text: str) -> int | None:
    """4 or 6 for a valid IP address, else None. Cached: Endpoints and EndpointSlices
    are rewritten whole with mostly the same addresses, and parsing costs ~14 µs."""
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return None


def _ip(value: Any, field: str) -> Errors:
    if not isinstance(value, str) or ip_version(value) is None:
        return [invalid(field, value, IP_MSG)]
    return []


def _protocol(value: Any, field: str) -> Errors:
    if not value:
        return [required(field)]
    if value not in ("SCTP", "TCP", "UDP"):
        return [not_supported(field, value, ("SCTP", "TCP", "UDP"))]
    return []


def _one_of(value: Any, field: str, supported: tuple[str, ...]) -> Errors:
    if not value:
        return [required(field)]
    return [] if value in supported else [not_supported(field, value, supported)]


# --- metadata -------------------------------------------------------------------------

NameRule = Callable[[str], list[str]]
_NAME_RULES: dict[str, NameRule] = {"Service": dns1035_label, "Namespace": dns1123_label}


def _validate_object_meta(meta: Obj, namespaced: bool, name_rule: NameRule) -> Errors:
    errors: Errors = []
    name, generate_name = meta.get("name", ""), meta.get("generateName", "")
    if generate_name:
        # A generated name gets a random suffix, so a trailing '-' is allowed; kube masks
        # it exactly so (dropping the character before it too).
        masked = generate_name
        if len(generate_name) > 1 and generate_name.endswith("-"):
            masked = generate_name[:-2] + "a"
        errors += [invalid("metadata.generateName", generate_name, m) for m in name_rule(masked)]
    # The registry turns generateName into a name before validating, so a name is due.
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors += [invalid("metadata.name", name, m) for m in name_rule(name)]
    namespace = meta.get("namespace", "")
    if namespaced:
        if not namespace:
            errors.append(required("metadata.namespace"))
        else:
            errors += [
                invalid("metadata.namespace", namespace, m) for m in dns1123_label(namespace)
            ]
    elif namespace:
        errors.append(forbidden("metadata.namespace", "not allowed on this type"))
    errors += validate_labels(meta.get("labels"), "metadata.labels")
    errors += _validate_annotations(meta.get("annotations"), "metadata.annotations")
    for i, finalizer in enumerate(meta.get("finalizers") or []):
        errors += [
            invalid(f"metadata.finalizers[{i}]", finalizer, m) for m in qualified_name(finalizer)
        ]
    return errors


def validate_labels(labels: Obj | None, field: str) -> Errors:
    errors: Errors = []
    for key, value in (labels or {}).items():
        errors += [invalid(field, key, m) for m in qualified_name(key)]
        if not isinstance(value, str):
            errors.append(invalid(field, value, "label values must be strings"))
        else:
            errors += [invalid(field, value, m) for m in label_value(value)]
    return errors


_ANNOTATIONS_MAX_BYTES = 256 * 1024


def _validate_annotations(annotations: Obj | None, field: str) -> Errors:
    errors: Errors = []
    size = 0
    for key, value in (annotations or {}).items():
        errors += [invalid(field, key, m) for m in qualified_name(key.lower())]
        size += len(key.encode()) + len(str(value).encode())
    if size > _ANNOTATIONS_MAX_BYTES:
        errors.append(too_long(field, _ANNOTATIONS_MAX_BYTES))
    return errors


def _validate_object_meta_update(meta: Obj, old_meta: Obj) -> Errors:
    errors: Errors = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if key in old_meta and meta.get(key, old_meta[key]) != old_meta[key]:
            errors.append(invalid(f"metadata.{key}", meta.get(key), IMMUTABLE_MSG))
    return errors


# --- Pod ------------------------------------------------------------------------------

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
# The non-prefixed names Kubernetes knows (containers may use only the first three).
_STANDARD_RESOURCES = (
    *_CONTAINER_RESOURCES,
    "storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
)
_PROBE_KINDS = ("livenessProbe", "readinessProbe", "startupProbe")
_HANDLER_TYPES = ("exec", "httpGet", "tcpSocket", "grpc")
_POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _validate_pod(ctx: _Context) -> Errors:
    errors = validate_pod_spec(ctx.spec, "spec")
    # Only a Pod's images must be trimmed: templates may hold " " as a placeholder.
    for key in ("initContainers", "containers"):
        for i, container in enumerate(ctx.spec.get(key) or []):
            image = container.get("image")
            if isinstance(image, str) and image and image != image.strip():
                errors.append(
                    invalid(
                        f"spec.{key}[{i}].image",
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    if ctx.old is not None:
        errors += _validate_pod_spec_update(ctx.spec, ctx.old_spec)
    return errors


def validate_pod_spec(spec: Obj, path: str) -> Errors:
    errors: Errors = []
    containers = spec.get("containers") or []
    if not containers:
        errors.append(required(f"{path}.containers"))
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            # Probes run on app containers and on sidecars (restartable init containers).
            probes_allowed = key == "containers" or container.get("restartPolicy") == "Always"
            errors += _validate_container(container, f"{path}.{key}[{i}]", names, probes_allowed)
    errors += _one_of(spec.get("restartPolicy"), f"{path}.restartPolicy", _RESTART_POLICIES)
    errors += _one_of(spec.get("dnsPolicy"), f"{path}.dnsPolicy", _DNS_POLICIES)
    errors += _non_negative(
        spec.get("terminationGracePeriodSeconds"), f"{path}.terminationGracePeriodSeconds"
    )
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not _is_int(deadline) or deadline <= 0):
        errors.append(
            invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                "must be between 1 and 2147483647, inclusive",
            )
        )
    errors += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    volume_names: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        vpath = f"{path}.volumes[{i}].name"
        vname = volume.get("name", "")
        if not vname:
            errors.append(required(vpath))
        else:
            errors += [invalid(vpath, vname, m) for m in dns1123_label(vname)]
            if vname in volume_names:
                errors.append(duplicate(vpath, vname))
            volume_names.add(vname)
        for j, source in enumerate((volume.get("projected") or {}).get("sources") or []):
            token = source.get("serviceAccountToken")
            if token is not None:
                errors += _validate_token_projection(
                    token, f"{path}.volumes[{i}].projected.sources[{j}].serviceAccountToken"
                )
    for i, toleration in enumerate(spec.get("tolerations") or []):
        errors += _validate_toleration(toleration, f"{path}.tolerations[{i}]")
    return errors


def _validate_token_projection(token: Obj, path: str) -> Errors:
    errors = [] if token.get("path") else [required(f"{path}.path")]
    if token.get("expirationSeconds") is not None:
        errors += token_seconds_errors(token["expirationSeconds"], f"{path}.expirationSeconds")
    return errors


def token_seconds_errors(seconds: Any, path: str) -> Errors:
    """A service account token's lifetime (TokenRequest and projected volumes alike)."""
    if not _is_int(seconds) or seconds < TOKEN_SECONDS_MIN:
        return [invalid(path, seconds, "may not specify a duration less than 10 minutes")]
    if seconds > 2**32:
        return [invalid(path, seconds, "may not specify a duration larger than 2^32 seconds")]
    return []


def _validate_container(container: Obj, path: str, names: set[str], probes_allowed: bool) -> Errors:
    errors: Errors = []
    name = container.get("name", "")
    if not name:
        errors.append(required(f"{path}.name"))
    else:
        errors += [invalid(f"{path}.name", name, m) for m in dns1123_label(name)]
        if name in names:
            errors.append(duplicate(f"{path}.name", name))
        names.add(name)
    if not container.get("image"):
        errors.append(required(f"{path}.image"))
    if "imagePullPolicy" in container:
        errors += _one_of(container["imagePullPolicy"], f"{path}.imagePullPolicy", _PULL_POLICIES)
    port_names: set[str] = set()
    for i, port in enumerate(container.get("ports") or []):
        errors += _validate_container_port(port, f"{path}.ports[{i}]", port_names)
    errors += _validate_resources(container.get("resources") or {}, f"{path}.resources")
    for probe_key in _PROBE_KINDS:
        probe = container.get(probe_key)
        if probe is None:
            continue
        if not probes_allowed:
            errors.append(
                forbidden(
                    f"{path}.{probe_key}",
                    "may not be set for init containers without restartPolicy=Always",
                )
            )
            continue
        errors += _validate_probe(
            probe, f"{path}.{probe_key}", single_success=probe_key != "readinessProbe"
        )
    for i, env in enumerate(container.get("env") or []):
        if not env.get("name"):
            errors.append(required(f"{path}.env[{i}].name"))
    return errors


def _validate_container_port(port: Obj, path: str, names: set[str]) -> Errors:
    errors: Errors = []
    name = port.get("name", "")
    if name:
        errors += [invalid(f"{path}.name", name, m) for m in port_name(name)]
        if name in names:
            errors.append(duplicate(f"{path}.name", name))
        names.add(name)
    container_port = port.get("containerPort", 0)
    if container_port == 0:
        errors.append(required(f"{path}.containerPort"))
    else:
        errors += _port_number(container_port, f"{path}.containerPort")
    if port.get("hostPort", 0) != 0:
        errors += _port_number(port["hostPort"], f"{path}.hostPort")
    errors += _protocol(port.get("protocol"), f"{path}.protocol")
    return errors


def _resource_name(name: str) -> list[str]:
    """Why `name` can't be a container's resource (ValidateContainerResourceName)."""
    msgs = qualified_name(name)
    if msgs or "/" in name:
        return msgs
    if name in _CONTAINER_RESOURCES or name.startswith("hugepages-"):
        return []
    if name not in _STANDARD_RESOURCES and not name.startswith(("requests.", "limits.")):
        msgs.append("must be a standard resource type or fully qualified")
    return [*msgs, "must be a standard resource for containers"]


def _overcommit_allowed(name: str) -> bool:
    """Native resources but huge pages may be requested below their limit."""
    native = "/" not in name or "kubernetes.io/" in name
    return native and not name.startswith("hugepages-")


def _validate_resources(resources: Obj, path: str) -> Errors:
    errors: Errors = []
    parsed: dict[str, dict[str, Any]] = {"limits": {}, "requests": {}}
    for section, values in parsed.items():
        for name, quantity in (resources.get(section) or {}).items():
            field = f"{path}.{section}[{name}]"
            errors += [invalid(field, name, m) for m in _resource_name(name)]
            try:
                values[name] = parse_quantity(quantity)
            except ValueError as exc:
                errors.append(invalid(field, quantity, str(exc)))
                continue
            if values[name] < 0:
                errors.append(invalid(field, quantity, NON_NEGATIVE_MSG))
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is None:
            continue
        shown, limit_shown = str(resources["requests"][name]), resources["limits"][name]
        if not _overcommit_allowed(name) and request != limit:
            errors.append(
                invalid(
                    f"{path}.requests", shown, f"must be equal to {name} limit of {limit_shown}"
                )
            )
        elif request > limit:
            errors.append(
                invalid(
                    f"{path}.requests",
                    shown,
                    f"must be less than or equal to {name} limit of {limit_shown}",
                )
            )
    return errors


def _validate_probe(probe: Obj, path: str, single_success: bool) -> Errors:
    errors = _validate_handler(probe, path)
    for field in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        errors += _non_negative(probe.get(field), f"{path}.{field}")
    success = probe.get("successThreshold")
    if single_success and success is not None and success != 1:
        errors.append(invalid(f"{path}.successThreshold", success, "must be 1"))
    return errors


def _validate_handler(handler: Obj, path: str) -> Errors:
    present = [h for h in _HANDLER_TYPES if handler.get(h) is not None]
    if not present:
        return [required(path, "must specify a handler type")]
    errors = [
        forbidden(f"{path}.{h}", "may not specify more than 1 handler type") for h in present[1:]
    ]
    http_get = handler.get("httpGet")
    if http_get is not None:
        errors += _port_num_or_name(http_get.get("port"), f"{path}.httpGet.port")
        scheme = http_get.get("scheme")
        if scheme not in (None, "HTTP", "HTTPS"):
            errors.append(not_supported(f"{path}.httpGet.scheme", scheme, ("HTTP", "HTTPS")))
    tcp = handler.get("tcpSocket")
    if tcp is not None:
        errors += _port_num_or_name(tcp.get("port"), f"{path}.tcpSocket.port")
    exec_ = handler.get("exec")
    if exec_ is not None and not exec_.get("command"):
        errors.append(required(f"{path}.exec.command"))
    grpc = handler.get("grpc")
    if grpc is not None:
        errors += _port_number(grpc.get("port"), f"{path}.grpc.port")
    return errors


_TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


def _validate_toleration(toleration: Obj, path: str) -> Errors:
    errors: Errors = []
    key = toleration.get("key", "")
    if key:
        errors += [invalid(f"{path}.key", key, m) for m in qualified_name(key)]
    operator = toleration.get("operator", "Equal")
    if operator == "Exists" and toleration.get("value"):
        errors.append(
            invalid(
                f"{path}.operator", toleration, "value must be empty when `operator` is 'Exists'"
            )
        )
    elif operator not in ("Equal", "Exists"):
        errors.append(not_supported(f"{path}.operator", operator, ("Equal", "Exists")))
    effect = toleration.get("effect", "")
    if effect and effect not in _TAINT_EFFECTS:
        errors.append(not_supported(f"{path}.effect", effect, _TAINT_EFFECTS))
    return errors


def _without_mutable_fields(spec: Obj) -> Obj:
    """The pod spec minus what an update may change."""
    frozen = clone(spec)
    for key in ("containers", "initContainers"):
        for container in frozen.get(key) or []:
            container.pop("image", None)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        frozen.pop(key, None)
    return frozen


def _validate_pod_spec_update(spec: Obj, old_spec: Obj) -> Errors:
    errors: Errors = []
    old_deadline, deadline = (
        old_spec.get("activeDeadlineSeconds"),
        spec.get("activeDeadlineSeconds"),
    )
    if old_deadline is not None:
        # A deadline may be set or shortened, never lifted.
        if deadline is None:
            errors.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    None,
                    "must not update from a positive integer to nil value",
                )
            )
        elif _is_int(deadline) and deadline > old_deadline:
            errors.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    deadline,
                    "must be less than or equal to previous value",
                )
            )
    old_grace, grace = (
        old_spec.get("terminationGracePeriodSeconds"),
        spec.get("terminationGracePeriodSeconds"),
    )
    grace_kept = grace == old_grace or ((old_grace or 0) < 0 and grace == 1)
    tolerations = spec.get("tolerations") or []
    tolerations_kept = all(t in tolerations for t in old_spec.get("tolerations") or [])
    if (
        not grace_kept
        or not tolerations_kept
        or _without_mutable_fields(spec) != _without_mutable_fields(old_spec)
    ):
        errors.append(forbidden("spec", _POD_UPDATE_MSG))
    return errors


# --- Service --------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_TRAFFIC_POLICIES = ("Cluster", "Local")
_IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
_MAX_CLIENT_IP_TIMEOUT = 86400


def _validate_service(ctx: _Context) -> Errors:
    spec = ctx.spec
    errors: Errors = []
    service_type = spec.get("type")
    headless = spec.get("clusterIP") == "None"
    ports = spec.get("ports") or []
    if service_type not in _SERVICE_TYPES:
        errors.append(not_supported("spec.type", service_type, _SERVICE_TYPES))
    if not ports and not headless and service_type != "ExternalName":
        errors.append(required("spec.ports"))
    if service_type == "ExternalName":
        errors += _validate_external_name(spec)
    else:
        errors += _validate_cluster_ips(spec)
    port_names: set[str] = set()
    for i, port in enumerate(ports):
        errors += _validate_service_port(port, f"spec.ports[{i}]", len(ports) > 1, port_names)
    errors += _validate_node_ports(spec, ctx.node_port_range)
    if service_type in ("NodePort", "LoadBalancer") and headless:
        errors.append(
            invalid(
                "spec.clusterIPs[0]",
                "None",
                f"may not be set to 'None' for {service_type} services",
            )
        )
    errors += _validate_session_affinity(spec)
    errors += _validate_traffic_policies(spec)
    errors += _validate_load_balancer_fields(spec)
    errors += validate_labels(spec.get("selector"), "spec.selector")
    for i, ip in enumerate(spec.get("externalIPs") or []):
        errors += _ip(ip, f"spec.externalIPs[{i}]")
    if ctx.old is not None:
        errors += _validate_service_update(spec, ctx.old_spec)
    return errors


def _validate_external_name(spec: Obj) -> Errors:
    errors: Errors = []
    if spec.get("clusterIP") or spec.get("clusterIPs"):
        errors.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    for field in ("ipFamilies", "ipFamilyPolicy"):
        if spec.get(field):
            errors.append(forbidden(f"spec.{field}", "may not be set for ExternalName services"))
    # A CNAME may end in '.' to mark it fully qualified.
    cname = (spec.get("externalName") or "").removesuffix(".")
    if not cname:
        errors.append(required("spec.externalName"))
    else:
        errors += [invalid("spec.externalName", cname, m) for m in dns1123_subdomain(cname)]
    return errors


def _validate_cluster_ips(spec: Obj) -> Errors:
    errors: Errors = []
    cluster_ip = spec.get("clusterIP", "")
    cluster_ips = spec.get("clusterIPs") or []
    if cluster_ip and cluster_ips and cluster_ips[0] != cluster_ip:
        errors.append(invalid("spec.clusterIPs", cluster_ips, "first value must match `clusterIP`"))
    if "None" in cluster_ips and len(cluster_ips) > 1:
        errors.append(
            invalid("spec.clusterIPs", cluster_ips, "'None' must be the first and only value")
        )
    for i, ip in enumerate(cluster_ips):
        if not (i == 0 and ip == "None"):
            errors += _ip(ip, f"spec.clusterIPs[{i}]")
    if spec.get("ipFamilyPolicy") is not None:
        errors += _one_of(spec["ipFamilyPolicy"], "spec.ipFamilyPolicy", _IP_FAMILY_POLICIES)
    families: set[str] = set()
    for i, family in enumerate(spec.get("ipFamilies") or []):
        if family not in ("IPv4", "IPv6"):
            errors.append(not_supported(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6")))
        elif family in families:
            errors.append(duplicate(f"spec.ipFamilies[{i}]", family))
        families.add(family)
    return errors


def _validate_service_port(port: Obj, path: str, name_required: bool, names: set[str]) -> Errors:
    errors: Errors = []
    name = port.get("name", "")
    if name_required and not name:
        errors.append(required(f"{path}.name"))
    elif name:
        errors += [invalid(f"{path}.name", name, m) for m in dns1123_label(name)]
        if name in names:
            errors.append(duplicate(f"{path}.name", name))
        names.add(name)
    errors += _port_number(port.get("port"), f"{path}.port")
    errors += _protocol(port.get("protocol"), f"{path}.protocol")
    errors += _port_num_or_name(port.get("targetPort"), f"{path}.targetPort")
    app_protocol = port.get("appProtocol")
    if app_protocol:
        errors += [
            invalid(f"{path}.appProtocol", app_protocol, m) for m in qualified_name(app_protocol)
        ]
    return errors


def _validate_node_ports(spec: Obj, node_port_range: tuple[int, int]) -> Errors:
    errors: Errors = []
    low, high = node_port_range
    allows_node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    seen: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.get("ports") or []):
        node_port = port.get("nodePort", 0)
        if not node_port:
            continue
        path = f"spec.ports[{i}].nodePort"
        if not allows_node_ports:
            errors.append(forbidden(path, f"may not be used when `type` is '{spec.get('type')}'"))
            continue
        if not _is_int(node_port) or not low <= node_port <= high:
            errors.append(
                invalid(
                    path,
                    node_port,
                    "provided port is not in the valid range. The range of "
                    f"valid ports is {low}-{high}",
                )
            )
        key = (node_port, port.get("protocol", "TCP"))
        if key in seen:
            errors.append(duplicate(path, node_port))
        seen.add(key)
    return errors


def _validate_session_affinity(spec: Obj) -> Errors:
    affinity = spec.get("sessionAffinity")
    errors = _one_of(affinity, "spec.sessionAffinity", ("ClientIP", "None"))
    config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        timeout = ((config or {}).get("clientIP") or {}).get("timeoutSeconds")
        field = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
        if timeout is None:
            errors.append(required(field))
        elif not _is_int(timeout) or not 0 < timeout <= _MAX_CLIENT_IP_TIMEOUT:
            errors.append(
                invalid(
                    field, timeout, f"must be greater than 0 and less than {_MAX_CLIENT_IP_TIMEOUT}"
                )
            )
    elif affinity == "None" and config:
        errors.append(
            invalid(
                "spec.sessionAffinityConfig",
                config,
                "must not be set when session affinity is None",
            )
        )
    return errors


def _validate_traffic_policies(spec: Obj) -> Errors:
    errors: Errors = []
    service_type = spec.get("type")
    external = spec.get("externalTrafficPolicy")
    if not is_externally_accessible(spec):
        if external:
            errors.append(
                invalid(
                    "spec.externalTrafficPolicy",
                    external,
                    "may only be set for externally-accessible services",
                )
            )
    else:
        errors += _one_of(external, "spec.externalTrafficPolicy", _TRAFFIC_POLICIES)
    if service_type != "ExternalName":
        errors += _one_of(
            spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", _TRAFFIC_POLICIES
        )
    health_check = spec.get("healthCheckNodePort")
    if health_check and not (service_type == "LoadBalancer" and external == "Local"):
        errors.append(
            invalid(
                "spec.healthCheckNodePort",
                health_check,
                "may only be set when `type` is 'LoadBalancer' and "
                "`externalTrafficPolicy` is 'Local'",
            )
        )
    return errors


def _validate_load_balancer_fields(spec: Obj) -> Errors:
    errors: Errors = []
    is_lb = spec.get("type") == "LoadBalancer"
    lb_ip = spec.get("loadBalancerIP")
    if lb_ip:
        if not is_lb:
            errors.append(
                forbidden("spec.loadBalancerIP", "may only be used when `type` is 'LoadBalancer'")
            )
        else:
            errors += _ip(lb_ip, "spec.loadBalancerIP")
    allocate = spec.get("allocateLoadBalancerNodePorts")
    if is_lb and allocate is None:
        errors.append(required("spec.allocateLoadBalancerNodePorts"))
    elif not is_lb and allocate is not None:
        errors.append(
            forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    for i, cidr in enumerate(spec.get("loadBalancerSourceRanges") or []):
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            errors.append(invalid(f"spec.loadBalancerSourceRanges[{i}]", cidr, CIDR_MSG))
    return errors


def _validate_service_update(spec: Obj, old_spec: Obj) -> Errors:
    # Cluster IPs are fixed once allocated, unless the service becomes or stops
    # being an ExternalName (which has none).
    if "ExternalName" in (spec.get("type"), old_spec.get("type")):
        return []
    # An update that leaves them out keeps the allocated ones (the registry carries
    # them over), as kube's Service storage does.
    old_ips, new_ips = old_spec.get("clusterIPs") or [], spec.get("clusterIPs") or []
    if old_ips and new_ips and new_ips[0] != old_ips[0]:
        return [invalid("spec.clusterIPs[0]", new_ips[0], "may not change once set")]
    return []


# --- apps/v1 --------------------------------------------------------------------------


def _validate_selector_and_template(ctx: _Context, kind: str) -> Errors:
    """The checks Deployment, ReplicaSet and StatefulSet share; `kind` as kube spells it
    in their messages ("deployment", "replicaset", "statefulset")."""
    spec = ctx.spec
    errors: Errors = []
    errors += _non_negative(spec.get("replicas"), "spec.replicas")
    errors += _non_negative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errors += _non_negative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    selector = spec.get("selector")
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    if selector is None:
        errors.append(required("spec.selector"))
    else:
        errors += _validate_label_selector(selector, "spec.selector")
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errors.append(
                invalid(
                    "spec.selector",
                    _Rendered(go_label_selector(selector)),
                    f"empty selector is invalid for {kind}",
                )
            )
        elif not _selector_matches(selector, template_labels):
            errors.append(
                invalid(
                    "spec.template.metadata.labels",
                    template_labels,
                    "`selector` does not match template `labels`",
                )
            )
    errors += validate_labels(template_labels, "spec.template.metadata.labels")
    template_spec = template.get("spec") or {}
    errors += validate_pod_spec(template_spec, "spec.template.spec")
    restart_policy = template_spec.get("restartPolicy")
    if restart_policy and restart_policy != "Always":
        errors.append(
            not_supported("spec.template.spec.restartPolicy", restart_policy, ("Always",))
        )
    if template_spec.get("activeDeadlineSeconds") is not None:
        owner = "StatefulSet" if kind == "statefulset" else "ReplicaSet"
        errors.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds in {owner} is not Supported",
            )
        )
    # A StatefulSet's selector is covered by its wider rule on frozen spec fields.
    selector_changed = ctx.old is not None and selector != ctx.old_spec.get("selector")
    if selector_changed and kind != "statefulset":
        errors.append(
            invalid("spec.selector", _Rendered(go_label_selector(selector)), IMMUTABLE_MSG)
        )
    return errors


_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _validate_label_selector(selector: Obj, path: str) -> Errors:
    errors = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        epath = f"{path}.matchExpressions[{i}]"
        operator, values = expr.get("operator"), expr.get("values") or []
        if operator in ("In", "NotIn") and not values:
            errors.append(
                required(f"{epath}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            )
        elif operator in ("Exists", "DoesNotExist") and values:
            errors.append(
                forbidden(
                    f"{epath}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
        elif operator not in _SELECTOR_OPERATORS:
            errors.append(invalid(f"{epath}.operator", operator, "not a valid selector operator"))
        errors += [
            invalid(f"{epath}.key", expr.get("key", ""), m)
            for m in qualified_name(expr.get("key", ""))
        ]
    return errors


def _selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    return matches(from_label_selector(selector), labels)


def _validate_deployment(ctx: _Context) -> Errors:
    spec = ctx.spec
    errors = _validate_selector_and_template(ctx, "deployment")
    strategy = spec.get("strategy") or {}
    strategy_type = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if strategy_type == "Recreate":
        if rolling is not None:
            errors.append(
                forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            )
    elif strategy_type == "RollingUpdate":
        errors += _validate_rolling_update(rolling or {}, "spec.strategy.rollingUpdate")
    else:
        errors += _one_of(strategy_type, "spec.strategy.type", ("Recreate", "RollingUpdate"))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        errors += _non_negative(deadline, "spec.progressDeadlineSeconds")
        if _is_int(deadline) and deadline <= (spec.get("minReadySeconds") or 0):
            errors.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    return errors


def _int_or_percent(value: Any, path: str) -> tuple[Errors, int | None]:
    """Errors, and the value as an int or a percentage (both compare with 0)."""
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return [invalid(path, value, PERCENT_MSG)], None
        percent = int(value[:-1])
        if percent > 100:
            return [invalid(path, value, "must not be greater than 100%")], percent
        return [], percent
    if not _is_int(value) or value < 0:
        return [invalid(path, value, NON_NEGATIVE_MSG)], None
    return [], value


def _validate_rolling_update(rolling: Obj, path: str) -> Errors:
    unavailable_errors, unavailable = _int_or_percent(
        rolling.get("maxUnavailable", "25%"), f"{path}.maxUnavailable"
    )
    surge_errors, surge = _int_or_percent(rolling.get("maxSurge", "25%"), f"{path}.maxSurge")
    errors = unavailable_errors + surge_errors
    if unavailable == 0 and surge == 0:
        errors.append(
            invalid(
                f"{path}.maxUnavailable",
                rolling["maxUnavailable"],
                "may not be 0 when `maxSurge` is 0",
            )
        )
    return errors


def _validate_replica_set(ctx: _Context) -> Errors:
    return _validate_selector_and_template(ctx, "replicaset")


_STATEFUL_SET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def _validate_stateful_set(ctx: _Context) -> Errors:
    spec = ctx.spec
    errors = _validate_selector_and_template(ctx, "statefulset")
    errors += _one_of(
        spec.get("podManagementPolicy"), "spec.podManagementPolicy", ("OrderedReady", "Parallel")
    )
    strategy = spec.get("updateStrategy") or {}
    errors += _one_of(
        strategy.get("type"), "spec.updateStrategy.type", ("OnDelete", "RollingUpdate")
    )
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "OnDelete" and rolling is not None:
        errors.append(
            invalid(
                "spec.updateStrategy.rollingUpdate",
                rolling,
                "only allowed for updateStrategy 'RollingUpdate'",
            )
        )
    elif rolling is not None:
        errors += _non_negative(
            rolling.get("partition"), "spec.updateStrategy.rollingUpdate.partition"
        )
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    for key in ("whenDeleted", "whenScaled"):
        if key in retention:
            errors += _one_of(
                retention[key],
                f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                ("Delete", "Retain"),
            )
    service_name = spec.get("serviceName")
    if service_name:
        errors += [
            invalid("spec.serviceName", service_name, m) for m in dns1035_label(service_name)
        ]
    if ctx.old is not None:
        frozen = {k: v for k, v in spec.items() if k not in _STATEFUL_SET_MUTABLE}
        old_frozen = {k: v for k, v in ctx.old_spec.items() if k not in _STATEFUL_SET_MUTABLE}
        if frozen != old_frozen:
            errors.append(
                forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                    "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                    "'minReadySeconds' are forbidden",
                )
            )
    return errors


# --- discovery, coordination and the small core kinds ---------------------------------

_ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
_MAX_SLICE_ADDRESSES = 100


def _validate_endpoint_slice(ctx: _Context) -> Errors:
    obj = ctx.obj
    errors: Errors = []
    address_type = obj.get("addressType")
    errors += _one_of(address_type, "addressType", _ADDRESS_TYPES)
    for i, endpoint in enumerate(obj.get("endpoints") or []):
        path = f"endpoints[{i}]"
        addresses = endpoint.get("addresses") or []
        if not addresses:
            errors.append(required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(addresses) > _MAX_SLICE_ADDRESSES:
            errors.append(
                FieldError(
                    "FieldValueTooMany",
                    f"{path}.addresses",
                    f"Too many: {len(addresses)}: must have at most {_MAX_SLICE_ADDRESSES} items",
                )
            )
        for j, address in enumerate(addresses):
            errors += _endpoint_address(address, address_type, f"{path}.addresses[{j}]")
        hostname = endpoint.get("hostname")
        if hostname:
            errors += [invalid(f"{path}.hostname", hostname, m) for m in dns1123_label(hostname)]
    port_names: set[str] = set()
    for i, port in enumerate(obj.get("ports") or []):
        path = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errors += [invalid(f"{path}.name", name, m) for m in dns1123_label(name)]
        if name in port_names:
            errors.append(duplicate(f"{path}.name", name))
        port_names.add(name)
        if port.get("port") is not None:
            errors += _port_number(port["port"], f"{path}.port")
        errors += _protocol(port.get("protocol"), f"{path}.protocol")
    if ctx.old is not None and address_type != ctx.old.get("addressType"):
        errors.append(invalid("addressType", address_type, IMMUTABLE_MSG))
    return errors


def _endpoint_address(address: Any, address_type: Any, path: str) -> Errors:
    if address_type == "FQDN":
        return [invalid(path, address, m) for m in dns1123_subdomain(str(address))]
    if address_type in ("IPv4", "IPv6") and (
        not isinstance(address, str) or ip_version(address) != int(address_type[-1])
    ):
        return [invalid(path, address, f"must be a valid {address_type} address")]
    return []


def _validate_endpoints(ctx: _Context) -> Errors:
    errors: Errors = []
    for i, subset in enumerate(ctx.obj.get("subsets") or []):
        path = f"subsets[{i}]"
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(key) or []):
                errors += _ip(address.get("ip", ""), f"{path}.{key}[{j}].ip")
        ports = subset.get("ports") or []
        names: set[str] = set()
        for j, port in enumerate(ports):
            ppath = f"{path}.ports[{j}]"
            name = port.get("name", "")
            if len(ports) > 1 and not name:
                errors.append(required(f"{ppath}.name"))
            elif name:
                errors += [invalid(f"{ppath}.name", name, m) for m in dns1123_label(name)]
                if name in names:
                    errors.append(duplicate(f"{ppath}.name", name))
                names.add(name)
            errors += _port_number(port.get("port"), f"{ppath}.port")
            errors += _protocol(port.get("protocol"), f"{ppath}.protocol")
    return errors


def _validate_lease(ctx: _Context) -> Errors:
    spec = ctx.spec
    errors: Errors = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not _is_int(duration) or duration <= 0):
        errors.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    errors += _non_negative(spec.get("leaseTransitions"), "spec.leaseTransitions")
    return errors


_DATA_MAX_BYTES = 1024 * 1024


def _validate_data_keys(obj: Obj, sections: tuple[str, ...]) -> Errors:
    errors: Errors = []
    size = 0
    seen: set[str] = set()
    for section in sections:
        for key, value in (obj.get(section) or {}).items():
            errors += [invalid(f"{section}[{key}]", key, m) for m in config_key(key)]
            if key in seen:
                errors.append(
                    invalid(f"{section}[{key}]", key, "duplicate of key present in " + sections[0])
                )
            seen.add(key)
            size += len(str(value))
    if size > _DATA_MAX_BYTES:
        errors.append(too_long(sections[0], _DATA_MAX_BYTES))
    return errors


def _validate_immutable_data(ctx: _Context, sections: tuple[str, ...]) -> Errors:
    old = ctx.old
    if old is None or not old.get("immutable"):
        return []
    errors: Errors = []
    if not ctx.obj.get("immutable"):
        errors.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for section in sections:
        if (ctx.obj.get(section) or {}) != (old.get(section) or {}):
            errors.append(forbidden(section, "field is immutable when `immutable` is set"))
    return errors


def _validate_config_map(ctx: _Context) -> Errors:
    sections = ("data", "binaryData")
    return _validate_data_keys(ctx.obj, sections) + _validate_immutable_data(ctx, sections)


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
}


def _validate_secret(ctx: _Context) -> Errors:
    obj = ctx.obj
    sections = ("data", "stringData")
    errors = _validate_data_keys(obj, sections)
    secret_type = obj.get("type", "Opaque")
    keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
    for key in _SECRET_REQUIRED_KEYS.get(secret_type, ()):
        if key not in keys:
            errors.append(required(f"data[{key}]"))
    if secret_type == "kubernetes.io/service-account-token":
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            errors.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    if ctx.old is not None and secret_type != ctx.old.get("type", "Opaque"):
        errors.append(invalid("type", secret_type, IMMUTABLE_MSG))
    return errors + _validate_immutable_data(ctx, ("data",))


def _validate_node(ctx: _Context) -> Errors:
    spec = ctx.spec
    errors: Errors = []
    for i, cidr in enumerate(spec.get("podCIDRs") or []):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            errors.append(invalid(f"spec.podCIDRs[{i}]", cidr, CIDR_MSG))
    if spec.get("podCIDR") and spec.get("podCIDRs") and spec["podCIDRs"][0] != spec["podCIDR"]:
        errors.append(invalid("spec.podCIDRs", spec["podCIDRs"], "must match `podCIDR`"))
    for i, taint in enumerate(spec.get("taints") or []):
        path = f"spec.taints[{i}]"
        key = taint.get("key", "")
        if not key:
            errors.append(required(f"{path}.key"))
        else:
            errors += [invalid(f"{path}.key", key, m) for m in qualified_name(key)]
        errors += _one_of(taint.get("effect"), f"{path}.effect", _TAINT_EFFECTS)
    if ctx.old is not None:
        old_cidrs = ctx.old_spec.get("podCIDRs") or []
        if old_cidrs and (spec.get("podCIDRs") or []) != old_cidrs:
            errors.append(
                forbidden(
                    "spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'
                )
            )
    return errors


def _validate_namespace(ctx: _Context) -> Errors:
    errors: Errors = []
    for i, finalizer in enumerate(ctx.spec.get("finalizers") or []):
        errors += [
            invalid(f"spec.finalizers[{i}]", finalizer, m) for m in qualified_name(finalizer)
        ]
    return errors


def _validate_event(ctx: _Context) -> Errors:
    involved = ctx.obj.get("involvedObject") or {}
    namespace = (ctx.obj.get("metadata") or {}).get("namespace", "")
    involved_namespace = involved.get("namespace", "")
    if involved_namespace and involved_namespace != namespace:
        return [
            invalid(
                "involvedObject.namespace", involved_namespace, "does not match event.namespace"
            )
        ]
    return []


_VALIDATORS: dict[str, Callable[[_Context], Errors]] = {
    "Pod": _validate_pod,
    "Service": _validate_service,
    "Deployment": _validate_deployment,
    "ReplicaSet": _validate_replica_set,
    "StatefulSet": _validate_stateful_set,
    "EndpointSlice": _validate_endpoint_slice,
    "Endpoints": _validate_endpoints,
    "Lease": _validate_lease,
    "ConfigMap": _validate_config_map,
    "Secret": _validate_secret,
    "Node": _validate_node,
    "Namespace": _validate_namespace,
    "Event": _validate_event,
}
