"""Bounded growth end to end with ``dag.test()``: real PostgreSQL, two moto S3 servers, a real folder.

Runs that find the same state add (almost) no rows; each run prunes history older than
``retention_days``; however many checks fail, every XCom of the run stays small.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from devtools.seed import delete, seed_backup
from tests.support.catalog import alerts, open_alerts_by_key, query
from tests.support.connections import set_variable

MEGABYTE = 1024 * 1024
OPEN = ("ACTIVE", "ACKNOWLEDGED")


def table_rows(stores) -> dict[str, int]:
    """Rows of every table of the package (every name that starts with ``backup_integrity_``)."""
    names = [
        r["tablename"]
        for r in query(
            stores,
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE 'backup\\_integrity\\_%%'",
        )
    ]
    return {name: query(stores, f'SELECT count(*) AS n FROM "{name}"')[0]["n"] for name in sorted(names)}


def contract(statistics: dict) -> dict:
    return {
        k: v for k, v in statistics.items() if k not in ("run_id", "requests", "window_start", "window_end")
    }


def test_two_runs_that_find_the_same_state_grow_the_tables_by_at_most_the_allowance(stores, run_dag):
    backups = [seed_backup(stores) for _ in range(6)]
    delete(stores, backups[0], "r2")  # a failure that persists, run after run

    # Quick runs: the rolling mode's re-hash reads a slice each run, a change of evidence.
    first = run_dag({"mode": "quick"})
    second = run_dag({"mode": "quick"})
    assert second.state == "failed", "the missing copy fails every run"
    before = table_rows(stores)
    open_before = {key: a["details"]["occurrences"] for key, a in open_alerts_by_key(stores).items()}

    third = run_dag({"mode": "quick"})

    after = table_rows(stores)
    assert contract(third.statistics) == contract(second.statistics), "the same state found again"
    grown = {name: after[name] - before[name] for name in after if after[name] != before[name]}
    allowance = 10 + 0 + len(open_before)  # no copy changed; every open alert observed again
    assert sum(grown.values()) <= allowance, f"grew {grown}, allowed {allowance}"
    assert grown.get("backup_integrity_result", 0) == 0, "a steady pass or unchanged failure adds no result"
    assert grown["backup_integrity_run"] == 1, "per-run figures stay one row per run"
    assert grown["backup_integrity_alert_occurrence"] == len(open_before), "one per open alert seen again"
    assert not query(stores, "SELECT 1 FROM backup_integrity_result WHERE run_id = %s", [third.run_id])

    missing = open_alerts_by_key(stores)[(backups[0].id, "r2", "missing")]
    assert missing["details"]["occurrences"] == open_before[(backups[0].id, "r2", "missing")] + 1 == 3
    last_checks = query(stores, "SELECT DISTINCT last_run_id FROM backup_integrity_object")
    assert last_checks == [{"last_run_id": third.run_id}], "the object state keeps each copy's last check"
    assert {r["run_id"] for r in query(stores, "SELECT run_id FROM backup_integrity_run")} == {
        first.run_id,
        second.run_id,
        third.run_id,
    }
    handed_over = query(stores, "SELECT DISTINCT run_id FROM backup_integrity_chunk_failure")
    assert handed_over == [{"run_id": third.run_id}], "earlier runs' hand-over removed once recorded"


def test_each_run_prunes_history_older_than_retention_days_and_keeps_open_alerts(
    stores, run_dag, monkeypatch, airflow_env
):
    backup = seed_backup(stores)
    delete(stores, backup, "b2")
    set_variable(monkeypatch, {**airflow_env, "retention_days": 30})
    first = run_dag()
    open_alert = open_alerts_by_key(stores)[(backup.id, "b2", "missing")]
    old = datetime.now(UTC) - timedelta(days=45)
    # Age everything the first run wrote: it is now history from 45 days ago.
    conn = stores.connect()
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE backup_integrity_run SET recorded_at = %s", [old])
        cur.execute("UPDATE backup_integrity_result SET checked_at = %s", [old])
        cur.execute("UPDATE backup_integrity_alert_occurrence SET checked_at = %s", [old])
        delivered = "UPDATE backup_integrity_notification SET created_at = %s, sent_at = %s"
        cur.execute(f"{delivered} WHERE sent_at IS NOT NULL", [old, old])
    conn.close()
    restore_count = len(query(stores, "SELECT 1 FROM backup_integrity_notification"))
    assert restore_count >= 1, "the first run notified"

    second = run_dag()

    assert not query(stores, "SELECT 1 FROM backup_integrity_run WHERE run_id = %s", [first.run_id])
    assert not query(
        stores, "SELECT 1 FROM backup_integrity_notification WHERE created_at < %s", [old + timedelta(days=1)]
    )
    still_open = open_alerts_by_key(stores)[(backup.id, "b2", "missing")]
    assert still_open["id"] == open_alert["id"], "an open alert is never pruned"
    occurrences = query(
        stores,
        "SELECT run_id FROM backup_integrity_alert_occurrence WHERE alert_id = %s ORDER BY checked_at",
        [open_alert["id"]],
    )
    assert [r["run_id"] for r in occurrences] == [first.run_id, second.run_id], "its occurrences are kept"
    newest_sql = "SELECT DISTINCT ON (backend) backend, checked_at FROM backup_integrity_result"
    newest = query(stores, f"{newest_sql} ORDER BY backend, checked_at DESC")
    assert {r["backend"] for r in newest} == {"local", "r2", "b2"}, "each copy's newest result stays"
    assert len(query(stores, "SELECT 1 FROM backup_integrity_object")) == 3, "object state is never pruned"
    pruned = xcom_value(second, "raise_alerts")["pruned"]
    assert pruned["backup_integrity_run"] == 1
    assert pruned["backup_integrity_notification"] >= 1


def xcom_value(outcome, task_id: str):
    from devtools.runs import xcom

    return xcom(outcome.dag_run, task_id)


def xcom_rows(outcome) -> list[tuple[str, int, str, int, object]]:
    """Every XCom the run wrote, from Airflow's metadata database: (task, map index, key, bytes, value)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        found = (
            session.query(XComModel)
            .filter(XComModel.dag_id == outcome.dag_run.dag_id, XComModel.run_id == outcome.run_id)
            .all()
        )
        rows = []
        for row in found:
            raw = row.value if isinstance(row.value, str) else json.dumps(row.value)
            value = json.loads(raw)
            rows.append((row.task_id, row.map_index, row.key, len(raw.encode()), value))
    return rows


