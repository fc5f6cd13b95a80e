"""The alert lifecycle written to a real PostgreSQL catalog, run by run, without Airflow."""

from __future__ import annotations

from devtools.runs import alerts
from devtools.seed import seed_backup
from include.backup_integrity.catalog.alert_store import apply_alert_changes
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.domain.records import MISSING, PASSED
from tests.support.records import check_result

T1, T2, T3 = "2026-11-30T10:00:00+00:00", "2026-11-30T11:00:00+00:00", "2026-11-30T12:00:00+00:00"


def apply(conn, results, run_id):
    with transaction(conn) as cur:
        return apply_alert_changes(cur, "backups_backupalert", results, run_id)


def pending_events(conn):
    with transaction(conn) as cur:
        cur.execute("SELECT alert_id, event FROM backup_integrity_notification ORDER BY id")
        return cur.fetchall()


def test_an_older_runs_finding_does_not_reopen_what_a_later_check_resolved(stores, catalog):
    backup = seed_backup(stores)
    old_finding = [check_result(backup.id, "r2", MISSING, checked_at=T1)]

    apply(catalog, old_finding, "run-a")
    apply(catalog, [check_result(backup.id, "r2", PASSED, checked_at=T2)], "run-b")
    changes = apply(catalog, old_finding, "run-a")  # run-a's alert task retried after run-b

    assert changes["opened"] == 0
    assert [(r["status"], r["details"]["kind"]) for r in alerts(stores)] == [("RESOLVED", MISSING)]
    assert [event for _, event in pending_events(catalog)] == ["opened", "resolved"]


def test_a_summary_counts_what_is_still_open_and_notices_each_change(stores, catalog):
    a, b, c = seed_backup(stores), seed_backup(stores), seed_backup(stores)

    apply(
        catalog,
        [check_result(a.id, "r2", MISSING, checked_at=T1), check_result(b.id, "r2", MISSING, checked_at=T1)],
        "run-1",
    )
    summary = next(r for r in alerts(stores) if r["details"]["kind"] == "summary")
    assert summary["details"]["missing_files"] == 2

    # A later run that re-checks only c finds one failure: the summary now counts a, b and c.
    apply(catalog, [check_result(c.id, "r2", MISSING, checked_at=T2)], "run-2")
    summary = next(r for r in alerts(stores) if r["id"] == summary["id"])
    assert summary["details"]["missing_files"] == 3
    assert summary["details"]["occurrences"] == 2
    assert len(summary["details"]["alert_ids"]) == 3

    # Everything verified good: every alert resolves, the summary with them, each with a notice.
    apply(catalog, [check_result(x.id, "r2", PASSED, checked_at=T3) for x in (a, b, c)], "run-3")
    assert {r["status"] for r in alerts(stores)} == {"RESOLVED"}
    events = pending_events(catalog)
    assert [e for i, e in events if i == summary["id"]] == ["opened", "changed:run-2", "resolved"]
    assert sum(e == "resolved" for _, e in events) == 4
