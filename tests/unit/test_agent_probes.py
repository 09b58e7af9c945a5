"""Probes: thresholds (pure) and the three checks against real local servers."""

from __future__ import annotations

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from agent.probes import ProbeSettings, ProbeTracker, resolve_port, run_check


def settings(success: int = 1, failure: int = 3) -> ProbeSettings:
    return ProbeSettings(0, 1, 1, success, failure)


def test_defaults_are_kubernetes_defaults() -> None:
    assert ProbeSettings.of({}) == ProbeSettings(0, 10, 1, 1, 3)


def test_tracker_needs_consecutive_failures_to_fail_and_successes_to_pass() -> None:
    tracker = ProbeTracker(settings(success=2, failure=3), initial=True)
    assert [tracker.observe(ok) for ok in (False, False, True, False, False)] == [False] * 5
    assert tracker.passing
    assert tracker.observe(False) and not tracker.passing
    assert not tracker.observe(True) and not tracker.passing
    assert tracker.observe(True) and tracker.passing


@given(st.lists(st.booleans(), max_size=40), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_verdict_follows_the_last_run_of_results(
    results: list[bool], success: int, failure: int, initial: bool
) -> None:
    tracker = ProbeTracker(settings(success, failure), initial)
    for result in results:
        tracker.observe(result)
    run = 0
    for result in reversed(results):
        if result != (results[-1] if results else initial):
            break
        run += 1
    if results and run >= (success if results[-1] else failure):
        assert tracker.passing == results[-1]


def test_named_ports() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(9000, container) == 9000
    with pytest.raises(ValueError):
        resolve_port("grpc", container)


async def test_http_tcp_and_exec_checks() -> None:
    async def handler(request: web.Request) -> web.Response:
        assert request.headers["User-Agent"].startswith("kube-probe/")
        return web.Response(status=200 if request.path == "/ok" else 500)

    runner = web.AppRunner(web.Application())
    runner.app.router.add_get("/{tail:.*}", handler)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    container = {"name": "c", "ports": [{"name": "web", "containerPort": port}]}

    async def never(command: list[str], timeout: float) -> tuple[int | None, bytes]:
        raise AssertionError("no exec expected")

    try:
        ok = await run_check(
            {"httpGet": {"path": "/ok", "port": "web"}}, container, "127.0.0.1", 1, never
        )
        bad = await run_check(
            {"httpGet": {"path": "/bad", "port": port}}, container, "127.0.0.1", 1, never
        )
        tcp = await run_check({"tcpSocket": {"port": port}}, container, "127.0.0.1", 1, never)
    finally:
        await runner.cleanup()
    closed = await run_check({"tcpSocket": {"port": port}}, container, "127.0.0.1", 1, never)
    assert ok.success and tcp.success
    assert not bad.success and bad.message == "HTTP probe failed with statuscode: 500"
    assert not closed.success and "dial tcp" in closed.message

    for code, success in ((0, True), (1, False), (None, False)):

        async def exits(
            command: list[str], timeout: float, code: int | None = code
        ) -> tuple[int | None, bytes]:
            return code, b"output"

        result = await run_check({"exec": {"command": ["x"]}}, container, "", 1, exits)
        assert result.success is success
