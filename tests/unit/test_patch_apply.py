"""apiserver/patch.py: server-side apply and managedFields bookkeeping.

The golden cases walk what `kubectl apply --server-side` does to a Deployment (create,
re-apply unchanged, change replicas/image/labels, drop a container/port/label) and the
documented conflict and ownership-transfer stories of the Server-Side Apply page; the
properties pin idempotence and "the object ends up as the configuration" for a single
applier.
"""

import copy
import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_patch_schema import DEPLOYMENT, LEAF, POD, SERVICE, Schema

from apiserver import patch as patch_module
from apiserver.patch import (
    ApplyConflict,
    PatchError,
    _record_general,
    record_update,
    server_side_apply,
)
from apiserver.schema import schema_for

T0, T1, T2, T3 = (f"2026-11-29T0{i}:00:00Z" for i in range(4))


def deployment(
    replicas: int | None = 3,
    labels: dict[str, str] | None = None,
    containers: list[dict] | None = None,
) -> dict:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": containers
                if containers is not None
                else [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]
            },
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": spec,
    }


def entries(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def fields_of(obj: dict, manager: str, operation: str = "Apply") -> dict:
    return entries(obj)[(manager, operation)]["fieldsV1"]


def body(obj: dict) -> dict:
    stripped = copy.deepcopy(obj)
    stripped["metadata"].pop("managedFields", None)
    return stripped


def containers_of(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


# --- kubectl apply --server-side ---------------------------------------------------------


def test_first_apply_records_the_documented_fields_v1() -> None:
    # The ConfigMap example of the Server-Side Apply documentation.
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
        "data": {"key": "some value"},
    }
    created = server_side_apply(None, config, "kubectl", False, None, T0)
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:data": {"f:key": {}},
                "f:metadata": {"f:labels": {"f:test-label": {}}},
            },
        }
    ]
    assert body(created) == config


def test_first_apply_of_a_deployment_keys_list_items() -> None:
    config = deployment(
        containers=[{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]
    )
    created = server_side_apply(None, config, "kubectl", False, DEPLOYMENT, T0)
    assert body(created) == config
    assert fields_of(created, "kubectl") == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {"f:matchLabels": {"f:app": {}}},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"nginx"}': {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                'k:{"containerPort":80,"protocol":"TCP"}': {
                                    ".": {},
                                    "f:containerPort": {},
                                }
                            },
                        }
                    }
                },
            },
        },
    }


def test_reapplying_unchanged_is_a_no_op() -> None:
    created = server_side_apply(None, deployment(), "kubectl", False, DEPLOYMENT, T0)
    again = server_side_apply(created, deployment(), "kubectl", False, DEPLOYMENT, T1)
    assert again == created  # same object, same fields, time untouched


def test_reapplying_with_changes_updates_values_and_time() -> None:
    created = server_side_apply(None, deployment(), "kubectl", False, DEPLOYMENT, T0)
    changed = deployment(
        replicas=5,
        labels={"app": "web", "tier": "frontend"},
        containers=[{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}],
    )
    updated = server_side_apply(created, changed, "kubectl", False, DEPLOYMENT, T1)
    assert body(updated) == changed
    assert entries(updated)[("kubectl", "Apply")]["time"] == T1
    assert fields_of(updated, "kubectl")["f:metadata"] == {"f:labels": {"f:app": {}, "f:tier": {}}}


def test_reapplying_without_a_container_port_or_label_removes_them() -> None:
    first = deployment(
        labels={"app": "web", "tier": "frontend"},
        containers=[
            {
                "name": "nginx",
                "image": "nginx",
                "ports": [{"containerPort": 80}, {"containerPort": 443}],
            },
            {"name": "sidecar", "image": "busybox"},
        ],
    )
    created = server_side_apply(None, first, "kubectl", False, DEPLOYMENT, T0)
    second = deployment(
        labels={"app": "web"},
        containers=[{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}],
    )
    updated = server_side_apply(created, second, "kubectl", False, DEPLOYMENT, T1)
    assert body(updated) == second
    container_fields = fields_of(updated, "kubectl")["f:spec"]["f:template"]["f:spec"][
        "f:containers"
    ]
    assert list(container_fields) == ['k:{"name":"nginx"}']


