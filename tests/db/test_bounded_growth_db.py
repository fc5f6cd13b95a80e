"""Bounded growth on a real PostgreSQL catalog: transitions only, the failures' hand-over, retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devtools.seed import seed_backup
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.catalog.handover import (
    HandoverMissing,
    load_chunk_failures,
    record_chunk_failures,
)
from include.backup_integrity.catalog.object_state import load_recorded, save_checks
from include.backup_integrity.catalog.results import record_run, record_transitions
from include.backup_integrity.catalog.retention import prune_history
from include.backup_integrity.domain.records import (
    EVIDENCE_CONTENT,
    EVIDENCE_FINGERPRINT,
    INVALID_RECORD,
    MISSING,
    PASSED,
)
from include.backup_integrity.tasks.results import put_back
from tests.support.records import check_result

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=100)
RECENT = NOW - timedelta(days=10)


def at(moment: datetime) -> str:
    return moment.isoformat()


def count(conn, sql: str, params=None) -> int:
    with conn.cursor() as cur:
        cur.execute(sql, params or [])
        value = cur.fetchone()[0]
    conn.commit()
    return value


def check_runs(catalog, backup_id, runs):
    """Record each run's checks of one copy on r2 as a chunk does: state loaded, then saved."""
    written = []
    for run_id, kind, evidence, moment in runs:
        recorded = load_recorded(catalog, "r2", [backup_id])
        catalog.commit()
        result = check_result(backup_id, "r2", kind, checked_at=at(moment), evidence=evidence)
        with transaction(catalog) as cur:
            written.append(
                save_checks(cur, run_id, [result], {k: r.state for k, r in recorded.items()}, recorded)
            )
    return written


def test_the_history_keeps_transitions_and_the_object_its_last_check(stores, catalog):
    backup = seed_backup(stores)
    hour = timedelta(hours=1)
    written = check_runs(
        catalog,
        backup.id,
        [
            ("run-1", PASSED, EVIDENCE_CONTENT, NOW),
            ("run-2", PASSED, EVIDENCE_FINGERPRINT, NOW + hour),  # new evidence: a transition
            ("run-3", PASSED, EVIDENCE_FINGERPRINT, NOW + 2 * hour),  # steady pass: no row
            ("run-4", MISSING, None, NOW + 3 * hour),  # a change of kind
            ("run-5", MISSING, None, NOW + 4 * hour),  # the same failure again: no row
            ("run-6", MISSING, None, NOW + 5 * hour),
        ],
    )

    assert written == [1, 1, 0, 1, 0, 0]
    with catalog.cursor() as cur:
        cur.execute("SELECT run_id, kind FROM backup_integrity_result ORDER BY checked_at")
        assert cur.fetchall() == [("run-1", PASSED), ("run-2", PASSED), ("run-4", MISSING)]
        cur.execute(
            "SELECT last_kind, last_checked_at, last_run_id FROM backup_integrity_object "
            "WHERE backup_id = %s",
            [backup.id],
        )
        assert cur.fetchone() == (MISSING, NOW + 5 * hour, "run-6"), "when the copy was last checked"
    catalog.commit()

    # A retried chunk of the last run writes nothing twice.
    assert check_runs(catalog, backup.id, [("run-6", MISSING, None, NOW + 5 * hour)]) == [0]
    assert count(catalog, "SELECT count(*) FROM backup_integrity_result") == 3


def test_a_late_older_run_never_moves_the_last_check_back(stores, catalog):
    backup = seed_backup(stores)
    check_runs(catalog, backup.id, [("run-new", PASSED, EVIDENCE_FINGERPRINT, NOW)])
    check_runs(catalog, backup.id, [("run-old", PASSED, EVIDENCE_FINGERPRINT, NOW - timedelta(hours=1))])
    row = count(catalog, "SELECT last_run_id FROM backup_integrity_object WHERE backup_id = %s", [backup.id])
    assert row == "run-new"


def test_checks_decided_from_the_catalog_are_recorded_when_they_change(stores, catalog):
    backup = seed_backup(stores)
    invalid = [check_result(backup.id, None, INVALID_RECORD, checked_at=at(NOW), path=None)]
    with transaction(catalog) as cur:
        assert record_transitions(cur, "run-1", invalid) == 1
    with transaction(catalog) as cur:
        again = [check_result(backup.id, None, INVALID_RECORD, checked_at=at(NOW + timedelta(hours=1)))]
        assert record_transitions(cur, "run-2", again) == 0
    assert count(catalog, "SELECT count(*) FROM backup_integrity_result WHERE backend = ''") == 1


