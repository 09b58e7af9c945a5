"""The agent server on <node-ip>:10250: logs, exec, attach and port-forward for the apiserver.

Only the apiserver may call it: every request but `/healthz` must carry
`Authorization: Bearer <token>` with the token in the agent's token file (the lab
writes it once and gives it to the apiserver and to every agent). The apiserver
proxies `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward` here, keeping the
kubelet's paths and query parameters:

- `GET /containerLogs/{ns}/{pod}/{container}?follow=&tailLines=&timestamps=&previous=`
  streams the log (chunked while following, until the container stops);
- `GET /exec/{ns}/{pod}/{container}?command=..&command=..&stdin=&stdout=&stderr=&tty=`
  is a WebSocket speaking `v5.channel.k8s.io` or `v4.channel.k8s.io`: every binary
  message starts with its channel byte (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize,
  and in v5 255 close, whose payload byte names the stream closed). Channel 3 carries
  the metav1 Status at the end: `Success`, or `Failure` with reason `NonZeroExitCode`
  and the exit code as cause `ExitCode`, as the kubelet sends it;
- `GET /attach/{ns}/{pod}/{container}?stdin=&stdout=&stderr=&tty=` is the same WebSocket
  on the streams of the container's main process (Docker's attach); it ends with the
  process's output, or when the client leaves, and then says `Success`;
- `GET /portForward/{ns}/{pod}?port=P[&port=Q]` is a WebSocket (`v4.channel.k8s.io`,
  `portforward.k8s.io`): port i has data channel 2i and error channel 2i+1, each opened
  by a frame holding the port as two little-endian bytes; the agent dials the pod IP.

Containers are found by their Docker labels, so the server needs no pod cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from docker.models.containers import Container

from agent.ipam import IPAMStore
from agent.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_NODE_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_RESTART_COUNT,
    SANDBOX_NAME,
    DockerRuntime,
    ExecSession,
    StreamSession,
)

log = logging.getLogger(__name__)

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORT_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_TRUE = ("1", "true", "True")


def exit_status(code: int | None) -> dict[str, Any]:
    """The metav1 Status the kubelet sends on the error channel when a command ends."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    detail = "unknown" if code is None else str(code)
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {detail}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": detail}]},
    }


def error_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "") in _TRUE


