"""apiserver/patch.py: JSON patch, JSON merge patch and strategic merge patch.

Golden cases follow Kubernetes' documentation ("Update API Objects in Place Using
kubectl patch", the strategic-merge-patch design notes) and the ordering rules of
k8s.io/apimachinery/pkg/util/strategicpatch; properties pin the algebra (empty patch,
diff-then-apply, SMP without schema == RFC 7386, no mutation). Server-side apply is in
test_patch_apply.py; both use the small PatchSchema of test_patch_schema.py.
"""

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_patch_schema import DEPLOYMENT, POD, SERVICE

from apiserver.patch import (
    PatchError,
    _hashable,
    _json_equal,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from minikube_py.api.types import clone


def pod(*containers: dict, **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "demo", "labels": {"app": "demo"}},
        "spec": {"containers": list(containers), **spec},
    }


def names(items: list[dict]) -> list[str]:
    return [item["name"] for item in items]


# --- JSON patch (RFC 6902) ---------------------------------------------------------------


def test_json_patch_operations() -> None:
    doc = pod({"name": "app", "image": "nginx"})
    patched = json_patch(
        doc,
        [
            {"op": "test", "path": "/spec/containers/0/image", "value": "nginx"},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.27"},
            {"op": "add", "path": "/metadata/labels/tier", "value": "web"},
            {"op": "remove", "path": "/metadata/labels/app"},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "side"}},
        ],
    )
    assert patched["spec"]["containers"] == [
        {"name": "app", "image": "nginx:1.27"},
        {"name": "side"},
    ]
    assert patched["metadata"]["labels"] == {"tier": "web"}
    assert doc == pod({"name": "app", "image": "nginx"})


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/metadata/name", "value": "other"}],
        [{"op": "remove", "path": "/metadata/missing"}],
        [{"op": "add", "path": "/no/such/parent", "value": 1}],
        [{"op": "frobnicate", "path": "/metadata"}],
        [{"path": "/metadata"}],
        [{"op": "replace", "path": "", "value": [1, 2]}],
        {"op": "add"},
    ],
)
def test_json_patch_errors(ops: Any) -> None:
    with pytest.raises(PatchError):
        json_patch(pod(), ops)


# --- JSON merge patch (RFC 7386) ---------------------------------------------------------

# RFC 7386 Appendix A, the cases whose target and patch are objects.
RFC7386_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_EXAMPLES)
def test_merge_patch_rfc7386_examples(target: dict, patch: dict, expected: dict) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_replaces_lists_and_rejects_non_objects() -> None:
    live = pod({"name": "app", "image": "nginx"}, {"name": "side", "image": "busybox"})
    patched = merge_patch(live, {"spec": {"containers": [{"name": "new", "image": "redis"}]}})
    assert patched["spec"]["containers"] == [{"name": "new", "image": "redis"}]
    with pytest.raises(PatchError):
        merge_patch(live, ["not", "an", "object"])  # type: ignore[arg-type]


# --- Strategic merge patch: golden cases -------------------------------------------------


def test_smp_adds_a_container_by_name_as_kubectl_patch_docs_show() -> None:
    # "Update API Objects in Place Using kubectl patch": patching a second container into
    # patch-demo lists it first, the existing container kept unchanged after it.
    live = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "patch-demo-ctr", "image": "nginx"}]}}
        }
    }
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}
        }
    }
    patched = strategic_merge_patch(live, patch, DEPLOYMENT)
    assert patched["spec"]["template"]["spec"]["containers"] == [
        {"name": "patch-demo-ctr-2", "image": "redis"},
        {"name": "patch-demo-ctr", "image": "nginx"},
    ]


def test_smp_merges_a_container_field_keeping_the_rest() -> None:
    live = pod(
        {"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
        {"name": "side", "image": "busybox"},
    )
    patched = strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}, POD
    )
    assert patched["spec"]["containers"] == [
        {"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
        {"name": "side", "image": "busybox"},
    ]


def test_smp_merges_ports_by_container_port_in_set_element_order() -> None:
    live = pod({"name": "app", "ports": [{"containerPort": 80, "name": "http"}]})
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                    "ports": [{"containerPort": 443, "name": "https"}],
                }
            ]
        }
    }
    patched = strategic_merge_patch(live, patch, POD)
    assert patched["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "name": "http"},
        {"containerPort": 443, "name": "https"},
    ]