def handed_over(catalog, run_id: str) -> dict:
    with catalog.cursor() as cur:
        by_label = load_chunk_failures(cur, run_id)
    catalog.commit()
    return by_label


def test_chunk_failures_go_through_the_catalog_and_come_back_whole(catalog):
    failures = [check_result(f"00000000-0000-0000-0000-{i:012d}", "local", MISSING) for i in range(300)]
    with transaction(catalog) as cur:
        assert record_chunk_failures(cur, "run-1", "local 1/2", failures[:150]) == 150
        assert record_chunk_failures(cur, "run-1", "local 2/2", failures[150:]) == 150
    with transaction(catalog) as cur:  # a retried chunk replaces its own rows
        assert record_chunk_failures(cur, "run-1", "local 2/2", failures[150:]) == 150
    outcomes = [
        {"label": label, "backend": "local", "failures": [], "failure_count": 150}
        for label in ("local 1/2", "local 2/2")
    ]

    by_label = handed_over(catalog, "run-1")
    assert {label: len(found) for label, found in by_label.items()} == {"local 1/2": 150, "local 2/2": 150}
    complete = put_back(outcomes, by_label, "run-1")
    assert [f for o in complete for f in o["failures"]] == failures

    # Once its run is recorded, a later run removes the hand-over; the run cannot be aggregated again.
    with transaction(catalog) as cur:
        record_run(cur, "run-1", "verify_storage_integrity", {})
    report = prune_history(catalog, "backups_backupalert", 90, "run-2", now=datetime.now(UTC))
    assert report.pruned["backup_integrity_chunk_failure"] == 300
    with pytest.raises(HandoverMissing, match=r"'local 1/2' of run run-1 handed over 150 failure"):
        put_back(outcomes, handed_over(catalog, "run-1"), "run-1")


def test_the_hand_over_of_the_current_run_and_of_unrecorded_runs_is_kept(catalog):
    failure = [check_result("00000000-0000-0000-0000-000000000001", "r2", MISSING)]
    with transaction(catalog) as cur:
        for run_id in ("run-now", "run-running"):
            record_chunk_failures(cur, run_id, "r2 1/1", failure)
            record_run(cur, "run-now", "verify_storage_integrity", {})
    prune_history(catalog, "backups_backupalert", 90, "run-now", now=datetime.now(UTC))
    assert set(handed_over(catalog, "run-now")) == set(handed_over(catalog, "run-running")) == {"r2 1/1"}


# ----------------------------------------------------------------------------- retention


def add_alert(cur, status: str) -> int:
    cur.execute(
        "INSERT INTO backups_backupalert (backup_id, alert_type, severity, message, details, "
        "notification_channels, status, created_at) VALUES (NULL, 'INTEGRITY_FAILURE', 'ERROR', 'x', "
        "%s, '[]', %s, %s) RETURNING id",
        [json.dumps({"kind": "missing", "source": "verify_storage_integrity"}), status, OLD],
    )
    return cur.fetchone()[0]


@pytest.fixture
def old_history(stores, catalog):
    """Rows of every kind of history, 100 days old and 10 days old, and what is never pruned."""
    backup = seed_backup(stores)
    with transaction(catalog) as cur:
        open_alert, resolved_alert = add_alert(cur, "ACTIVE"), add_alert(cur, "RESOLVED")
        for run_id, moment in (("run-old", OLD), ("run-recent", RECENT)):
            cur.execute(
                "INSERT INTO backup_integrity_run (run_id, dag_id, mode, statistics, recorded_at) "
                "VALUES (%s, 'verify_storage_integrity', 'quick', '{}', %s)",
                [run_id, moment],
            )
            for alert_id in (open_alert, resolved_alert):
                cur.execute(
                    "INSERT INTO backup_integrity_alert_occurrence (alert_id, run_id, checked_at) "
                    "VALUES (%s, %s, %s)",
                    [alert_id, run_id, moment],
                )
            cur.execute(
                "INSERT INTO backup_integrity_repair (run_id, backup_id, backend, kind, status, reason, "
                "recorded_at) VALUES (%s, %s, 'r2', 'missing', 'planned', 'copy from b2', %s)",
                [run_id, backup.id, moment],
            )
            cur.execute(
                "INSERT INTO backup_integrity_store_deadline (run_id, backend, first_timeout_at) "
                "VALUES (%s, 'b2', %s)",
                [run_id, moment],
            )
        for event, sent, expired, created in (
            ("old-sent", OLD, None, OLD),
            ("old-expired", None, OLD, OLD),
            ("old-queued", None, None, OLD),  # still being retried: never pruned
            ("recent-sent", RECENT, None, RECENT),
        ):
            cur.execute(
                "INSERT INTO backup_integrity_notification (alert_id, event, run_id, title, body, "
                "notify_type, created_at, sent_at, expired_at) VALUES (%s, %s, 'run-old', 't', 'b', "
                "'info', %s, %s, %s)",
                [resolved_alert, event, created, sent, expired],
            )
    # Three results of r2 (old pass, old failure, recent pass) and one old newest result on b2.
    for run_id, kind, moment in (("run-old", PASSED, OLD), ("run-old2", MISSING, OLD + timedelta(hours=1))):
        check_runs(catalog, backup.id, [(run_id, kind, EVIDENCE_FINGERPRINT, moment)])
    check_runs(catalog, backup.id, [("run-recent", PASSED, EVIDENCE_FINGERPRINT, RECENT)])
    with transaction(catalog) as cur:
        old_b2 = check_result(backup.id, "b2", PASSED, checked_at=at(OLD), evidence=EVIDENCE_FINGERPRINT)
        save_checks(cur, "run-old", [old_b2], {}, {})
    return {"backup": backup, "open": open_alert, "resolved": resolved_alert}


