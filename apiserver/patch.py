"""Patch and apply semantics of the Kubernetes apiserver, as pure functions on plain dicts.

Four ways to change an object, each a function that returns a new object and never
mutates its inputs:

- `json_patch`: RFC 6902, delegated to the `jsonpatch` package.
- `merge_patch`: RFC 7386 JSON merge patch.
- `strategic_merge_patch`: k8s.io/apimachinery/pkg/util/strategicpatch. Maps merge,
  `null` deletes, lists follow the field's `x-kubernetes-patch-strategy` and merge key,
  and the `$patch`, `$retainKeys`, `$setElementOrder/…` and `$deleteFromPrimitiveList/…`
  directives behave as in the Go code, including its list ordering rules and its
  refusal of `$patch: merge`. Values the patch adds lose their nulls and directives, as
  Kubernetes' typed decoding effectively does; any other `$` key is an error.
- `server_side_apply` and `record_update`: sigs.k8s.io/structured-merge-diff as driven by
  the apiserver's field manager. Field ownership lives in `metadata.managedFields` in the
  FieldsV1 encoding. Apply merges the configuration into the live object, prunes what
  the applier owned before and no longer names (unless another manager owns it), and
  refuses to change a field another manager owns unless forced. Every other write records
  an "Update" entry that takes over the fields it added or changed.

Field sets are Python sets of paths; a path is a tuple of FieldsV1 path elements
(`f:name`, `k:{"name":"x"}`, `v:"x"`, `i:0`), so encoding and decoding FieldsV1 is a
plain trie walk. Where structured-merge-diff needs type information the `PatchSchema`
does not carry, this module approximates: every map is granular (no
`x-kubernetes-map-type: atomic`) and counts as a struct when pruning; a create is
compared against `{}` rather than Go's zero-valued object, so an Update entry also owns
the parent maps it created (`f:spec: {".": {}}`); and a list-map key field missing from
an item takes its Kubernetes default only for `protocol` ("TCP"), the one defaulted key
field of the built-in types.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import jsonpatch
import orjson

from minikube_py.api.types import Obj, clone

Path = tuple[str, ...]
FieldSet = set[Path]


class PatchError(ValueError):
    """The patch document is malformed or cannot be applied (the server answers 400/422)."""


class ApplyConflict(Exception):
    """Server-side apply would change fields that other managers own (the server answers 409).

    `conflicts` lists (manager, field path) pairs, e.g. ("kubectl-client-side-apply",
    ".spec.replicas"); `causes` holds the matching Status causes (reason
    FieldManagerConflict) and the message reads like the apiserver's.
    """

    def __init__(
        self, conflicts: list[tuple[str, str]], causes: list[dict[str, str]], message: str
    ) -> None:
        super().__init__(message)
        self.conflicts = conflicts
        self.causes = causes


class PatchSchema(Protocol):
    """The patch-relevant part of an OpenAPI schema node (implemented by the schema module)."""

    def field(self, name: str) -> PatchSchema | None: ...

    @property
    def items(self) -> PatchSchema | None: ...

    @property
    def merge_key(self) -> str | None: ...

    @property
    def patch_strategy(self) -> str: ...

    @property
    def list_type(self) -> str: ...

    @property
    def map_keys(self) -> tuple[str, ...]: ...


# ---------------------------------------------------------------------------------------
# JSON patch and JSON merge patch


def json_patch(doc: Obj, ops: list) -> Obj:
    """Apply an RFC 6902 JSON patch."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    try:
        result = jsonpatch.JsonPatch(ops).apply(doc, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
        raise PatchError(str(err)) from err
    if not isinstance(result, dict):
        raise PatchError("the patched document is not a JSON object")
    return result


def merge_patch(doc: Obj, patch: Obj) -> Obj:
    """Apply an RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        raise PatchError("a merge patch must be a JSON object")
    result = _merge_patch_into(clone(doc), patch)
    assert isinstance(result, dict)
    return result


def _merge_patch_into(target: Any, patch: Any) -> Any:
    """MergePatch(target, patch) of RFC 7386; `target` is a private copy."""
    if not isinstance(patch, dict):
        return clone(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch_into(target.get(key), value)
    return target


# ---------------------------------------------------------------------------------------
# Strategic merge patch

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"
_DIRECTIVE_KEYS = (_RETAIN_KEYS, _DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)


def strategic_merge_patch(doc: Obj, patch: Obj, schema: PatchSchema | None) -> Obj:
    """Apply a strategic merge patch; `schema=None` merges lists like a JSON merge patch."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    result = _smp_map(clone(doc), clone(patch), schema)
    return result


def _child(schema: PatchSchema | None, name: str) -> PatchSchema | None:
    return schema.field(name) if schema is not None else None


def _strategy(schema: PatchSchema | None) -> str:
    """The patch strategy without `retainKeys`, which only matters when computing patches."""
    if schema is None or not schema.patch_strategy:
        return ""
    parts = [p for p in schema.patch_strategy.split(",") if p != "retainKeys"]
    if len(parts) > 1:
        raise PatchError(f"unexpected patch strategy {schema.patch_strategy!r}")
    return parts[0] if parts else ""


def _smp_map(original: dict, patch: dict, schema: PatchSchema | None) -> dict:
    """mergeMap: both arguments are private copies and may be consumed."""
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "replace":
            return _strip_added_value(patch)
        if directive == "delete":
            return {}
        raise PatchError(f"Unknown patch type: {directive} in map: {patch}")
    _apply_retain_keys(original, patch)
    _apply_set_element_orders(original, patch, schema)
    for key, patch_value in patch.items():
        delete_list = key.startswith(_DELETE_FROM_PRIMITIVE_LIST)
        if delete_list:
            key = _directive_target(key, _DELETE_FROM_PRIMITIVE_LIST)
        elif key.startswith("$"):
            raise PatchError(f"unknown patch directive {key!r}")
        if patch_value is None:
            original.pop(key, None)
            continue
        if delete_list:
            if isinstance(original.get(key), list):
                if not isinstance(patch_value, list):
                    raise PatchError(f"{_DELETE_FROM_PRIMITIVE_LIST}/{key} must be a list")
                original[key] = _delete_from_list(original[key], patch_value)
            continue
        current = original.get(key)
        child = _child(schema, key)
        if isinstance(current, dict) and isinstance(patch_value, dict):
            if _strategy(child) == "replace":
                merged = _strip_added_value(patch_value)
            else:
                merged = _smp_map(current, patch_value, child)
        elif isinstance(current, list) and isinstance(patch_value, list):
            merged = _smp_list(current, patch_value, child)
        else:
            merged = _strip_added_value(patch_value)
        if merged is _DROPPED:
            original.pop(key, None)
        else:
            original[key] = merged
    return original


def _directive_target(key: str, prefix: str) -> str:
    head, sep, target = key.partition("/")
    if head != prefix or not sep:
        raise PatchError(f"invalid patch directive {key!r}: expected {prefix}/<field>")
    return target


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise PatchError(f"{_RETAIN_KEYS} must be a list of field names")
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise PatchError(f"field {key!r} is in the patch but not in {_RETAIN_KEYS} {retain}")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _apply_set_element_orders(original: dict, patch: dict, schema: PatchSchema | None) -> None:
    """mergePatchIntoOriginal: merge each list named by a $setElementOrder directive, then
    order it: the directive's order first, then the live order for server-only items."""
    for directive_key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        key = _directive_target(directive_key, _SET_ELEMENT_ORDER)
        if not isinstance(order, list):
            raise PatchError(f"{directive_key} must be a list")
        child = _child(schema, key)
        merge_key = child.merge_key if child is not None else None
        found_original, found_patch = key in original, key in patch
        original_list = original.get(key) if found_original else []
        patch_list = patch.get(key) if found_patch else []
        if not isinstance(original_list, list) or not isinstance(patch_list, list):
            raise PatchError(f"{directive_key} applies to {key!r}, which is not a list")
        _validate_set_element_order(patch_list, order, merge_key)
        if found_original and found_patch:
            merged = _smp_list(original_list, patch_list, child)
        elif found_patch:
            merged = _strip_added_value(patch_list)
        elif found_original:
            merged = original_list
        else:
            continue
        kind = _element_kind(original_list, patch_list)
        if kind == "map" and not merge_key:
            raise PatchError(f"{directive_key}: list {key!r} of maps has no merge key")
        ident = _identity(kind, merge_key)
        in_order = {ident(item) for item in order}
        patch_items = [item for item in merged if ident(item) in in_order]
        server_only = [item for item in merged if ident(item) not in in_order]
        original[key] = _normalize_element_order(
            patch_items, server_only, order, original_list, ident
        )
        patch.pop(key, None)


def _validate_set_element_order(patch_list: list, order: list, merge_key: str | None) -> None:
    """The patch list must be a subsequence of the $setElementOrder list (deletions aside)."""
    items = [
        item
        for item in patch_list
        if not (merge_key and isinstance(item, dict) and item.get(_DIRECTIVE) == "delete")
    ]
    patch_index = order_index = 0
    while patch_index < len(items) and order_index < len(order):
        item = items[patch_index]
        if isinstance(item, dict) and _DIRECTIVE in item:
            patch_index += 1
            continue
        if merge_key:
            if not isinstance(item, dict) or not isinstance(order[order_index], dict):
                raise PatchError("$setElementOrder and its list must hold maps")
            if merge_key not in item or merge_key not in order[order_index]:
                raise PatchError(f"map in $setElementOrder list misses merge key {merge_key!r}")
            equal = _json_equal(item[merge_key], order[order_index][merge_key])
        else:
            equal = _json_equal(item, order[order_index])
        if equal:
            patch_index += 1
        order_index += 1
    if patch_index < len(items):
        raise PatchError(f"the order in patch list {patch_list} doesn't match $setElementOrder")


def _smp_list(original: list, patch: list, schema: PatchSchema | None) -> list:
    """mergeSliceHandler: merge by strategy, else the patch replaces the list."""
    if _strategy(schema) != "merge":
        return _strip_added_value(patch)
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    merge_key = schema.merge_key if schema is not None else None
    if kind != "map":
        merged = _dedupe(original + patch)
        ident = _identity(kind, None)
        in_patch = {ident(v) for v in patch}
        patch_items = [v for v in merged if ident(v) in in_patch]
        server_only = [v for v in merged if ident(v) not in in_patch]
        return _normalize_element_order(patch_items, server_only, patch, original, ident)
    if not merge_key:
        raise PatchError("cannot merge lists of maps without a merge key")
    original, patch = _apply_list_directives(original, patch, merge_key)
    items_schema = schema.items if schema is not None else None
    merged = list(original)
    for patch_item in patch:
        key_value = _merge_key_value(patch_item, merge_key)
        index = _find_by_key(merged, merge_key, key_value)
        if index is None:
            added = _strip_added_value(patch_item)
            if added is not _DROPPED:
                merged.append(added)
        else:
            merged[index] = _smp_map(merged[index], patch_item, items_schema)
    ident = _identity("map", merge_key)
    in_patch = {ident(v) for v in patch}
    patch_items = [v for v in merged if ident(v) in in_patch]
    server_only = [v for v in merged if ident(v) not in in_patch]
    return _normalize_element_order(patch_items, server_only, patch, original, ident)


def _apply_list_directives(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """mergeSliceWithSpecialElements: `$patch: delete` removes an item by merge key,
    `$patch: replace` makes the rest of the patch list the whole list."""
    plain = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            key_value = _merge_key_value(item, merge_key)
            original = [
                o for o in original if not _json_equal(o.get(merge_key, _ABSENT), key_value)
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"Unknown patch type: {directive} in map: {item}")
    if replace:
        return [v for v in (_strip_added_value(p) for p in plain) if v is not _DROPPED], []
    return original, plain


def _merge_key_value(item: dict, merge_key: str) -> Any:
    if merge_key not in item:
        raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
    return item[merge_key]


def _find_by_key(items: list[dict], merge_key: str, key_value: Any) -> int | None:
    for index, item in enumerate(items):
        if merge_key in item and _json_equal(item[merge_key], key_value):
            return index
    return None


def _normalize_element_order(
    patch_items: list,
    server_only: list,
    patch_order: list,
    server_order: list,
    ident: Callable[[Any], Any],
) -> list:
    """normalizeElementOrder + mergeSortedSlice: patch items in patch order, server-only
    items in live order, interleaved where both are found in the live list; a patch item
    the live list lacks goes before the server-only items still pending."""
    patch_position = _first_positions(patch_order, ident)
    server_position = _first_positions(server_order, ident)
    patch_items = sorted(patch_items, key=lambda v: patch_position.get(ident(v), len(patch_order)))
    server_only = sorted(
        server_only, key=lambda v: server_position.get(ident(v), len(server_order))
    )
    result = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if j >= len(patch_items):
            result.append(server_only[i])
            i += 1
        elif i >= len(server_only):
            result.append(patch_items[j])
            j += 1
        else:
            left = server_position.get(ident(server_only[i]))
            right = server_position.get(ident(patch_items[j]))
            if left is not None and right is not None and left < right:
                result.append(server_only[i])
                i += 1
            else:
                result.append(patch_items[j])
                j += 1
    return result


def _first_positions(items: list, ident: Callable[[Any], Any]) -> dict:
    positions: dict = {}
    for index, item in enumerate(items):
        positions.setdefault(ident(item), index)
    return positions


def _identity(kind: str, merge_key: str | None) -> Callable[[Any], Any]:
    """How list items are told apart: by merge key for maps, by value for primitives."""
    if kind == "map":

        def by_key(item: Any) -> Any:
            value = item.get(merge_key, _ABSENT) if isinstance(item, dict) else _ABSENT
            return _hashable(value)

        return by_key
    return _hashable


def _element_kind(*lists: list) -> str:
    """sliceElementType: every element of the lists must have the same JSON type."""
    kinds = {_json_kind(item) for items in lists for item in items}
    if "list" in kinds:
        raise PatchError("lists of lists are not supported")
    if len(kinds) > 1:
        raise PatchError(f"list element types are not identical: {list(lists)}")
    return kinds.pop() if kinds else "none"


def _delete_from_list(current: list, to_delete: list) -> list:
    doomed = {_hashable(v) for v in to_delete}
    return [v for v in current if _hashable(v) not in doomed]


def _dedupe(items: list) -> list:
    seen: set = set()
    result = []
    for item in items:
        key = _hashable(item)
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result


class _Dropped:
    """A value that must not be stored: a map carrying a `$patch` directive."""


_DROPPED: Any = _Dropped()


def _strip_added_value(value: Any) -> Any:
    """What a value the patch adds becomes in the object: nulls discarded
    (discardNullValuesFromPatch), maps carrying `$patch` dropped (removeDirectives), and
    the other directive keys gone, as typed decoding would drop them."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return _DROPPED
        result = {}
        for key, item in value.items():
            if item is None or key.startswith(_DIRECTIVE_KEYS):
                continue
            stripped = _strip_added_value(item)
            if stripped is not _DROPPED:
                result[key] = stripped
        return result
    if isinstance(value, list):
        return [s for s in (_strip_added_value(v) for v in value) if s is not _DROPPED]
    return value


# ---------------------------------------------------------------------------------------
# JSON value helpers


class _Absent:
    """A field or list item that is not there (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null"


def _hashable(value: Any) -> Any:
    """A hashable stand-in for a JSON value that keeps true, 1 and "1" apart."""
    if isinstance(value, dict):
        return ("map", tuple(sorted((k, _hashable(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", tuple(_hashable(v) for v in value))
    if value is _ABSENT:
        return ("absent",)
    return (_json_kind(value), value)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality, as `_hashable` sees it (true, 1 and "1" differ; 1 and 1.0 do
    not), stopping at the first difference."""
    if type(a) is dict:
        return (
            type(b) is dict
            and a.keys() == b.keys()
            and all(_json_equal(v, b[k]) for k, v in a.items())
        )
    if type(a) is list:
        return type(b) is list and len(a) == len(b) and all(map(_json_equal, a, b))
    return _json_kind(a) == _json_kind(b) and a == b


# ---------------------------------------------------------------------------------------
# Field sets (structured-merge-diff) and their FieldsV1 encoding

# The one key field of built-in list-maps with a default (ports' protocol); an applied
# port without it must match the defaulted live item, as the OpenAPI default makes it.
_MAP_KEY_DEFAULTS = {"protocol": "TCP"}

# Fields the apiserver never records ownership of (the field manager's stripMeta set).
_UNOWNED_PATHS: FieldSet = {
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    *(
        ("f:metadata", f"f:{name}")
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        )
    ),
}

# Deepest first: a parent disowned after its children is dropped when none stays.
_UNOWNED_BY_DEPTH = sorted(_UNOWNED_PATHS, key=len, reverse=True)


@dataclass(frozen=True)
class _ListShape:
    """How structured-merge-diff treats a list: "atomic", "set" or "map" (with keys)."""

    kind: str
    keys: tuple[str, ...] = ()


_ATOMIC = _ListShape("atomic")


def _list_shape(schema: PatchSchema | None) -> _ListShape:
    """x-kubernetes-list-type, else what the OpenAPI converter derives from the patch
    strategy: merge with a merge key is a map, merge without one a set, else atomic."""
    if schema is None:
        return _ATOMIC
    list_type = schema.list_type
    if list_type == "map":
        keys = schema.map_keys or ((schema.merge_key,) if schema.merge_key else ())
        return _ListShape("map", keys) if keys else _ATOMIC
    if list_type == "set":
        return _ListShape("set")
    if list_type == "atomic":
        return _ATOMIC
    if "merge" in schema.patch_strategy.split(","):
        if schema.merge_key:
            return _ListShape("map", (schema.merge_key,))
        return _ListShape("set")
    return _ATOMIC


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _item_element(item: Any, index: int, shape: _ListShape) -> str:
    """The path element naming a list item: `k:` by key fields, `v:` by value, `i:` by index."""
    if shape.kind == "map" and isinstance(item, dict):
        key = {name: item.get(name, _MAP_KEY_DEFAULTS.get(name)) for name in shape.keys}
        if None not in key.values():
            return "k:" + _compact_json(key)
    if shape.kind == "set" and not isinstance(item, dict | list):
        return "v:" + _compact_json(item)
    return f"i:{index}"


def _granular_items(value: list, schema: PatchSchema | None) -> list[tuple[str, Any]] | None:
    """The list's items by path element, or None when the list is owned as one value."""
    shape = _list_shape(schema)
    if shape.kind == "atomic":
        return None
    elements = [(_item_element(item, i, shape), item) for i, item in enumerate(value)]
    if any(element.startswith("i:") for element, _ in elements):
        return None
    return elements


def _check_list_items(value: Any, schema: PatchSchema | None, path: str = "") -> None:
    """An apply configuration must name each item of a keyed or set list exactly once."""
    if isinstance(value, dict):
        for key, child in value.items():
            _check_list_items(child, _child(schema, key), f"{path}.{key}")
    elif isinstance(value, list) and (shape := _list_shape(schema)).kind != "atomic":
        seen: set[str] = set()
        for index, item in enumerate(value):
            element = _item_element(item, index, shape)
            if element.startswith("i:"):
                wanted = f"key fields {list(shape.keys)}" if shape.kind == "map" else "a scalar"
                raise PatchError(f"{path}[{index}]: a {shape.kind} list item needs {wanted}")
            if element in seen:
                raise PatchError(f"{path}: duplicate entries for {_path_string((element,))}")
            seen.add(element)
            _check_list_items(
                item, schema.items if schema is not None else None, f"{path}[{index}]"
            )


def _items_by_element(value: list, schema: PatchSchema | None) -> dict[str, Any] | None:
    elements = _granular_items(value, schema)
    if elements is None:
        return None
    by_element: dict[str, Any] = {}
    for element, item in elements:
        by_element.setdefault(element, item)
    return by_element


def _field_set(value: Any, schema: PatchSchema | None) -> FieldSet:
    """ToFieldSet: the leaves of a value, plus every item of a granular list."""
    result: FieldSet = set()
    _collect_fields(value, schema, (), result)
    result.discard(())
    return result


def _collect_fields(value: Any, schema: PatchSchema | None, path: Path, out: FieldSet) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _collect_fields(child, _child(schema, key), (*path, f"f:{key}"), out)
    elif isinstance(value, list):
        elements = _granular_items(value, schema)
        if elements is None:
            out.add(path)
            return
        items_schema = schema.items if schema is not None else None
        for element, item in elements:
            out.add((*path, element))
            _collect_fields(item, items_schema, (*path, element), out)
    else:
        out.add(path)


def _collect_nodes(value: Any, schema: PatchSchema | None, path: Path, out: FieldSet) -> None:
    """Like _collect_fields, but every map below `path` is a member too."""
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = (*path, f"f:{key}")
            out.add(child_path)
            if isinstance(child, dict | list):  # a leaf has nothing below
                _collect_nodes(child, _child(schema, key), child_path, out)
    elif isinstance(value, list):
        elements = _granular_items(value, schema)
        items_schema = schema.items if schema is not None else None
        for element, item in elements or []:
            item_path = (*path, element)
            out.add(item_path)
            if isinstance(item, dict | list):
                _collect_nodes(item, items_schema, item_path, out)


def _with_named_parents(fields: FieldSet) -> FieldSet:
    """EnsureNamedFieldsAreMembers: a set owning `.a.b.c` also owns the fields `.a`, `.a.b`
    (every map here counts as a struct, see the module notes)."""
    result = set(fields)
    for path in fields:
        for end in range(1, len(path)):
            if path[end - 1].startswith("f:"):
                result.add(path[:end])
    return result


@dataclass
class _Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)


def _compare(lhs: Any, rhs: Any, schema: PatchSchema | None) -> _Comparison:
    """typed.Compare: which paths the change from lhs to rhs adds, modifies and removes."""
    result = _Comparison()
    _compare_at(lhs, rhs, schema, (), result)
    for paths in (result.added, result.modified, result.removed):
        paths.discard(())
    return result


def _compare_at(
    lhs: Any, rhs: Any, schema: PatchSchema | None, path: Path, out: _Comparison
) -> None:
    if lhs is _ABSENT or rhs is _ABSENT:
        # Every node of an added or removed subtree counts, maps and list items included.
        side, value = (out.added, rhs) if lhs is _ABSENT else (out.removed, lhs)
        side.add(path)
        _collect_nodes(value, schema, path, side)
        return
    if isinstance(lhs, dict | list) and lhs == rhs and orjson.dumps(lhs) == orjson.dumps(rhs):
        # An unchanged subtree changes nothing: most of an update (a pod's spec on a
        # status write). Python's == takes 1 for true; the same JSON text does not.
        return
    if isinstance(lhs, dict) and isinstance(rhs, dict) and (lhs or rhs):
        for key in [*lhs, *(k for k in rhs if k not in lhs)]:
            child = _child(schema, key)
            _compare_at(
                lhs.get(key, _ABSENT), rhs.get(key, _ABSENT), child, (*path, f"f:{key}"), out
            )
        return
    if isinstance(lhs, list) and isinstance(rhs, list) and (lhs or rhs):
        left, right = _items_by_element(lhs, schema), _items_by_element(rhs, schema)
        if left is not None and right is not None:
            items_schema = schema.items if schema is not None else None
            for element in [*left, *(e for e in right if e not in left)]:
                _compare_at(
                    left.get(element, _ABSENT),
                    right.get(element, _ABSENT),
                    items_schema,
                    (*path, element),
                    out,
                )
            return
    if not _json_equal(lhs, rhs):
        out.modified.add(path)


def _remove_paths(value: Any, schema: PatchSchema | None, paths: FieldSet) -> Any:
    """RemoveItems: drop every field and list item whose path is in the set."""
    if not paths:
        return value
    return _remove_at(value, schema, _trie(paths))


def _remove_at(value: Any, schema: PatchSchema | None, trie: dict) -> Any:
    if isinstance(value, dict):
        result = {}
        for key, child in value.items():
            member, below = trie.get(f"f:{key}", (False, None))
            if member:
                continue
            result[key] = _remove_at(child, _child(schema, key), below) if below else child
        return result
    if isinstance(value, list):
        elements = _granular_items(value, schema)
        if elements is None:
            return value
        items_schema = schema.items if schema is not None else None
        kept = []
        for element, item in elements:
            member, below = trie.get(element, (False, None))
            if member:
                continue
            kept.append(_remove_at(item, items_schema, below) if below else item)
        return kept
    return value


def _trie(paths: Iterable[Path]) -> dict:
    """Paths as a trie: element -> (is a member, trie below or None)."""
    root: dict = {}
    for path in paths:
        node = root
        for depth, element in enumerate(path):
            member, below = node.get(element, (False, None))
            last = depth == len(path) - 1
            if not last and below is None:
                below = {}
            node[element] = (member or last, below)
            if not last:
                node = below
    return root


def _encode_fields(paths: FieldSet) -> dict:
    """FieldsV1: nested `f:`/`k:`/`v:`/`i:` keys, `.` marking a member that has children."""
    return _encode_trie(_trie(paths))


def _encode_trie(trie: dict) -> dict:
    encoded: dict = {}
    for element in sorted(trie, key=_element_order):
        member, below = trie[element]
        child = _encode_trie(below) if below else {}
        if member and below:
            child = {".": {}, **child}
        encoded[element] = child
    return encoded


def _element_order(element: str) -> tuple[int, str]:
    return ("fkvi".find(element[0]), element)


def _decode_fields(encoded: Any) -> FieldSet:
    if not isinstance(encoded, dict):
        raise _BadManagedFields("fieldsV1 must be an object")
    result: FieldSet = set()
    _decode_into(encoded, (), result)
    return result


def _decode_into(node: dict, path: Path, out: FieldSet) -> None:
    for element, child in node.items():
        if element == ".":
            out.add(path)
            continue
        if element[:2] not in ("f:", "k:", "v:", "i:") or not isinstance(child, dict):
            raise _BadManagedFields(f"invalid fieldsV1 element {element!r}")
        if child:
            _decode_into(child, (*path, element), out)
        else:
            out.add((*path, element))


def _path_string(path: Path) -> str:
    """fieldpath.Path.String(): `.spec.containers[name="nginx"].image`."""
    parts = []
    for element in path:
        kind, body = element[:2], element[2:]
        if kind == "f:":
            parts.append(f".{body}")
        elif kind == "k:":
            key = json.loads(body)
            parts.append("[" + ",".join(f"{k}={_compact_json(v)}" for k, v in key.items()) + "]")
        elif kind == "v:":
            parts.append(f"[={body}]")
        else:
            parts.append(f"[{body}]")
    return "".join(parts)


# ---------------------------------------------------------------------------------------
# managedFields


class _BadManagedFields(ValueError):
    pass


# (manager, operation, apiVersion for updaters, subresource): what tells entries apart.
_ManagerKey = tuple[str, str, str, str]


@dataclass
class _Manager:
    """One managedFields entry, its FieldsV1 decoded into a set of paths."""

    manager: str
    operation: str
    api_version: str
    fields: FieldSet
    time: str | None = None
    subresource: str = ""
    # the fields as decoded and their FieldsV1, encoded again as they were while unchanged
    decoded: tuple[frozenset[Path], dict] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> _ManagerKey:
        # Appliers keep one entry whatever apiVersion they apply (BuildManagerIdentifier).
        version = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def encode(self) -> Obj:
        entry: Obj = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        if self.decoded is not None and self.decoded[0] == self.fields:
            entry["fieldsV1"] = self.decoded[1]
        else:
            entry["fieldsV1"] = _encode_fields(self.fields)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    def describe(self) -> str:
        """How conflict messages name the manager (the apiserver's printManager)."""
        described = json.dumps(self.manager)
        if self.subresource:
            described += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            described += f" using {self.api_version}"
        return described


_Managers = dict[_ManagerKey, _Manager]


def _decode_managers(entries: Any) -> _Managers:
    if not isinstance(entries, list):
        raise _BadManagedFields("managedFields must be a list")
    managers: _Managers = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise _BadManagedFields("a managedFields entry must be an object")
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            raise _BadManagedFields(f"invalid managedFields operation {operation!r}")
        if entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise _BadManagedFields(f"unsupported fieldsType {entry.get('fieldsType')!r}")
        encoded = entry.get("fieldsV1", {})
        fields = _decode_fields(encoded)
        manager = _Manager(
            manager=str(entry.get("manager", "")),
            operation=operation,
            api_version=str(entry.get("apiVersion", "")),
            fields=fields,
            time=entry.get("time"),
            subresource=str(entry.get("subresource", "")),
            decoded=(frozenset(fields), encoded),
        )
        managers[manager.key] = manager
    return managers


def _decode_or_forget(entries: Any) -> _Managers:
    """Absent or undecodable managedFields track nothing, as the apiserver treats them."""
    try:
        return _decode_managers(entries or [])
    except _BadManagedFields:
        return {}


def _encode_managers(managers: _Managers) -> list[Obj]:
    """Entries in the apiserver's order: operation, time, manager, apiVersion, subresource."""
    ordered = sorted(
        managers.values(),
        key=lambda m: (m.operation, m.time or "", m.manager, m.api_version, m.subresource),
    )
    return [m.encode() for m in ordered if m.fields]


def _managed_fields_of(obj: Obj | None) -> Any:
    return (obj or {}).get("metadata", {}).get("managedFields")


def _without_managed_fields(obj: Obj) -> Obj:
    """`obj` without managedFields: a new top level and metadata, the rest shared (the
    field-set code only reads it; `_with_managed_fields` writes the metadata only)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return dict(obj)
    return {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


def _with_managed_fields(obj: Obj, managers: _Managers) -> Obj:
    entries = _encode_managers(managers)
    if entries:
        obj.setdefault("metadata", {})["managedFields"] = entries
    elif isinstance(obj.get("metadata"), dict):
        obj["metadata"].pop("managedFields", None)
    return obj


def _take_over(
    old: Obj,
    new: Obj,
    managers: _Managers,
    actor: _ManagerKey | None,
    force: bool,
    schema: PatchSchema | None,
) -> _Comparison:
    """Updater.update: other managers lose the fields the change removes and, when forced
    (always for updates), the fields it adds or modifies; otherwise those are conflicts."""
    comparison = _compare(old, new, schema)
    changed = comparison.added | comparison.modified
    conflicts = {key: manager.fields & changed for key, manager in managers.items() if key != actor}
    conflicts = {key: paths for key, paths in conflicts.items() if paths}
    if conflicts and not force:
        raise _conflict_error(managers, conflicts)
    for key, manager in list(managers.items()):
        if key == actor:
            continue
        manager.fields -= conflicts.get(key, set()) | comparison.removed
        if not manager.fields:
            del managers[key]
    return comparison


def _conflict_error(managers: _Managers, conflicts: dict[_ManagerKey, FieldSet]) -> ApplyConflict:
    found = sorted(
        (managers[key].describe(), managers[key].manager, _path_string(path))
        for key, paths in conflicts.items()
        for path in paths
    )
    if len(found) == 1:
        who, _, path = found[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {path}"
    else:
        lines = []
        for who in sorted({who for who, _, _ in found}):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {path}" for other, _, path in found if other == who]
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path}
        for who, _, path in found
    ]
    return ApplyConflict([(name, path) for _, name, path in found], causes, message)


def _record(
    old: Obj,
    new: Obj,
    managers: _Managers,
    manager: str,
    api_version: str,
    now: str,
    schema: PatchSchema | None,
) -> None:
    """An Update by `manager`: it takes over every field the change adds or modifies."""
    comparison = _take_over(old, new, managers, None, True, schema)
    taken = (comparison.added | comparison.modified) - _UNOWNED_PATHS
    if not taken:
        return
    current = _Manager(manager, "Update", api_version, taken, now)
    previous = managers.get(current.key)
    if previous is not None:
        current.fields |= previous.fields
        current.decoded = previous.decoded
    managers[current.key] = current


def record_update(
    old: Obj | None, new: Obj, manager: str, now: str, schema: PatchSchema | None
) -> Obj:
    """Record a create/update/patch (operation "Update") by `manager` in `new`'s managedFields.

    As the apiserver does, managedFields sent with `new` are kept when they decode, an
    explicit empty list (or a single empty entry) resets them, and otherwise the old
    object's entries carry over.
    """
    if old is None and _managed_fields_of(new) in (None, [], [{}]):
        return _record_create(new, manager, now, schema)
    return _record_general(old, new, manager, now, schema)


def _record_create(new: Obj, manager: str, now: str, schema: PatchSchema | None) -> Obj:
    """`_record_general` for the commonest write, a create with no managedFields: the
    creator owns every field, so its FieldsV1 is made straight from the object rather than
    through sets of paths (a property test holds the two equal)."""
    body = _without_managed_fields(new)
    fields = _fields_of_new(body, schema)
    if fields is None:  # a list repeats an item: the general path merges them
        return _record_general(None, new, manager, now, schema)
    for path in _UNOWNED_BY_DEPTH:
        _disown(fields, path)
    if fields:
        body.setdefault("metadata", {})["managedFields"] = [
            {
                "manager": manager,
                "operation": "Update",
                "apiVersion": str(new.get("apiVersion") or ""),
                "time": now,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            }
        ]
    return body


def _fields_of_new(value: Any, schema: PatchSchema | None) -> dict | None:
    """FieldsV1 of everything below `value`, every map and granular list item a member
    (`_collect_nodes`, encoded); None when a list names one item twice. The schema is
    looked up only on the way to a list, the one place it decides anything."""
    if isinstance(value, dict):
        children = [(f"f:{key}", key, child) for key, child in value.items()]
        items_schema = None
    else:
        items = _granular_items(value, schema)
        if not items:
            return {}
        items_schema = schema.items if schema is not None else None
        children = [(element, "", item) for element, item in items]
    children.sort(key=itemgetter(0))  # one kind of element per level: text order
    encoded: dict = {}
    for element, key, child in children:
        if element in encoded:
            return None
        if isinstance(child, dict | list) and child:
            below = _fields_of_new(child, _child(schema, key) if key else items_schema)
            if below is None:
                return None
            encoded[element] = {".": {}, **below} if below else {}
        else:
            encoded[element] = {}
    return encoded


def _disown(fields: dict, path: Path) -> None:
    """Take `path` out of encoded FieldsV1: a node with members below stays, as a
    parent only."""
    *parents, last = path
    node = fields
    for element in parents:
        child = node.get(element)
        if child is None:
            return
        node = child
    below = node.get(last)
    if below is None:
        return
    below.pop(".", None)
    if not below:
        del node[last]


def _record_general(
    old: Obj | None, new: Obj, manager: str, now: str, schema: PatchSchema | None
) -> Obj:
    sent = _managed_fields_of(new)
    managers: _Managers = {}
    if sent not in ([], [{}]):
        managers = _decode_or_forget(sent) or _decode_or_forget(_managed_fields_of(old))
    old_body = _without_managed_fields(old) if old is not None else {}
    new_body = _without_managed_fields(new)
    api_version = str(new.get("apiVersion") or (old or {}).get("apiVersion", ""))
    _record(old_body, new_body, managers, manager, api_version, now, schema)
    return _with_managed_fields(new_body, managers)


def _apply_merge(lhs: Any, rhs: Any, schema: PatchSchema | None) -> Any:
    """typed.Merge: the applied value wins; maps merge; granular lists merge by item."""
    if isinstance(lhs, dict) and isinstance(rhs, dict):
        result = {}
        for key, value in lhs.items():
            if key not in rhs:
                result[key] = clone(value)
            elif rhs[key] is not None:
                result[key] = _apply_merge(value, rhs[key], _child(schema, key))
        for key, value in rhs.items():
            if key not in lhs and value is not None:
                result[key] = _apply_merge(_ABSENT, value, _child(schema, key))
        return result
    if isinstance(rhs, dict):
        return _apply_merge({}, rhs, schema)
    if isinstance(lhs, list) and isinstance(rhs, list):
        left, right = _granular_items(lhs, schema), _granular_items(rhs, schema)
        if left is not None and right is not None:
            return _merge_list_items(left, right, schema.items if schema is not None else None)
    if isinstance(rhs, list):
        return [_apply_merge(_ABSENT, item, None) for item in rhs if item is not None]
    return clone(rhs)


def _merge_list_items(
    lhs: list[tuple[str, Any]], rhs: list[tuple[str, Any]], items_schema: PatchSchema | None
) -> list:
    """mergingWalker.visitListItems: applied items in applied order, live-only items kept
    where they were, interleaved around the items both lists share."""
    left = {element: item for element, item in reversed(lhs)}
    right = {element: item for element, item in reversed(rhs)}
    shared = iter([element for element, _ in rhs if element in left])
    next_shared = next(shared, None)
    merged_right: set[str] = set()
    out = []
    li = ri = 0
    while li < len(lhs) or ri < len(rhs):
        if li < len(lhs) and ri < len(rhs):
            element = lhs[li][0]
            if element == rhs[ri][0]:
                merged_right.add(element)
                out.append(_apply_merge(left[element], right[element], items_schema))
                li += 1
                ri += 1
                next_shared = next(shared, None)
                continue
            if element in right and next_shared is not None and next_shared != element:
                li += 1
                continue
        if li < len(lhs):
            element, item = lhs[li]
            if element not in right:
                out.append(clone(item))
                li += 1
                continue
            if element in merged_right:
                li += 1
                continue
        if ri < len(rhs):
            element = rhs[ri][0]
            merged_right.add(element)
            out.append(_apply_merge(left.get(element, _ABSENT), right[element], items_schema))
            ri += 1
            if next_shared == element:
                next_shared = next(shared, None)
    return out


def _prune(merged: Obj, managers: _Managers, last: FieldSet, schema: PatchSchema | None) -> Obj:
    """Updater.prune: remove what the applier owned last time and no longer applies, unless
    another manager (or the new configuration) still owns it."""
    if not last:
        return merged
    last_named = _with_named_parents(last)
    merged_set = _with_named_parents(_field_set(merged, schema))
    owned = _with_named_parents(set().union(*(m.fields for m in managers.values())))
    # Remove everything the applier owned last time, then add back what is still owned...
    pruned = _remove_paths(merged, schema, last_named)
    pruned_set = _with_named_parents(_field_set(pruned, schema))
    pruned = _remove_paths(merged, schema, merged_set - (pruned_set | owned))
    # ...and what nobody owns but the applier never owned either (addBackDanglingItems).
    pruned_set = _with_named_parents(_field_set(pruned, schema))
    return _remove_paths(merged, schema, (merged_set - pruned_set) & last_named)


def server_side_apply(
    live: Obj | None,
    applied: Obj,
    manager: str,
    force: bool,
    schema: PatchSchema | None,
    now: str,
) -> Obj:
    """Server-side apply `applied` by `manager` onto `live` (None: the object is created).

    Raises ApplyConflict when the configuration changes a field another manager owns
    (unless `force`, which moves the ownership), PatchError for a malformed configuration.
    """
    if not isinstance(applied, dict):
        raise PatchError("an apply configuration must be a JSON object")
    for required in ("apiVersion", "kind"):
        if not applied.get(required):
            raise PatchError(f"{required} must be set in an apply configuration")
    if _managed_fields_of(applied) is not None:
        raise PatchError("metadata.managedFields must be nil in an apply configuration")
    api_version = str(applied["apiVersion"])
    _check_list_items(applied, schema)
    config = _apply_merge({}, applied, schema)
    live_body = _without_managed_fields(live) if live is not None else {}
    managers = _decode_or_forget(_managed_fields_of(live))
    if live is not None and not managers:
        # Objects written before anything tracked them: their fields go to a placeholder.
        _record({}, live_body, managers, "before-first-apply", api_version, now, schema)

    applier = _Manager(manager, "Apply", api_version, set())
    previous = managers.get(applier.key)
    last = previous.fields if previous is not None else set()
    applier.fields = _field_set(config, schema)
    applier.time = previous.time if previous is not None else None
    managers[applier.key] = applier
    merged = _prune(_apply_merge(live_body, config, schema), managers, last, schema)
    _take_over(live_body, merged, managers, applier.key, force, schema)
    applier.fields -= _UNOWNED_PATHS
    if live is None or not _json_equal(merged, live_body):
        applier.time = now
    if not applier.fields:
        del managers[applier.key]
    return _with_managed_fields(merged, managers)