def test_smp_merges_env_by_name() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]
    live = pod({"name": "app", "env": env})
    change = [{"name": "B", "value": "20"}, {"name": "D", "value": "4"}]

    ordered = {"name": "app", "$setElementOrder/env": [{"name": n} for n in "ABCD"], "env": change}
    patched = strategic_merge_patch(live, {"spec": {"containers": [ordered]}}, POD)
    assert patched["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
        {"name": "D", "value": "4"},
    ]
    # Without $setElementOrder, mergeSortedSlice places the new D right after the patched
    # B, before the server-only C.
    unordered = {"name": "app", "env": change}
    patched = strategic_merge_patch(live, {"spec": {"containers": [unordered]}}, POD)
    assert names(patched["spec"]["containers"][0]["env"]) == ["A", "B", "D", "C"]


def test_smp_finalizers_are_a_merged_primitive_list() -> None:
    live = {"metadata": {"name": "x", "finalizers": ["a.io/one", "b.io/two"]}}
    union = strategic_merge_patch(
        live, {"metadata": {"finalizers": ["b.io/two", "c.io/three"]}}, POD
    )
    assert union["metadata"]["finalizers"] == ["a.io/one", "b.io/two", "c.io/three"]
    added_alone = strategic_merge_patch(live, {"metadata": {"finalizers": ["c.io/three"]}}, POD)
    assert added_alone["metadata"]["finalizers"] == ["c.io/three", "a.io/one", "b.io/two"]
    deleted = strategic_merge_patch(
        live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/one"]}}, POD
    )
    assert deleted["metadata"]["finalizers"] == ["b.io/two"]


def test_smp_replaces_tolerations_as_kubectl_patch_docs_show() -> None:
    # Tolerations have no patch strategy: the patch's list replaces the live one.
    live = pod(
        {"name": "app"},
        tolerations=[{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}],
    )
    patch = {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}}
    patched = strategic_merge_patch(live, patch, POD)
    assert patched["spec"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "disktype", "value": "ssd"}
    ]


def test_smp_merges_service_ports_by_port() -> None:
    live = {
        "spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080, "name": "http"}]}
    }
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [{"port": 443, "targetPort": 8443, "name": "https"}],
        }
    }
    patched = strategic_merge_patch(live, patch, SERVICE)
    assert patched["spec"]["ports"] == [
        {"port": 80, "targetPort": 8080, "name": "http"},
        {"port": 443, "targetPort": 8443, "name": "https"},
    ]
    retarget = strategic_merge_patch(
        live, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, SERVICE
    )
    assert retarget["spec"]["ports"] == [{"port": 80, "targetPort": 9090, "name": "http"}]


def test_smp_patch_delete_removes_a_container() -> None:
    live = pod({"name": "app", "image": "nginx"}, {"name": "side", "image": "busybox"})
    patched = strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}, POD
    )
    assert patched["spec"]["containers"] == [{"name": "app", "image": "nginx"}]


def test_smp_retain_keys_switches_deployment_strategy_as_docs_show() -> None:
    # The retainkeys-demo Deployment of the kubectl patch docs: RollingUpdate -> Recreate.
    live = {
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%"}},
        }
    }
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    patched = strategic_merge_patch(live, patch, DEPLOYMENT)
    assert patched["spec"] == {"replicas": 1, "strategy": {"type": "Recreate"}}
    # What kubectl apply sends for the same switch: rollingUpdate nulled, outside the list.
    kubectl = {
        "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}
    }
    assert strategic_merge_patch(live, kubectl, DEPLOYMENT) == patched
    with pytest.raises(PatchError):  # every field the patch sets must be retained
        strategic_merge_patch(
            live,
            {"spec": {"strategy": {"$retainKeys": ["rollingUpdate"], "type": "Recreate"}}},
            DEPLOYMENT,
        )


def test_smp_set_element_order_reorders_and_keeps_server_only_items_in_place() -> None:
    live = pod({"name": "a"}, {"name": "b"}, {"name": "c"})
    order = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}
    assert names(strategic_merge_patch(live, order, POD)["spec"]["containers"]) == ["c", "a", "b"]

    live = pod({"name": "a"}, {"name": "b"}, {"name": "x"})
    order = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}
    assert names(strategic_merge_patch(live, order, POD)["spec"]["containers"]) == ["b", "a", "x"]

    live = {"metadata": {"finalizers": ["x", "y"]}}
    order = {"metadata": {"$setElementOrder/finalizers": ["y", "x", "z"], "finalizers": ["z"]}}
    assert strategic_merge_patch(live, order, POD)["metadata"]["finalizers"] == ["y", "x", "z"]


