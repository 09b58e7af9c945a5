"""The apiserver's end of `kubectl port-forward`: one SPDY/3.1 session, one agent dial per
forwarded connection.

kubectl opens, for every local connection it accepts, a pair of SPDY streams carrying
the headers `streamtype` (`error` first, then `data`), `port` and `requestid`. As the
kubelet does, the session answers each SYN_STREAM with a SYN_REPLY, and once a pair is
complete it dials the pod's port through the node agent (`Dial`, one agent connection
per pair) and relays bytes both ways. When either side stops, the other gets up to a
second to finish (as containerd's port-forward does), then the data stream ends with
FIN; a failure is written as text on the error stream, which always ends with FIN:
kubectl waits for that FIN before it closes the local connection.

The session is transport-neutral: `feed` takes the bytes kubectl sent (a raw SPDY
upgrade and the WebSocket tunnel carry the same byte stream) and `send` writes bytes
back. Frames are encoded and sent under one lock, since the header compressor's state
must follow the order frames go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from apiserver import spdy

log = logging.getLogger(__name__)

STREAM_TYPE, PORT, REQUEST_ID = "streamtype", "port", "requestid"
DATA, ERROR = "data", "error"
# After one direction of a forwarded connection ends, the other may still drain (socat's
# and containerd's default).
HALF_CLOSE_GRACE = 1.0
_CHUNK = 64 * 1024


class PortForwardError(Exception):
    """Forwarding a connection failed; the message is what kubectl shows."""


class Upstream(Protocol):
    """One connection to the pod's port, opened by `Dial`."""

    async def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes | None:
        """The pod's next bytes; None once it closed. Raises PortForwardError on failure."""
        ...

    async def close(self) -> None: ...


Dial = Callable[[int], Awaitable[Upstream]]


@dataclass
class _Pair:
    """The error and data streams kubectl opened for one local connection."""

    request_id: str
    port: int
    error_id: int = 0
    data_id: int = 0
    # client -> pod bytes; None once kubectl sent FIN on the data stream
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    reset: asyncio.Event = field(default_factory=asyncio.Event)
    data_finished: bool = False  # FIN sent on the data stream
    task: asyncio.Task[None] | None = None


class PortForwardSession:
    def __init__(self, send: Callable[[bytes], Awaitable[None]], dial: Dial) -> None:
        self._send = send
        self._dial = dial
        self._reader = spdy.FrameReader()
        self._writer = spdy.FrameWriter()
        self._write_lock = asyncio.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._streams: dict[int, _Pair] = {}
        self._going_away = False

    async def feed(self, data: bytes) -> None:
        """Handle bytes from kubectl. Raises spdy.SpdyError when they are not SPDY/3.1."""
        for frame in self._reader.feed(data):
            await self._handle(frame)

    async def close(self) -> None:
        """The transport ended: stop every forwarded connection."""
        tasks = [p.task for p in self._pairs.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _write(self, frame: spdy.Frame) -> None:
        async with self._write_lock:
            await self._send(self._writer.encode(frame))

    async def _handle(self, frame: spdy.Frame) -> None:
        match frame:
            case spdy.SynStream():
                await self._open(frame)
            case spdy.Data():
                pair = self._streams.get(frame.stream_id)
                if pair is not None and frame.stream_id == pair.data_id:
                    if frame.data:
                        pair.inbound.put_nowait(frame.data)
                    if frame.fin:
                        pair.inbound.put_nowait(None)
            case spdy.RstStream():
                pair = self._streams.get(frame.stream_id)
                if pair is not None:
                    pair.reset.set()
            case spdy.Ping() if frame.ping_id % 2 == 1:  # the client's; ours would be even
                await self._write(frame)
            case spdy.GoAway():
                self._going_away = True
            # SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY: nothing to do for port-forward

    async def _open(self, frame: spdy.SynStream) -> None:
        """Accept or refuse a new stream, as the kubelet validates it."""
        headers = frame.headers
        kind = headers.get(STREAM_TYPE, "")
        port_text = headers.get(PORT, "")
        valid_port = port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536
        if (
            self._going_away
            or frame.stream_id in self._streams
            or kind not in (DATA, ERROR)
            or not valid_port
        ):
            log.info("port-forward: refusing stream %d %s", frame.stream_id, headers)
            await self._write(spdy.RstStream(frame.stream_id, spdy.CANCEL))
            return
        # clients older than the requestid header number a pair by its error stream's id
        request_id = headers.get(REQUEST_ID) or str(
            frame.stream_id if kind == ERROR else frame.stream_id - 2
        )
        pair = self._pairs.setdefault(request_id, _Pair(request_id, int(port_text)))
        if (pair.error_id if kind == ERROR else pair.data_id) or pair.port != int(port_text):
            await self._write(spdy.RstStream(frame.stream_id, spdy.CANCEL))
            return
        if kind == ERROR:
            pair.error_id = frame.stream_id
        else:
            pair.data_id = frame.stream_id
        self._streams[frame.stream_id] = pair
        await self._write(spdy.SynReply(frame.stream_id))
        if pair.error_id and pair.data_id:
            pair.task = asyncio.create_task(self._forward(pair))

    async def _forward(self, pair: _Pair) -> None:
        failure = ""
        upstream: Upstream | None = None
        relays: list[asyncio.Task[None]] = []
        try:
            upstream = await self._dial(pair.port)
            relays = [
                asyncio.create_task(self._to_pod(pair, upstream)),
                asyncio.create_task(self._from_pod(pair, upstream)),
            ]
            reset = asyncio.create_task(pair.reset.wait())
            done, pending = await asyncio.wait(
                [*relays, reset], return_when=asyncio.FIRST_COMPLETED
            )
            failure = _failure(done)
            if reset not in done and not failure:
                done, _ = await asyncio.wait(
                    pending, timeout=HALF_CLOSE_GRACE, return_when=asyncio.FIRST_COMPLETED
                )
                failure = _failure(done)
            reset.cancel()
        except PortForwardError as error:
            failure = str(error)
        finally:
            for relay in relays:
                relay.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            if upstream is not None:
                with contextlib.suppress(Exception):
                    await upstream.close()
            await self._finish(pair, failure)

    async def _finish(self, pair: _Pair, failure: str) -> None:
        for stream_id in (pair.error_id, pair.data_id):
            self._streams.pop(stream_id, None)
        self._pairs.pop(pair.request_id, None)
        if failure:
            log.info("port-forward: %s", failure)
        with contextlib.suppress(ConnectionError, RuntimeError):
            if not pair.reset.is_set() and not pair.data_finished:
                await self._write(spdy.Data(pair.data_id, fin=True))
            if failure:
                await self._write(spdy.Data(pair.error_id, failure.encode()))
            await self._write(spdy.Data(pair.error_id, fin=True))

    @staticmethod
    async def _to_pod(pair: _Pair, upstream: Upstream) -> None:
        while (data := await pair.inbound.get()) is not None:
            await upstream.write(data)

    async def _from_pod(self, pair: _Pair, upstream: Upstream) -> None:
        while (data := await upstream.read()) is not None:
            for start in range(0, len(data), _CHUNK):
                await self._write(spdy.Data(pair.data_id, data[start : start + _CHUNK]))
        # the pod is done sending: kubectl sees EOF at once, while its own side may drain
        pair.data_finished = True
        await self._write(spdy.Data(pair.data_id, fin=True))


def _failure(done: Iterable[asyncio.Task[Any]]) -> str:
    """The PortForwardError message of a finished relay, if one failed that way."""
    for task in done:
        if not task.cancelled() and isinstance(task.exception(), PortForwardError):
            return str(task.exception())
    return ""
