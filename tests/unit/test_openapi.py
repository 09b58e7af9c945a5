"""apiserver/openapi.py: the documents' shape, and the real kubectl reading them."""

import asyncio
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from apiserver import discovery
from apiserver.openapi import (
    definition_name,
    document_hash,
    openapi_v2,
    openapi_v3_document,
    openapi_v3_index,
)
from apiserver.schema import schema_for
from minikube_py.api.resources import RESOURCES, Resource, group_versions

V3_PREFIX = "#/components/schemas/"
V2_PREFIX = "#/definitions/"


def _gv_path(r: Resource) -> str:
    return f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"


def _v3(gv: str) -> dict[str, Any]:
    doc = openapi_v3_document(gv)
    assert doc is not None, gv
    return doc


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, entry in doc["paths"].items():
        for method, op in entry.items():
            if method != "parameters":
                yield path, method, op


def _param_names(entry: dict[str, Any], op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in [*entry.get("parameters", []), *op.get("parameters", [])]}


def test_index_lists_every_group_version_with_its_hash() -> None:
    index = openapi_v3_index()
    expected = {f"apis/{g}/{v}" if g else f"api/{v}" for g, v in group_versions()}
    assert set(index["paths"]) == expected
    for gv, entry in index["paths"].items():
        doc = _v3(gv)
        encoded = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha512(encoded).hexdigest().upper()
        assert entry["serverRelativeURL"] == f"/openapi/v3/{gv}?hash={digest}"
        assert document_hash(doc) == digest


def test_documents_are_cached_and_stable() -> None:
    assert openapi_v3_document("api/v1") is openapi_v3_document("/api/v1")
    assert openapi_v2() is openapi_v2()
    before = document_hash(_v3("apis/apps/v1"))
    assert json.loads(json.dumps(_v3("apis/apps/v1"))) == _v3("apis/apps/v1")
    assert document_hash(_v3("apis/apps/v1")) == before


def test_unknown_group_version() -> None:
    assert openapi_v3_document("apis/batch/v1") is None
    assert openapi_v3_document("api/v2") is None


@pytest.mark.parametrize("gv", sorted(openapi_v3_index()["paths"]))
def test_v3_references_resolve(gv: str) -> None:
    doc = _v3(gv)
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert refs and all(ref.startswith(V3_PREFIX) for ref in refs)
    assert {ref.removeprefix(V3_PREFIX) for ref in refs} <= set(schemas)


def test_v2_references_resolve() -> None:
    doc = openapi_v2()
    assert doc["swagger"] == "2.0"
    refs = set(_refs(doc))
    assert refs and all(ref.startswith(V2_PREFIX) for ref in refs)
    assert {ref.removeprefix(V2_PREFIX) for ref in refs} <= set(doc["definitions"])
    assert {p for _, _, op in _operations(doc) for p in op.get("produces", ())} >= {
        "application/json"
    }


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
def test_kinds_and_lists_carry_their_gvk(r: Resource) -> None:
    schemas = _v3(_gv_path(r))["components"]["schemas"]
    prefix = {"": "io.k8s.api.core.v1"}.get(r.group, f"io.k8s.api.{r.group.split('.')[0]}.v1")
    for kind in (r.kind, f"{r.kind}List"):
        gvk = schemas[f"{prefix}.{kind}"]["x-kubernetes-group-version-kind"]
        assert gvk == [{"group": r.group, "kind": kind, "version": r.version}]
    v2_metadata = openapi_v2()["definitions"][f"{prefix}.{r.kind}"]["properties"]["metadata"]
    assert v2_metadata["$ref"] == f"{V2_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert v2_metadata.get("description", "") == schema_for(r.kind).fields["metadata"].description


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
def test_resource_paths_and_operations(r: Resource) -> None:
    doc = _v3(_gv_path(r))
    base = "/" + _gv_path(r)
    scope = "namespaces/{namespace}/" if r.namespaced else ""
    collection = f"{base}/{scope}{r.plural}"
    item = f"{collection}/{{name}}"
    paths = doc["paths"]
    assert set(paths[collection]) == {"parameters", "get", "post", "delete"}
    assert set(paths[item]) == {"parameters", "get", "put", "patch", "delete"}
    assert paths[collection]["get"]["x-kubernetes-action"] == "list"
    assert paths[collection]["delete"]["x-kubernetes-action"] == "deletecollection"
    assert f"{base}/watch/{scope}{r.plural}/{{name}}" in paths
    if r.namespaced:
        assert set(paths[f"{base}/{r.plural}"]) == {"parameters", "get"}
    for sub in r.subresources:
        assert f"{item}/{sub}" in paths
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    assert paths[item]["patch"]["x-kubernetes-group-version-kind"] == gvk


