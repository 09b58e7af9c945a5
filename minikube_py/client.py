"""An asyncio REST client for the Kubernetes API, shared by controllers, agents and CLI.

Thin on purpose: paths come from the resource catalogue, bodies are plain dicts, and a
non-2xx answer raises `ApiException` carrying the server's `Status` (code and reason),
so callers branch on `e.code == 409` exactly as they would with client-go.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import yaml

from minikube_py.api.resources import BY_KIND, Resource
from minikube_py.api.types import Obj


class ApiException(Exception):
    def __init__(self, code: int, status: Obj) -> None:
        self.code = code
        self.status = status
        self.reason = str(status.get("reason", ""))
        super().__init__(f"{code} {self.reason}: {status.get('message', '')}")


def _status_of(code: int, raw: bytes) -> Obj:
    """The `Status` an error answer carries, or one made of its text (a proxy's page)."""
    try:
        payload = orjson.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("kind") == "Status":
        return payload
    return {"kind": "Status", "code": code, "message": raw.decode(errors="replace")}


@dataclass(frozen=True)
class Credentials:
    server: str
    token: str
    ca_file: str | None = None
    ca_data: bytes | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str | None = None) -> Credentials:
        import base64

        cfg = yaml.safe_load(path.read_text())
        ctx_name = context or cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        ca = cluster.get("certificate-authority-data")
        return cls(
            server=cluster["server"],
            token=user.get("token", ""),
            ca_file=cluster.get("certificate-authority"),
            ca_data=base64.b64decode(ca) if ca else None,
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.ca_data:
            ctx.load_verify_locations(cadata=self.ca_data.decode())
        return ctx


def resource_path(res: Resource, namespace: str = "", name: str = "", sub: str = "") -> str:
    base = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    if res.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{res.plural}"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


class Client:
    def __init__(
        self,
        creds: Credentials,
        user_agent: str = "minikube-py",
        field_manager: str = "",
        field_validation: str = "",
    ) -> None:
        """`field_validation`: the `fieldValidation` of every write (the server's
        default, Warn, when empty). The cluster's own components write objects they
        built from known fields, so they say Ignore and spare the apiserver a walk of
        each body looking for unknown ones."""
        self.creds = creds
        self.field_manager = field_manager or user_agent
        self._write_params = {"fieldManager": self.field_manager}
        if field_validation:
            self._write_params["fieldValidation"] = field_validation
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self.creds.server,
                headers={
                    "Authorization": f"Bearer {self.creds.token}",
                    "User-Agent": self._user_agent,
                },
                connector=aiohttp.TCPConnector(ssl=self.creds.ssl_context(), limit=64),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        url = path + ("?" + urlencode(params) if params else "")
        data = None if body is None else orjson.dumps(body)
        async with self.session.request(
            method,
            url,
            data=data,
            headers={"Content-Type": content_type},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise ApiException(resp.status, _status_of(resp.status, raw))
            return orjson.loads(raw) if raw else {}

    # ------------------------------------------------------------------ verbs

    async def get(self, kind: str, name: str, namespace: str = "") -> Obj:
        obj: Obj = await self.request("GET", resource_path(BY_KIND[kind], namespace, name))
        return obj

    async def list(
        self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> Obj:
        params = {
            k: v
            for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector))
            if v
        }
        obj: Obj = await self.request("GET", resource_path(BY_KIND[kind], namespace), params=params)
        return obj

    async def create(self, obj: Obj, namespace: str = "") -> Obj:
        res = BY_KIND[obj["kind"]]
        ns = namespace or obj.get("metadata", {}).get("namespace", "default")
        out: Obj = await self.request(
            "POST",
            resource_path(res, ns if res.namespaced else ""),
            obj,
            params=self._write_params,
        )
        return out

    async def update(self, obj: Obj, sub: str = "") -> Obj:
        res = BY_KIND[obj["kind"]]
        md = obj["metadata"]
        out: Obj = await self.request(
            "PUT",
            resource_path(res, md.get("namespace", ""), md["name"], sub),
            obj,
            params=self._write_params,
        )
        return out

    async def update_status(self, obj: Obj) -> Obj:
        return await self.update(obj, "status")

    async def patch(
        self,
        kind: str,
        name: str,
        patch: Any,
        namespace: str = "",
        sub: str = "",
        patch_type: str = "application/merge-patch+json",
    ) -> Obj:
        out: Obj = await self.request(
            "PATCH",
            resource_path(BY_KIND[kind], namespace, name, sub),
            patch,
            params=self._write_params,
            content_type=patch_type,
        )
        return out

    async def delete(
        self, kind: str, name: str, namespace: str = "", options: Obj | None = None
    ) -> Obj:
        out: Obj = await self.request(
            "DELETE",
            resource_path(BY_KIND[kind], namespace, name),
            {"kind": "DeleteOptions", "apiVersion": "v1", **(options or {})},
        )
        return out

    async def bind(self, pod: Obj, node: str) -> None:
        md = pod["metadata"]
        await self.request(
            "POST",
            resource_path(BY_KIND["Pod"], md["namespace"], md["name"], "binding"),
            {
                "kind": "Binding",
                "apiVersion": "v1",
                "metadata": {"name": md["name"], "namespace": md["namespace"]},
                "target": {"kind": "Node", "apiVersion": "v1", "name": node},
            },
        )

    async def watch(
        self,
        kind: str,
        namespace: str = "",
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) events until the server ends the watch. An ERROR event is
        raised as ApiException (410 means: relist)."""
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        for key, value in (
            ("resourceVersion", resource_version),
            ("labelSelector", label_selector),
            ("fieldSelector", field_selector),
        ):
            if value:
                params[key] = value
        path = resource_path(BY_KIND[kind], namespace) + "?" + urlencode(params)
        async with self.session.get(
            path, timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        ) as resp:
            if resp.status >= 300:
                raise ApiException(resp.status, _status_of(resp.status, await resp.read()))
            async for line in resp.content:
                if not line.strip():
                    continue
                event = orjson.loads(line)
                if event["type"] == "ERROR":
                    status = event["object"]
                    raise ApiException(int(status.get("code", 500)), status)
                yield event["type"], event["object"]


async def wait_ready(client: Client, timeout: float = 30.0) -> None:
    """Until /readyz answers ok."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            async with client.session.get("/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
        except (TimeoutError, aiohttp.ClientError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("apiserver not ready")
        await asyncio.sleep(0.1)