def test_every_xcom_stays_under_a_megabyte_however_many_checks_fail(
    stores, run_dag, monkeypatch, airflow_env
):
    """A whole backend missing over 300 backups: failures go through the catalog, the plan is capped."""
    count = 300
    backups = [
        seed_backup(stores, size=64, on=("r2", "b2"), record_paths=("local", "r2", "b2"))
        for _ in range(count)
    ]
    set_variable(monkeypatch, {**airflow_env, "repair": "plan"})

    outcome = run_dag()

    stats = outcome.statistics
    assert stats["backend_incidents"] == ["local"]
    assert stats["missing_files"] == count
    assert len(stats["repair_plan"]) == 100
    assert stats["repair_plan_total"] == count
    rows = xcom_rows(outcome)
    assert rows, "the run's XComs are in Airflow's database"
    sizes = {(task, index, key): size for task, index, key, size, _ in rows}
    assert max(sizes.values()) < MEGABYTE, sizes
    chunks = [value for task, _, key, _, value in rows if task == "verify_chunk" and key == "return_value"]
    assert all(chunk["failures"] == [] for chunk in chunks), "no failure travels through XCom"
    assert sum(chunk.get("failure_count", 0) for chunk in chunks) == count
    assert (
        len(query(stores, "SELECT 1 FROM backup_integrity_chunk_failure WHERE run_id = %s", [outcome.run_id]))
        == count
    )
    incident = [
        a for a in alerts(stores) if a["status"] in OPEN and a["details"].get("kind") == "backend_incident"
    ]
    assert len(incident) == 1
    assert not [a for a in alerts(stores) if a["backup_id"] in {b.id for b in backups}], "no per-copy alert"
