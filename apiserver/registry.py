"""The registry: one create/update/patch/delete/watch path for every resource.

Each verb reads the current object, lets the kind's strategy (defaults, validation,
status/spec split, generation, Service claims) shape the new one, and writes it with a
compare-and-swap transaction on the key's revision; a lost race retries from the read,
a stale client resourceVersion is a 409. Kind-specific behaviour lives in the small
strategy tables below, not in the HTTP handlers. A create finds its namespace in a
watch cache rather than in etcd, and its transaction compares the namespace's revision,
so a namespace closed behind the cache's back still refuses the object.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import yaml

from apiserver import allocators, patch, schema, storage
from apiserver.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    gone,
    invalid,
    not_found,
    unavailable,
)
from apiserver.selectors import FieldRequirement, parse_field_selector
from apiserver.storage import (
    Absent,
    AtRevision,
    Compare,
    Entry,
    Expired,
    Store,
    Unavailable,
    decode,
)
from apiserver.watchcache import WatchCache
from apiserver.watchhub import Change, Delivery, Kind, WatchHub
from minikube_py.api import defaults, labels, serviceaccounts, validation
from minikube_py.api.names import random_suffix
from minikube_py.api.resources import BY_KIND, Resource
from minikube_py.api.serviceaccounts import DEFAULT_ACCOUNT
from minikube_py.api.timestamps import now_rfc3339, rfc3339
from minikube_py.api.types import Obj, clone

MAX_RETRIES = 16
# How many of the objects it last wrote an apiserver keeps to update without a read.
WRITTEN_OBJECTS = 512
# Kinds whose `status` is written only through the status subresource.
STATUS_SPLIT = {r.kind for r in BY_KIND.values() if "status" in r.subresources} - {"Namespace"}
# Kinds where PUT of a missing object creates it (kube's AllowCreateOnUpdate).
CREATE_ON_UPDATE = {"Endpoints", "Lease", "EndpointSlice", "Event"}


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"  # Strict, Warn, Ignore
    warnings: list[str] = field(default_factory=list)


@dataclass
class ClusterConfig:
    service_cidr: str = "10.96.0.0/16"
    node_port_range: tuple[int, int] = (30000, 32767)


class Registry:
    def __init__(self, store: Store, config: ClusterConfig | None = None) -> None:
        import ipaddress

        self.store = store
        self.config = config or ClusterConfig()
        self.ranges = allocators.Ranges(
            ipaddress.IPv4Network(self.config.service_cidr), self.config.node_port_range
        )
        self._rng = random.Random()
        # read on every create (accounts: on pod creates); kept current by `run_caches`
        self.namespaces = WatchCache(store, self.prefix(BY_KIND["Namespace"], ""))
        self.service_accounts = WatchCache(store, self.prefix(BY_KIND["ServiceAccount"], ""))
        self.watches = WatchHub(store)
        self._written: dict[str, Entry] = {}  # key -> the last object written there

    async def run_caches(self) -> None:
        """Keep the admission caches current, until cancelled."""
        await asyncio.gather(self.namespaces.run(), self.service_accounts.run())

    # ------------------------------------------------------------------ keys

    @staticmethod
    def key(res: Resource, namespace: str, name: str) -> str:
        if res.namespaced:
            return f"/registry/{res.plural}/{namespace}/{name}"
        return f"/registry/{res.plural}/{name}"

    @staticmethod
    def prefix(res: Resource, namespace: str) -> str:
        if res.namespaced and namespace:
            return f"/registry/{res.plural}/{namespace}/"
        return f"/registry/{res.plural}/"

    # ------------------------------------------------------------------ reads

    async def get(self, res: Resource, namespace: str, name: str) -> Obj:
        entry = await _guard(self.store.get(self.key(res, namespace, name)))
        if entry is None:
            raise not_found(res, name)
        return _with_type(res, entry.value)

    async def list_objects(
        self,
        res: Resource,
        namespace: str,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[Obj], int]:
        lsel = _parse_labels(label_selector)
        fsel = parse_field_selector(res.kind, field_selector)
        entries, revision = await _guard(self.store.list(self.prefix(res, namespace)))
        items = [_with_type(res, e.value) for e in entries if _selected(e.value, lsel, fsel)]
        return items, revision

    async def list_json(
        self,
        res: Resource,
        namespace: str,
        label_selector: str = "",
        field_selector: str = "",
    ) -> bytes:
        """The list as a client gets it in JSON, made of the stored bytes with each
        resourceVersion spliced in (`storage.stamped`): an object is decoded only to
        check selectors, or when stored in another layout."""
        lsel = _parse_labels(label_selector)
        fsel = parse_field_selector(res.kind, field_selector)
        stored, revision = await _guard(self.store.list_raw(self.prefix(res, namespace)))
        head = storage.stored_head(res.api_version, res.kind)
        items = []
        for _, raw, rev in stored:
            obj = decode(raw, rev) if lsel or fsel else None
            if obj is not None and not _selected(obj, lsel, fsel):
                continue
            items.append(
                storage.stamped(raw, head, rev)
                or orjson.dumps(_with_type(res, obj or decode(raw, rev)))
            )
        head_json = orjson.dumps(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(revision)} if revision else {},
            }
        )
        return head_json[:-1] + b',"items":[' + b",".join(items) + b"]}"

    async def watch(
        self,
        res: Resource,
        namespace: str,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
    ) -> AsyncIterator[list[Delivery]]:
        """Batches of (type, object) deliveries, in order. An empty or "0"
        resourceVersion starts with ADDED for every current object, as kube-apiserver
        does; a compacted one raises 410."""
        lsel = _parse_labels(label_selector)
        fsel = parse_field_selector(res.kind, field_selector)
        if resource_version in ("", "0"):
            items, revision = await self.list_objects(
                res, namespace, label_selector, field_selector
            )
            if items:
                yield [Delivery("ADDED", item) for item in items]
        else:
            try:
                revision = int(resource_version)
            except ValueError as e:
                raise bad_request(f"invalid resource version: {resource_version}") from e

        def select(change: Change) -> Delivery | None:
            ev = change.event
            if not (lsel or fsel):
                return change.delivered_as(ev.type)
            now_in = _selected(change.object, lsel, fsel)
            if ev.type == "MODIFIED":
                was_in = ev.prev is not None and _selected(ev.prev, lsel, fsel)
                if now_in and not was_in:
                    return change.delivered_as("ADDED")
                if was_in and not now_in:
                    return change.delivered_as("DELETED")
            return change.delivered_as(ev.type) if now_in else None

        try:
            async for batch in self.watches.watch(
                self.prefix(res, ""),
                self.prefix(res, namespace),
                revision,
                select,
                Kind(res.api_version, res.kind),
            ):
                yield batch
        except Expired as e:
            raise gone(f"too old resource version: {revision} ({e})") from e
        except Unavailable as e:
            raise unavailable(str(e)) from e

    # ------------------------------------------------------------------ create

    async def create(
        self, res: Resource, namespace: str, body: Obj, opts: WriteOptions, applied: bool = False
    ) -> Obj:
        """`applied`: the body comes from server-side apply and already carries its
        managedFields."""
        obj = self._decode_body(res, namespace, body, opts)
        md = obj["metadata"]
        if not md.get("name"):
            if not md.get("generateName"):
                raise invalid(
                    res,
                    "",
                    f'{res.kind} "" is invalid: metadata.name: Required value: name or '
                    "generateName is required",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
            md["name"] = md["generateName"] + random_suffix()
        namespace_guard = (
            await self._open_namespace(res, md["name"], md["namespace"]) if res.namespaced else None
        )
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md["generation"] = 1
        _prepare_create(res.kind, obj)
        if res.kind == "Pod":
            await self._admit_service_account(obj)
        self._default_and_validate(res, obj, None)
        if not applied:
            obj = patch.record_update(
                None,
                obj,
                opts.field_manager or "unknown",
                now_rfc3339(),
                schema.schema_for(res.kind),
            )
        return await self._insert(res, obj, opts, namespace_guard)

    async def _admit_service_account(self, pod: Obj) -> None:
        """ServiceAccount admission: the pod's account must exist, and its token is
        mounted unless the pod or the account says not to. A missing `default` account
        is let through (the controller makes it moments after its namespace; the node
        waits for it to get the token), where kube would refuse the pod."""
        md, spec = pod["metadata"], pod.setdefault("spec", {})
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_ACCOUNT
        sa_res = BY_KIND["ServiceAccount"]
        # the cache as kube's admission reads its lister; a miss is read live
        cached = self.service_accounts.get(self.key(sa_res, md["namespace"], name))
        account = cached.value if cached is not None else None
        try:
            if account is None:
                account = await self.get(sa_res, md["namespace"], name)
        except ApiError as e:
            if e.code != 404 or name != DEFAULT_ACCOUNT:
                reason = f'serviceaccount "{name}" not found' if e.code == 404 else e.message
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{md["name"]}" is forbidden: error looking up service account '
                    f"{md['namespace']}/{name}: {reason}",
                    {"name": md["name"], "kind": "pods"},
                ) from e
        if serviceaccounts.mounts_token(pod, account):
            serviceaccounts.add_token_volume(pod)

    async def _insert(
        self, res: Resource, obj: Obj, opts: WriteOptions, namespace_guard: Compare | None
    ) -> Obj:
        """Write a new object; `namespace_guard` keeps its namespace as it was seen open,
        so a namespace deleted or terminating since then fails the transaction."""
        md = obj["metadata"]
        key = self.key(res, md.get("namespace", ""), md["name"])
        explicit = allocators.claimed_keys(obj) if res.kind == "Service" else set()
        for _ in range(MAX_RETRIES):
            claims, releases, compares = await self._claims(res, obj, None)
            if opts.dry_run:
                return _with_type(res, obj)
            guards = [Absent(key), *compares, *([namespace_guard] if namespace_guard else [])]
            result = await _guard(self.store.txn(guards, [(key, obj), *claims], releases))
            if result.succeeded:
                md["resourceVersion"] = str(result.revision)
                self._remember(Entry(key, obj, result.revision))
                return _with_type(res, obj)
            if namespace_guard is not None:
                namespace_guard = await self._open_namespace(
                    res, md["name"], md["namespace"], live=True
                )
            if await _guard(self.store.get(key)) is not None:
                raise already_exists(res, obj["metadata"]["name"])
            await self._lost_claims(res, obj, None, explicit)
        raise conflict(res, obj["metadata"]["name"], "too many concurrent allocations")

    # ------------------------------------------------------------------ update

    async def update(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: Obj,
        opts: WriteOptions,
        subresource: str = "",
    ) -> Obj:
        new_body = self._decode_body(res, namespace, body, opts)
        if new_body["metadata"].get("name", name) != name:
            raise bad_request(
                f"the name of the object ({new_body['metadata']['name']}) does not match "
                f"the name on the URL ({name})"
            )
        new_body["metadata"]["name"] = name
        wanted_rv = new_body["metadata"].get("resourceVersion", "")

        def mutate(current: Obj | None) -> Obj:
            if current is None:
                if res.kind in CREATE_ON_UPDATE and not subresource:
                    return new_body
                raise not_found(res, name)
            if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
                raise conflict(
                    res,
                    name,
                    "the object has been modified; please apply your changes to "
                    "the latest version and try again",
                )
            return clone(new_body)

        return await self._write(res, namespace, name, mutate, opts, subresource)

    async def patch(
        self,
        res: Resource,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        opts: WriteOptions,
        subresource: str = "",
        force: bool = False,
    ) -> Obj:
        kind_schema = schema.schema_for(res.kind)
        is_apply = content_type == "application/apply-patch+yaml"
        try:
            # YAML is read as the JSON it converts to, as kube's YAML-to-JSON step does
            # (keys and timestamps become strings, integers past 64 bits an error)
            doc = clone(yaml.safe_load(raw)) if is_apply else orjson.loads(raw)
        except (ValueError, TypeError, yaml.YAMLError) as e:
            raise bad_request(f"error decoding patch: {e}") from e
        if is_apply and not opts.field_manager:
            raise bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                "Required value: is required for apply patch"
            )

        def mutate(current: Obj | None) -> Obj:
            try:
                if current is None:
                    if not is_apply:
                        raise not_found(res, name)
                    applied = self._decode_body(res, namespace, clone(doc), opts)
                    return patch.server_side_apply(
                        None, applied, opts.field_manager, force, kind_schema, now_rfc3339()
                    )
                if content_type == "application/json-patch+json":
                    if not isinstance(doc, list):
                        raise bad_request("json patch must be a list of operations")
                    return patch.json_patch(current, doc)
                if content_type == "application/merge-patch+json":
                    return patch.merge_patch(current, _require_map(doc))
                if content_type == "application/strategic-merge-patch+json":
                    return patch.strategic_merge_patch(current, _require_map(doc), kind_schema)
                if is_apply:
                    applied = self._decode_body(res, namespace, clone(_require_map(doc)), opts)
                    return patch.server_side_apply(
                        current, applied, opts.field_manager, force, kind_schema, now_rfc3339()
                    )
            except patch.ApplyConflict as e:
                raise _apply_conflict_error(res, name, e) from e
            except patch.PatchError as e:
                raise ApiError(422, "Invalid", str(e)) from e
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown "
                f"format - accepted media types include: application/json-patch+json, "
                f"application/merge-patch+json, application/apply-patch+yaml, "
                f"application/strategic-merge-patch+json (got {content_type})",
            )

        if not is_apply and content_type != "application/json-patch+json":
            self._check_fields(res, _without_directives(_require_map(doc)), opts)
        return await self._write(
            res, namespace, name, mutate, opts, subresource, create_ok=is_apply, applied=is_apply
        )

    async def _write(
        self,
        res: Resource,
        namespace: str,
        name: str,
        mutate: Callable[[Obj | None], Obj],
        opts: WriteOptions,
        subresource: str = "",
        create_ok: bool = False,
        applied: bool = False,
    ) -> Obj:
        """Read-modify-write with CAS; `mutate` builds the wanted object from the
        current one (None when absent) as a new object, leaving `current` as it is.

        As kube's GuaranteedUpdate with a cached existing object, the first attempt
        takes the object this process last wrote (`_written`) as current, without a
        read. Only a successful transaction, which compares that object's revision,
        proves it was current: whatever else comes of it (a lost race, an error, a
        no-op) is decided again on a fresh read. A Service's update always reads."""
        key = self.key(res, namespace, name)
        # Services claim addresses and ports judged against the current object: always read
        fresh = opts.dry_run or res.kind == "Service"
        cached = None if fresh else self._written.get(key)
        for _ in range(MAX_RETRIES):
            entry = cached or await _guard(self.store.get(key))
            trusted, cached = cached is None, None
            current = _with_type(res, entry.value) if entry else None
            try:
                wanted = mutate(current)
                if current is None:
                    if not (create_ok or res.kind in CREATE_ON_UPDATE):
                        raise not_found(res, name)
                    wanted.setdefault("metadata", {})["name"] = name
                    if res.namespaced:
                        wanted["metadata"]["namespace"] = namespace
                    return await self.create(res, namespace, wanted, opts, applied=applied)
                new = self._prepare_update(res, wanted, current, subresource)
                # a binding sets spec.nodeName, which no pod update may change
                self._default_and_validate(
                    res,
                    new,
                    None if subresource == "binding" else current,
                    check=subresource != "binding",
                )
            except ApiError:
                if trusted:
                    raise
                continue
            if not applied:
                new = patch.record_update(
                    current,
                    new,
                    opts.field_manager or "unknown",
                    now_rfc3339(),
                    schema.schema_for(res.kind),
                )
            if _same(new, current):
                if trusted:
                    return current  # no-op writes don't bump resourceVersion, as in kube
                continue
            finishing = _finalized(res.kind, new)
            explicit = allocators.claimed_keys(new) if res.kind == "Service" else set()
            claims, releases, compares = await self._claims(
                res, None if finishing else new, current
            )
            if opts.dry_run:
                return new
            assert entry is not None
            cmp: list[Compare] = [AtRevision(key, entry.revision), *compares]
            if finishing:
                result = await _guard(self.store.txn(cmp, claims, [key, *releases]))
            else:
                result = await _guard(self.store.txn(cmp, [(key, new), *claims], releases))
            if result.succeeded:
                if finishing:
                    self._written.pop(key, None)
                    return new
                new["metadata"]["resourceVersion"] = str(result.revision)
                self._remember(Entry(key, new, result.revision))
                return new
            self._written.pop(key, None)
            await self._lost_claims(res, new, current, explicit)
        raise conflict(res, name, "too many concurrent writes, try again")

    def _remember(self, entry: Entry) -> None:
        """Keep `entry` as the last object this process wrote at its key (see `_write`);
        nothing may modify its value afterwards."""
        self._written.pop(entry.key, None)
        self._written[entry.key] = entry
        if len(self._written) > WRITTEN_OBJECTS:
            del self._written[next(iter(self._written))]

    def _prepare_update(self, res: Resource, new: Obj, old: Obj, subresource: str) -> Obj:
        md, old_md = new.setdefault("metadata", {}), old["metadata"]
        for k in (
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if k in old_md:
                md[k] = old_md[k]
            else:
                md.pop(k, None)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        if subresource == "status":
            merged = clone(old)
            merged["status"] = new.get("status", {})
            return merged
        if subresource == "binding":  # spec.nodeName and the PodScheduled condition
            return new
        if subresource == "finalize":  # Namespace: only spec.finalizers changes
            merged = clone(old)
            merged.setdefault("spec", {})["finalizers"] = new.get("spec", {}).get("finalizers")
            return merged
        if res.kind == "Service":
            _drop_type_dependent_fields(new, old)
        if res.kind in STATUS_SPLIT:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if new.get("spec") != old.get("spec"):
            md["generation"] = int(old_md.get("generation", 1)) + 1
        return new

    # ------------------------------------------------------------------ delete

    async def delete(
        self, res: Resource, namespace: str, name: str, options: Obj | None = None
    ) -> Obj:
        opts = options or {}
        grace = opts.get("gracePeriodSeconds")
        policy = opts.get("propagationPolicy")
        if policy is None and opts.get("orphanDependents") is True:
            policy = "Orphan"
        preconditions = opts.get("preconditions") or {}
        dry_run = bool(opts.get("dryRun"))
        key = self.key(res, namespace, name)
        self._written.pop(key, None)  # what follows reads and writes the store itself
        for _ in range(MAX_RETRIES):
            entry = await _guard(self.store.get(key))
            if entry is None:
                raise not_found(res, name)
            obj = _with_type(res, entry.value)
            md = obj["metadata"]
            if preconditions.get("uid") and preconditions["uid"] != md.get("uid"):
                raise conflict(
                    res,
                    name,
                    f"Precondition failed: UID in precondition: "
                    f"{preconditions['uid']}, UID in object meta: {md.get('uid')}",
                )
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != md["resourceVersion"]
            ):
                raise conflict(
                    res,
                    name,
                    "Precondition failed: ResourceVersion in "
                    f"precondition: {preconditions['resourceVersion']}, "
                    f"ResourceVersion in object meta: {md['resourceVersion']}",
                )
            finalizers = list(md.get("finalizers") or [])
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            wait_seconds = _graceful_seconds(res.kind, obj, grace)
            ns_pending = res.kind == "Namespace" and (obj.get("spec", {}).get("finalizers"))
            if finalizers or wait_seconds or ns_pending:
                updated = clone(obj)
                umd = updated["metadata"]
                if finalizers:
                    umd["finalizers"] = finalizers
                if "deletionTimestamp" not in umd or (
                    wait_seconds is not None
                    and wait_seconds < int(umd.get("deletionGracePeriodSeconds") or 0)
                ):
                    at = datetime.now(UTC) + timedelta(seconds=wait_seconds or 0)
                    umd["deletionTimestamp"] = rfc3339(at)
                    umd["deletionGracePeriodSeconds"] = wait_seconds or 0
                    if res.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
                        umd["generation"] = int(umd.get("generation", 1)) + 1
                if res.kind == "Namespace":
                    updated.setdefault("status", {})["phase"] = "Terminating"
                if updated == obj or dry_run:
                    return obj
                result = await _guard(
                    self.store.txn([AtRevision(key, entry.revision)], [(key, updated)])
                )
                if result.succeeded:
                    umd["resourceVersion"] = str(result.revision)
                    return updated
                continue
            if dry_run:
                return obj
            releases = sorted(allocators.claimed_keys(obj)) if res.kind == "Service" else []
            result = await _guard(
                self.store.txn([AtRevision(key, entry.revision)], [], [key, *releases])
            )
            if result.succeeded:
                return obj
        raise conflict(res, name, "too many concurrent writes, try again")

    async def delete_collection(
        self,
        res: Resource,
        namespace: str,
        label_selector: str,
        field_selector: str,
        options: Obj | None,
    ) -> list[Obj]:
        items, _ = await self.list_objects(res, namespace, label_selector, field_selector)
        deleted = []
        for item in items:
            try:
                deleted.append(
                    await self.delete(
                        res,
                        item["metadata"].get("namespace", ""),
                        item["metadata"]["name"],
                        options,
                    )
                )
            except ApiError as e:
                if e.code != 404:
                    raise
        return deleted

    # ------------------------------------------------------------------ subresources

    async def evict(self, namespace: str, name: str, eviction: Obj, opts: WriteOptions) -> Obj:
        """policy/v1 Eviction: the pod's deletion with the eviction's options, which no
        PodDisruptionBudget can refuse here (this cluster serves none)."""
        named = (eviction.get("metadata") or {}).get("name")
        if named and named != name:
            raise bad_request("name in URL does not match name in Eviction object")
        options = eviction.get("deleteOptions") or {}
        if not isinstance(options, dict):
            raise bad_request("the Eviction's deleteOptions must be an object")
        if opts.dry_run:
            options = {**options, "dryRun": ["All"]}
        return await self.delete(BY_KIND["Pod"], namespace, name, options)

    async def bind(self, namespace: str, name: str, binding: Obj, opts: WriteOptions) -> Obj:
        res = BY_KIND["Pod"]
        target = (binding.get("target") or {}).get("name")
        if not target:
            raise invalid(
                res,
                name,
                f'Binding "{name}" is invalid: target.name: Required value',
                [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": "target.name",
                    }
                ],
            )

        def mutate(current: Obj | None) -> Obj:
            assert current is not None
            if current["metadata"].get("deletionTimestamp"):
                raise conflict(res, name, "pod is being deleted, cannot be assigned to a host")
            node = current.get("spec", {}).get("nodeName")
            if node:
                raise conflict(res, name, f'pod {name} is already assigned to node "{node}"')
            pod = clone(current)
            pod["spec"]["nodeName"] = target
            conds = [
                c
                for c in pod.get("status", {}).get("conditions", [])
                if c.get("type") != "PodScheduled"
            ]
            conds.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(),
                }
            )
            pod.setdefault("status", {})["conditions"] = conds
            return pod

        # binding writes spec.nodeName and a status condition, beyond the spec/status split
        return await self._write(res, namespace, name, mutate, opts, subresource="binding")

    # ------------------------------------------------------------------ helpers

    def _decode_body(self, res: Resource, namespace: str, body: Obj, opts: WriteOptions) -> Obj:
        """`body`, checked and typed in place: create and update own what they are given."""
        if not isinstance(body, dict):
            raise bad_request(
                f"the body of the request must be a JSON object, got {type(body).__name__}"
            )
        kind = body.get("kind")
        if kind and kind != res.kind:
            raise bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the "
                f"expected API version ({res.api_version}) or the kind ({kind}) does not "
                f"match {res.kind}"
            )
        api_version = body.get("apiVersion")
        if api_version and api_version != res.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({res.api_version})"
            )
        self._check_fields(res, body, opts)
        obj = body  # the caller's to give: freshly decoded from a request, or a copy
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        if res.namespaced:
            body_ns = md.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            md["namespace"] = namespace or body_ns or "default"
        else:
            md.pop("namespace", None)
        return obj

    def _check_fields(self, res: Resource, body: Obj, opts: WriteOptions) -> None:
        if opts.field_validation == "Ignore":
            return
        unknown = schema.unknown_fields(res.kind, body)
        if not unknown:
            return
        if opts.field_validation == "Strict":
            detail = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise bad_request(f"strict decoding error: {detail}")
        opts.warnings.extend(f'unknown field "{u}"' for u in unknown)

    def _default_and_validate(
        self, res: Resource, obj: Obj, old: Obj | None, check: bool = True
    ) -> None:
        try:
            defaults.apply_defaults(res.kind, obj)
            errors = (
                validation.validate(res.kind, obj, old, node_port_range=self.config.node_port_range)
                if check
                else []
            )
        except (AttributeError, TypeError, KeyError) as e:
            # a value of the wrong JSON type where the schema wants another
            raise bad_request(f"the object provided is malformed: {e!r}") from e
        if errors:
            name = obj["metadata"].get("name", "")
            raise invalid(
                res,
                name,
                validation.status_message(res.kind, name, errors),
                [{"reason": e.reason, "message": e.message, "field": e.field} for e in errors],
            )

    async def _open_namespace(
        self, res: Resource, name: str, namespace: str, live: bool = False
    ) -> Compare:
        """NamespaceLifecycle admission: refuse new content in a missing or terminating
        namespace. An open namespace in the watch cache is taken as it is, and the
        returned compare on its revision makes the create's transaction check it again;
        anything else is read live, as is everything with `live`."""
        ns_res = BY_KIND["Namespace"]
        key = self.key(ns_res, "", namespace)
        entry = None if live else self.namespaces.get(key)
        if entry is None or entry.value["metadata"].get("deletionTimestamp"):
            entry = await _guard(self.store.get(key))
        if entry is None:
            raise not_found(ns_res, namespace)
        if entry.value["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{res.group_resource} "{name}" is forbidden: unable to create new content '
                f"in namespace {namespace} because it is being terminated",
                {
                    "name": name,
                    "kind": res.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )
        return AtRevision(key, entry.revision)

    async def _claims(
        self, res: Resource, new: Obj | None, old: Obj | None
    ) -> tuple[list[tuple[str, Obj]], list[str], list[Compare]]:
        """Claims a Service write must take and release. Fills in allocated values on
        `new` (clusterIP, nodePorts); explicit ones are checked against the range."""
        if res.kind != "Service":
            return [], [], []
        old_keys = allocators.claimed_keys(old) if old else set()
        if new is not None:
            await self._allocate(res, new, old)
        new_keys = allocators.claimed_keys(new) if new else set()
        owner = {
            "service": f"{(new or old or {}).get('metadata', {}).get('namespace')}/"
            f"{(new or old or {}).get('metadata', {}).get('name')}"
        }
        added = sorted(new_keys - old_keys)
        return (
            [(k, owner) for k in added],
            sorted(old_keys - new_keys),
            [Absent(k) for k in added],
        )

    async def _allocate(self, res: Resource, svc: Obj, old: Obj | None) -> None:
        spec = svc.setdefault("spec", {})
        name = svc["metadata"]["name"]
        old_spec = (old or {}).get("spec", {})
        if allocators.needs_cluster_ip(svc):
            ip = spec.get("clusterIP") or old_spec.get("clusterIP")
            if ip in (None, "", "None"):
                taken = await self._taken(allocators.IP_PREFIX)
                ip = allocators.pick_ip(self.ranges, taken, self._rng)
                if ip is None:
                    raise _alloc_error(
                        res,
                        name,
                        "spec.clusterIPs",
                        "[]",
                        "failed to allocate a serviceIP: range is full",
                    )
            elif not self.ranges.ip_in_range(ip):
                raise _alloc_error(
                    res,
                    name,
                    "spec.clusterIPs",
                    f'[]string{{"{ip}"}}',
                    f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid "
                    f"range. The range of valid IPs is {self.config.service_cidr}",
                )
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        elif spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if allocators.needs_node_ports(svc):
            old_ports = {
                (p.get("port"), p.get("protocol")): p.get("nodePort")
                for p in old_spec.get("ports") or []
            }
            taken_ports: set[int] | None = None
            for i, p in enumerate(spec.get("ports") or []):
                if not p.get("nodePort"):
                    p["nodePort"] = old_ports.get((p.get("port"), p.get("protocol")))
                if not p.get("nodePort"):
                    if taken_ports is None:
                        taken_ports = {int(k) for k in await self._taken(allocators.PORT_PREFIX)}
                        taken_ports |= {q["nodePort"] for q in spec["ports"] if q.get("nodePort")}
                    port = allocators.pick_port(self.ranges, taken_ports, self._rng)
                    if port is None:
                        raise _alloc_error(
                            res,
                            name,
                            f"spec.ports[{i}].nodePort",
                            "0",
                            "failed to allocate a nodePort: range is full",
                        )
                    p["nodePort"] = port
                    taken_ports.add(port)
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)

    async def _taken(self, prefix: str) -> set[str]:
        stored, _ = await _guard(self.store.list_raw(prefix))
        return {s.key[len(prefix) :] for s in stored}

    async def _lost_claims(
        self, res: Resource, new: Obj, old: Obj | None, explicit: set[str]
    ) -> None:
        """After a failed txn, for each claim now held by another Service: a value the
        user asked for is an error; one we picked at random lost a race and is cleared
        so that the retry picks again."""
        if res.kind != "Service":
            return
        name = new["metadata"]["name"]
        mine = f"{new['metadata'].get('namespace')}/{name}"
        old_keys = allocators.claimed_keys(old) if old else set()
        spec = new["spec"]
        for key in sorted(allocators.claimed_keys(new) - old_keys):
            held = await _guard(self.store.get(key))
            if held is None or held.value.get("service") == mine:
                continue
            value = key.rsplit("/", 1)[1]
            is_ip = key.startswith(allocators.IP_PREFIX)
            if key in explicit and is_ip:
                raise _alloc_error(
                    res,
                    name,
                    "spec.clusterIPs",
                    f'[]string{{"{value}"}}',
                    f"failed to allocate IP {value}: provided IP is already allocated",
                )
            for idx, p in enumerate(spec.get("ports") or []):
                if is_ip or str(p.get("nodePort")) != value:
                    continue
                if key in explicit:
                    raise _alloc_error(
                        res,
                        name,
                        f"spec.ports[{idx}].nodePort",
                        value,
                        "provided port is already allocated",
                    )
                p.pop("nodePort", None)
            if is_ip:
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)