def test_smp_patch_replace_on_a_list_and_on_a_map() -> None:
    live = pod({"name": "app", "image": "nginx"}, {"name": "side", "image": "busybox"})
    whole_list = {
        "spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}]}
    }
    assert strategic_merge_patch(live, whole_list, POD)["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx-1.0"}
    ]
    whole_map = {
        "spec": {"$patch": "replace", "containers": [{"name": "nginx", "image": "nginx-1.0"}]}
    }
    assert strategic_merge_patch(live, whole_map, POD)["spec"] == {
        "containers": [{"name": "nginx", "image": "nginx-1.0"}]
    }
    labels = {"metadata": {"labels": {"$patch": "replace", "tier": "web"}}}
    assert strategic_merge_patch(live, labels, POD)["metadata"]["labels"] == {"tier": "web"}


def test_smp_patch_delete_on_a_map_empties_it() -> None:
    live = {"spec": {"replicas": 2, "strategy": {"type": "Recreate"}}}
    patched = strategic_merge_patch(live, {"spec": {"strategy": {"$patch": "delete"}}}, DEPLOYMENT)
    assert patched == {"spec": {"replicas": 2, "strategy": {}}}


def test_smp_nulls_delete_and_added_values_lose_nulls_and_directives() -> None:
    live = pod({"name": "app", "image": "nginx"})
    patch = {
        "metadata": {"labels": {"app": None}, "annotations": {"a": "1", "gone": None}},
        "spec": {
            "containers": [{"name": "new", "image": "redis", "args": None}],
            "nodeSelector": {"disk": "ssd", "$patch": "delete"},
        },
    }
    patched = strategic_merge_patch(live, patch, POD)
    assert patched["metadata"] == {"name": "demo", "labels": {}, "annotations": {"a": "1"}}
    assert patched["spec"]["containers"] == [
        {"name": "new", "image": "redis"},
        {"name": "app", "image": "nginx"},
    ]
    assert "nodeSelector" not in patched["spec"]


def test_smp_without_schema_replaces_lists() -> None:
    live = pod({"name": "app", "image": "nginx"}, {"name": "side", "image": "busybox"})
    patched = strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "app", "image": "x"}]}}, None
    )
    assert patched["spec"]["containers"] == [{"name": "app", "image": "x"}]


@pytest.mark.parametrize(
    "patch",
    [
        {"metadata": {"labels": {"$patch": "frobnicate"}}},
        {"metadata": {"labels": {"$patch": "merge", "a": "b"}}},
        {"spec": {"containers": [{"name": "app", "$patch": "merge"}]}},
        {"spec": {"containers": [{"name": "app", "$patch": "frobnicate"}]}},
        {"spec": {"containers": [{"image": "no-merge-key"}]}},
        {"spec": {"containers": [{"$patch": "delete"}]}},
        {"spec": {"$unknownDirective": 1}},
        {"spec": {"$retainKeys": "containers"}},
        {"spec": {"$setElementOrder": []}},
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"name": "new"}],
            }
        },
        {"metadata": {"finalizers": [{"name": "not-a-string"}]}},
    ],
)
def test_smp_rejects_bad_patches(patch: dict) -> None:
    live = pod({"name": "app", "image": "nginx"})
    live["metadata"]["finalizers"] = ["a.io/one"]
    with pytest.raises(PatchError):
        strategic_merge_patch(live, patch, POD)


# --- Properties ---------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
SCALARS = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y", ""]))


def json_values(with_nulls: bool, with_lists: bool) -> st.SearchStrategy[Any]:
    leaves = st.one_of(SCALARS, st.none()) if with_nulls else SCALARS

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        maps = st.dictionaries(KEYS, children, max_size=3)
        return st.one_of(maps, st.lists(children, max_size=3)) if with_lists else maps

    return st.recursive(leaves, extend, max_leaves=12)


def json_objects(with_nulls: bool, with_lists: bool) -> st.SearchStrategy[dict]:
    return st.dictionaries(KEYS, json_values(with_nulls, with_lists), max_size=4)