def test_operation_ids_follow_kube() -> None:
    ids = {op["operationId"] for doc in (openapi_v2(),) for _, _, op in _operations(doc)}
    assert {
        "listCoreV1NamespacedPod",
        "listCoreV1PodForAllNamespaces",
        "readCoreV1NamespacedPodStatus",
        "patchCoreV1Node",
        "deleteCoreV1CollectionNamespacedPod",
        "watchCoreV1NamespacedPodList",
        "connectCoreV1PostNamespacedPodExec",
        "replaceAppsV1NamespacedDeploymentScale",
        "createDiscoveryV1NamespacedEndpointSlice",
        "patchCoordinationV1NamespacedLease",
        "replaceCoreV1NamespaceFinalize",
    } <= ids


@pytest.mark.parametrize("gv", sorted(openapi_v3_index()["paths"]))
def test_writes_accept_field_validation_and_dry_run(gv: str) -> None:
    doc = _v3(gv)
    writes = 0
    for path, method, op in _operations(doc):
        if method in ("post", "put", "patch") and op["x-kubernetes-action"] != "connect":
            writes += 1
            names = _param_names(doc["paths"][path], op)
            assert {"fieldValidation", "dryRun", "fieldManager"} <= names, (path, method)
            assert op["requestBody"]["required"] is True
        if method == "patch" and op["x-kubernetes-action"] == "patch":
            assert "application/strategic-merge-patch+json" in op["requestBody"]["content"]
            assert "force" in _param_names(doc["paths"][path], op)
        if op["x-kubernetes-action"] == "list":
            assert {"labelSelector", "watch", "resourceVersion"} <= _param_names(
                doc["paths"][path], op
            )
    assert writes > 0


def test_field_validation_parameter_shape() -> None:
    op = _v3("api/v1")["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    (param,) = [p for p in op["parameters"] if p["name"] == "fieldValidation"]
    assert param["in"] == "query" and param["schema"]["type"] == "string"


def test_patch_extensions_match_the_schema_tree() -> None:
    schemas = _v3("api/v1")["components"]["schemas"]
    ports = schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-type"] == "map"
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    volumes = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"]
    assert volumes["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    finalizers = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][
        "finalizers"
    ]
    assert finalizers["x-kubernetes-list-type"] == "set"
    assert "x-kubernetes-patch-merge-key" not in finalizers
    tolerations = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["tolerations"]
    assert not any(key.startswith("x-kubernetes") for key in tolerations)
    strategy = _v3("apis/apps/v1")["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"][
        "properties"
    ]["strategy"]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert strategy["allOf"] == [{"$ref": f"{V3_PREFIX}io.k8s.api.apps.v1.DeploymentStrategy"}]


def test_apimachinery_types_as_kube_publishes_them() -> None:
    schemas = _v3("apis/apps/v1")["components"]["schemas"]
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["format"] == "int-or-string"
    assert int_or_string["x-kubernetes-int-or-string"] is True
    quantity = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert {"type": "string"} in quantity["oneOf"]
    limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {
        "allOf": [{"$ref": f"{V3_PREFIX}io.k8s.apimachinery.pkg.api.resource.Quantity"}]
    }
    lease = _v3("apis/coordination.k8s.io/v1")["components"]["schemas"]
    renew = lease["io.k8s.api.coordination.v1.LeaseSpec"]["properties"]["renewTime"]
    assert renew["allOf"] == [
        {"$ref": f"{V3_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"}
    ]
    v2 = openapi_v2()["definitions"]
    assert v2["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("V1Pod", "io.k8s.api.core.v1.Pod"),
        ("CoreV1Event", "io.k8s.api.core.v1.Event"),
        ("CoreV1EndpointPort", "io.k8s.api.core.v1.EndpointPort"),
        ("DiscoveryV1EndpointPort", "io.k8s.api.discovery.v1.EndpointPort"),
        ("V1Endpoint", "io.k8s.api.discovery.v1.Endpoint"),
        ("V1Endpoints", "io.k8s.api.core.v1.Endpoints"),
        ("V1ObjectMeta", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        ("V1DeploymentStrategy", "io.k8s.api.apps.v1.DeploymentStrategy"),
        ("V1Lease", "io.k8s.api.coordination.v1.Lease"),
        ("V1Scale", "io.k8s.api.autoscaling.v1.Scale"),
    ],
)
def test_definition_names(model: str, name: str) -> None:
    assert definition_name(model) == name


# --- the real kubectl against a throwaway server ------------------------------------

KUBECTL = "/usr/bin/kubectl"


@dataclass
class FakeKube:
    """A throwaway server: discovery, the OpenAPI documents, and a tiny pod store that
    records what kubectl writes. Just enough for kubectl explain/create/apply."""

    kubeconfig: Path
    store: dict[str, Any] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    patches: list[Any] = field(default_factory=list)

    async def pods(self, request: web.Request) -> web.Response:
        if request.method in ("POST", "PUT", "PATCH"):
            self.writes.append((request.method, dict(request.query), request.content_type))
        if request.method == "POST":
            obj = await request.json()
            self.store[f"{request.path}/{obj['metadata']['name']}"] = obj
            return web.json_response(obj, status=201)
        if request.path not in self.store:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 404,
                "reason": "NotFound",
                "message": "not found",
            }
            return web.json_response(status, status=404)
        if request.method == "PATCH":
            self.patches.append(await request.json())
        return web.json_response(self.store[request.path])


