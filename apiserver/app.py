"""The HTTP face of the apiserver: Kubernetes REST paths onto the registry.

Routing parses `/api/v1/...` and `/apis/<group>/<version>/...` into (resource,
namespace, name, subresource) with the catalogue, then dispatches on the verb. Content
negotiation gives Tables to `kubectl get` (`as=Table`), aggregated discovery to clients
that ask for it, and JSON otherwise. Watches stream JSON lines; every error is a
`Status`. Authentication is a bearer token checked in a middleware: one of the token
file's, or a service account token (apiserver/tokens.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from apiserver import discovery, openapi, protobuf, tables
from apiserver.errors import ApiError, bad_request, method_not_allowed, unauthorized
from apiserver.nodeproxy import NodeProxy
from apiserver.registry import Registry, WriteOptions
from apiserver.storage import Unavailable
from apiserver.tokens import ServiceAccountTokens
from apiserver.watchhub import Delivery
from minikube_py.api.resources import BY_GROUP_PLURAL, Resource
from minikube_py.api.types import Obj

log = logging.getLogger("apiserver")

MAX_BODY = 3 * 1024 * 1024
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-minikube-py",
    "gitCommit": "minikube-py",
    "gitTreeState": "clean",
    "buildDate": "2026-11-29T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}
BOOKMARK_SECONDS = 30.0
ANONYMOUS_PATHS = {"/healthz", "/livez", "/readyz", "/version"}
# where `_resource` leaves the parsed path for the metrics middleware
TARGET_KEY = "minikube-py.target"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Target:
    res: Resource
    namespace: str
    name: str
    subresource: str


class Metrics:
    """Request counters and latency sums in Prometheus text format, labelled as
    kube-apiserver labels them: the verb (LIST and WATCH apart from GET), the resource's
    plural and its subresource; never an object's name, so the series stay few. Each
    process of an apiserver with workers counts the requests it served itself, and
    `/metrics` answers from whichever process the connection reached."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str, int]] = Counter()
        self.seconds: defaultdict[tuple[str, str, str], float] = defaultdict(float)

    def observe(
        self, verb: str, resource: str, subresource: str, code: int, seconds: float
    ) -> None:
        self.requests[(verb, resource, subresource, code)] += 1
        self.seconds[(verb, resource, subresource)] += seconds

    def render(self) -> str:
        lines = [
            "# HELP apiserver_request_total Requests by verb, resource, subresource and code.",
            "# TYPE apiserver_request_total counter",
        ]
        for (verb, res, sub, code), n in sorted(self.requests.items()):
            lines.append(
                f'apiserver_request_total{{verb="{verb}",resource="{res}",'
                f'subresource="{sub}",code="{code}"}} {n}'
            )
        lines += [
            "# HELP apiserver_request_duration_seconds_sum Time spent serving requests.",
            "# TYPE apiserver_request_duration_seconds_sum counter",
        ]
        for (verb, res, sub), s in sorted(self.seconds.items()):
            lines.append(
                f'apiserver_request_duration_seconds_sum{{verb="{verb}",resource="{res}",'
                f'subresource="{sub}"}} {s:.6f}'
            )
        return "\n".join(lines) + "\n"


def request_verb(method: str, target: Target | None, watch: bool) -> str:
    """kube-apiserver's verb label: a GET of a collection is LIST, or WATCH."""
    if method == "GET" and target is not None and not target.name:
        return "WATCH" if watch else "LIST"
    return method


def json_response(
    obj: Any,
    status: int = 200,
    content_type: str = "application/json",
    warnings: list[str] | None = None,
) -> web.Response:
    resp = web.Response(
        body=orjson.dumps(obj),
        status=status,
        content_type=content_type.split(";")[0],
    )
    if ";" in content_type:
        resp.headers["Content-Type"] = content_type
    for w in warnings or []:
        resp.headers.add("Warning", f'299 - "{w}"')
    return resp


def error_response(e: ApiError) -> web.Response:
    return json_response(e.status(), status=e.code)


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _include_object(request: web.Request) -> str:
    return request.query.get("includeObject", "Metadata")


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _write_options(request: web.Request) -> WriteOptions:
    validation = request.query.get("fieldValidation", "")
    if validation not in ("", "Strict", "Warn", "Ignore"):
        raise bad_request(
            f'fieldValidation: Unsupported value: "{validation}": supported values: '
            '"Ignore", "Strict", "Warn"'
        )
    return WriteOptions(
        dry_run=request.query.get("dryRun") == "All",
        field_manager=request.query.get("fieldManager", ""),
        # kube's default for a request without the parameter is Warn
        field_validation=validation or "Warn",
    )


