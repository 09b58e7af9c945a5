"""Endpoints and EndpointSlices for Services.

Pure core. `pod_member(service, pod, node_exists)` is what one pod contributes to one
Service: its EndpointSlice endpoint and its Endpoints address, or None for a pod without
an IP, a finished one, one none of whose ports resolve, or (as kube's reconciler skips
it, unless `publishNotReadyAddresses`) one bound to a Node that no longer exists: no
kubelet runs it, and the pod garbage collector deletes it later. Named targetPorts
resolve per pod from its container ports (pods that resolve to different numbers land in different
subsets/slices); `ready` follows the pod's Ready condition (or
`publishNotReadyAddresses`), `serving`/`terminating` mark pods being deleted (which
Endpoints leave out unless publishing not-ready addresses), `hostname` is set when the
pod's `subdomain` names the Service, and `nodeName` always.
`endpoints_object(service, members)` is the Service's Endpoints.
`plan_slices(service, endpoints, existing)` is the EndpointSlice reconciler, as kube's:
existing slices are kept and only the ones whose content changes are rewritten; an
endpoint stays in the slice that holds it; new endpoints go first into slices that are
rewritten anyway (fullest first), then, when the rest fit, into the fullest untouched
slice with room, else into new slices of at most 100; emptied slices are deleted,
except that a Service with no endpoints keeps one empty placeholder. So a pod turning
Ready rewrites exactly one slice. `desired_slices(service, pods)` is the same plan
from nothing; `mirror_endpoints(endpoints)` gives a selector-less Service's
user-written Endpoints (the `kubernetes` Service's included) to mirror into slices.

The controller keeps, per Service, each selected pod's member, updated on pod events
(services are found through a by-namespace index and cached selectors), so a pod
change costs one member computation and, only when the member changed, a reconcile
that compares rather than rebuilds. A change in place (same address, pod and ports: a
readiness flip, a termination) is planned against the layout the last plan left
(`plan_in_place`), over the one slice holding it rather than every endpoint of the
Service; anything else, or any doubt, plans the whole Service. Slices and Endpoints
have separate work queues (as kube's two controllers do), so the large Endpoints write
never delays a slice, and pod changes reach Endpoints after kube's
`--endpoint-updates-batch-period` (here 1 s by default; kube's is 0), which folds a
burst of pod changes into one write of that O(pods) object: nothing in the data path
reads Endpoints (proxy and DNS read slices).
What it wrote is remembered until the informer catches up, so a lagging cache never
makes it plan from stale slices, and its own echoes trigger no reconcile.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from minikube_py.api import labels
from minikube_py.api.timestamps import micro_time
from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import (
    BY_NODE,
    Controller,
    bound_node,
    ignore_missing,
    key_of,
    owner_ref,
    pod_ready,
    split_key,
)
from minikube_py.informer import WorkQueue

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MIRROR_MANAGED_BY = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MAX_ENDPOINTS_PER_SLICE = 100

Ports = tuple[tuple[str, int, str, str | None], ...]  # (name, port, protocol, appProtocol)
EndpointKey = tuple[str, str]  # (address, target pod name): one endpoint of a Service


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


def _ports_json(ports: Ports) -> list[Obj]:
    out = []
    for name, port, proto, app in ports:
        p: Obj = {"name": name, "port": port, "protocol": proto}
        if app:
            p["appProtocol"] = app
        out.append(p)
    return out


def _ports_of(items: list[Obj] | None) -> Ports:
    """The inverse of `_ports_json`, for ports read back from the API."""
    return tuple(
        (p.get("name") or "", int(p["port"]), p.get("protocol") or "TCP", p.get("appProtocol"))
        for p in items or []
    )


def endpoint_key(endpoint: Obj) -> EndpointKey:
    return (endpoint["addresses"][0], (endpoint.get("targetRef") or {}).get("name", ""))


@dataclass(frozen=True)
class Member:
    """What one pod contributes to one Service."""

    ports: Ports
    endpoint: Obj  # its EndpointSlice endpoint
    address: Obj | None  # its Endpoints address; None when Endpoints leave it out
    ready: bool  # in Endpoints' `addresses` rather than `notReadyAddresses`

    @property
    def key(self) -> EndpointKey:
        return endpoint_key(self.endpoint)


def pod_member(service: Obj, pod: Obj, node_exists: bool = True) -> Member | None:
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") in ("Succeeded", "Failed"):
        return None
    publish = bool(service.get("spec", {}).get("publishNotReadyAddresses"))
    if not node_exists and not publish:
        return None
    ports = pod_ports(service, pod)
    if service.get("spec", {}).get("ports") and not ports:
        return None
    md, spec = pod["metadata"], pod.get("spec") or {}
    terminating = bool(md.get("deletionTimestamp"))
    serving = publish or pod_ready(pod)
    target = {"kind": "Pod", "namespace": md["namespace"], "name": md["name"], "uid": md.get("uid")}
    address: Obj = {"ip": ip, "targetRef": target}
    endpoint: Obj = {
        "addresses": [ip],
        "conditions": {
            "ready": serving and not terminating,
            "serving": serving,
            "terminating": terminating,
        },
        "targetRef": target,
    }
    if spec.get("nodeName"):
        address["nodeName"] = endpoint["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        address["hostname"] = endpoint["hostname"] = str(spec["hostname"])
    return Member(ports, endpoint, address if publish or not terminating else None, serving)


def _service_labels(service: Obj) -> dict[str, str]:
    return dict(service["metadata"].get("labels") or {})


def endpoints_object(service: Obj, members: Iterable[Member]) -> Obj:
    """The Endpoints object for a Service with a selector."""
    md = service["metadata"]
    subsets: dict[Ports, Obj] = {}
    for m in sorted(members, key=lambda m: m.key):
        if m.address is None:
            continue
        subset = subsets.setdefault(m.ports, {"ports": _ports_json(m.ports)})
        subset.setdefault("addresses" if m.ready else "notReadyAddresses", []).append(m.address)
    for s in subsets.values():
        if not s["ports"]:
            del s["ports"]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": md["name"],
            "namespace": md["namespace"],
            "labels": _service_labels(service),
        },
        "subsets": [subsets[k] for k in sorted(subsets)],
    }


def desired_endpoints(service: Obj, pods: list[Obj]) -> Obj:
    return endpoints_object(service, _members(service, pods))


def _members(service: Obj, pods: list[Obj]) -> list[Member]:
    return [m for m in (pod_member(service, p) for p in pods) if m is not None]


# ---------------------------------------------------------------------- slices


def slice_metadata(service: Obj, managed_by: str) -> Obj:
    """The labels and owner every slice of the Service carries."""
    md = service["metadata"]
    return {
        "namespace": md["namespace"],
        "labels": {
            **_service_labels(service),
            SERVICE_NAME_LABEL: md["name"],
            MANAGED_BY_LABEL: managed_by,
        },
        "ownerReferences": [owner_ref(service)] if md.get("uid") else [],
    }


def _slice_name(service: Obj, ports: Ports, index: int) -> str:
    digest = hashlib.sha1(json.dumps(ports).encode()).hexdigest()[:5]
    return f"{service['metadata']['name'][:52]}-{digest}{index}"


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)  # full bodies, from the existing ones
    delete: list[str] = field(default_factory=list)  # names


@dataclass
class _Slot:
    """An existing slice being planned: the endpoints it keeps, and whether it changes."""

    slice: Obj
    endpoints: list[Obj]
    changed: bool


def _sorted_endpoints(endpoints: list[Obj]) -> list[Obj]:
    return sorted(endpoints, key=endpoint_key)


def plan_slices(
    service: Obj,
    endpoints: Iterable[tuple[Ports, Obj]],
    existing: Iterable[Obj],
    managed_by: str = MANAGED_BY,
    placeholder: bool = True,
) -> SlicePlan:
    """Creates, updates and deletes that turn `existing` (this manager's slices of the
    Service) into slices holding exactly `endpoints`, rewriting as few as possible."""
    meta = slice_metadata(service, managed_by)
    want: dict[Ports, dict[EndpointKey, Obj]] = {}
    for ports, ep in endpoints:
        want.setdefault(ports, {})[endpoint_key(ep)] = ep
    if not want and placeholder:
        want[pod_ports(service, {})] = {}
    plan = SlicePlan()
    taken = set()
    by_ports: dict[Ports, list[_Slot]] = {}
    for sl in sorted(existing, key=lambda s: s["metadata"]["name"]):
        taken.add(sl["metadata"]["name"])
        ports = _ports_of(sl.get("ports"))
        if ports not in want or sl.get("addressType", "IPv4") != "IPv4":
            plan.delete.append(sl["metadata"]["name"])
            continue
        have_md = sl["metadata"]
        changed = any(
            (have_md.get(f) or None) != (meta[f] or None) for f in ("labels", "ownerReferences")
        )
        by_ports.setdefault(ports, []).append(_Slot(sl, [], changed))

    def new_slot(ports: Ports) -> _Slot:
        index = 0
        while _slice_name(service, ports, index) in taken:
            index += 1
        name = _slice_name(service, ports, index)
        taken.add(name)
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {**meta, "name": name},
            "addressType": "IPv4",
            "ports": _ports_json(ports),
        }
        return _Slot(body, [], True)

    for ports in sorted(want):
        wanted = want[ports]
        slots = by_ports.get(ports, [])
        placed: set[EndpointKey] = set()
        for slot in slots:
            for ep in slot.slice.get("endpoints") or []:
                key = endpoint_key(ep)
                target = wanted.get(key)
                if target is None or key in placed:
                    slot.changed = True
                    continue
                placed.add(key)
                slot.changed |= target != ep
                slot.endpoints.append(target)
        rest = [wanted[k] for k in sorted(wanted.keys() - placed)]
        for slot in sorted(
            (s for s in slots if s.changed), key=lambda s: len(s.endpoints), reverse=True
        ):
            room = MAX_ENDPOINTS_PER_SLICE - len(slot.endpoints)
            if room > 0 and rest:
                slot.endpoints += rest[:room]
                rest = rest[room:]
        new: list[_Slot] = []
        while len(rest) > MAX_ENDPOINTS_PER_SLICE:
            new.append(new_slot(ports))
            new[-1].endpoints = rest[:MAX_ENDPOINTS_PER_SLICE]
            rest = rest[MAX_ENDPOINTS_PER_SLICE:]
        if rest:
            fits = [
                s
                for s in slots
                if not s.changed and len(s.endpoints) + len(rest) <= MAX_ENDPOINTS_PER_SLICE
            ]
            slot = max(fits, key=lambda s: len(s.endpoints)) if fits else new_slot(ports)
            slot.endpoints += rest
            slot.changed = True
            if not fits:
                new.append(slot)
        keep_empty = not wanted and not new and placeholder
        for slot in slots:
            if not slot.endpoints and not keep_empty:
                plan.delete.append(slot.slice["metadata"]["name"])
                continue
            keep_empty = False
            if slot.changed:
                plan.update.append(
                    {
                        **slot.slice,
                        "metadata": {**slot.slice["metadata"], **meta},
                        "endpoints": _sorted_endpoints(slot.endpoints),
                    }
                )
        if keep_empty:
            new.append(new_slot(ports))
        plan.create += [{**s.slice, "endpoints": _sorted_endpoints(s.endpoints)} for s in new]
    return plan


def slice_layout(slices: Iterable[Obj]) -> dict[EndpointKey, str]:
    """Which slice (by name) holds each endpoint."""
    return {
        endpoint_key(ep): sl["metadata"]["name"]
        for sl in slices
        for ep in sl.get("endpoints") or []
    }


def plan_in_place(
    service: Obj,
    slices: Iterable[Obj],
    layout: dict[EndpointKey, str],
    changed: Iterable[EndpointKey],
    members: dict[str, Member],
) -> SlicePlan | None:
    """`plan_slices`' answer when the slices were last planned into `layout` and since
    then only the endpoints `changed` changed in place (same address, pod and ports,
    such as a readiness flip): only the slices holding them are planned, from their
    pods' current members (by pod key), so a flip costs one slice, not every endpoint
    of the Service. None when that does not hold (a slice or a member is missing or
    moved): the caller plans the whole Service."""
    by_name = {s["metadata"]["name"]: s for s in slices}
    affected = []
    for name in {layout.get(k) for k in changed}:
        sl = by_name.get(name) if name is not None else None
        if sl is None:
            return None
        affected.append(sl)
    endpoints = []
    for sl in affected:
        ports = _ports_of(sl.get("ports"))
        for ep in sl.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            m = members.get(f"{ref.get('namespace')}/{ref.get('name')}")
            if m is None or m.ports != ports or m.key != endpoint_key(ep):
                return None
            endpoints.append((ports, m.endpoint))
    return plan_slices(service, endpoints, affected, placeholder=False)


def desired_slices(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The EndpointSlices a Service with a selector gets from nothing (one, empty,
    when no pod)."""
    members = _members(service, pods)
    return plan_slices(service, ((m.ports, m.endpoint) for m in members), []).create


