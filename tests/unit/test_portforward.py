"""apiserver/portforward.py: the SPDY port-forward session against an in-memory pod port.

A test plays kubectl (a FrameWriter for what it sends, a FrameReader for what it gets)
and stands in for the agent with `FakePort`, whose bytes the test scripts. The real
agent and kubectl are exercised by tests/e2e/test_port_forward.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from apiserver import portforward, spdy
from apiserver.portforward import PortForwardError, PortForwardSession


class FakePort:
    def __init__(self) -> None:
        self.written = bytearray()
        self.replies: asyncio.Queue[bytes | PortForwardError | None] = asyncio.Queue()
        self.closed = False

    async def write(self, data: bytes) -> None:
        self.written += data

    async def read(self) -> bytes | None:
        reply = await self.replies.get()
        if isinstance(reply, PortForwardError):
            raise reply
        return reply

    async def close(self) -> None:
        self.closed = True


class Kubectl:
    """The client end: sends frames into the session, collects the frames it answers."""

    def __init__(self, dial_error: str = "") -> None:
        self.writer = spdy.FrameWriter()
        self.reader = spdy.FrameReader()
        self.received: asyncio.Queue[spdy.Frame] = asyncio.Queue()
        self.ports: list[tuple[int, FakePort]] = []
        self.dial_error = dial_error
        self.session = PortForwardSession(self._receive, self._dial)

    async def _receive(self, data: bytes) -> None:
        for frame in self.reader.feed(data):
            self.received.put_nowait(frame)

    async def _dial(self, port: int) -> FakePort:
        if self.dial_error:
            raise PortForwardError(self.dial_error)
        fake = FakePort()
        self.ports.append((port, fake))
        return fake

    async def send(self, *frames: spdy.Frame) -> None:
        await self.session.feed(b"".join(self.writer.encode(f) for f in frames))

    async def next(self) -> spdy.Frame:
        return await asyncio.wait_for(self.received.get(), 3)

    async def open_pair(self, request_id: int, port: int = 8080) -> tuple[int, int]:
        error_id, data_id = 4 * request_id + 1, 4 * request_id + 3
        headers = {"streamtype": "error", "port": str(port), "requestid": str(request_id)}
        await self.send(spdy.SynStream(error_id, headers), spdy.Data(error_id, fin=True))
        assert await self.next() == spdy.SynReply(error_id)
        await self.send(spdy.SynStream(data_id, {**headers, "streamtype": "data"}))
        assert await self.next() == spdy.SynReply(data_id)
        return error_id, data_id


async def eventually(check: Callable[[], object]) -> None:
    """Let the session's tasks run until `check()` holds (3 s at most)."""
    async with asyncio.timeout(3):
        while not check():
            await asyncio.sleep(0.01)


async def test_a_connection_is_relayed_and_ended_as_kubectl_expects() -> None:
    kubectl = Kubectl()
    error_id, data_id = await kubectl.open_pair(0)
    await kubectl.send(spdy.Data(data_id, b"GET / HTTP/1.0\r\n\r\n"))
    await eventually(lambda: kubectl.ports and kubectl.ports[0][1].written)
    [(port, pod)] = kubectl.ports
    assert port == 8080 and bytes(pod.written) == b"GET / HTTP/1.0\r\n\r\n"
    pod.replies.put_nowait(b"HTTP/1.0 200 OK\r\n\r\nhello")
    pod.replies.put_nowait(None)  # the pod closes
    assert await kubectl.next() == spdy.Data(data_id, b"HTTP/1.0 200 OK\r\n\r\nhello")
    assert await kubectl.next() == spdy.Data(data_id, fin=True)
    # kubectl resets the data stream once it read to the end, then waits for the error FIN
    await kubectl.send(spdy.RstStream(data_id, spdy.CANCEL))
    assert await kubectl.next() == spdy.Data(error_id, fin=True)
    assert pod.closed