def _drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """When a Service changes type, values allocated for the old type that the new
    object still carries unchanged are dropped (kube's dropTypeDependentFields), so
    `kubectl apply` of a type change needs no manual clean-up."""
    spec, old_spec = new.get("spec", {}), old.get("spec", {})
    if spec.get("type") == old_spec.get("type"):
        return
    if spec.get("type") == "ExternalName" and spec.get("clusterIP") == old_spec.get("clusterIP"):
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
        spec.pop("ipFamilies", None)
        spec.pop("ipFamilyPolicy", None)
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        old_ports = {p.get("nodePort") for p in old_spec.get("ports") or []}
        for p in spec.get("ports") or []:
            if p.get("nodePort") in old_ports:
                p.pop("nodePort", None)
        spec.pop("externalTrafficPolicy", None)
    if spec.get("type") != "LoadBalancer":
        if spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
            spec.pop("healthCheckNodePort", None)
        spec.pop("allocateLoadBalancerNodePorts", None)


def _alloc_error(res: Resource, name: str, fld: str, value: str, detail: str) -> ApiError:
    msg = f"Invalid value: {value}: {detail}"
    return invalid(
        res,
        name,
        f'{res.kind} "{name}" is invalid: {fld}: {msg}',
        [{"reason": "FieldValueInvalid", "message": msg, "field": fld}],
    )