def test_live_fields_nobody_owns_survive_a_reapply() -> None:
    created = server_side_apply(None, deployment(), "kubectl", False, DEPLOYMENT, T0)
    # What defaulting adds after the apply: nobody owns these fields.
    live = copy.deepcopy(created)
    live["spec"]["revisionHistoryLimit"] = 10
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    live["metadata"] |= {"uid": "1234", "resourceVersion": "7", "generation": 1}
    again = server_side_apply(live, deployment(replicas=4), "kubectl", False, DEPLOYMENT, T1)
    assert again["spec"]["replicas"] == 4
    assert again["spec"]["revisionHistoryLimit"] == 10
    assert containers_of(again)[0]["imagePullPolicy"] == "IfNotPresent"
    assert containers_of(again)[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert again["metadata"]["uid"] == "1234"


# --- Conflicts and shared ownership -------------------------------------------------------


def created_by_client_side_apply() -> dict:
    return record_update(None, deployment(replicas=3), "kubectl-client-side-apply", T0, DEPLOYMENT)


def test_changing_a_field_another_manager_set_is_a_conflict() -> None:
    live = created_by_client_side_apply()
    with pytest.raises(ApplyConflict) as raised:
        server_side_apply(live, deployment(replicas=5), "kubectl", False, DEPLOYMENT, T1)
    assert raised.value.conflicts == [("kubectl-client-side-apply", ".spec.replicas")]
    assert str(raised.value) == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas"
    )


def test_conflict_paths_name_list_items_by_key() -> None:
    live = created_by_client_side_apply()
    config = deployment(
        containers=[{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]
    )
    with pytest.raises(ApplyConflict) as raised:
        server_side_apply(live, config, "kubectl", False, DEPLOYMENT, T1)
    assert raised.value.conflicts == [
        ("kubectl-client-side-apply", '.spec.template.spec.containers[name="nginx"].image')
    ]


def test_several_conflicts_are_grouped_by_manager_with_status_causes() -> None:
    live = created_by_client_side_apply()
    config = deployment(
        replicas=5,
        containers=[{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}],
    )
    with pytest.raises(ApplyConflict) as raised:
        server_side_apply(live, config, "kubectl", False, DEPLOYMENT, T1)
    image = '.spec.template.spec.containers[name="nginx"].image'
    assert str(raised.value) == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using apps/v1:\n'
        f"- .spec.replicas\n- {image}"
    )
    who = 'conflict with "kubectl-client-side-apply" using apps/v1'
    assert raised.value.causes == [
        {"reason": "FieldManagerConflict", "message": who, "field": ".spec.replicas"},
        {"reason": "FieldManagerConflict", "message": who, "field": image},
    ]


def test_forcing_moves_ownership_and_equal_values_share_it() -> None:
    live = created_by_client_side_apply()
    shared = server_side_apply(live, deployment(replicas=3), "kubectl", False, DEPLOYMENT, T1)
    assert "f:replicas" in fields_of(shared, "kubectl")["f:spec"]
    assert "f:replicas" in fields_of(shared, "kubectl-client-side-apply", "Update")["f:spec"]

    forced = server_side_apply(live, deployment(replicas=5), "kubectl", True, DEPLOYMENT, T1)
    assert forced["spec"]["replicas"] == 5
    assert "f:replicas" in fields_of(forced, "kubectl")["f:spec"]
    assert "f:replicas" not in fields_of(forced, "kubectl-client-side-apply", "Update")["f:spec"]


def test_conflict_with_an_update_owner_and_handing_a_field_over() -> None:
    # The documented HPA story: a controller's Update takes spec.replicas; the applier
    # conflicts on it until it drops the field from its configuration.
    live = server_side_apply(None, deployment(replicas=3), "kubectl", False, DEPLOYMENT, T0)
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 7
    scaled = record_update(live, scaled, "kube-controller-manager", T1, DEPLOYMENT)
    assert "f:replicas" not in fields_of(scaled, "kubectl")["f:spec"]

    with pytest.raises(ApplyConflict) as raised:
        server_side_apply(scaled, deployment(replicas=3), "kubectl", False, DEPLOYMENT, T2)
    assert raised.value.conflicts == [("kube-controller-manager", ".spec.replicas")]

    handed_over = server_side_apply(
        scaled, deployment(replicas=None), "kubectl", False, DEPLOYMENT, T2
    )
    assert handed_over["spec"]["replicas"] == 7


