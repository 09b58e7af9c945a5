"""The Kubernetes Time and MicroTime forms, and the per-second cache of "now"."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from minikube_py.api import timestamps


def test_time_and_micro_time_golden() -> None:
    at = datetime(2026, 11, 29, 10, 5, 7, 123456, tzinfo=UTC)
    assert timestamps.rfc3339(at) == "2026-11-29T10:05:07Z"
    assert timestamps.micro_time(at) == "2026-11-29T10:05:07.123456Z"


def test_an_aware_time_in_another_zone_is_written_in_utc() -> None:
    at = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert timestamps.rfc3339(at) == "2026-11-29T10:00:00Z"


@given(st.datetimes(timezones=st.just(UTC)))
def test_time_parses_back_to_the_same_second(at: datetime) -> None:
    text = timestamps.rfc3339(at)
    assert len(text) == 20  # four-digit years, as Go writes them
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed == at.replace(microsecond=0)


def test_cached_now_follows_the_clock() -> None:
    for _ in range(3):
        before = datetime.now(UTC).replace(microsecond=0)
        now = datetime.strptime(timestamps.now_rfc3339(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        after = datetime.now(UTC)
        assert before <= now <= after