class AgentServer:
    def __init__(
        self,
        runtime: DockerRuntime,
        ipam: IPAMStore,
        token: str,
        host: str,
        port: int = 10250,
        ssl_context: ssl.SSLContext | None = None,
        metrics: Callable[[], str] = str,
    ) -> None:
        """`metrics` renders the agent's Prometheus text (proxy, DNS) for /metrics."""
        self.runtime = runtime
        self.metrics = metrics
        self.ipam = ipam
        self.token = token
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_get("/attach/{namespace}/{pod}/{container}", self._attach)
        app.router.add_get("/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics(), content_type="text/plain")

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != "/healthz":
            offered = request.headers.get("Authorization", "")
            if not hmac.compare_digest(offered.encode(), f"Bearer {self.token}".encode()):
                return web.Response(status=401, text="Unauthorized")
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # ------------------------------------------------------------------ lookup

    async def _find(self, request: web.Request, previous: bool = False) -> Container:
        """The pod's container named in the path (the one before it with `previous`)."""
        info = request.match_info
        listed = await asyncio.to_thread(
            self.runtime.client.api.containers,
            all=True,
            filters={
                "label": [
                    f"{LABEL_NODE_NAME}={self.runtime.node_name}",
                    f"{LABEL_POD_NAMESPACE}={info['namespace']}",
                    f"{LABEL_POD_NAME}={info['pod']}",
                    f"{LABEL_CONTAINER_NAME}={info['container']}",
                ]
            },
        )
        # A pod deleted and made again under the same name may still have containers
        # here for a moment: the newest pod's are the ones meant.
        if listed:
            newest = max(listed, key=lambda c: int(c["Created"]))["Labels"][LABEL_POD_UID]
            listed = [c for c in listed if c["Labels"][LABEL_POD_UID] == newest]
        listed.sort(key=lambda c: int(c["Labels"].get(LABEL_RESTART_COUNT, "0")), reverse=True)
        index = 1 if previous else 0
        if len(listed) <= index:
            which = "previous terminated container" if previous else "container"
            raise web.HTTPNotFound(
                text=f'{which} "{info["container"]}" in pod "{info["pod"]}" not found'
            )
        container: Container = await asyncio.to_thread(
            self.runtime.client.containers.get, listed[index]["Id"]
        )
        return container

    async def _pod_ip(self, namespace: str, pod: str) -> str:
        listed = await asyncio.to_thread(
            self.runtime.client.api.containers,
            filters={
                "label": [
                    f"{LABEL_NODE_NAME}={self.runtime.node_name}",
                    f"{LABEL_POD_NAMESPACE}={namespace}",
                    f"{LABEL_POD_NAME}={pod}",
                    f"{LABEL_CONTAINER_NAME}={SANDBOX_NAME}",
                ]
            },
        )
        for sandbox in listed:
            ip = self.ipam.allocations().get(sandbox["Labels"][LABEL_POD_UID])
            if ip:
                return ip
        raise web.HTTPNotFound(text=f'pod "{pod}" has no running sandbox on this node')

    # ------------------------------------------------------------------ logs

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        container = await self._find(request, previous=_flag(request, "previous"))
        tail_lines = request.query.get("tailLines")
        tail = int(tail_lines) if tail_lines else None
        timestamps = _flag(request, "timestamps")
        if not _flag(request, "follow"):
            body = await asyncio.to_thread(
                self.runtime.logs, container, tail=tail, timestamps=timestamps
            )
            return web.Response(body=body, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        stream = self.runtime.logs(container, follow=True, tail=tail, timestamps=timestamps)

        def pump() -> None:
            with contextlib.suppress(Exception):  # the stream closes when the client left
                for chunk in stream:
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            loop.call_soon_threadsafe(chunks.put_nowait, None)

        threading.Thread(target=pump, name="log-follow", daemon=True).start()
        try:
            while (chunk := await chunks.get()) is not None:
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client stopped following
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        return response

    # ------------------------------------------------------------------ exec

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            raise web.HTTPBadRequest(text="you must specify at least 1 command")
        container = await self._find(request)

        async def start() -> StreamSession:
            return await self.runtime.exec(
                container, command, stdin=_flag(request, "stdin"), tty=_flag(request, "tty")
            )

        async def finished(session: StreamSession) -> dict[str, Any]:
            assert isinstance(session, ExecSession)
            return exit_status(await session.exit_code())

        return await self._stream(request, start, finished)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        container = await self._find(request)
        if container.status != "running":
            raise web.HTTPBadRequest(
                text=f"container {request.match_info['container']} is not running"
            )

        async def start() -> StreamSession:
            return await self.runtime.attach(
                container,
                stdin=_flag(request, "stdin"),
                stdout=_flag(request, "stdout"),
                stderr=_flag(request, "stderr"),
            )

        async def finished(_session: StreamSession) -> dict[str, Any]:
            return exit_status(0)  # the kubelet's word when an attach ends

        return await self._stream(request, start, finished)

    async def _stream(
        self,
        request: web.Request,
        start: Callable[[], Awaitable[StreamSession]],
        finished: Callable[[StreamSession], Awaitable[dict[str, Any]]],
    ) -> web.StreamResponse:
        """Relay a session's streams over the channel protocol until its output ends,
        then send `finished`'s Status on the error channel."""
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True)
        await ws.prepare(request)
        v5 = ws.ws_protocol == "v5.channel.k8s.io"
        try:
            session = await start()
        except Exception as error:  # it could not start: tell the client why
            await ws.send_bytes(bytes([ERROR]) + json.dumps(error_status(str(error))).encode())
            await ws.close()
            return ws
        reader = asyncio.create_task(self._stream_input(ws, session, v5))
        try:
            while (frame := await session.read()) is not None:
                channel, data = frame
                await ws.send_bytes(bytes([channel]) + data)
            if not ws.closed:
                status = await finished(session)
                await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        except (ConnectionResetError, aiohttp.ClientConnectionError):
            pass  # the client went away
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await session.close()
            await ws.close()
        return ws

    @staticmethod
    async def _stream_input(ws: web.WebSocketResponse, session: StreamSession, v5: bool) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                continue
            channel, payload = message.data[0], message.data[1:]
            if channel == STDIN and payload:
                await session.write(payload)
            elif channel == RESIZE:
                size = json.loads(payload)
                await session.resize(int(size.get("Height", 24)), int(size.get("Width", 80)))
            elif channel == CLOSE and v5 and payload[:1] == bytes([STDIN]):
                await session.close_stdin()
        # The client left (a detach): the session ends with it.
        await session.close()

    # ------------------------------------------------------------------ port-forward

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        ports = [
            int(p)
            for key in ("port", "ports")
            for v in request.query.getall(key, [])
            for p in v.split(",")
        ]
        if not ports:
            raise web.HTTPBadRequest(text='query parameter "port" is required')
        ip = await self._pod_ip(request.match_info["namespace"], request.match_info["pod"])
        ws = web.WebSocketResponse(protocols=PORT_FORWARD_PROTOCOLS, autoping=True)
        await ws.prepare(request)
        for i, port in enumerate(ports):
            for channel in (2 * i, 2 * i + 1):
                await ws.send_bytes(bytes([channel]) + port.to_bytes(2, "little"))
        writers: dict[int, asyncio.StreamWriter] = {}
        pumps: list[asyncio.Task[None]] = []
        for i, port in enumerate(ports):
            try:
                reader, writer = await asyncio.open_connection(ip, port)
            except OSError as error:
                failure = (
                    f"error forwarding port {port} to pod {request.match_info['pod']}: {error}"
                )
                await ws.send_bytes(bytes([2 * i + 1]) + failure.encode())
                continue
            writers[2 * i] = writer
            pumps.append(asyncio.create_task(self._pod_to_client(reader, ws, 2 * i)))
        closer = asyncio.create_task(self._close_when_pods_done(ws, pumps))
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                    continue
                target = writers.get(message.data[0])
                if target is not None and len(message.data) > 1:
                    target.write(message.data[1:])
                    await target.drain()
        finally:
            closer.cancel()
            for pump in pumps:
                pump.cancel()
            for writer in writers.values():
                writer.close()
        return ws

    @staticmethod
    async def _close_when_pods_done(
        ws: web.WebSocketResponse, pumps: list[asyncio.Task[None]]
    ) -> None:
        """As the kubelet does, end the stream once every port's connection has ended (the
        pod closed it, or it failed), so that the client sees the end too."""
        await asyncio.gather(*pumps, return_exceptions=True)
        await ws.close()

    @staticmethod
    async def _pod_to_client(
        reader: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int
    ) -> None:
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionError):
            while data := await reader.read(65536):
                await ws.send_bytes(bytes([channel]) + data)
