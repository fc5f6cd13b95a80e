"""The dead-man's switch's rule, without Airflow: which runs count, which deadline applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.backup_integrity.tasks.watchdog import assess, overdue_slot

HOUR = timedelta(hours=1)


def counter(runs: list[tuple[datetime, str]]):
    """Count (logical_date, state) pairs the way Airflow's get_dr_count filters them."""

    def count(logical_dates, states):
        return sum(
            1
            for logical_date, state in runs
            if (logical_dates is None or logical_date in logical_dates)
            and (states is None or state in states)
        )

    return count


def scheduled_for(end: datetime) -> datetime:
    """The logical date of the hourly run whose data interval ends at ``end``."""
    return end - HOUR


NOW = datetime(2031, 3, 1, 12, 10, tzinfo=UTC)


def test_the_overdue_slot_is_the_latest_scheduled_time_whose_deadline_passed():
    assert overdue_slot(NOW, 2) == datetime(2031, 3, 1, 10, 0, tzinfo=UTC)
    assert overdue_slot(datetime(2031, 3, 1, 12, 0, tzinfo=UTC), 2) == datetime(2031, 3, 1, 10, tzinfo=UTC)
    assert overdue_slot(NOW, 0.5) == datetime(2031, 3, 1, 11, 0, tzinfo=UTC)


def test_no_run_at_all_is_a_stall():
    verdict = assess(NOW, 2, counter([]))
    assert verdict.stalled
    assert "no run of verify_storage_integrity was ever created" in verdict.reason
    assert verdict.scheduled_for == "2031-03-01T10:00:00+00:00"
    assert verdict.deadline == "2031-03-01T12:00:00+00:00"


@pytest.mark.parametrize("state", ["success", "failed"])
def test_a_finished_run_for_the_overdue_hour_is_no_stall_even_when_it_failed(state):
    runs = [(scheduled_for(datetime(2031, 3, 1, 10, tzinfo=UTC)), state)]
    verdict = assess(NOW, 2, counter(runs))
    assert not verdict.stalled
    assert verdict.finished_runs == 1


def test_a_later_finished_run_also_proves_the_verifier_runs():
    runs = [(scheduled_for(datetime(2031, 3, 1, 12, tzinfo=UTC)), "success")]
    assert not assess(NOW, 2, counter(runs)).stalled


def test_runs_still_running_or_queued_past_the_deadline_are_a_stall():
    runs = [
        (scheduled_for(datetime(2031, 3, 1, 10, tzinfo=UTC)), "running"),
        (scheduled_for(datetime(2031, 3, 1, 11, tzinfo=UTC)), "queued"),
    ]
    verdict = assess(NOW, 2, counter(runs))
    assert verdict.stalled
    assert verdict.created_runs == 2
    assert "none has finished within 2 h" in verdict.reason


def test_only_older_runs_is_a_stall_naming_the_missing_hour():
    runs = [(scheduled_for(datetime(2031, 3, 1, 9, tzinfo=UTC)), "success")]
    verdict = assess(NOW, 2, counter(runs))
    assert verdict.stalled
    assert "no run of verify_storage_integrity was created for the hour ending 2031-03-01 10:00" in (
        verdict.reason
    )


def test_a_longer_stall_after_hours_moves_the_deadline_back():
    runs = [(scheduled_for(datetime(2031, 3, 1, 9, tzinfo=UTC)), "success")]
    assert not assess(NOW, 3, counter(runs)).stalled
