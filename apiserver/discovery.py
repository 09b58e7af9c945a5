"""Discovery documents, legacy and aggregated, built from the resource catalogue.

kubectl first asks `/api` and `/apis` with an Accept header preferring the aggregated
form (apidiscovery.k8s.io/v2 APIGroupDiscoveryList); older clients walk the legacy
APIVersions / APIGroupList / APIResourceList documents. Both come from RESOURCES.
"""

from __future__ import annotations

from minikube_py.api.resources import RESOURCES, Resource, group_versions
from minikube_py.api.types import Obj

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

# verbs of a subresource, as kube-apiserver lists them
_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "finalize": ["update"],
    "ephemeralcontainers": ["get", "patch", "update"],
    "token": ["create"],
    "eviction": ["create"],
}
_SUB_KIND = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "log": ("", "v1", "Pod"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "proxy": ("", "v1", "PodProxyOptions"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "eviction": ("policy", "v1", "Eviction"),
}


def _in(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(group: str) -> Obj:
    versions = [
        {"groupVersion": f"{g}/{v}", "version": v} for g, v in group_versions() if g == group
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> Obj:
    groups = sorted({g for g, _ in group_versions() if g})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in groups]}


def api_group(group: str) -> Obj | None:
    if not any(g == group for g, _ in group_versions()):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group)}


def api_resource_list(group: str, version: str) -> Obj | None:
    resources = _in(group, version)
    if not resources:
        return None
    out: list[Obj] = []
    for r in resources:
        entry: Obj = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            g, v, k = _SUB_KIND.get(sub, (r.group, r.version, r.kind))
            sub_entry: Obj = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": _SUB_VERBS.get(sub, ["get"]),
            }
            if g != r.group:
                sub_entry["group"], sub_entry["version"] = g, v
            out.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": out,
    }


def _aggregated_resource(r: Resource) -> Obj:
    entry: Obj = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if r.subresources:
        entry["subresources"] = []
        for sub in r.subresources:
            g, v, k = _SUB_KIND.get(sub, (r.group, r.version, r.kind))
            entry["subresources"].append(
                {
                    "subresource": sub,
                    "responseKind": {"group": g, "version": v, "kind": k},
                    "verbs": _SUB_VERBS.get(sub, ["get"]),
                }
            )
    return entry


def aggregated(legacy: bool, api_version: str = "apidiscovery.k8s.io/v2") -> Obj:
    """`legacy`: the document for /api (core group) rather than /apis."""
    groups = [""] if legacy else sorted({g for g, _ in group_versions() if g})
    items = []
    for group in groups:
        versions = [
            {
                "version": v,
                "resources": [_aggregated_resource(r) for r in _in(group, v)],
                "freshness": "Current",
            }
            for g, v in group_versions()
            if g == group
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    }
