"""pods/log, pods/exec and pods/attach: the apiserver relays them to the pod's node agent.

As kube-apiserver does with kubelets, the apiserver resolves the pod's node, finds the
agent's address in the Node (`InternalIP`, `status.daemonEndpoints.kubeletEndpoint.Port`)
and forwards the request with a bearer token only it holds. Logs are streamed through
as chunks; exec is a WebSocket relay that leaves the channel protocol
(`v5.channel.k8s.io`, `v4.channel.k8s.io`) to the two ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from apiserver.errors import ApiError, bad_request
from apiserver.registry import Registry
from minikube_py.api.resources import BY_KIND
from minikube_py.api.types import Obj

CHANNEL_PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
_LOG_PARAMS = ("follow", "tailLines", "timestamps", "previous", "sinceSeconds", "limitBytes")
_EXEC_PARAMS = ("stdin", "stdout", "stderr", "tty")


class NodeProxy:
    def __init__(self, registry: Registry, agent_token: str) -> None:
        self.registry = registry
        self.agent_token = agent_token
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.agent_token}"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _target(self, namespace: str, name: str, container: str) -> tuple[str, Obj, str]:
        """(agent base URL, pod, container name) for a pod's container."""
        pod = await self.registry.get(BY_KIND["Pod"], namespace, name)
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        containers += [c["name"] for c in pod.get("spec", {}).get("initContainers") or []]
        if not container:
            default = (
                pod["metadata"]
                .get("annotations", {})
                .get("kubectl.kubernetes.io/default-container")
            )
            if default or len(containers) == 1:
                container = default or containers[0]
            else:
                raise bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]"
                )
        if container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name:
            raise bad_request(f"pod {name} does not have a host assigned")
        node = await self.registry.get(BY_KIND["Node"], "", node_name)
        status = node.get("status", {})
        ip = next(
            (a["address"] for a in status.get("addresses", []) if a.get("type") == "InternalIP"),
            None,
        )
        port = status.get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
        if not ip or not port:
            raise ApiError(
                503, "ServiceUnavailable", f"node {node_name} has no agent address to reach"
            )
        return f"http://{ip}:{port}", pod, container

    async def logs(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        base, _, container = await self._target(namespace, name, request.query.get("container", ""))
        params = {k: request.query[k] for k in _LOG_PARAMS if k in request.query}
        url = f"{base}/containerLogs/{quote(namespace)}/{quote(name)}/{quote(container)}"
        try:
            upstream = await self.session.get(url + ("?" + urlencode(params) if params else ""))
        except aiohttp.ClientError as e:
            raise ApiError(503, "ServiceUnavailable", f"cannot reach the node agent: {e}") from e
        async with upstream:
            if upstream.status >= 300:
                raise ApiError(upstream.status, "BadRequest", (await upstream.text()).strip())
            resp = web.StreamResponse()
            resp.content_type = "text/plain"
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            return resp

    async def exec(
        self, request: web.Request, namespace: str, name: str, sub: str
    ) -> web.StreamResponse:
        base, _, container = await self._target(namespace, name, request.query.get("container", ""))
        params: list[tuple[str, str]] = [
            (k, request.query[k]) for k in _EXEC_PARAMS if k in request.query
        ]
        params += [("command", c) for c in request.query.getall("command", [])]
        if sub == "exec" and not any(k == "command" for k, _ in params):
            raise bad_request("you must specify at least 1 command")
        path = "exec" if sub == "exec" else "attach"
        url = f"{base}/{path}/{quote(namespace)}/{quote(name)}/{quote(container)}?" + urlencode(
            params
        )
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        protocols = [p for p in offered if p in CHANNEL_PROTOCOLS]
        if not protocols:
            raise bad_request(
                "exec needs a WebSocket with one of the subprotocols "
                + ", ".join(CHANNEL_PROTOCOLS)
            )
        try:
            upstream = await self.session.ws_connect(url, protocols=protocols, max_msg_size=0)
        except (aiohttp.ClientError, aiohttp.WSServerHandshakeError) as e:
            raise ApiError(503, "ServiceUnavailable", f"cannot reach the node agent: {e}") from e
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else protocols, max_msg_size=0
        )
        await client.prepare(request)

        async def pump(
            src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
            dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        ) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                else:
                    break
            await dst.close()

        tasks = [
            asyncio.create_task(pump(client, upstream)),
            asyncio.create_task(pump(upstream, client)),
        ]
        try:
            # the agent closing (command exited) ends the session; the client closing too
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            await asyncio.wait(tasks, timeout=5)
        finally:
            for t in tasks:
                t.cancel()
            await upstream.close()
            await client.close()
        return client
