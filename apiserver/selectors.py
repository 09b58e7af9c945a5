"""Field selectors (`?fieldSelector=spec.nodeName=n1,status.phase!=Running`).

Each kind supports a fixed set of fields, as in kube-apiserver; others are rejected
with the same 400 message, so a typo is an error rather than an empty list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apiserver.errors import ApiError, bad_request
from minikube_py.api.types import Obj

_COMMON = ("metadata.name", "metadata.namespace")
_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Secret": ("type",),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
}


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    equal: bool
    value: str

    def matches(self, obj: Obj) -> bool:
        return (field_value(obj, self.path) == self.value) == self.equal


def field_value(obj: Obj, path: str) -> str:
    if path == "source":  # Event.source is a struct; kube selects on its component
        path = "source.component"
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(kind: str, text: str) -> list[FieldRequirement]:
    reqs = []
    allowed = _COMMON + _FIELDS.get(kind, ())
    for term in filter(None, (t.strip() for t in (text or "").split(","))):
        if "!=" in term:
            path, value = term.split("!=", 1)
            equal = False
        elif "==" in term:
            path, value = term.split("==", 1)
            equal = True
        elif "=" in term:
            path, value = term.split("=", 1)
            equal = True
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path = path.strip()
        if path not in allowed:
            raise ApiError(
                400,
                "BadRequest",
                f'Unable to find "{kind.lower()}s" that match label selector "", field '
                f'selector "{text}": "{path}" is not a known field selector: only '
                + ", ".join(f'"{a}"' for a in allowed),
            )
        reqs.append(FieldRequirement(path, equal, value.strip()))
    return reqs
