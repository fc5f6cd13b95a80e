"""Backfill runs execute concurrently: several runs recording the same findings at the same
moment (real PostgreSQL, threads with their own connections, the package's own task bodies)
must open each alert once, count every run, and notify once.

To make the race certain rather than likely, the test holds a lock on the alert table
that lets every run read it but none write to it, until all of them are waiting; a
check-then-insert would then open every alert once per run.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from devtools.runs import DAG_ID
from devtools.seed import corrupt_same_size, delete, seed_backup
from devtools.services import free_port
from include.backup_integrity.config.params import params_of_run
from include.backup_integrity.tasks.aggregate import aggregate
from include.backup_integrity.tasks.alert import raise_alerts
from include.backup_integrity.tasks.select import select_backups
from include.backup_integrity.tasks.verify import verify_and_record
from tests.support.catalog import alerts, query
from tests.support.connections import s3_connection

RUNS = 6


def wait_until_waiting(conn, count: int, timeout: float = 60) -> None:
    """Until ``count`` other sessions of this database wait on a lock."""
    deadline = time.monotonic() + timeout
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT pg_stat_clear_snapshot()")  # activity is cached per transaction
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cur.fetchone()[0] >= count:
                return
            time.sleep(0.05)
    raise TimeoutError(f"{count} runs never waited on a lock together")


def run_racing(stores, record) -> list[dict]:
    """Run ``record(i)`` for every run at once, all of them past their reads before any writes."""
    gate = stores.connect()
    try:
        with gate.cursor() as cur:
            # Readers pass, writers wait: every run reads "no open alert" unless something serialises them.
            cur.execute("LOCK TABLE backups_backupalert IN SHARE ROW EXCLUSIVE MODE")
        with ThreadPoolExecutor(RUNS) as pool:
            futures = [pool.submit(record, i) for i in range(RUNS)]
            try:
                wait_until_waiting(gate, RUNS)
            finally:
                gate.commit()
            return [f.result(timeout=60) for f in futures]
    finally:
        gate.close()


@pytest.mark.parametrize("same_run_id", [False, True], ids=["distinct runs", "one run cleared and racing"])
def test_concurrent_runs_open_each_alert_once_and_notify_once(stores, airflow_env, webhook, same_run_id):
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    corrupt = seed_backup(stores)
    corrupt_same_size(stores, corrupt, "b2")
    healthy = seed_backup(stores)
    plan = select_backups(os.environ["AIRFLOW_VAR_BACKUP_INTEGRITY"], params_of_run({}), datetime.now(UTC))
    chunks = plan.pop("chunks")

    def record(index: int) -> dict:
        run_id = "backfill__same" if same_run_id else f"backfill__{index}"
        chunk_results = [verify_and_record(chunk, plan["settings"], run_id) for chunk in chunks]
        return raise_alerts(chunk_results, plan, aggregate(chunk_results, plan, run_id), run_id, DAG_ID)

    reports = run_racing(stores, record)

    runs = 1 if same_run_id else RUNS
    rows = alerts(stores)
    keys = [(a["backup_id"], a["details"]["backend"], a["details"]["kind"]) for a in rows]
    assert sorted(keys, key=str) == sorted(
        [(gone.id, "r2", "missing"), (corrupt.id, "b2", "checksum_mismatch"), (None, None, "summary")],
        key=str,
    )
    assert sum(r["alerts"]["opened"] for r in reports) == 2, "opened once, by whichever run came first"
    assert all(a["details"]["occurrences"] == runs for a in rows)
    notices = query(stores, "SELECT alert_id, event, sent_at FROM backup_integrity_notification")
    assert sorted(n["event"] for n in notices) == ["opened"] * 3
    assert all(n["sent_at"] is not None for n in notices)
    assert len(webhook.messages) == 3
    assert query(stores, "SELECT count(*) AS n FROM backup_integrity_run")[0]["n"] == runs
    # The history keeps transitions: each copy's first result, which every racing run may have
    # recorded (none saw another's yet), never twice in one run.
    per_run = query(stores, "SELECT run_id, count(*) AS n FROM backup_integrity_result GROUP BY run_id")
    assert len(per_run) <= runs
    assert all(r["n"] <= 9 for r in per_run), "at most one row per copy and run"
    copies = query(stores, "SELECT DISTINCT backup_id, backend FROM backup_integrity_result")
    assert len(copies) == 9
    check = query(stores, "SELECT metadata FROM backups_backup WHERE id = %s", [healthy.id])[0]["metadata"]
    assert check["last_integrity_check"]["status"] == "passed"


def test_runs_over_different_backups_share_one_outage_alert_and_one_summary(
    stores, airflow_env, monkeypatch, webhook
):
    """No backup in common, so nothing but the verifier's own lock orders these runs' writes."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_B2",
        json.dumps(
            s3_connection(f"http://127.0.0.1:{free_port()}", retries={"max_attempts": 1})
        ),  # b2 is down
    )
    backups = [seed_backup(stores) for _ in range(RUNS)]
    for backup in backups:
        delete(stores, backup, "r2")
    raw = os.environ["AIRFLOW_VAR_BACKUP_INTEGRITY"]
    plans = []
    for backup in backups:
        plan = select_backups(raw, params_of_run({"backup_ids": [backup.id]}), datetime.now(UTC))
        plans.append((plan, plan.pop("chunks")))

    def record(index: int) -> dict:
        plan, chunks = plans[index]
        run_id = f"backfill__{index}"
        chunk_results = [verify_and_record(chunk, plan["settings"], run_id) for chunk in chunks]
        return raise_alerts(chunk_results, plan, aggregate(chunk_results, plan, run_id), run_id, DAG_ID)

    run_racing(stores, record)

    rows = alerts(stores)
    outage = [a for a in rows if a["details"]["kind"] == "backend_error"]
    assert len(outage) == 1, "one alert per backend per outage, however many runs hit it at once"
    assert outage[0]["details"]["occurrences"] == RUNS
    missing = [a for a in rows if a["details"]["kind"] == "missing"]
    assert sorted(a["backup_id"] for a in missing) == sorted(b.id for b in backups)
    summaries = [a for a in rows if a["details"]["kind"] == "summary"]
    assert [s["status"] for s in summaries] == ["ACTIVE"], "at most one open summary"
    # Whatever order the runs committed in, it counts every run's open failures.
    assert sorted(summaries[0]["details"]["alert_ids"]) == sorted(
        [outage[0]["id"], *(a["id"] for a in missing)]
    )
    assert summaries[0]["details"]["missing_files"] == RUNS
    notices = query(stores, "SELECT alert_id, event FROM backup_integrity_notification")
    assert [n["event"] for n in notices if n["alert_id"] == outage[0]["id"]] == ["opened"]
    assert sorted(n["alert_id"] for n in notices if n["event"] == "opened") == sorted(
        [outage[0]["id"], summaries[0]["id"], *(a["id"] for a in missing)]
    )
