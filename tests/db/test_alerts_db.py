"""The alert lifecycle written to a real PostgreSQL catalog, run by run, without Airflow."""

from __future__ import annotations

from devtools.runs import alerts
from devtools.seed import seed_backup
from include.backup_integrity.catalog import outbox
from include.backup_integrity.catalog.alert_store import apply_alert_changes, insert_alert
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.domain.records import MISSING, PASSED
from tests.support.ownership import VERIFIER
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


def test_a_notice_stays_in_the_outbox_until_every_target_has_accepted_it(stores, catalog):
    with transaction(catalog) as cur:
        alert_id = insert_alert(
            cur, "backups_backupalert", None, "CRITICAL", "it broke", {"kind": "x"}, producer=VERIFIER
        )
        outbox.queue_notice(cur, alert_id, "opened", "run-1", "title", "body", "failure")
        outbox.queue_notice(cur, alert_id, "opened", "run-2", "again", "again", "failure")  # ignored

    with transaction(catalog) as cur:
        notice = outbox.claim_next(cur, 0, max_age_hours=72)
        assert (notice.alert_id, notice.title, notice.delivered_to) == (alert_id, "title", [])
        outbox.record_delivery(
            cur, "backups_backupalert", notice.id, alert_id, ["webhook"], "not accepted by: mail", False
        )
    with transaction(catalog) as cur:
        again = outbox.claim_next(cur, 0, max_age_hours=72)
        assert (again.id, again.delivered_to) == (notice.id, ["webhook"])
        assert outbox.claim_next(cur, notice.id, max_age_hours=72) is None, "one notice, queued once"
        outbox.record_delivery(cur, "backups_backupalert", notice.id, alert_id, ["mail"], None, True)
    with transaction(catalog) as cur:
        assert outbox.claim_next(cur, 0, max_age_hours=72) is None, "sent: no longer pending"

    (alert,) = alerts(stores)
    assert sorted(alert["notification_channels"]) == ["mail", "webhook"]
    assert "notification_error" not in alert["details"]


def test_a_notice_older_than_its_max_age_is_never_claimed_but_expired_and_recorded(stores, catalog):
    with transaction(catalog) as cur:
        alert_id = insert_alert(
            cur, "backups_backupalert", None, "CRITICAL", "it broke", {"kind": "x"}, producer=VERIFIER
        )
        outbox.queue_notice(cur, alert_id, "opened", "run-1", "title", "body", "failure")
    with transaction(catalog) as cur:
        notice = outbox.claim_next(cur, 0, max_age_hours=1)
        outbox.record_delivery(cur, "backups_backupalert", notice.id, alert_id, ["hook"], "refused", False)
        cur.execute("UPDATE backup_integrity_notification SET created_at = now() - interval '61 minutes'")
    with transaction(catalog) as cur:
        assert outbox.claim_next(cur, 0, max_age_hours=1) is None, "too old to send, even before it expired"
        assert outbox.count_queued(cur) == 1
        (expired,) = outbox.expire_stale(cur, "backups_backupalert", max_age_hours=1)
        assert outbox.expire_stale(cur, "backups_backupalert", max_age_hours=1) == [], "expired once"
        assert outbox.count_queued(cur) == 0
        assert outbox.claim_next(cur, 0, max_age_hours=100) is None, "expired: never sent, however patient"
        cur.execute("SELECT sent_at, expired_at, last_error FROM backup_integrity_notification")
        sent_at, expired_at, last_error = cur.fetchone()

    assert (expired.id, expired.alert_id, expired.event) == (notice.id, alert_id, "opened")
    assert sent_at is None
    assert expired_at is not None
    assert last_error == expired.reason
    assert expired.reason == (
        "expired: not delivered within notice_max_age_hours (1 h); accepted only by hook; last error: refused"
    )
    assert alerts(stores)[0]["details"]["notification_error"] == f"notice 'opened' {expired.reason}"
