"""Endpoints and EndpointSlices for Services.

Pure core: `desired_endpoints(service, pods)` and `desired_slices(service, pods)` give
the objects a Service should have: one endpoint per pod that has an IP and is not
finished, with named targetPorts resolved per pod from its container ports (pods that
resolve to different numbers land in different subsets/slices), `ready` (pod Ready, or
`publishNotReadyAddresses`), `serving` and `terminating` for pods being deleted (which
Endpoints leave out unless publishing not-ready addresses), `hostname` when the pod's
`subdomain` names the Service, and `nodeName`. Slices hold at most 100 endpoints,
sorted by address, with deterministic names, so that a pod turning Ready rewrites one
slice. `mirror_slices(service, endpoints)` mirrors a selector-less Service's
user-written Endpoints (the `kubernetes` Service's included) into slices.

The controller keeps pods and slices indexed by namespace/service so a pod change
costs one pass over that namespace's pods, writes only objects that differ, and remembers
what it wrote so a lagging cache never makes it write stale versions.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

from minikube_py.api import labels
from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import (
    Controller,
    ignore_missing,
    key_of,
    owner_ref,
    pod_ready,
    split_key,
)

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MIRROR_MANAGED_BY = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MAX_ENDPOINTS_PER_SLICE = 100

Ports = tuple[tuple[str, int, str, str | None], ...]  # (name, port, protocol, appProtocol)


def resolve_target_port(svc_port: Obj, pod: Obj) -> int | None:
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    proto = svc_port.get("protocol") or "TCP"
    for c in pod.get("spec", {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto:
                return int(p["containerPort"])
    return None


def pod_ports(service: Obj, pod: Obj) -> Ports:
    out = []
    for sp in service.get("spec", {}).get("ports") or []:
        port = resolve_target_port(sp, pod)
        if port is not None:
            out.append(
                (sp.get("name") or "", port, sp.get("protocol") or "TCP", sp.get("appProtocol"))
            )
    return tuple(out)


def _selected_pods(service: Obj, pods: list[Obj], include_terminating: bool) -> list[Obj]:
    out = []
    for pod in pods:
        if not pod.get("status", {}).get("podIP"):
            continue
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"].get("deletionTimestamp") and not include_terminating:
            continue
        out.append(pod)
    return sorted(out, key=lambda p: (p["status"]["podIP"], p["metadata"]["name"]))


def _hostname(service: Obj, pod: Obj) -> str | None:
    spec = pod.get("spec", {})
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        return str(spec["hostname"])
    return None


def _target_ref(pod: Obj) -> Obj:
    md = pod["metadata"]
    return {"kind": "Pod", "namespace": md["namespace"], "name": md["name"], "uid": md.get("uid")}


def _ports_json(ports: Ports) -> list[Obj]:
    out = []
    for name, port, proto, app in ports:
        p: Obj = {"name": name, "port": port, "protocol": proto}
        if app:
            p["appProtocol"] = app
        out.append(p)
    return out


def _service_labels(service: Obj) -> dict[str, str]:
    return dict(service["metadata"].get("labels") or {})


def desired_endpoints(service: Obj, pods: list[Obj]) -> Obj:
    """The Endpoints object for a Service with a selector."""
    md = service["metadata"]
    publish = bool(service.get("spec", {}).get("publishNotReadyAddresses"))
    subsets: dict[Ports, Obj] = {}
    for pod in _selected_pods(service, pods, include_terminating=publish):
        ports = pod_ports(service, pod)
        if service.get("spec", {}).get("ports") and not ports:
            continue
        addr: Obj = {"ip": pod["status"]["podIP"], "targetRef": _target_ref(pod)}
        if pod["spec"].get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        host = _hostname(service, pod)
        if host:
            addr["hostname"] = host
        subset = subsets.setdefault(ports, {"ports": _ports_json(ports)})
        bucket = "addresses" if publish or pod_ready(pod) else "notReadyAddresses"
        subset.setdefault(bucket, []).append(addr)
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": md["name"],
            "namespace": md["namespace"],
            "labels": _service_labels(service),
        },
        "subsets": [subsets[k] for k in sorted(subsets)],
    }
    for s in body["subsets"]:
        if not s["ports"]:
            del s["ports"]
    return body


def _slice(
    service: Obj,
    ports: Ports,
    chunk: int,
    endpoints: list[Obj],
    managed_by: str,
    name: str | None = None,
) -> Obj:
    md = service["metadata"]
    digest = hashlib.sha1(json.dumps(ports).encode()).hexdigest()[:5]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{md['name'][:52]}-{digest}{chunk}",
            "namespace": md["namespace"],
            "labels": {
                **_service_labels(service),
                SERVICE_NAME_LABEL: md["name"],
                MANAGED_BY_LABEL: managed_by,
            },
            "ownerReferences": [owner_ref(service)] if md.get("uid") else [],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": _ports_json(ports),
    }


def _chunks(service: Obj, groups: dict[Ports, list[Obj]], managed_by: str) -> list[Obj]:
    out = []
    for ports in sorted(groups):
        eps = groups[ports]
        for i in range(0, max(len(eps), 1), MAX_ENDPOINTS_PER_SLICE):
            out.append(
                _slice(
                    service,
                    ports,
                    i // MAX_ENDPOINTS_PER_SLICE,
                    eps[i : i + MAX_ENDPOINTS_PER_SLICE],
                    managed_by,
                )
            )
    return out


def desired_slices(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The EndpointSlices for a Service with a selector (one, empty, when no pod)."""
    publish = bool(service.get("spec", {}).get("publishNotReadyAddresses"))
    groups: dict[Ports, list[Obj]] = {}
    for pod in _selected_pods(service, pods, include_terminating=True):
        ports = pod_ports(service, pod)
        if service.get("spec", {}).get("ports") and not ports:
            continue
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        serving = publish or pod_ready(pod)
        ep: Obj = {
            "addresses": [pod["status"]["podIP"]],
            "conditions": {
                "ready": serving and not terminating,
                "serving": serving,
                "terminating": terminating,
            },
            "targetRef": _target_ref(pod),
        }
        if pod["spec"].get("nodeName"):
            ep["nodeName"] = pod["spec"]["nodeName"]
        host = _hostname(service, pod)
        if host:
            ep["hostname"] = host
        groups.setdefault(ports, []).append(ep)
    if not groups:
        groups[pod_ports(service, {})] = []
    return _chunks(service, groups, MANAGED_BY)


