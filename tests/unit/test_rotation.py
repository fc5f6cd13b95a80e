"""The rotating re-hash's order and budget (the SQL side is proven by the integration tests)."""

from __future__ import annotations

from datetime import UTC, datetime

from include.backup_integrity.domain.rotation import derived_budget, is_due

T1 = datetime(2026, 3, 1, 10, tzinfo=UTC)
T2 = datetime(2026, 3, 1, 11, tzinfo=UTC)


def test_the_derived_budget_reads_everything_once_per_period():
    assert derived_budget(168 * 1000, 7) == 1000
    assert derived_budget(168 * 1000 + 1, 7) == 1001, "rounded up, never short"
    assert derived_budget(0, 7) == 1


def test_never_read_objects_come_first_then_oldest_read():
    cutoff = [None, "b-5"]
    assert is_due(None, "b-1", cutoff)
    assert is_due(None, "b-5", cutoff)
    assert not is_due(None, "b-6", cutoff)
    assert not is_due(T1, "b-0", cutoff), "anything already read waits until the never-read are done"


def test_a_cutoff_in_the_read_objects_includes_all_never_read_and_older_reads():
    cutoff = [T2.isoformat(), "b-3"]
    assert is_due(None, "b-9", cutoff)
    assert is_due(T1, "b-9", cutoff)
    assert is_due(T2, "b-3", cutoff)
    assert not is_due(T2, "b-4", cutoff)
    assert not is_due(datetime(2026, 3, 2, tzinfo=UTC), "b-0", cutoff)


def test_no_cutoff_means_no_rotation_this_run():
    assert not is_due(None, "b-1", None)