class ApiServer:
    def __init__(
        self,
        registry: Registry,
        tokens: set[str],
        server_address: str,
        node_proxy: NodeProxy | None = None,
        service_accounts: ServiceAccountTokens | None = None,
    ) -> None:
        self.registry = registry
        self.node_proxy = node_proxy
        self.service_accounts = service_accounts
        self.tokens = tokens
        self.server_address = server_address
        self.metrics = Metrics()
        self.ready = True

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_BODY, middlewares=[self._errors, self._authenticate]
        )
        r = app.router
        r.add_get("/version", self._version)
        r.add_get("/version/", self._version)
        for path in ("/healthz", "/livez", "/readyz"):
            r.add_get(path, self._health)
        r.add_get("/metrics", self._metrics)
        r.add_get("/openapi/v2", self._openapi_v2)
        r.add_get("/openapi/v3", self._openapi_v3_index)
        r.add_get("/openapi/v3/{path:.+}", self._openapi_v3_doc)
        r.add_get("/api", self._api)
        r.add_get("/api/", self._api)
        r.add_get("/apis", self._apis)
        r.add_get("/apis/", self._apis)
        r.add_route("*", "/api/{rest:.*}", self._resource)
        r.add_route("*", "/apis/{rest:.*}", self._resource)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        code = 500
        try:
            resp = await handler(request)
            code = resp.status
            return resp
        except ApiError as e:
            code = e.code
            return error_response(e)
        except Unavailable as e:
            code = 503
            return error_response(ApiError(503, "ServiceUnavailable", str(e)))
        except web.HTTPRequestEntityTooLarge:
            code = 413
            return error_response(
                ApiError(413, "RequestEntityTooLarge", f"request body too large (limit {MAX_BODY})")
            )
        except web.HTTPException as e:
            code = e.status
            return error_response(ApiError(e.status, e.reason.replace(" ", ""), e.text or ""))
        except Exception as e:
            log.exception("internal error serving %s %s", request.method, request.path)
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {e}"))
        finally:
            target: Target | None = request.get(TARGET_KEY)
            self.metrics.observe(
                request_verb(request.method, target, _flag(request, "watch")),
                target.res.plural if target else "",
                target.subresource if target else "",
                code,
                time.perf_counter() - start,
            )

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in ANONYMOUS_PATHS:
            auth = request.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not token or not (
                any(hmac.compare_digest(token, t) for t in self.tokens)
                or (
                    self.service_accounts is not None
                    and await self.service_accounts.authenticate(token) is not None
                )
            ):
                raise unauthorized()
        return await handler(request)

    # ------------------------------------------------------------------ plain docs

    async def _version(self, request: web.Request) -> web.Response:
        return json_response(VERSION)

    async def _health(self, request: web.Request) -> web.Response:
        try:
            await self.registry.store.get("/registry/health")
        except Unavailable as e:
            return web.Response(status=503, text=f"[-]etcd failed: {e}\nhealthz check failed\n")
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain")

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        return json_response(openapi.openapi_v2())

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        return json_response(openapi.openapi_v3_index())

    async def _openapi_v3_doc(self, request: web.Request) -> web.Response:
        doc = openapi.openapi_v3_document(request.match_info["path"])
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return json_response(doc)

    def _aggregated(self, request: web.Request, legacy: bool) -> web.Response | None:
        accept = request.headers.get("Accept", "")
        for ctype, version in (
            (discovery.AGGREGATED_V2, "apidiscovery.k8s.io/v2"),
            (discovery.AGGREGATED_V2BETA1, "apidiscovery.k8s.io/v2beta1"),
        ):
            if ctype.split(";", 1)[1].replace(";as=APIGroupDiscoveryList", "") in accept:
                return json_response(discovery.aggregated(legacy, version), content_type=ctype)
        return None

    async def _api(self, request: web.Request) -> web.Response:
        return self._aggregated(request, True) or json_response(
            discovery.api_versions(self.server_address)
        )

    async def _apis(self, request: web.Request) -> web.Response:
        return self._aggregated(request, False) or json_response(discovery.api_group_list())

    # ------------------------------------------------------------------ resources

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts[0] == "api":
            group, version, rest = "", parts[1] if len(parts) > 1 else "", parts[2:]
        else:
            if len(parts) == 2:
                doc = discovery.api_group(parts[1])
                if doc is None:
                    raise not_found_path()
                return json_response(doc)
            group, version, rest = parts[1], parts[2] if len(parts) > 2 else "", parts[3:]
        if not rest:
            doc = discovery.api_resource_list(group, version)
            if doc is None:
                raise not_found_path()
            return json_response(doc)
        target = _parse_target(group, version, rest)
        request[TARGET_KEY] = target
        method = request.method
        sub = target.subresource
        if sub in ("log", "exec", "attach", "portforward") and self.node_proxy is not None:
            if sub == "log" and method == "GET":
                return await self.node_proxy.logs(request, target.namespace, target.name)
            if sub in ("exec", "attach") and method in ("GET", "POST"):
                return await self.node_proxy.exec(request, target.namespace, target.name, sub)
            if sub == "portforward" and method in ("GET", "POST"):
                return await self.node_proxy.port_forward(request, target.namespace, target.name)
        if sub in ("log", "exec", "attach", "portforward", "proxy"):
            raise method_not_allowed(
                f"{target.res.plural}/{sub} with {method} is not supported by this apiserver"
            )
        if sub == "scale":
            return await self._scale(request, target)
        if sub == "token":
            if self.service_accounts is None:
                raise not_found_path()  # kube serves it only with a signing key
            if method != "POST":
                raise method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            answer = await self.service_accounts.request(
                target.namespace, target.name, await _read_json(request)
            )
            return json_response(answer, status=201)
        if method == "GET":
            if target.name:
                obj = await self.registry.get(target.res, target.namespace, target.name)
                return self._respond_objects(request, target.res, [obj], single=True)
            if _flag(request, "watch"):
                return await self._watch(request, target)
            selectors = (
                request.query.get("labelSelector", ""),
                request.query.get("fieldSelector", ""),
            )
            if not _wants_table(request):
                listed = await self.registry.list_json(target.res, target.namespace, *selectors)
                return web.Response(body=listed, content_type="application/json")
            items, rev = await self.registry.list_objects(target.res, target.namespace, *selectors)
            return self._respond_list(request, target.res, items, rev)
        if method == "POST":
            body = await _read_json(request)
            opts = _write_options(request)
            if sub in ("binding", "eviction"):
                if sub == "binding":
                    await self.registry.bind(target.namespace, target.name, body, opts)
                else:
                    await self.registry.evict(target.namespace, target.name, body, opts)
                return json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "code": 201,
                    },
                    status=201,
                )
            if target.name:
                raise method_not_allowed(
                    "the server does not allow this method on the requested resource"
                )
            obj = await self.registry.create(target.res, target.namespace, body, opts)
            return json_response(obj, status=201, warnings=opts.warnings)
        if method == "PUT" and target.name:
            body = await _read_json(request)
            opts = _write_options(request)
            obj = await self.registry.update(
                target.res, target.namespace, target.name, body, opts, sub
            )
            return json_response(obj, warnings=opts.warnings)
        if method == "PATCH" and target.name:
            opts = _write_options(request)
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            obj = await self.registry.patch(
                target.res,
                target.namespace,
                target.name,
                ctype,
                await request.read(),
                opts,
                sub,
                force=_flag(request, "force"),
            )
            return json_response(obj, warnings=opts.warnings)
        if method == "DELETE":
            options = await _delete_options(request)
            if target.name:
                obj = await self.registry.delete(target.res, target.namespace, target.name, options)
                return json_response(obj)
            deleted = await self.registry.delete_collection(
                target.res,
                target.namespace,
                request.query.get("labelSelector", ""),
                request.query.get("fieldSelector", ""),
                options,
            )
            return self._respond_list(request, target.res, deleted, 0)
        raise method_not_allowed("the server does not allow this method on the requested resource")

    async def _scale(self, request: web.Request, target: Target) -> web.Response:
        """autoscaling/v1 Scale over a workload's spec.replicas."""
        res = target.res

        def scale_of(obj: Obj) -> Obj:
            sel = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    k: obj["metadata"][k]
                    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                    if k in obj["metadata"]
                },
                "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
                "status": {
                    "replicas": obj.get("status", {}).get("replicas", 0),
                    "selector": ",".join(f"{k}={v}" for k, v in sel.items()),
                },
            }

        if request.method == "GET":
            return json_response(
                scale_of(await self.registry.get(res, target.namespace, target.name))
            )
        opts = _write_options(request)
        if request.method == "PUT":
            body = await _read_json(request)
            replicas = body.get("spec", {}).get("replicas")
            rv = body.get("metadata", {}).get("resourceVersion")
        elif request.method == "PATCH":
            body = _loads(await request.read())
            if isinstance(body, list):  # JSON patch against the Scale document
                from apiserver import patch

                current = scale_of(await self.registry.get(res, target.namespace, target.name))
                body = patch.json_patch(current, body)
            replicas = body.get("spec", {}).get("replicas")
            rv = None
        else:
            raise method_not_allowed("scale supports get, update and patch")
        if not isinstance(replicas, int):
            raise bad_request("spec.replicas must be an integer")
        merge: Obj = {"spec": {"replicas": replicas}}
        if rv:
            merge["metadata"] = {"resourceVersion": rv}
        obj = await self.registry.patch(
            res,
            target.namespace,
            target.name,
            "application/merge-patch+json",
            orjson.dumps(merge),
            opts,
        )
        return json_response(scale_of(obj))

    # ------------------------------------------------------------------ output

    def _respond_objects(
        self, request: web.Request, res: Resource, items: list[Obj], single: bool
    ) -> web.Response:
        if _wants_table(request):
            return json_response(
                tables.build_table(res.kind, items, datetime.now(UTC), _include_object(request))
            )
        return json_response(items[0] if single else items)

    def _respond_list(
        self, request: web.Request, res: Resource, items: list[Obj], revision: int
    ) -> web.Response:
        list_meta = {"resourceVersion": str(revision)} if revision else {}
        if _wants_table(request):
            return json_response(
                tables.build_table(
                    res.kind, items, datetime.now(UTC), _include_object(request), list_meta
                )
            )
        return json_response(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": list_meta,
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        res = target.res
        as_table = _wants_table(request)
        include = _include_object(request)
        bookmarks = _flag(request, "allowWatchBookmarks")
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        batches = self.registry.watch(
            res,
            target.namespace,
            request.query.get("resourceVersion", ""),
            request.query.get("labelSelector", ""),
            request.query.get("fieldSelector", ""),
        )
        # The first batch decides the status code: a 410 before any byte is a Status.
        first: asyncio.Task[list[Delivery]] = asyncio.ensure_future(anext(batches))
        done, _ = await asyncio.wait({first}, timeout=0.05)
        if done and first.exception():
            exc = first.exception()
            assert exc is not None
            raise exc
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        last_rv = request.query.get("resourceVersion", "")
        deadline = time.monotonic() + timeout
        pending: asyncio.Task[list[Delivery]] | None = first
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                assert pending is not None
                done, _ = await asyncio.wait({pending}, timeout=min(remaining, BOOKMARK_SECONDS))
                if not done:
                    if bookmarks and last_rv:
                        mark = {
                            "kind": res.kind,
                            "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": last_rv},
                        }
                        await resp.write(Delivery("BOOKMARK", mark).line)
                    continue
                try:
                    batch = pending.result()
                except StopAsyncIteration:
                    break
                except ApiError as e:
                    await resp.write(Delivery("ERROR", e.status()).line)
                    break
                except Exception as e:
                    # the response has started: report inside the stream, never a 2nd reply
                    log.exception("watch of %s failed", res.plural)
                    error = ApiError(500, "InternalError", f"Internal error occurred: {e}")
                    await resp.write(Delivery("ERROR", error.status()).line)
                    break
                last_rv = batch[-1].resource_version or last_rv
                if as_table:
                    now = datetime.now(UTC)
                    batch = [
                        Delivery(d.type, tables.build_table(res.kind, [d.object], now, include))
                        for d in batch
                    ]
                await resp.write(b"".join(d.line for d in batch))
                pending = asyncio.ensure_future(anext(batches))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            with contextlib.suppress(BaseException):
                await batches.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _parse_target(group: str, version: str, rest: list[str]) -> Target:
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and (group, rest[2]) in BY_GROUP_PLURAL:
        namespace, rest = rest[1], rest[2:]
    res = BY_GROUP_PLURAL.get((group, rest[0]))
    if res is None or res.version != version or len(rest) > 3:
        raise not_found_path()
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in res.subresources:
        raise not_found_path()
    if res.namespaced and not namespace and name:
        raise not_found_path()
    return Target(res, namespace, name, sub)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else {}
    except ValueError as e:
        raise bad_request(f"error decoding request body: {e}") from e


async def _read_body(request: web.Request) -> Any:
    """The request body as JSON data; typed kubectl commands send Kubernetes protobuf."""
    raw = await request.read()
    if protobuf.CONTENT_TYPE in request.headers.get("Content-Type", ""):
        try:
            return protobuf.decode_request(raw)
        except protobuf.ProtobufError as e:
            raise bad_request(f"error decoding protobuf request body: {e}") from e
    return _loads(raw)


async def _read_json(request: web.Request) -> Obj:
    body = await _read_body(request)
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


async def _delete_options(request: web.Request) -> Obj:
    opts: Obj = await _read_body(request)
    if not isinstance(opts, dict):
        raise bad_request("DeleteOptions must be a JSON object")
    q = request.query
    if "gracePeriodSeconds" in q:
        opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
    if "propagationPolicy" in q:
        opts["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        opts["orphanDependents"] = q["orphanDependents"] == "true"
    if q.get("dryRun") == "All":
        opts["dryRun"] = ["All"]
    return opts