def mirror_slices(service: Obj, endpoints: Obj | None) -> list[Obj]:
    """Slices mirroring a selector-less Service's Endpoints."""
    groups: dict[Ports, list[Obj]] = {}
    for subset in (endpoints or {}).get("subsets") or []:
        ports: Ports = tuple(
            (p.get("name") or "", int(p["port"]), p.get("protocol") or "TCP", p.get("appProtocol"))
            for p in subset.get("ports") or []
        )
        eps = groups.setdefault(ports, [])
        for bucket, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in subset.get(bucket) or []:
                ep: Obj = {
                    "addresses": [a["ip"]],
                    "conditions": {"ready": ready, "serving": ready, "terminating": False},
                }
                for k in ("nodeName", "hostname", "targetRef"):
                    if a.get(k):
                        ep[k] = a[k]
                eps.append(ep)
    return _chunks(service, groups, MIRROR_MANAGED_BY) if groups else []


def mirrors(service: Obj, endpoints: Obj | None) -> bool:
    """Whether a selector-less Service's Endpoints are mirrored. The `kubernetes`
    Service always is: kube's apiserver writes that slice itself, ours does not."""
    md = service["metadata"]
    if (md.get("namespace"), md["name"]) == ("default", "kubernetes"):
        return True
    return ((endpoints or {}).get("metadata", {}).get("labels") or {}).get(
        SKIP_MIRROR_LABEL
    ) != "true"


def differs(want: Obj, have: Obj) -> bool:
    """Whether `have` lacks what `want` asks for (ignoring server-set metadata)."""
    for k, v in want.items():
        if k == "metadata":
            hm = have.get("metadata", {})
            if any(
                hm.get(f) != v.get(f)
                for f in ("labels", "ownerReferences")
                if v.get(f) or hm.get(f)
            ):
                return True
        elif have.get(k) != v:
            return True
    return False


# ---------------------------------------------------------------------- controller


