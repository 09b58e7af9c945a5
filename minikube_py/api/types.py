"""Objects travel as plain dicts in the Kubernetes JSON shape (camelCase keys).

Every layer (apiserver, controllers, agent) shares this one representation, so that
what is stored in etcd, sent over the wire and handed to the pure functions is the
same value, with no conversion step to drift.
"""

from typing import Any

import orjson

Obj = dict[str, Any]


def meta(obj: Obj) -> Obj:
    """The object's metadata, created when missing."""
    return obj.setdefault("metadata", {})


def name_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def namespace_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace", ""))


def labels_of(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


# What the apiserver itself changes on every write.
SERVER_SET_METADATA = ("resourceVersion", "managedFields")


def status_only_change(old: Obj, new: Obj) -> bool:
    """Whether an update changed nothing but the object's status (a status write, or a
    controller's own write coming back): no reason for a spec-driven loop to act."""
    absent = object()  # a key set to null is a change from no key at all
    if any(
        new.get(k, absent) != old.get(k, absent)
        for k in new.keys() | old.keys()
        if k not in ("status", "metadata")
    ):
        return False
    md_new, md_old = new.get("metadata") or {}, old.get("metadata") or {}
    return all(
        md_new.get(k, absent) == md_old.get(k, absent)
        for k in md_new.keys() | md_old.keys()
        if k not in SERVER_SET_METADATA
    )


def clone(value: Any) -> Any:
    """A copy of a JSON value, through orjson: 3-4 times faster than copying it in Python
    (and 10 times faster than `copy.deepcopy`), which the write path does per request.
    What YAML gives beyond JSON becomes JSON, as kube's YAML-to-JSON step makes it:
    non-string keys and timestamps become strings."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