def test_a_field_another_manager_owns_stays_when_the_applier_drops_it() -> None:
    first = server_side_apply(
        None, deployment(labels={"app": "web", "tier": "fe"}), "kubectl", False, DEPLOYMENT, T0
    )
    second = server_side_apply(
        first,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"labels": {"tier": "fe"}}},
        "other",
        False,
        DEPLOYMENT,
        T1,
    )
    dropped = server_side_apply(
        second, deployment(labels={"app": "web"}), "kubectl", False, DEPLOYMENT, T2
    )
    assert dropped["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert fields_of(dropped, "other")["f:metadata"] == {"f:labels": {"f:tier": {}}}


def test_applied_items_keep_their_order_around_items_others_own() -> None:
    # mergingWalker.visitListItems: live-only items stay in place, applied ones follow the
    # configuration's order.
    three = [{"name": n, "image": "busybox"} for n in ("a", "b", "c")]
    live = record_update(None, deployment(containers=three), "creator", T0, DEPLOYMENT)
    config = deployment(containers=[three[2], three[0]])
    applied = server_side_apply(live, config, "kubectl", False, DEPLOYMENT, T1)
    assert [c["name"] for c in containers_of(applied)] == ["b", "c", "a"]


def test_duplicate_live_items_merge_once() -> None:
    twins = [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]
    live = record_update(None, deployment(containers=twins), "creator", T0, DEPLOYMENT)
    config = deployment(containers=[{"name": "a", "image": "x"}])
    applied = server_side_apply(live, config, "kubectl", False, DEPLOYMENT, T1)
    assert containers_of(applied) == [{"name": "a", "image": "x"}]


def test_lists_without_a_list_type_follow_their_patch_strategy() -> None:
    # What the OpenAPI converter derives for lists that only carry patch metadata.
    legacy = Schema(fields={"items": Schema(element=LEAF, merge_key="id", patch_strategy="merge")})
    live = server_side_apply(
        None, {"apiVersion": "v1", "kind": "X", "items": [{"id": 1}]}, "one", False, legacy, T0
    )
    both = server_side_apply(
        live, {"apiVersion": "v1", "kind": "X", "items": [{"id": 2}]}, "two", False, legacy, T1
    )
    assert both["items"] == [{"id": 1}, {"id": 2}]


def test_service_ports_match_the_defaulted_protocol() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    created = server_side_apply(None, config, "kubectl", False, SERVICE, T0)
    defaulted = copy.deepcopy(created)
    defaulted["spec"]["ports"][0]["protocol"] = "TCP"
    config["spec"]["ports"][0]["targetPort"] = 9090
    updated = server_side_apply(defaulted, config, "kubectl", False, SERVICE, T1)
    assert updated["spec"]["ports"] == [{"port": 80, "targetPort": 9090, "protocol": "TCP"}]


def test_finalizers_are_owned_per_value() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "finalizers": ["a.io/x"]},
    }
    created = server_side_apply(None, config, "kubectl", False, POD, T0)
    assert fields_of(created, "kubectl") == {"f:metadata": {"f:finalizers": {'v:"a.io/x"': {}}}}


# --- Updates --------------------------------------------------------------------------------