def merge_diff(source: dict, target: dict) -> dict:
    """The RFC 7386 patch that turns source into target."""
    diff: dict = {key: None for key in source if key not in target}
    for key, value in target.items():
        if key not in source:
            diff[key] = value
        elif isinstance(value, dict) and isinstance(source[key], dict):
            nested = merge_diff(source[key], value)
            if nested:
                diff[key] = nested
        elif value != source[key] or type(value) is not type(source[key]):
            diff[key] = value
    return diff


@settings(deadline=None)
@given(json_objects(with_nulls=False, with_lists=True))
def test_empty_merge_patch_is_identity(doc: dict) -> None:
    assert merge_patch(doc, {}) == doc
    assert strategic_merge_patch(doc, {}, None) == doc


@settings(deadline=None)
@given(
    json_objects(with_nulls=False, with_lists=True), json_objects(with_nulls=False, with_lists=True)
)
def test_applying_the_diff_yields_the_target(source: dict, target: dict) -> None:
    diff = merge_diff(source, target)
    assert merge_patch(source, diff) == target
    assert strategic_merge_patch(source, diff, None) == target


@settings(deadline=None)
@given(
    json_objects(with_nulls=False, with_lists=False),
    json_objects(with_nulls=True, with_lists=False),
)
def test_smp_without_schema_is_merge_patch_on_list_free_maps(doc: dict, patch: dict) -> None:
    before = copy.deepcopy((doc, patch))
    assert strategic_merge_patch(doc, patch, None) == merge_patch(doc, patch)
    assert (doc, patch) == before


CONTAINER_NAMES = st.sampled_from(["app", "side", "init", "proxy", "log"])


def containers(min_size: int = 0) -> st.SearchStrategy[list[dict]]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "image": st.sampled_from(["nginx", "redis"]),
            "workingDir": st.sampled_from(["/", "/srv"]),
        },
    )
    named = st.tuples(CONTAINER_NAMES, fields).map(lambda t: {"name": t[0], **t[1]})
    return st.lists(named, min_size=min_size, max_size=4, unique_by=lambda c: c["name"])


def two_way_patch(live: list[dict], target: list[dict]) -> dict:
    """The container-list patch kubectl's CreateTwoWayMergePatch sends."""
    by_name = {c["name"]: c for c in live}
    items: list[dict] = []
    for wanted in target:
        old = by_name.get(wanted["name"])
        if old is None:
            items.append(wanted)
            continue
        change = {k: v for k, v in wanted.items() if old.get(k) != v}
        change |= {k: None for k in old if k not in wanted}
        if change:
            items.append({"name": wanted["name"], **change})
    wanted_names = {c["name"] for c in target}
    items += [
        {"name": c["name"], "$patch": "delete"} for c in live if c["name"] not in wanted_names
    ]
    return {
        "spec": {
            "$setElementOrder/containers": [{"name": c["name"]} for c in target],
            "containers": items,
        }
    }


@settings(max_examples=100, deadline=None)
@given(containers(), containers(min_size=1))
def test_smp_two_way_container_patch_reaches_the_target(
    live: list[dict], target: list[dict]
) -> None:
    doc = pod(*live)
    patch = two_way_patch(live, target)
    before = copy.deepcopy((doc, patch))
    assert strategic_merge_patch(doc, patch, POD)["spec"]["containers"] == target
    assert (doc, patch) == before


@given(json_values(True, True), json_values(True, True))
def test_json_equality_agrees_with_the_hashable_form(a: Any, b: Any) -> None:
    assert _json_equal(a, b) == (_hashable(a) == _hashable(b))
    assert _json_equal(a, a) and _json_equal(a, clone(a))


def test_json_equality_of_numbers_and_booleans() -> None:
    assert _json_equal({"n": [1]}, {"n": [1.0]})
    assert not _json_equal({"n": [1]}, {"n": [True]})
    assert not _json_equal(0, False) and not _json_equal("1", 1) and not _json_equal(None, {})


@given(json_values(True, True))
def test_clone_is_equal_and_shares_no_container(value: Any) -> None:
    copied = clone(value)
    assert copied == value

    def containers(v: Any) -> list[int]:
        if isinstance(v, dict):
            return [id(v), *(i for x in v.values() for i in containers(x))]
        if isinstance(v, list):
            return [id(v), *(i for x in v for i in containers(x))]
        return []

    assert not set(containers(copied)) & set(containers(value))
