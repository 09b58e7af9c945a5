"""pods/log, exec, attach and portforward: the apiserver relays them to the pod's node agent.

As kube-apiserver does with kubelets, the apiserver resolves the pod's node, finds the
agent's address in the Node (`InternalIP`, `status.daemonEndpoints.kubeletEndpoint.Port`)
and forwards the request with a bearer token only it holds. Logs are streamed through
as chunks; exec is a WebSocket relay that leaves the channel protocol
(`v5.channel.k8s.io`, `v4.channel.k8s.io`) to the two ends.

Port-forward comes in three shapes, all ending at the agent's port-forward WebSocket:
- kubectl (1.31+ by default): a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`
  tunnelling a SPDY session in its binary messages;
- kubectl's fallback (and older kubectl): `Upgrade: SPDY/3.1` with
  `X-Stream-Protocol-Version: portforward.k8s.io`, then raw SPDY on the connection;
- the Python client: a WebSocket speaking the channel protocol itself
  (`v4.channel.k8s.io`, ports in the query), relayed as is.
The SPDY sessions are served by `PortForwardSession`, which dials the agent once per
forwarded connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from apiserver.errors import ApiError, bad_request
from apiserver.portforward import Dial, PortForwardError, PortForwardSession, Upstream
from apiserver.registry import Registry
from apiserver.spdy import SpdyError
from minikube_py.api.resources import BY_KIND
from minikube_py.api.types import Obj

CHANNEL_PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
SPDY_PROTOCOL = "SPDY/3.1"
PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
SPDY_TUNNEL_PROTOCOL = f"{SPDY_PROTOCOL}+{PORT_FORWARD_PROTOCOL}"
PORT_FORWARD_CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", PORT_FORWARD_PROTOCOL)
_LOG_PARAMS = ("follow", "tailLines", "timestamps", "previous", "sinceSeconds", "limitBytes")
_EXEC_PARAMS = ("stdin", "stdout", "stderr", "tty")

log = logging.getLogger(__name__)
WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


def _offered(request: web.Request, header: str) -> list[str]:
    return [p.strip() for p in request.headers.get(header, "").split(",") if p.strip()]


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
        return await self._agent_base(pod), pod, container

    async def _agent_base(self, pod: Obj) -> str:
        """The base URL of the agent on the pod's node."""
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name:
            raise bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
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
        return f"http://{ip}:{port}"

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
        protocols = [
            p for p in _offered(request, "Sec-WebSocket-Protocol") if p in CHANNEL_PROTOCOLS
        ]
        if not protocols:
            raise bad_request(
                "exec needs a WebSocket with one of the subprotocols "
                + ", ".join(CHANNEL_PROTOCOLS)
            )
        return await self._relay(request, url, protocols)

    async def _relay(
        self, request: web.Request, url: str, protocols: list[str]
    ) -> web.StreamResponse:
        """Join the client's WebSocket to the agent's, message for message."""
        try:
            upstream = await self.session.ws_connect(url, protocols=protocols, max_msg_size=0)
        except (aiohttp.ClientError, aiohttp.WSServerHandshakeError) as e:
            raise ApiError(503, "ServiceUnavailable", f"cannot reach the node agent: {e}") from e
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else protocols, max_msg_size=0
        )
        await client.prepare(request)

        async def pump(src: WebSocket, dst: WebSocket) -> None:
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

    # ------------------------------------------------------------------ port-forward

    async def port_forward(
        self, request: web.Request, namespace: str, name: str
    ) -> web.StreamResponse:
        pod = await self.registry.get(BY_KIND["Pod"], namespace, name)
        url = f"{await self._agent_base(pod)}/portForward/{quote(namespace)}/{quote(name)}"
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            offered = _offered(request, "Sec-WebSocket-Protocol")
            if SPDY_TUNNEL_PROTOCOL in offered:
                return await self._spdy_over_websocket(request, url, name)
            protocols = [p for p in offered if p in PORT_FORWARD_CHANNEL_PROTOCOLS]
            ports = [v for key in ("port", "ports") for v in request.query.getall(key, [])]
            if protocols and ports:
                return await self._relay(
                    request, f"{url}?{urlencode([('port', p) for p in ports])}", protocols
                )
        elif upgrade == SPDY_PROTOCOL.lower():
            return await self._spdy_upgrade(request, url, name)
        raise bad_request(
            "port-forward needs an upgrade: a WebSocket with subprotocol "
            f"{SPDY_TUNNEL_PROTOCOL} (or {' or '.join(PORT_FORWARD_CHANNEL_PROTOCOLS)} with "
            f"ports in the query), or Upgrade: {SPDY_PROTOCOL}"
        )

    def _dialer(self, url: str, pod: str) -> Dial:
        async def dial(port: int) -> Upstream:
            failure = f"error forwarding port {port} to pod {pod}"
            try:
                ws = await self.session.ws_connect(
                    f"{url}?port={port}", protocols=PORT_FORWARD_CHANNEL_PROTOCOLS, max_msg_size=0
                )
            except aiohttp.WSServerHandshakeError as e:
                raise PortForwardError(f"{failure}: the node agent answered {e.status}") from e
            except aiohttp.ClientError as e:
                raise PortForwardError(f"{failure}: cannot reach the node agent: {e}") from e
            return _AgentPort(ws)

        return dial

    async def _spdy_over_websocket(
        self, request: web.Request, url: str, pod: str
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=[SPDY_TUNNEL_PROTOCOL], max_msg_size=0)
        await ws.prepare(request)

        async def tunnelled() -> AsyncIterator[bytes]:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.BINARY:
                    return  # the tunnel carries binary messages only
                yield message.data

        try:
            session = PortForwardSession(ws.send_bytes, self._dialer(url, pod))
            await self._serve_spdy(session, tunnelled(), pod)
        finally:
            await ws.close()
        return ws

    @staticmethod
    async def _serve_spdy(
        session: PortForwardSession, received: AsyncIterator[bytes], pod: str
    ) -> None:
        """Feed kubectl's SPDY bytes to the session until kubectl is done, then close it."""
        try:
            async for data in received:
                await session.feed(data)
        except SpdyError as error:
            log.warning("port-forward to %s: %s", pod, error)
        except ConnectionError:
            pass  # kubectl went away while being answered
        finally:
            await session.close()

    async def _spdy_upgrade(self, request: web.Request, url: str, pod: str) -> web.StreamResponse:
        offered = _offered(request, "X-Stream-Protocol-Version")
        if offered and PORT_FORWARD_PROTOCOL not in offered:
            raise ApiError(
                403,
                "Forbidden",
                f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                f"server supports [{PORT_FORWARD_PROTOCOL}]",
            )
        # Take the connection's bytes before answering: kubectl starts SPDY right after
        # the 101, and aiohttp would otherwise parse them as the next HTTP request.
        received: asyncio.Queue[bytes | None] = asyncio.Queue()
        request.protocol.set_parser(_RawReader(received))  # type: ignore[arg-type]
        response = web.StreamResponse(
            status=101,
            headers={
                "Connection": "Upgrade",
                "Upgrade": SPDY_PROTOCOL,
                "X-Stream-Protocol-Version": PORT_FORWARD_PROTOCOL,
            },
        )
        response.force_close()
        await response.prepare(request)

        async def upgraded() -> AsyncIterator[bytes]:
            while (data := await received.get()) is not None:
                yield data

        await self._serve_spdy(
            PortForwardSession(response.write, self._dialer(url, pod)), upgraded(), pod
        )
        return response


class _RawReader:
    """Takes an upgraded connection's bytes in place of aiohttp's HTTP parser."""

    def __init__(self, received: asyncio.Queue[bytes | None]) -> None:
        self.received = received

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.received.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.received.put_nowait(None)


class _AgentPort:
    """One forwarded connection over the agent's port-forward WebSocket (one port: data on
    channel 0, errors on channel 1, each channel's first message opening with the port)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._opened: set[int] = set()

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(b"\x00" + data)

    async def read(self) -> bytes | None:
        while True:
            message = await self.ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                return None
            if not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            if channel not in self._opened:
                self._opened.add(channel)
                payload = payload[2:]
            if payload and channel == 0:
                return bytes(payload)
            if payload and channel == 1:
                raise PortForwardError(payload.decode(errors="replace"))

    async def close(self) -> None:
        await self.ws.close()