def rows(catalog, sql: str) -> list:
    with catalog.cursor() as cur:
        cur.execute(sql)
        found = cur.fetchall()
    catalog.commit()
    return found


def test_retention_prunes_each_kind_of_old_history_and_keeps_what_is_never_pruned(catalog, old_history):
    report = prune_history(catalog, "backups_backupalert", 90, "run-now", now=NOW)

    assert report.complete
    assert rows(catalog, "SELECT run_id FROM backup_integrity_run") == [("run-recent",)]
    assert sorted(rows(catalog, "SELECT run_id, backend FROM backup_integrity_result")) == [
        ("run-old", "b2"),  # old, but the copy's newest result: it says what the copy is
        ("run-recent", "r2"),
    ]
    assert sorted(rows(catalog, "SELECT event FROM backup_integrity_notification")) == [
        ("old-queued",),
        ("recent-sent",),
    ]
    assert sorted(rows(catalog, "SELECT alert_id, run_id FROM backup_integrity_alert_occurrence")) == sorted(
        [
            (old_history["open"], "run-old"),  # an open alert's occurrences are its count
            (old_history["open"], "run-recent"),
            (old_history["resolved"], "run-recent"),
        ]
    )
    assert rows(catalog, "SELECT run_id FROM backup_integrity_repair") == [("run-recent",)]
    assert rows(catalog, "SELECT run_id FROM backup_integrity_store_deadline") == [("run-recent",)]
    assert sorted(rows(catalog, "SELECT backend FROM backup_integrity_object")) == [("b2",), ("r2",)]
    assert sorted(rows(catalog, "SELECT status FROM backups_backupalert")) == [("ACTIVE",), ("RESOLVED",)]
    assert report.pruned == {
        "backup_integrity_result": 2,
        "backup_integrity_run": 1,
        "backup_integrity_notification": 2,
        "backup_integrity_alert_occurrence": 1,
        "backup_integrity_repair": 1,
        "backup_integrity_store_deadline": 1,
    }


def test_retention_deletes_in_bounded_batches_and_stops_when_its_time_is_spent(stores, catalog):
    with transaction(catalog) as cur:
        for index in range(7):
            cur.execute(
                "INSERT INTO backup_integrity_run (run_id, dag_id, mode, statistics, recorded_at) "
                "VALUES (%s, 'verify_storage_integrity', 'quick', '{}', %s)",
                [f"run-{index}", OLD],
            )
    ticks = iter(range(100))
    # The clock advances a second per look: a budget of 3.5 s is three looks, each one batch.
    report = prune_history(
        catalog,
        "backups_backupalert",
        90,
        "run-now",
        now=NOW,
        batch_rows=2,
        budget_seconds=3.5,
        clock=lambda: float(next(ticks)),
    )
    assert not report.complete
    assert report.pruned == {"backup_integrity_run": 4}, "results found nothing, then two batches of two"
    assert count(catalog, "SELECT count(*) FROM backup_integrity_run") == 3, "left for the next run"

    finished = prune_history(catalog, "backups_backupalert", 90, "run-now", now=NOW, batch_rows=2)
    assert finished.complete
    assert finished.pruned == {"backup_integrity_run": 3}
    assert count(catalog, "SELECT count(*) FROM backup_integrity_run") == 0
