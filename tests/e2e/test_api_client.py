"""The official `kubernetes` Python client against our apiserver on a real etcd.

Configured from the fixture's kubeconfig exactly as a user's program would be: CRUD,
the three patch types (merge, strategic with kube's merge keys, JSON patch), a watch
from a resourceVersion that receives only later events, and the Expired path after
etcd is compacted past that version (through aetcd, as the apiserver's own
compaction would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aetcd
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.conftest import ControlPlane


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(control_plane.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        yield api_client


# The generated client types every field Optional and every body as a model; the tests
# pass plain dicts (as users do) and assert on the values, so the handles are untyped.
def core_api(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def apps_api(api: client.ApiClient) -> Any:
    return client.AppsV1Api(api)


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": "demo"}}, "data": data}


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "busybox:1", "command": ["sleep", "1d"]},
                        {"name": "b", "image": "busybox:1", "command": ["sleep", "1d"]},
                    ]
                },
            },
        },
    }


def test_crud(api: client.ApiClient, namespace: str) -> None:
    core = core_api(api)
    created = core.create_namespaced_config_map(namespace, cm("one", k="v"))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None

    read = core.read_namespaced_config_map("one", namespace)
    assert (read.data, read.metadata.uid) == ({"k": "v"}, created.metadata.uid)

    read.data = {"k": "changed"}
    replaced = core.replace_namespaced_config_map("one", namespace, read)
    assert replaced.data == {"k": "changed"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    core.create_namespaced_config_map(namespace, {"metadata": {"name": "other"}})
    listed = core.list_namespaced_config_map(namespace, label_selector="app=demo")
    assert [i.metadata.name for i in listed.items] == ["one"]
    assert int(listed.metadata.resource_version) >= int(replaced.metadata.resource_version)

    with pytest.raises(ApiException) as stale:
        read.metadata.resource_version = created.metadata.resource_version
        core.replace_namespaced_config_map("one", namespace, read)
    assert stale.value.status == 409

    core.delete_namespaced_config_map("one", namespace)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("one", namespace)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as twice:
        core.create_namespaced_config_map(namespace, cm("other"))
    assert twice.value.status == 409


def test_merge_patch(api: client.ApiClient, namespace: str) -> None:
    core = core_api(api)
    core.create_namespaced_config_map(namespace, cm("m", keep="1", drop="2"))
    patched = core.patch_namespaced_config_map(
        "m",
        namespace,
        {"data": {"drop": None, "new": "3"}},
        _content_type="application/merge-patch+json",
    )
    assert patched.data == {"keep": "1", "new": "3"}


def test_strategic_merge_patch_merges_lists_by_key(api: client.ApiClient, namespace: str) -> None:
    apps = apps_api(api)
    strategic = "application/strategic-merge-patch+json"
    apps.create_namespaced_deployment(namespace, deployment("s"))
    change_b = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}

    patched = apps.patch_namespaced_deployment("s", namespace, change_b, _content_type=strategic)
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("a", "busybox:1"), ("b", "b:2")]
    assert patched.metadata.generation == 2

    drop_a = {"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}}
    patched = apps.patch_namespaced_deployment("s", namespace, drop_a, _content_type=strategic)
    assert [c.name for c in patched.spec.template.spec.containers] == ["b"]

    # a merge patch replaces the whole list: the contrast that shows the merge key at work
    apps.create_namespaced_deployment(namespace, deployment("m"))
    merged = apps.patch_namespaced_deployment(
        "m", namespace, change_b, _content_type="application/merge-patch+json"
    )
    assert [c.name for c in merged.spec.template.spec.containers] == ["b"]


def test_json_patch(api: client.ApiClient, namespace: str) -> None:
    core = core_api(api)
    core.create_namespaced_config_map(namespace, cm("j", a="1"))
    patched = core.patch_namespaced_config_map(
        "j",
        namespace,
        [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "add", "path": "/data/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/app"},
        ],
        _content_type="application/json-patch+json",
    )
    assert patched.data == {"a": "1", "b": "2"}
    assert not patched.metadata.labels

    with pytest.raises(ApiException) as failed:
        core.patch_namespaced_config_map(
            "j",
            namespace,
            [{"op": "test", "path": "/data/a", "value": "wrong"}],
            _content_type="application/json-patch+json",
        )
    assert failed.value.status == 422
    assert core.read_namespaced_config_map("j", namespace).data == {"a": "1", "b": "2"}


def test_watch_from_a_resource_version(api: client.ApiClient, namespace: str) -> None:
    core = core_api(api)
    first = core.create_namespaced_config_map(namespace, cm("w1", v="1"))
    since = first.metadata.resource_version
    core.patch_namespaced_config_map(
        "w1", namespace, {"data": {"v": "2"}}, _content_type="application/merge-patch+json"
    )
    core.create_namespaced_config_map(namespace, cm("w2"))
    core.delete_namespaced_config_map("w1", namespace)

    seen = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=since,
        timeout_seconds=3,
    ):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, (obj.data or {}).get("v")))
        if len(seen) == 3:
            break
    assert seen == [("MODIFIED", "w1", "2"), ("ADDED", "w2", None), ("DELETED", "w1", "2")]


def test_watch_from_a_compacted_version_is_expired(
    api: client.ApiClient, control_plane: ControlPlane, namespace: str
) -> None:
    core = core_api(api)
    old = core.create_namespaced_config_map(namespace, cm("e", v="0")).metadata.resource_version
    latest = old
    for v in range(1, 4):
        patched = core.patch_namespaced_config_map(
            "e", namespace, {"data": {"v": str(v)}}, _content_type="application/merge-patch+json"
        )
        latest = patched.metadata.resource_version
    asyncio.run(_compact(control_plane.lab.config.etcd_client_port, int(latest)))

    with pytest.raises(ApiException) as expired:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=old,
            timeout_seconds=3,
        ):
            pass
    assert expired.value.status == 410

    # a client that relists gets a fresh version it can watch from (this ConfigMap's:
    # the namespace also holds kube-root-ca.crt, which its controller may write meanwhile)
    only_e = "metadata.name=e"
    relisted = core.list_namespaced_config_map(namespace, field_selector=only_e)
    assert [i.data["v"] for i in relisted.items] == ["3"]
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        field_selector=only_e,
        resource_version=relisted.metadata.resource_version,
        timeout_seconds=3,
    )
    core.patch_namespaced_config_map(
        "e", namespace, {"data": {"v": "4"}}, _content_type="application/merge-patch+json"
    )
    event = next(iter(stream))
    assert (event["type"], event["object"].data["v"]) == ("MODIFIED", "4")


async def _compact(etcd_port: int, revision: int) -> None:
    async with aetcd.Client(host="127.0.0.1", port=etcd_port) as etcd:
        await etcd.compact(revision)
