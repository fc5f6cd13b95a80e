"""What the fault tests seed and what they check after a fault: one copy of everything."""

from __future__ import annotations

from collections import Counter
from typing import Any

from devtools.seed import delete, seed_backup
from tests.support.catalog import alerts, last_check, query


def seed_failures(stores: Any) -> dict[str, Any]:
    healthy = seed_backup(stores)
    gone_r2 = seed_backup(stores)
    delete(stores, gone_r2, "r2")
    gone_b2 = seed_backup(stores, backup_type="WAL_ARCHIVE")
    delete(stores, gone_b2, "b2")
    return {"healthy": healthy, "gone_r2": gone_r2, "gone_b2": gone_b2}


def tries(outcome: Any, task_id: str) -> int:
    """The most tries any instance of the task (mapped or not) took."""
    return max(t.try_number for t in outcome.dag_run.get_task_instances() if t.task_id == task_id)


def assert_written_exactly_once(stores: Any, outcome: Any, seeded: dict[str, Any], webhook, smtp) -> None:
    run_id = outcome.run_id
    assert outcome.statistics["checks_total"] == 3 + 3 + 2
    rows = query(
        stores, "SELECT backup_id::text, backend FROM backup_integrity_result WHERE run_id = %s", [run_id]
    )
    assert len(rows) == outcome.statistics["checks_total"]
    assert len(query(stores, "SELECT 1 FROM backup_integrity_run WHERE run_id = %s", [run_id])) == 1

    rows = alerts(stores)
    keys = Counter((r["backup_id"], r["details"].get("backend"), r["details"]["kind"]) for r in rows)
    assert keys == Counter(
        {
            (seeded["gone_r2"].id, "r2", "missing"): 1,
            (seeded["gone_b2"].id, "b2", "missing"): 1,
            (None, None, "summary"): 1,
        }
    ), keys
    for row in rows:
        assert row["details"]["occurrences"] == 1, row
        occurrences = query(
            stores, "SELECT run_id FROM backup_integrity_alert_occurrence WHERE alert_id = %s", [row["id"]]
        )
        assert occurrences == [{"run_id": run_id}]

    notices = query(
        stores, "SELECT alert_id, event, sent_at, delivered_to FROM backup_integrity_notification"
    )
    assert len(notices) == len(rows) == 3
    assert all(n["sent_at"] is not None and len(n["delivered_to"]) == 2 for n in notices), notices
    titles = Counter(m["title"] for m in webhook.messages)
    assert len(webhook.messages) == 3, titles
    assert set(titles.values()) == {1}, titles
    assert len(smtp.messages) == 3, "each notice was emailed once"

    for backup in seeded.values():
        check = last_check(stores, backup.id)
        assert check["run_id"] == run_id
    assert (
        query(stores, "SELECT metadata -> 'seeded' AS seeded FROM backups_backup") == [{"seeded": True}] * 3
    )
