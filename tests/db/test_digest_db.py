"""Which notices a digest stands for: one run's, beyond the threshold, never the watchdog's."""

from __future__ import annotations

from include.backup_integrity.catalog import outbox
from include.backup_integrity.catalog.alert_store import insert_alert
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.domain.ownership import VERIFIER_DAG_ID, WATCHDOG_DAG_ID

ALERTS = "backups_backupalert"


def queue(conn, producer, run_id, count, kind="missing"):
    with transaction(conn) as cur:
        for i in range(count):
            alert_id = insert_alert(
                cur, ALERTS, None, "CRITICAL", f"{kind} {i}", {"kind": kind}, producer=producer
            )
            outbox.queue_notice(cur, alert_id, "opened", run_id, "t", "b", "failure")


def test_the_watchdogs_notices_are_neither_counted_nor_digested(catalog):
    queue(catalog, VERIFIER_DAG_ID, "run-a", 5)
    queue(catalog, WATCHDOG_DAG_ID, "run-a", 3, kind="verifier_stalled")
    queue(catalog, VERIFIER_DAG_ID, "run-b", 6)
    with transaction(catalog) as cur:
        assert outbox.digest_runs(cur, ALERTS, 5, 72) == ["run-b"], "run-a has five of its own: no digest"
        items = outbox.claim_digest(cur, ALERTS, "run-b", 72)
        assert len(items) == 6
        assert {item.kind for item in items} == {"missing"}
        assert [i.kind for i in outbox.claim_digest(cur, ALERTS, "run-a", 72)] == ["missing"] * 5


def test_a_digest_still_owed_to_a_target_stays_a_digest(catalog):
    queue(catalog, VERIFIER_DAG_ID, "run-c", 6)
    with transaction(catalog) as cur:
        items = outbox.claim_digest(cur, ALERTS, "run-c", 72)
        outbox.record_digest_delivery(cur, ALERTS, "run-c", items, ["json://a"], "refused by mailto", False)
    with transaction(catalog) as cur:
        assert outbox.claim_next(cur, 0, 72) is None, "a digest's notice is never sent on its own"
        assert outbox.digest_runs(cur, ALERTS, 100, 72) == ["run-c"], "owed even above a new threshold"
        again = outbox.claim_digest(cur, ALERTS, "run-c", 72)
        assert [i.notice_id for i in again] == [i.notice_id for i in items]
        assert all(i.delivered_to == ["json://a"] for i in again)
