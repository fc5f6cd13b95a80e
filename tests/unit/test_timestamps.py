"""How the package writes and reads times."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from include.backup_integrity.domain.timestamps import (
    CANONICAL_TIME,
    canonical_time,
    is_later,
    parse_timestamp,
    utc_now_iso,
)

NOW = "2026-11-30T11:00:00.000000+00:00"


def test_check_times_are_compared_in_one_fixed_width_utc_form():
    assert canonical_time(NOW) == NOW
    assert canonical_time("2026-11-30T07:00:00-04:00") == NOW
    assert canonical_time("2026-11-30T11:00:00Z") == NOW
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        canonical_time("yesterday")


def test_the_package_writes_its_own_times_in_the_canonical_form():
    now = utc_now_iso()
    assert re.fullmatch(CANONICAL_TIME, now)
    assert canonical_time(now) == now


def test_times_written_by_others_are_read_without_raising():
    assert parse_timestamp("2026-11-30T11:00:00Z") == datetime(2026, 11, 30, 11, tzinfo=UTC)
    assert parse_timestamp("2026-11-30T11:00:00") == datetime(2026, 11, 30, 11, tzinfo=UTC), "naive is UTC"
    assert parse_timestamp("not a time") is None
    assert parse_timestamp(None) is None
    assert parse_timestamp("") is None


def test_a_check_is_later_than_never_and_than_an_earlier_sighting():
    assert is_later(NOW, None)
    assert is_later(NOW, datetime(2026, 11, 30, 10, tzinfo=UTC))
    assert not is_later(NOW, datetime(2026, 11, 30, 11, tzinfo=UTC)), "the same time is not later"
    assert not is_later("garbled", None), "an unreadable time is never later"