def _apply_conflict_error(res: Resource, name: str, e: patch.ApplyConflict) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        str(e),
        {"name": name, "group": res.group, "kind": res.plural, "causes": e.causes},
    )


def _prepare_create(kind: str, obj: Obj) -> None:
    if kind == "Pod":
        obj["status"] = {"phase": "Pending"}
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        obj["status"] = {}
    elif kind == "Service":
        obj["status"] = {"loadBalancer": {}}
    elif kind == "Namespace":
        obj["status"] = {"phase": "Active"}


def _graceful_seconds(kind: str, obj: Obj, requested: int | None) -> int | None:
    """Seconds a deletion waits for the node to stop the pod; None = delete now. Only
    pods bound to a node and not finished are deleted gracefully (kube's pod strategy)."""
    if kind != "Pod":
        return None
    if not obj.get("spec", {}).get("nodeName"):
        return None
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return None
    grace = requested
    if grace is None:
        grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
    return int(grace) if grace and int(grace) > 0 else None


def _finalized(kind: str, obj: Obj) -> bool:
    """An object marked for deletion whose last finalizer is gone is removed."""
    md = obj.get("metadata", {})
    if not md.get("deletionTimestamp") or md.get("finalizers"):
        return False
    if kind == "Namespace":
        return not obj.get("spec", {}).get("finalizers")
    if kind == "Pod":
        # a pod is removed by its node (delete with grace 0), not by a metadata update
        return not obj.get("spec", {}).get("nodeName")
    return True


