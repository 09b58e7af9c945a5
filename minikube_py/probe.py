"""When a lab address starts (or stops) answering TCP, judged by the kernel SYN by SYN.

`kernel_verdict` sends one SYN and reads what the kernel made of it from the socket's
state after a wait: "connected", "refused" (a reset), "silent" (no answer) or the errno
name of an ICMP error (e.g. "EHOSTUNREACH"). `first_answer` sends one SYN every `poll`
seconds, each judged on its own, until one gets the verdict wanted, and gives that SYN's
send time: neither the rhythm nor the verdict waits on this process's scheduling (on a
loaded 2-core machine it goes without the CPU for over 100 ms at times, and a probe that
gave each connect 100 ms took a SYN answered in 0.1 ms for an unanswered one). A SYN
with no answer at all, or an ICMP error, is counted as lost: a real client would wait
1 s for its retransmission. `slices_turn` tells when the API shows the change the rules
must follow. For the lab's Service tests and bench/programming.py, which aim it at lab
addresses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from dataclasses import dataclass

from minikube_py.client import Client

# How long a SYN's answer is waited for: below TCP's initial retransmission timeout
# (1 s), so only the first SYN's fate counts, and far above a node's answer time (under
# 1 ms; up to ~0.1 s seen on a saturated 2-core machine).
ANSWER_WAIT = 0.9


@dataclass
class Answer:
    sent_at: float  # time.monotonic() when the first SYN answered as wanted was sent
    lost: int  # SYNs sent before it that got no answer, or an ICMP error


async def kernel_verdict(address: tuple[str, int]) -> tuple[float, str]:
    """(send time, what the kernel made of one SYN to `address`)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        sent_at = time.monotonic()
        error = sock.connect_ex(address)
        if error == errno.EINPROGRESS:
            answered = asyncio.Event()  # writable: the SYN got a SYN-ACK or a reset
            loop.add_writer(sock, answered.set)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), ANSWER_WAIT)
            finally:
                loop.remove_writer(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error == errno.ECONNREFUSED:
            return sent_at, "refused"
        if error:
            return sent_at, errno.errorcode.get(error, str(error))
        try:
            sock.getpeername()
        except OSError:  # still SYN-SENT
            return sent_at, "silent"
        return sent_at, "connected"


async def first_answer(
    address: tuple[str, int], wanted: str, poll: float, deadline: float
) -> Answer | None:
    """The first SYN to `address` answered `wanted` ("connected" or "refused"), one sent
    every `poll` seconds until `deadline` (time.monotonic()); None when none was."""
    attempts: list[asyncio.Task[tuple[float, str]]] = []
    try:
        while time.monotonic() < deadline:
            attempts.append(asyncio.create_task(kernel_verdict(address)))
            await asyncio.sleep(poll)
            lost = 0
            for attempt in attempts:  # in send order, up to the first undecided one
                if not attempt.done():
                    break
                sent_at, verdict = attempt.result()
                if verdict == wanted:
                    return Answer(sent_at, lost)
                lost += verdict not in ("connected", "refused")
        return None
    finally:
        for attempt in attempts:
            attempt.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)


async def slices_turn(
    client: Client, namespace: str, service: str, ready: bool, poll: float, deadline: float
) -> float | None:
    """When the Service's EndpointSlices are first seen with (`ready`) or without a ready
    endpoint, polled every `poll` seconds until `deadline` (time.monotonic()); None when
    they never were: where a programming latency starts."""
    while time.monotonic() < deadline:
        slices = await client.list(
            "EndpointSlice", namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        endpoints = [e for s in slices["items"] for e in s.get("endpoints") or []]
        if any(e.get("conditions", {}).get("ready") for e in endpoints) == ready:
            return time.monotonic()
        await asyncio.sleep(poll)
    return None