def _serve(document: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        body = document(request)
        return web.json_response(body) if body is not None else web.json_response({}, status=404)

    return handler


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    version = {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}
    app = web.Application()
    for path, document in {
        "/version": lambda _: version,
        "/api": lambda _: discovery.api_versions("127.0.0.1"),
        "/apis": lambda _: discovery.api_group_list(),
        "/api/{v}": lambda r: discovery.api_resource_list("", r.match_info["v"]),
        "/apis/{g}/{v}": lambda r: discovery.api_resource_list(
            r.match_info["g"], r.match_info["v"]
        ),
        "/openapi/v3": lambda _: openapi_v3_index(),
        "/openapi/v3/{gv:.+}": lambda r: openapi_v3_document(r.match_info["gv"]),
        "/openapi/v2": lambda _: openapi_v2(),
    }.items():
        app.router.add_get(path, _serve(document))
    fake = FakeKube(tmp_path / "kubeconfig")
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods{rest:.*}", fake.pods)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "t", "user": {}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
                "current-context": "t",
            }
        )
    )
    try:
        yield fake
    finally:
        await runner.cleanup()


async def _kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> str:
    assert shutil.which(KUBECTL), f"{KUBECTL} is required for this test"
    env = {**os.environ, "HOME": str(kubeconfig.parent)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(kubeconfig.parent / "cache"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_kubectl_explain_reads_the_v3_documents(
    kube: FakeKube,
) -> None:
    kubeconfig = kube.kubeconfig
    out = await _kubectl(kubeconfig, "explain", "pods.spec.containers")
    assert "FIELD: containers <[]Container>" in out
    assert "env\t<[]EnvVar>" in out
    assert "name\t<string> -required-" in out
    out = await _kubectl(kubeconfig, "explain", "deployments.spec.strategy.rollingUpdate")
    assert "maxSurge\t<IntOrString>" in out
    out = await _kubectl(kubeconfig, "explain", "leases", "--api-version=coordination.k8s.io/v1")
    assert "KIND:       Lease" in out and "spec\t<LeaseSpec>" in out


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"containers": [{"name": "web", "image": "busybox:1"}]},
}


async def test_kubectl_trusts_server_side_field_validation_and_merges_by_key(
    kube: FakeKube,
) -> None:
    kubeconfig = kube.kubeconfig
    await _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(POD))
    changed = json.loads(json.dumps(POD))
    changed["spec"]["containers"][0]["image"] = "busybox:2"
    await _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(changed))

    # kubectl only sends fieldValidation when the v3 document says the server supports it
    assert kube.writes == [
        (
            "POST",
            {"fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"},
            "application/json",
        ),
        (
            "PATCH",
            {"fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"},
            "application/strategic-merge-patch+json",
        ),
    ]
    (patch,) = kube.patches
    assert patch["spec"] == {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"image": "busybox:2", "name": "web"}],
    }