def mirror_endpoints(endpoints: Obj | None) -> list[tuple[Ports, Obj]]:
    """A selector-less Service's Endpoints as slice endpoints, by ports."""
    out = []
    for subset in (endpoints or {}).get("subsets") or []:
        ports = _ports_of(subset.get("ports"))
        for bucket, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in subset.get(bucket) or []:
                ep: Obj = {
                    "addresses": [a["ip"]],
                    "conditions": {"ready": ready, "serving": ready, "terminating": False},
                }
                for k in ("nodeName", "hostname", "targetRef"):
                    if a.get(k):
                        ep[k] = a[k]
                out.append((ports, ep))
    return out


def mirror_slices(service: Obj, endpoints: Obj | None) -> list[Obj]:
    """Slices mirroring a selector-less Service's Endpoints (none for none)."""
    return plan_slices(
        service, mirror_endpoints(endpoints), [], MIRROR_MANAGED_BY, placeholder=False
    ).create


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

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


_NOT_OURS: Obj = {}


def _rv(obj: Obj) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


def _service_of(sl: Obj) -> list[str]:
    svc = (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{sl['metadata']['namespace']}/{svc}"] if svc else []


def _namespace_of(obj: Obj) -> list[str]:
    return [obj["metadata"].get("namespace", "")]


class EndpointsController(Controller):
    name = "endpoints"
    workers = 8

    def __init__(self, *args: Any, endpoint_updates_batch_period: float = 1.0, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.endpoint_updates_batch_period = endpoint_updates_batch_period
        self.services = self.informers["Service"]
        self.pods = self.informers["Pod"]
        self.endpoints = self.informers["Endpoints"]
        self.slices = self.informers["EndpointSlice"]
        self.services.add_index("namespace", _namespace_of)
        self.pods.add_index("namespace", _namespace_of)
        self.pods.add_index(BY_NODE, bound_node)
        self.nodes = self.informers["Node"]
        self.slices.add_index("service", _service_of)
        self.endpoints_queue: WorkQueue[str] = WorkQueue()  # self.queue is for slices
        self.selectors: dict[str, labels.Selector] = {}  # services with a selector
        self.members: dict[str, dict[str, Member]] = {}  # service -> pod key -> member
        # our latest write per Service and slice name (None: deleted) until the cache
        # has caught up with it
        self.own_slices: dict[str, dict[str, Obj | None]] = {}
        self.own_endpoints: dict[str, Obj] = {}
        # per Service with a selector whose slices were planned and written: where each
        # endpoint went, and the endpoints changed in place since (`plan_in_place`). A
        # Service missing from `in_place` is planned whole: after any other pod change,
        # a Service change, a slice written by someone else, or a failed write.
        self.layout: dict[str, dict[EndpointKey, str]] = {}
        self.in_place: dict[str, set[EndpointKey]] = {}
        self.gone: set[str] = set()  # deleted Services whose Endpoints are to go too
        # when this controller first saw a change not yet written, per Service: the
        # slices carry it (TRIGGER_TIME_ANNOTATION) so that proxies can measure the
        # network programming latency, as kube's EndpointSlice controller does
        self.triggered: dict[str, float] = {}
        self.services.add_handler(self._on_service)
        self.pods.add_handler(self._on_pod)
        self.endpoints.add_handler(self._on_endpoints)
        self.slices.add_handler(self._on_slice)
        self.nodes.add_handler(self._on_node)

    def enqueue(self, key: str) -> None:
        self.queue.add(key)
        self.endpoints_queue.add(key)

    def enqueue_all(self) -> None:
        for key in self.services.cache:
            self.enqueue(key)

    async def run(self) -> None:
        self.enqueue_all()
        await asyncio.gather(
            self.queue.run_workers(self._reconcile_quietly, self.workers),
            self.endpoints_queue.run_workers(self._reconcile_endpoints_quietly, 4),
        )

    # ------------------------------------------------------------------ event handlers

    def _on_service(self, type_: str, svc: Obj, old: Obj | None) -> None:
        key = key_of(svc)
        selector = svc.get("spec", {}).get("selector")
        if type_ == "DELETED":
            self.gone.add(key)
        else:
            self.gone.discard(key)
        self.in_place.pop(key, None)
        if type_ == "DELETED" or not selector:
            self.selectors.pop(key, None)
            self.members.pop(key, None)
            self.layout.pop(key, None)
        elif old is None or old.get("spec") != svc.get("spec") or key not in self.members:
            self.selectors[key] = sel = labels.from_map(selector)
            pods = self.pods.by_index("namespace", svc["metadata"]["namespace"])
            self.members[key] = {
                pod_key: m
                for pod_key, pod in pods.items()
                if labels.matches(sel, pod["metadata"].get("labels"))
                and (m := pod_member(svc, pod, self._node_exists(pod))) is not None
            }
            self.triggered.setdefault(key, time.time())
        self.enqueue(key)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        pod_key = key_of(pod)
        pod_labels = pod["metadata"].get("labels")
        for svc_key, svc in self.services.by_index(
            "namespace", pod["metadata"]["namespace"]
        ).items():
            sel = self.selectors.get(svc_key)
            if sel is None:
                continue
            members = self.members.setdefault(svc_key, {})
            before = members.get(pod_key)
            after = (
                pod_member(svc, pod, self._node_exists(pod))
                if type_ != "DELETED" and labels.matches(sel, pod_labels)
                else None
            )
            if after == before:
                continue
            if after is None:
                del members[pod_key]
            else:
                members[pod_key] = after
            changed = self.in_place.get(svc_key)
            if changed is not None:
                if before and after and (before.key, before.ports) == (after.key, after.ports):
                    changed.add(after.key)
                else:
                    del self.in_place[svc_key]
            self.triggered.setdefault(svc_key, time.time())
            self.queue.add(svc_key)
            self.endpoints_queue.add_after(svc_key, self.endpoint_updates_batch_period)

    def _node_exists(self, pod: Obj) -> bool:
        node = pod.get("spec", {}).get("nodeName")
        return not node or self.nodes.get(node) is not None

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        """A Node that appears or goes changes whether its pods are endpoints."""
        if type_ in ("ADDED", "DELETED"):
            for pod in list(self.pods.by_index(BY_NODE, node["metadata"]["name"]).values()):
                self._on_pod("MODIFIED", pod, pod)

    def _on_endpoints(self, type_: str, ep: Obj, old: Obj | None) -> None:
        key = key_of(ep)
        mine = self.own_endpoints.get(key)
        if type_ == "DELETED":
            self.own_endpoints.pop(key, None)
        elif mine is not None and _rv(ep) >= _rv(mine):
            del self.own_endpoints[key]
            if _rv(ep) == _rv(mine):
                return  # our own write coming back
        self.enqueue(key)  # a user's change to ours is undone; a mirrored one is copied

    def _on_slice(self, type_: str, sl: Obj, old: Obj | None) -> None:
        for svc_key in _service_of(sl):
            own = self.own_slices.get(svc_key, {})
            name = sl["metadata"]["name"]
            mine = own.get(name, _NOT_OURS)
            if mine is not _NOT_OURS:
                if mine is None:  # we deleted it: its deletion or an older version
                    if type_ == "MODIFIED":
                        continue
                    del own[name]
                    if type_ == "DELETED":
                        continue
                elif type_ == "DELETED" or _rv(sl) >= _rv(mine):
                    del own[name]
                    if type_ != "DELETED" and _rv(sl) == _rv(mine):
                        continue  # our own write coming back
                else:
                    continue  # older than what we wrote
            self.in_place.pop(svc_key, None)
            self.queue.add(svc_key)

    # ------------------------------------------------------------------ slices

    def _slices_of(self, svc_key: str) -> list[Obj]:
        """This Service's slices as they now are: the cache's, overlaid with our writes
        it has not caught up with yet."""
        current = {
            s["metadata"]["name"]: s for s in self.slices.by_index("service", svc_key).values()
        }
        for name, mine in self.own_slices.get(svc_key, {}).items():
            if mine is None:
                current.pop(name, None)
            elif name not in current or _rv(mine) > _rv(current[name]):
                current[name] = mine
        return list(current.values())

    async def reconcile(self, key: str) -> None:
        triggered = self.triggered.pop(key, None)
        svc = self.services.get(key)
        slices = self._slices_of(key)
        managed: dict[str, list[Obj]] = {MANAGED_BY: [], MIRROR_MANAGED_BY: []}
        for s in slices:
            by = (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL, "")
            if by in managed:
                managed[by].append(s)
        if svc is None or svc["metadata"].get("deletionTimestamp"):
            manager, plan = MANAGED_BY, SlicePlan()
            plan.delete = [s["metadata"]["name"] for ss in managed.values() for s in ss]
        elif key in self.selectors:
            manager = MANAGED_BY
            plan = self._plan_selected(key, svc, managed[MANAGED_BY])
            plan.delete += [s["metadata"]["name"] for s in managed[MIRROR_MANAGED_BY]]
        else:
            manager = MIRROR_MANAGED_BY
            ep = self.endpoints.get(key)
            wanted = mirror_endpoints(ep) if mirrors(svc, ep) else []
            plan = plan_slices(svc, wanted, managed[manager], manager, placeholder=False)
            plan.delete += [s["metadata"]["name"] for s in managed[MANAGED_BY]]
        if triggered is not None:
            stamp = micro_time(datetime.datetime.fromtimestamp(triggered, datetime.UTC))
            for body in (*plan.create, *plan.update):
                md = body["metadata"]
                md["annotations"] = {**(md.get("annotations") or {}), TRIGGER_TIME: stamp}
        try:
            await asyncio.gather(
                *(self._write_slice(key, body, create=True) for body in plan.create),
                *(self._write_slice(key, body, create=False) for body in plan.update),
                *(self._delete_slice(key, name) for name in plan.delete),
            )
        except BaseException:
            self.in_place.pop(key, None)
            raise

    def _plan_selected(self, key: str, svc: Obj, slices: list[Obj]) -> SlicePlan:
        """The plan for a Service with a selector: only the slices holding endpoints
        changed in place when that is all that changed, else the whole Service. Either
        way, changes from here on are tracked against the layout it leaves."""
        members = self.members.get(key, {})
        changed = self.in_place.get(key)
        layout = self.layout.get(key)
        plan = None
        if changed is not None and layout is not None:
            plan = plan_in_place(svc, slices, layout, changed, members)
        if plan is None:
            plan = plan_slices(svc, ((m.ports, m.endpoint) for m in members.values()), slices)
            kept = {s["metadata"]["name"]: s for s in slices}
            for name in plan.delete:
                del kept[name]
            for body in (*plan.update, *plan.create):
                kept[body["metadata"]["name"]] = body
            self.layout[key] = slice_layout(kept.values())
        self.in_place[key] = set()
        return plan

    def _remember(self, svc_key: str, name: str, obj: Obj | None) -> None:
        self.own_slices.setdefault(svc_key, {})[name] = obj

    def _forget(self, svc_key: str, name: str) -> None:
        self.own_slices.get(svc_key, {}).pop(name, None)

    async def _write_slice(self, svc_key: str, body: Obj, create: bool) -> None:
        md = body["metadata"]
        try:
            if create:
                self._remember(svc_key, md["name"], await self.client.create(body))
            else:
                self._remember(svc_key, md["name"], await self.client.update(body))
        except ApiException as e:
            if e.code == 409 and create:  # the cache lags: plan again from the real one
                current = await self.client.get("EndpointSlice", md["name"], md["namespace"])
                self._remember(svc_key, md["name"], current)
            elif e.code in (404, 409):
                self._forget(svc_key, md["name"])  # ours was stale: plan again from the cache
            if e.code == 404:
                self.in_place.pop(svc_key, None)
                self.queue.add_after(svc_key, 0.05)
                return
            raise

    async def _delete_slice(self, svc_key: str, name: str) -> None:
        ns, _ = split_key(svc_key)
        self._remember(svc_key, name, None)
        try:
            await ignore_missing(self.client.delete("EndpointSlice", name, ns))
        except ApiException:
            self._forget(svc_key, name)
            raise

    # ------------------------------------------------------------------ Endpoints

    async def _reconcile_endpoints_quietly(self, key: str) -> None:
        try:
            await self.reconcile_endpoints(key)
        except ApiException as e:
            if e.code != 409:
                raise
            self.endpoints_queue.add_after(key, 0.05)

    async def reconcile_endpoints(self, key: str) -> None:
        """Selector Services' Endpoints follow their pods; selector-less Services keep
        the user's; a Service's deletion takes its Endpoints with it (as in kube, only
        when the deletion was seen, so Endpoints written before their Service stay)."""
        ns, name = split_key(key)
        svc = self.services.get(key)
        cached = self.endpoints.get(key)
        mine = self.own_endpoints.get(key)
        have = mine if mine is not None and (cached is None or _rv(mine) > _rv(cached)) else cached
        if svc is None:
            if key in self.gone and have is not None:
                self.own_endpoints.pop(key, None)
                await ignore_missing(self.client.delete("Endpoints", name, ns))
            self.gone.discard(key)
            return
        if key not in self.selectors or svc["metadata"].get("deletionTimestamp"):
            return
        want = endpoints_object(svc, self.members.get(key, {}).values())
        if have is not None and not differs(want, have):
            return
        try:
            if have is None:
                self.own_endpoints[key] = await self.client.create(want)
            else:
                body = {**have, "subsets": want["subsets"]}
                body["metadata"] = {**have["metadata"], "labels": want["metadata"]["labels"]}
                self.own_endpoints[key] = await self.client.update(body)
        except ApiException as e:
            if e.code == 409:
                self.own_endpoints.pop(key, None)  # stale: the retry reads the cache
                if have is None:
                    self.own_endpoints[key] = await self.client.get("Endpoints", name, ns)
            raise