class EndpointsController(Controller):
    name = "endpoints"
    workers = 8

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.services = self.informers["Service"]
        self.pods = self.informers["Pod"]
        self.endpoints = self.informers["Endpoints"]
        self.slices = self.informers["EndpointSlice"]
        self.pods_by_ns: dict[str, dict[str, Obj]] = {}
        self.slices_by_svc: dict[str, dict[str, Obj]] = {}
        self.written: dict[str, Obj] = {}  # key -> the latest object we wrote
        self.selectors: dict[str, labels.Selector] = {}
        self.services.add_handler(lambda t, o, _: self.enqueue(key_of(o)))
        self.pods.add_handler(self._on_pod)
        self.endpoints.add_handler(self._on_endpoints)
        self.slices.add_handler(self._on_slice)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        ns = pod["metadata"]["namespace"]
        key = key_of(pod)
        if type_ == "DELETED":
            self.pods_by_ns.get(ns, {}).pop(key, None)
        else:
            self.pods_by_ns.setdefault(ns, {})[key] = pod
        for svc_key, sel in self._selectors_in(ns):
            if labels.matches(sel, pod["metadata"].get("labels")) or (
                old is not None and labels.matches(sel, old["metadata"].get("labels"))
            ):
                self.enqueue(svc_key)

    def _selectors_in(self, ns: str) -> list[tuple[str, labels.Selector]]:
        out = []
        for key, svc in self.services.cache.items():
            if svc["metadata"]["namespace"] == ns and svc.get("spec", {}).get("selector"):
                rv = svc["metadata"].get("resourceVersion")
                cached = self.selectors.get(f"{key}@{rv}")
                if cached is None:
                    cached = labels.from_map(svc["spec"]["selector"])
                    self.selectors[f"{key}@{rv}"] = cached
                out.append((key, cached))
        return out

    def _on_endpoints(self, type_: str, ep: Obj, old: Obj | None) -> None:
        self.enqueue(key_of(ep))

    def _on_slice(self, type_: str, sl: Obj, old: Obj | None) -> None:
        svc = (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not svc:
            return
        svc_key = f"{sl['metadata']['namespace']}/{svc}"
        if type_ == "DELETED":
            self.slices_by_svc.get(svc_key, {}).pop(sl["metadata"]["name"], None)
        else:
            self.slices_by_svc.setdefault(svc_key, {})[sl["metadata"]["name"]] = sl
        self.enqueue(svc_key)

    def enqueue_all(self) -> None:
        for key in self.services.cache:
            self.enqueue(key)

    def _current(self, key: str, cached: Obj | None) -> Obj | None:
        """The newer of the cache's copy and our last write."""
        mine = self.written.get(key)
        if cached is None or mine is None:
            return cached or mine
        if int(mine["metadata"]["resourceVersion"]) > int(cached["metadata"]["resourceVersion"]):
            return mine
        return cached

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        managed = {
            n: s
            for n, s in self.slices_by_svc.get(key, {}).items()
            if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL)
            in (MANAGED_BY, MIRROR_MANAGED_BY)
        }
        if svc is None or svc["metadata"].get("deletionTimestamp"):
            await asyncio.gather(*(self._delete("EndpointSlice", ns, n) for n in managed))
            if svc is None and f"Endpoints:{key}" in self.written:
                await self._delete("Endpoints", ns, name)
            return
        writes = []
        if svc.get("spec", {}).get("selector"):
            sel = labels.from_map(svc["spec"]["selector"])
            pods = [
                p
                for p in self.pods_by_ns.get(ns, {}).values()
                if labels.matches(sel, p["metadata"].get("labels"))
            ]
            writes.append(self._apply(desired_endpoints(svc, pods)))
            want = desired_slices(svc, pods)
        else:
            ep = self.endpoints.get(key)
            want = mirror_slices(svc, ep) if mirrors(svc, ep) else []
        wanted_names = {s["metadata"]["name"] for s in want}
        writes += [self._apply(s) for s in want]
        writes += [self._delete("EndpointSlice", ns, n) for n in managed if n not in wanted_names]
        await asyncio.gather(*writes)

    async def _apply(self, want: Obj) -> None:
        md = want["metadata"]
        key = f"{want['kind']}:{md['namespace']}/{md['name']}"
        cached = (
            self.endpoints.get(f"{md['namespace']}/{md['name']}")
            if want["kind"] == "Endpoints"
            else self.slices_by_svc.get(
                f"{md['namespace']}/{md['labels'][SERVICE_NAME_LABEL]}", {}
            ).get(md["name"])
        )
        have = self._current(key, cached)
        if have is not None and not differs(want, have):
            return
        if have is None:
            try:
                self.written[key] = await self.client.create(want)
                return
            except ApiException as e:
                if e.code != 409:
                    raise
                have = await self.client.get(want["kind"], md["name"], md["namespace"])
        body = {**have, **{k: v for k, v in want.items() if k != "metadata"}}
        body["metadata"] = {**have["metadata"], "labels": md["labels"]}
        if md.get("ownerReferences"):
            body["metadata"]["ownerReferences"] = md["ownerReferences"]
        try:
            self.written[key] = await self.client.update(body)
        except ApiException as e:
            if e.code == 409:
                self.written.pop(key, None)  # stale: re-read on the retry
            raise

    async def _delete(self, kind: str, ns: str, name: str) -> None:
        self.written.pop(f"{kind}:{ns}/{name}", None)
        await ignore_missing(self.client.delete(kind, name, ns))