def test_record_update_on_create_and_update() -> None:
    created = record_update(None, deployment(), "kubectl-create", T0, DEPLOYMENT)
    owned = fields_of(created, "kubectl-create", "Update")
    assert owned["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert (
        owned["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']["f:image"]
        == {}
    )
    assert entries(created)[("kubectl-create", "Update")]["apiVersion"] == "apps/v1"

    edited = copy.deepcopy(created)
    edited["spec"]["replicas"] = 4
    edited["metadata"]["resourceVersion"] = "2"
    updated = record_update(created, edited, "kubectl-edit", T1, DEPLOYMENT)
    assert [(e["manager"], e["time"]) for e in updated["metadata"]["managedFields"]] == [
        ("kubectl-create", T0),
        ("kubectl-edit", T1),
    ]
    assert fields_of(updated, "kubectl-edit", "Update") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields_of(updated, "kubectl-create", "Update")["f:spec"]


def test_record_update_accumulates_a_managers_fields_and_owns_added_items() -> None:
    created = record_update(None, deployment(), "kubectl-create", T0, DEPLOYMENT)
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 4
    scaled = record_update(created, scaled, "kubectl-edit", T1, DEPLOYMENT)
    edited = copy.deepcopy(scaled)
    containers_of(edited).append({"name": "side", "image": "busybox"})
    edited = record_update(scaled, edited, "kubectl-edit", T2, DEPLOYMENT)
    assert entries(edited)[("kubectl-edit", "Update")]["time"] == T2
    assert fields_of(edited, "kubectl-edit", "Update") == {
        "f:spec": {
            "f:replicas": {},
            "f:template": {
                "f:spec": {
                    "f:containers": {'k:{"name":"side"}': {".": {}, "f:image": {}, "f:name": {}}}
                }
            },
        }
    }


def test_record_update_keeps_sent_managed_fields_and_resets_on_empty() -> None:
    created = record_update(None, deployment(), "kubectl-create", T0, DEPLOYMENT)
    without = body(created)  # a client that drops managedFields keeps the stored ones
    assert record_update(created, without, "x", T1, DEPLOYMENT) == created
    reset = copy.deepcopy(created)
    reset["metadata"]["managedFields"] = []
    assert "managedFields" not in record_update(created, reset, "x", T1, DEPLOYMENT)["metadata"]


def test_apply_to_an_untracked_object_credits_before_first_apply() -> None:
    live = deployment(replicas=2)
    applied = server_side_apply(live, deployment(replicas=2), "kubectl", False, DEPLOYMENT, T1)
    assert set(entries(applied)) == {("kubectl", "Apply"), ("before-first-apply", "Update")}
    with pytest.raises(ApplyConflict):
        server_side_apply(live, deployment(replicas=4), "kubectl", False, DEPLOYMENT, T1)


@pytest.mark.parametrize(
    "config",
    [
        {"kind": "Deployment", "metadata": {"name": "web"}},
        {"apiVersion": "apps/v1", "metadata": {"name": "web"}},
        {**deployment(), "metadata": {"name": "web", "managedFields": []}},
        deployment(containers=[{"image": "nginx"}]),
        deployment(containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": [{"a": 1}]}},
    ],
)
def test_apply_rejects_bad_configurations(config: dict) -> None:
    with pytest.raises(PatchError):
        server_side_apply(None, config, "kubectl", False, DEPLOYMENT, T0)


# --- Properties -----------------------------------------------------------------------------

CONTAINER = st.fixed_dictionaries(
    {"name": st.sampled_from(["nginx", "side", "log"]), "image": st.sampled_from(["a:1", "b:2"])},
    optional={
        "ports": st.lists(
            st.sampled_from([80, 443, 8080]), min_size=1, max_size=2, unique=True
        ).map(lambda ports: [{"containerPort": p} for p in ports]),
        "env": st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True).map(
            lambda env: [{"name": n, "value": n.lower()} for n in env]
        ),
        "args": st.lists(st.sampled_from(["-v", "-q"]), max_size=2),
    },
)
CONFIGS = st.builds(
    deployment,
    replicas=st.one_of(st.none(), st.integers(1, 5)),
    labels=st.dictionaries(
        st.sampled_from(["app", "tier", "team"]), st.sampled_from(["x", "y"]), min_size=1
    ),
    containers=st.lists(CONTAINER, min_size=1, max_size=3, unique_by=lambda c: c["name"]),
)


@settings(max_examples=75, deadline=None)
@given(CONFIGS, CONFIGS)
def test_a_single_applier_makes_the_object_its_configuration(first: dict, second: dict) -> None:
    created = server_side_apply(None, first, "kubectl", False, DEPLOYMENT, T0)
    before = copy.deepcopy((created, second))
    updated = server_side_apply(created, second, "kubectl", False, DEPLOYMENT, T1)
    assert (created, second) == before
    assert body(updated) == second
    assert server_side_apply(updated, second, "kubectl", False, DEPLOYMENT, T2) == updated


@settings(max_examples=75, deadline=None)
@given(CONFIGS, CONFIGS)
def test_applying_twice_is_idempotent_after_another_managers_update(
    first: dict, edit: dict
) -> None:
    created = server_side_apply(None, first, "kubectl", False, DEPLOYMENT, T0)
    edited = record_update(
        created, {**edit, "metadata": created["metadata"]}, "editor", T1, DEPLOYMENT
    )
    once = server_side_apply(edited, first, "kubectl", True, DEPLOYMENT, T2)
    twice = server_side_apply(once, first, "kubectl", False, DEPLOYMENT, T3)
    assert twice == once
    for key, value in first["spec"].items():
        if key != "template":
            assert once["spec"][key] == value


# --- The create path of record_update ------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
ANY_JSON = st.recursive(
    st.one_of(st.booleans(), st.integers(0, 2), NAMES),
    lambda children: st.one_of(
        st.dictionaries(NAMES, children, max_size=3), st.lists(children, max_size=3)
    ),
    max_leaves=8,
)
METADATA = st.fixed_dictionaries(
    {"name": st.just("obj")},
    optional={
        "namespace": st.just("d"),
        "uid": st.just("u-1"),
        "generation": st.just(1),
        "creationTimestamp": st.just(T0),
        "resourceVersion": st.just("7"),
        "labels": st.dictionaries(NAMES, NAMES, max_size=2),
        "annotations": st.dictionaries(NAMES, NAMES, max_size=2),
        "finalizers": st.lists(st.sampled_from(["x/a", "x/b"]), max_size=3),  # a set list
        "ownerReferences": st.lists(  # a list keyed by uid
            st.fixed_dictionaries({"uid": NAMES}, optional={"name": NAMES}), max_size=2
        ),
    },
)
CONTAINER = st.fixed_dictionaries(  # keyed by name; a repeated name takes the general path
    {"name": NAMES},
    optional={
        "image": NAMES,
        "command": st.lists(NAMES, max_size=2),  # atomic
        "ports": st.lists(  # keyed by containerPort and protocol
            st.fixed_dictionaries(
                {"containerPort": st.sampled_from([80, 81])},
                optional={"protocol": st.sampled_from(["TCP", "UDP"]), "name": NAMES},
            ),
            max_size=3,
        ),
        "env": st.lists(
            st.fixed_dictionaries({"name": NAMES}, optional={"value": NAMES}), max_size=2
        ),
    },
)
OBJECTS = st.one_of(
    st.fixed_dictionaries(
        {"apiVersion": st.just("v1"), "kind": st.just("Pod"), "metadata": METADATA},
        optional={
            "spec": st.fixed_dictionaries(
                {"containers": st.lists(CONTAINER, max_size=3)},
                optional={"nodeSelector": st.dictionaries(NAMES, NAMES), "extra": ANY_JSON},
            ),
            "status": st.dictionaries(NAMES, ANY_JSON, max_size=2),
        },
    ),
    st.fixed_dictionaries(
        {"apiVersion": st.just("v1"), "kind": st.just("Service"), "metadata": METADATA},
        optional={
            "spec": st.fixed_dictionaries(
                {},
                optional={
                    "ports": st.lists(
                        st.fixed_dictionaries(
                            {"port": st.sampled_from([80, 81])},
                            optional={"protocol": st.sampled_from(["TCP", "UDP"])},
                        ),
                        max_size=3,
                    ),
                    "selector": st.dictionaries(NAMES, NAMES, max_size=2),
                },
            )
        },
    ),
    st.fixed_dictionaries(
        {"apiVersion": st.just("v1"), "kind": st.just("ConfigMap"), "metadata": METADATA},
        optional={"data": st.dictionaries(NAMES, NAMES, max_size=3), "extra": ANY_JSON},
    ),
)


@settings(deadline=None, max_examples=300)
@given(OBJECTS, st.booleans())
def test_a_create_records_the_fields_the_general_path_would(obj: dict, typed: bool) -> None:
    """record_update makes a create's managedFields straight from the object; the general
    path (compare with nothing, then encode the sets of paths) must agree, with or
    without a schema."""
    schema = schema_for(obj["kind"]) if typed else None
    fast = record_update(None, copy.deepcopy(obj), "kubectl", T1, schema)
    general = _record_general(None, copy.deepcopy(obj), "kubectl", T1, schema)
    assert fast == general
    assert json.dumps(fast) == json.dumps(general)  # the same key order, as clients see it


def owners(obj: dict) -> dict[str, dict]:
    return {e["manager"]: e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])}


