"""The two timestamp forms of the Kubernetes API, shared by every component.

`Time` (creationTimestamp, condition transitions) has whole seconds in UTC; `MicroTime`
(Lease renewTime, Event eventTime, trigger-time annotations) has microseconds. The
apiserver stamps every write, so the seconds form is formatted once per second and
reused: formatting costs several µs, a noticeable share of a create.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

_last_second: tuple[int, str] = (-1, "")


def rfc3339(at: datetime) -> str:
    """`at` as a Kubernetes `Time`."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def now_rfc3339() -> str:
    """Now as a Kubernetes `Time`."""
    global _last_second
    second = int(time.time())
    if second != _last_second[0]:
        _last_second = (second, rfc3339(datetime.fromtimestamp(second, UTC)))
    return _last_second[1]


def micro_time(at: datetime) -> str:
    """`at` as a Kubernetes `MicroTime`."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def now_micro() -> str:
    """Now as a Kubernetes `MicroTime`."""
    return micro_time(datetime.now(UTC))