async def test_client_half_close_gives_the_pod_a_grace_then_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(portforward, "HALF_CLOSE_GRACE", 0.3)
    kubectl = Kubectl()
    error_id, data_id = await kubectl.open_pair(0)
    await kubectl.send(spdy.Data(data_id, b"bye", fin=True))
    await eventually(lambda: kubectl.ports)
    [(_, pod)] = kubectl.ports
    pod.replies.put_nowait(b"late answer")  # within the grace period
    assert await kubectl.next() == spdy.Data(data_id, b"late answer")
    ends = {await kubectl.next(), await kubectl.next()}
    assert ends == {spdy.Data(data_id, fin=True), spdy.Data(error_id, fin=True)}
    assert bytes(pod.written) == b"bye" and pod.closed


async def test_refused_port_reaches_the_error_stream() -> None:
    message = "error forwarding port 9999 to pod web: connection refused"
    kubectl = Kubectl(dial_error=message)
    error_id, data_id = await kubectl.open_pair(0, 9999)
    assert await kubectl.next() == spdy.Data(data_id, fin=True)
    assert await kubectl.next() == spdy.Data(error_id, message.encode())
    assert await kubectl.next() == spdy.Data(error_id, fin=True)


async def test_an_agent_error_mid_connection_reaches_the_error_stream() -> None:
    kubectl = Kubectl()
    error_id, data_id = await kubectl.open_pair(0)
    await eventually(lambda: kubectl.ports)
    [(_, pod)] = kubectl.ports
    pod.replies.put_nowait(PortForwardError("pod went away"))
    frames = [await kubectl.next() for _ in range(3)]
    assert frames == [
        spdy.Data(data_id, fin=True),
        spdy.Data(error_id, b"pod went away"),
        spdy.Data(error_id, fin=True),
    ]


async def test_two_connections_share_the_session() -> None:
    kubectl = Kubectl()
    _, first = await kubectl.open_pair(0)
    _, second = await kubectl.open_pair(1)
    await kubectl.send(spdy.Data(second, b"two"), spdy.Data(first, b"one"))
    await eventually(lambda: len(kubectl.ports) == 2 and all(p.written for _, p in kubectl.ports))
    assert [bytes(pod.written) for _, pod in kubectl.ports] == [b"one", b"two"]
    await kubectl.session.close()
    assert all(pod.closed for _, pod in kubectl.ports)


@pytest.mark.parametrize(
    "headers",
    [
        {"streamtype": "stdin", "port": "80", "requestid": "0"},
        {"streamtype": "data", "port": "0", "requestid": "0"},
        {"streamtype": "data", "port": "http", "requestid": "0"},
        {"streamtype": "data", "requestid": "0"},
    ],
)
async def test_invalid_streams_are_reset(headers: dict[str, str]) -> None:
    kubectl = Kubectl()
    await kubectl.send(spdy.SynStream(1, headers))
    assert await kubectl.next() == spdy.RstStream(1, spdy.CANCEL)


async def test_a_stream_type_twice_in_one_pair_is_reset() -> None:
    kubectl = Kubectl()
    headers = {"streamtype": "error", "port": "80", "requestid": "7"}
    await kubectl.send(spdy.SynStream(1, headers), spdy.SynStream(3, headers))
    assert await kubectl.next() == spdy.SynReply(1)
    assert await kubectl.next() == spdy.RstStream(3, spdy.CANCEL)


async def test_pairs_without_requestid_are_matched_by_stream_id() -> None:
    kubectl = Kubectl()
    await kubectl.send(
        spdy.SynStream(1, {"streamtype": "error", "port": "80"}),
        spdy.SynStream(3, {"streamtype": "data", "port": "80"}),
    )
    assert [await kubectl.next(), await kubectl.next()] == [spdy.SynReply(1), spdy.SynReply(3)]
    await eventually(lambda: kubectl.ports)
    assert [port for port, _ in kubectl.ports] == [80]


async def test_client_pings_are_answered_and_settings_ignored() -> None:
    kubectl = Kubectl()
    await kubectl.send(spdy.Settings((spdy.Setting(7, 1 << 20),)), spdy.Ping(1), spdy.Ping(2))
    assert await kubectl.next() == spdy.Ping(1)
    assert kubectl.received.empty()


async def test_bytes_that_are_not_spdy_raise_spdy_error() -> None:
    with pytest.raises(spdy.SpdyError):
        await Kubectl().session.feed(b"\xff" * 8)  # a control frame of SPDY version 32767