def test_an_update_from_1_to_true_is_a_change() -> None:
    """Unchanged subtrees are skipped by comparing their JSON, not Python's ==, for
    which 1 equals true."""
    created = record_update(None, {"metadata": {"name": "x"}, "spec": {"on": 1}}, "a", T1, None)
    updated = record_update(
        created, {"metadata": {"name": "x"}, "spec": {"on": True}}, "b", T2, None
    )
    assert owners(updated)["b"] == {"f:spec": {"f:on": {}}}


DECODE_MANAGERS = patch_module._decode_managers


def decode_afresh(entries: Any) -> Any:
    """`_decode_managers` with nothing kept to encode again: every entry re-encoded."""
    managers = DECODE_MANAGERS(entries)
    for manager in managers.values():
        manager.decoded = None
    return managers


@settings(deadline=None, max_examples=200)
@given(OBJECTS, OBJECTS)
def test_entries_an_update_leaves_alone_are_kept_as_encoding_them_would_give(
    before: dict, after: dict
) -> None:
    """An update reuses the FieldsV1 of each entry whose fields it does not change; the
    result is the same as encoding every entry afresh."""
    schema = schema_for(before["kind"])

    def history() -> list[str]:
        old = record_update(None, copy.deepcopy(before), "creator", T1, schema)
        again = record_update(old, copy.deepcopy(after), "updater", T2, schema)
        back = record_update(again, copy.deepcopy(before), "updater", T3, schema)
        return [json.dumps(o["metadata"].get("managedFields")) for o in (again, back)]

    reused = history()
    with mock.patch.object(patch_module, "_decode_managers", decode_afresh):
        assert history() == reused
