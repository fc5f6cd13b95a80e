"""The restore drill's pure decisions: choosing, copies, scratch databases, classification,
statistics, overdue types and the restore_* alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.backup_integrity.domain import drills
from include.backup_integrity.domain.drill_alerts import OpenDrillAlert, judge_overdue, plan_drill_alerts
from include.backup_integrity.domain.drills import Candidate, DrillCopy, DrillOutcome, choose, copy_order

T0 = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def candidate(backup_id: str, backup_type: str = "FULL_DATABASE", age_days: float = 1, drilled_days_ago=None):
    drilled = None if drilled_days_ago is None else T0 - drilled_days_ago * DAY
    return Candidate(backup_id, backup_type, T0 - age_days * DAY, drilled)


def outcome(
    backup_id: str, status: str, stage: str = "check", backup_type: str = "FULL_DATABASE"
) -> DrillOutcome:
    return DrillOutcome(
        backup_id=backup_id,
        backup_type=backup_type,
        format="pg_dump",
        status=status,
        stage=stage,
        source_backend="local" if stage != "fetch" else None,
        message=f"{status} at {stage}",
        started_at="2026-03-10T03:00:00.000000+00:00",
        finished_at="2026-03-10T03:01:00.000000+00:00",
        duration_seconds=60.0,
        bytes_fetched=10,
        details={},
    )


def open_alert(alert_id: int, backup_id: str | None, kind: str, **details) -> OpenDrillAlert:
    return OpenDrillAlert(alert_id, backup_id, {"kind": kind, "backup_id": backup_id, **details})


# ----------------------------------------------------------------------------- choosing


def test_the_newest_never_drilled_first_then_the_one_drilled_longest_ago():
    chosen = choose(
        [
            candidate("old-never", age_days=5),
            candidate("new-never", age_days=1),
            candidate("drilled-recently", age_days=0.5, drilled_days_ago=1),
            candidate("drilled-long-ago", age_days=9, drilled_days_ago=20),
        ],
        per_type=3,
    )

    assert [c.backup_id for c in chosen] == ["new-never", "old-never", "drilled-long-ago"]


def test_per_type_backups_of_each_type():
    chosen = choose(
        [candidate(f"f{i}", age_days=i) for i in range(1, 4)]
        + [candidate(f"w{i}", "WAL_ARCHIVE", age_days=i) for i in range(1, 4)],
        per_type=1,
    )

    assert [(c.backup_type, c.backup_id) for c in chosen] == [("FULL_DATABASE", "f1"), ("WAL_ARCHIVE", "w1")]
    assert choose([], per_type=1) == []


def test_only_copies_whose_last_check_passed_are_fetched_in_the_stores_order():
    copies = [
        DrillCopy(backend="b2", path="p", last_check="passed"),
        DrillCopy(backend="local", path="p", last_check="size_mismatch"),
        DrillCopy(backend="r2", path="p", last_check=None),
        DrillCopy(backend="r2", path="q", last_check="passed"),
    ]

    ordered = copy_order(copies, ("local", "r2", "b2"))

    assert [(c["backend"], c["path"]) for c in ordered] == [("r2", "q"), ("b2", "p")]
    assert copy_order([DrillCopy(backend="local", path="p", last_check="missing")], ("local",)) == []
    assert copy_order([DrillCopy(backend="r2", path="p", last_check=None)], ("r2",)) == [], "never checked"
    backend_error = DrillCopy(backend="b2", path="p", last_check="backend_error")
    assert copy_order([backend_error], ("b2",)) == [], "the store could not be asked: not known to pass"


def test_the_operators_store_order_is_kept_even_when_local_is_not_first():
    copies = [
        DrillCopy(backend="local", path="p", last_check="passed"),
        DrillCopy(backend="b2", path="p", last_check="passed"),
        DrillCopy(backend="r2", path="p", last_check="passed"),
        DrillCopy(backend="archive", path="p", last_check="passed"),
    ]

    ordered = copy_order(copies, ("b2", "local", "r2"))

    assert [c["backend"] for c in ordered] == ["b2", "local", "r2", "archive"], "unknown stores last"


# ----------------------------------------------------------------------------- scratch databases


def test_scratch_databases_are_named_restore_drill_and_8_hex_characters():
    assert drills.scratch_database_name("0a1b2c3d") == "restore_drill_0a1b2c3d"
    for bad in ("0A1B2C3D", "0a1b2c3", "0a1b2c3d4", "; DROP"):
        with pytest.raises(ValueError, match="not a scratch database name"):
            drills.scratch_database_name(bad)


def test_only_scratch_databases_older_than_the_timeout_are_leftovers():
    now = T0
    old = drills.scratch_comment(now - timedelta(hours=2), "run-1")
    fresh = drills.scratch_comment(now - timedelta(minutes=5), "run-2")

    leftovers = drills.leftover_scratch_databases(
        [
            ("restore_drill_0000000a", old),
            ("restore_drill_0000000b", fresh),
            ("restore_drill_0000000c", None),  # no creation time: never guessed
            ("restore_drill_keep", old),  # not a generated name
            ("production", old),
        ],
        now,
        timedelta(minutes=60),
    )

    assert leftovers == ["restore_drill_0000000a"]
    assert drills.scratch_created_at(old) == now - timedelta(hours=2)
    assert drills.scratch_created_at("created 2026-03-10T01:00:00Z by x") == datetime(
        2026, 3, 10, 1, tzinfo=UTC
    )


# ----------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("output", "environment"),
    [
        ("pg_restore: error: could not write to file: No space left on device", True),
        ('psql: error: connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused', True),
        ("server closed the connection unexpectedly", True),
        ('ERROR:  could not extend file "base/16384/16385": wrote only 4096 of 8192 bytes', True),
        ('pg_restore: error: could not execute query: ERROR:  relation "x" already exists', False),
        ("pg_restore: error: could not read from input file: end of file", False),
        ('psql:/tmp/x.sql:12: ERROR:  syntax error at or near "CREAT"', False),
    ],
)
def test_a_tool_failure_is_the_environment_only_when_its_output_says_so(output, environment):
    assert (drills.environment_problem(output) is not None) is environment


def test_stops_carry_status_and_stage():
    assert (drills.rejected("decrypt", "bad decrypt").status, drills.rejected("decrypt", "x").stage) == (
        "failed",
        "decrypt",
    )
    assert drills.environment_failed("fetch", "gone").status == "error"
    assert drills.tail_of("a\n  b " * 500, limit=20).startswith("…")


# ----------------------------------------------------------------------------- statistics


def test_statistics_count_each_status_and_a_failure_or_error_fails_the_run():
    stats = drills.drill_statistics(
        [
            outcome("a", "passed"),
            outcome("b", "failed", "restore"),
            outcome("c", "error", "fetch", "WAL_ARCHIVE"),
        ],
        run_id="r",
    )

    assert {
        k: stats[k]
        for k in ("backups_drilled", "restored_successfully", "restore_failures", "restore_errors")
    } == {
        "backups_drilled": 3,
        "restored_successfully": 1,
        "restore_failures": 1,
        "restore_errors": 1,
    }
    assert stats["by_type"]["WAL_ARCHIVE"] == {"passed": 0, "failed": 0, "error": 1}
    assert drills.drills_failed(stats)
    assert not drills.drills_failed(drills.drill_statistics([outcome("a", "passed")], run_id="r"))
    assert not drills.drills_failed(drills.drill_statistics([], run_id="r", configured=False))


# ----------------------------------------------------------------------------- overdue


def verdict(**kwargs):
    values = {
        "backups_in_window": 3,
        "last_passed_at": None,
        "first_drill_at": T0 - 30 * DAY,
        "as_of": T0,
        "max_age_days": 8,
    }
    values.update(kwargs)
    return judge_overdue("FULL_DATABASE", **values)


def test_overdue_when_no_pass_within_max_age_days():
    assert verdict().overdue
    assert verdict(last_passed_at=T0 - 9 * DAY).overdue
    assert not verdict(last_passed_at=T0 - 7 * DAY).overdue
    assert verdict(last_passed_at=T0 - 7 * DAY).passed_recently


def test_not_overdue_on_a_new_installation_or_without_backups():
    assert not verdict(first_drill_at=T0 - 7 * DAY).overdue, "counted from the first drill run recorded"
    assert not verdict(first_drill_at=None).overdue
    assert not verdict(backups_in_window=0).overdue
    assert verdict(first_drill_at=T0 - 8 * DAY).overdue


# ----------------------------------------------------------------------------- alerts


def test_failures_and_errors_open_one_alert_each_with_their_details():
    plan = plan_drill_alerts(
        [],
        [outcome("a", "failed", "decrypt"), outcome("b", "error", "fetch"), outcome("c", "passed")],
        [],
        "r1",
        "t",
    )

    assert [(a.key, a.severity) for a in plan.opened] == [
        (("a", "restore_failed"), "CRITICAL"),
        (("b", "restore_error"), "ERROR"),
    ]
    failed = plan.opened[0]
    assert failed.backup_id == "a"
    assert {k: failed.details[k] for k in ("kind", "backup_id", "backend", "stage", "message")} == {
        "kind": "restore_failed",
        "backup_id": "a",
        "backend": "local",
        "stage": "decrypt",
        "message": "failed at decrypt",
    }
    assert plan.opened[1].details["backend"] is None
    assert plan.observed == []
    assert plan.resolved == []


def test_an_open_alert_is_observed_not_reopened():
    plan = plan_drill_alerts(
        [open_alert(7, "a", "restore_failed")], [outcome("a", "failed", "restore")], [], "r2", "t"
    )

    assert plan.opened == []
    assert [(alert_id, a.details["stage"]) for alert_id, a in plan.observed] == [(7, "restore")]


def test_a_pass_resolves_both_a_failure_resolves_the_error_an_error_resolves_nothing():
    open_alerts = [
        open_alert(1, "a", "restore_failed"),
        open_alert(2, "a", "restore_error"),
        open_alert(3, "b", "restore_error"),
        open_alert(4, "c", "restore_failed"),
    ]

    plan = plan_drill_alerts(
        open_alerts,
        [outcome("a", "passed"), outcome("b", "failed", "check"), outcome("c", "error", "fetch")],
        [],
        "r",
        "t",
    )

    assert sorted(r.alert_id for r in plan.resolved) == [1, 2, 3]
    assert [a.key for a in plan.opened] == [("b", "restore_failed"), ("c", "restore_error")]


def test_an_overdue_type_opens_one_alert_resolved_once_a_drill_passed():
    overdue = verdict()
    plan = plan_drill_alerts([], [], [overdue], "r", "t")
    (alert,) = plan.opened
    assert alert.key == ("FULL_DATABASE", "restore_overdue")
    assert alert.backup_id is None
    assert alert.details["backup_type"] == "FULL_DATABASE"

    still = plan_drill_alerts(
        [open_alert(9, None, "restore_overdue", backup_type="FULL_DATABASE")], [], [overdue], "r", "t"
    )
    assert [alert_id for alert_id, _ in still.observed] == [9]

    passed = verdict(last_passed_at=T0 - DAY)
    fixed = plan_drill_alerts(
        [open_alert(9, None, "restore_overdue", backup_type="FULL_DATABASE")], [], [passed], "r", "t"
    )
    assert [r.alert_id for r in fixed.resolved] == [9]
    quiet = verdict(backups_in_window=0)
    assert (
        plan_drill_alerts(
            [open_alert(9, None, "restore_overdue", backup_type="FULL_DATABASE")], [], [quiet], "r", "t"
        ).resolved
        == []
    ), "only a pass resolves it"