def _same(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        md = {
            k: v
            for k, v in o.get("metadata", {}).items()
            if k not in ("resourceVersion", "managedFields")
        }
        return {**o, "metadata": md}

    return strip(a) == strip(b)


def _with_type(res: Resource, obj: Obj) -> Obj:
    obj["apiVersion"], obj["kind"] = res.api_version, res.kind
    return obj


def _without_directives(doc: Any) -> Any:
    """A strategic merge patch minus its `$patch`, `$setElementOrder/...` and other
    directive keys, which are instructions rather than fields of the object."""
    if isinstance(doc, dict):
        return {k: _without_directives(v) for k, v in doc.items() if not k.startswith("$")}
    if isinstance(doc, list):
        return [_without_directives(v) for v in doc]
    return doc


def _require_map(doc: Any) -> Obj:
    if not isinstance(doc, dict):
        raise bad_request("the patch must be a JSON/YAML object")
    return doc


def _parse_labels(text: str) -> labels.Selector:
    try:
        return labels.parse(text)
    except labels.SelectorError as e:
        raise bad_request(f"unable to parse requirement: {e}") from e


def _selected(obj: Obj, lsel: labels.Selector, fsel: list[FieldRequirement]) -> bool:
    return labels.matches(lsel, obj.get("metadata", {}).get("labels")) and all(
        f.matches(obj) for f in fsel
    )


async def _guard(awaitable: Any) -> Any:
    try:
        return await awaitable
    except Unavailable as e:
        raise unavailable(str(e)) from e
