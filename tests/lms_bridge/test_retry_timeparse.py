"""The one retry policy and the one ISO time parser (root leaves every caller shares)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

import connectors.http
import lms_bridge.outbox.flush
import xapi.compare
from lms_bridge.errors import RetryableError
from lms_bridge.retry import RetryPolicy, TransientHTTPError, backoff_delay, retry_after_seconds
from lms_bridge.timeparse import parse_iso_time


def test_the_connectors_and_the_outbox_use_the_shared_plumbing_not_copies() -> None:
    assert connectors.http.RetryPolicy is RetryPolicy
    assert connectors.http.parse_iso_time is parse_iso_time
    assert lms_bridge.outbox.flush.backoff_delay is backoff_delay
    assert xapi.compare.parse_iso_time is parse_iso_time


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 60.0) for n in (0, 1, 2, 3, 7, 8)] == [1.0, 1.0, 2.0, 4.0, 60.0, 60.0]


def test_retry_after_reads_seconds_an_http_date_and_an_iso_time() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("") is None
    assert retry_after_seconds("soon") is None
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 < (retry_after_seconds(format_datetime(later, usegmt=True)) or 0) <= 30
    assert 25 < (retry_after_seconds(later.strftime("%Y-%m-%dT%H:%M:%SZ")) or 0) <= 30
    assert retry_after_seconds("2001-01-01T00:00:00Z") == 0.0


def test_the_policy_waits_the_servers_wait_or_the_backoff_and_gives_up_after_its_tries() -> None:
    waits: list[float] = []
    retries: list[int] = []
    failures = iter([TransientHTTPError("429", 2.5), RetryableError("reset"), RetryableError("reset")])

    def call() -> str:
        raise next(failures)

    policy = RetryPolicy(attempts=3, backoff_base=0.25, sleep=waits.append)
    with pytest.raises(RetryableError, match="gave up after 3"):
        policy.run(
            call,
            on_retry=lambda exc, n, wait: retries.append(n),
            gave_up=lambda exc, n: RetryableError(f"gave up after {n}: {exc}"),
        )
    assert waits == [2.5, 0.5] and retries == [1, 2]

    outcomes = iter([RetryableError("502"), "ok"])

    def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert RetryPolicy(attempts=2, backoff_base=0.25, sleep=waits.append).run(flaky, on_retry=lambda *a: None) == "ok"
    too_long = RetryPolicy(attempts=5, backoff_base=0.1, max_retry_after=10, sleep=waits.append)
    with pytest.raises(RetryableError, match="asked for 600"):
        too_long.run(
            lambda: (_ for _ in ()).throw(TransientHTTPError("429", 600.0)),
            on_retry=lambda *a: None,
            too_long=lambda exc, wait: RetryableError(f"asked for {wait:g}"),
        )


@pytest.mark.parametrize(
    ("text", "naive_is_utc", "expected"),
    [
        ("2026-03-12T01:55:10Z", False, datetime(2026, 3, 12, 1, 55, 10, tzinfo=UTC)),
        ("2026-03-12T08:55:10+07:00", False, datetime(2026, 3, 12, 1, 55, 10, tzinfo=UTC)),
        ("2026-03-12T01:55:10.123456789Z", False, datetime(2026, 3, 12, 1, 55, 10, 123456, tzinfo=UTC)),
        ("2026-03-12T01:55:10", False, None),  # xAPI times carry their zone
        ("2026-03-12T01:55:10", True, datetime(2026, 3, 12, 1, 55, 10, tzinfo=UTC)),
        ("12/03/2026", True, None),
        ("", True, None),
        (None, True, None),
        (1710208510, True, None),
    ],
)
def test_iso_times_read_as_utc_or_none(text: object, naive_is_utc: bool, expected: datetime | None) -> None:
    parsed = parse_iso_time(text, naive_is_utc=naive_is_utc)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


def test_bounded_refuses_the_edges_of_datetimes_range() -> None:
    assert parse_iso_time("0001-01-01T00:00:00Z", naive_is_utc=False) is None
    assert parse_iso_time("0001-01-01T00:00:00Z", naive_is_utc=False, bounded=False) == datetime(1, 1, 1, tzinfo=UTC)
    assert parse_iso_time("0001-01-01T00:00:00+01:00", naive_is_utc=False, bounded=False) is None  # overflows
