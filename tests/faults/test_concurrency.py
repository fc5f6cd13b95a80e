"""Runs overlapping in time (a slow scheduled run and backfill runs, which Airflow runs
concurrently) never produce duplicate alerts, duplicate notices or lost metadata updates.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from devtools.runs import DAG_ID
from include.backup_integrity.tasks.aggregate import aggregate
from include.backup_integrity.tasks.alert import raise_alerts
from include.backup_integrity.tasks.select import select_backups
from include.backup_integrity.tasks.verify import verify_and_record
from tests.support.catalog import alerts, metadata, query
from tests.support.connections import s3_connection
from tests.support.faults import seed_failures
from tests.support.processes import private_airflow_home, start_dag_process


def assert_one_alert_per_failure_seen_by_every_run(stores, seeded, run_ids, webhook) -> None:
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
        seen_by = query(
            stores, "SELECT run_id FROM backup_integrity_alert_occurrence WHERE alert_id = %s", [row["id"]]
        )
        assert sorted(r["run_id"] for r in seen_by) == sorted(run_ids)
        assert row["details"]["occurrences"] == len(run_ids)
    titles = Counter(m["title"] for m in webhook.messages)
    assert len(webhook.messages) == len(rows), titles
    assert set(titles.values()) == {1}, titles


def assert_latest_check_kept(stores, seeded) -> None:
    """The metadata names the newest check of each backup: its copies' last check (object state)."""
    for backup in seeded.values():
        (latest,) = query(
            stores,
            "SELECT max(last_checked_at) AS at FROM backup_integrity_object WHERE backup_id = %s",
            [backup.id],
        )
        check = metadata(stores, backup.id)["last_integrity_check"]
        assert datetime.fromisoformat(check["timestamp"]) == latest["at"], "the newest check is kept"
        runs = query(
            stores,
            "SELECT DISTINCT last_run_id AS run_id FROM backup_integrity_object "
            "WHERE backup_id = %s AND last_checked_at = %s",
            [backup.id, latest["at"]],
        )
        assert check["run_id"] in {r["run_id"] for r in runs}


def test_concurrent_runs_in_threads_write_each_alert_once_and_lose_no_update(
    stores, airflow_env, webhook, smtp
):
    """Six runs verify and record at the same time; another writer updates metadata meanwhile."""
    seeded = seed_failures(stores)
    window_end = datetime.now(UTC) + timedelta(minutes=1)
    raw = json.dumps(airflow_env)
    stop = threading.Event()
    bumps = Counter()

    def other_writer() -> None:
        conn = stores.connect()
        try:
            while not stop.is_set():
                with conn, conn.cursor() as cur:
                    cur.execute(
                        "UPDATE backups_backup SET metadata = jsonb_set(metadata, '{bumps}', "
                        "to_jsonb(COALESCE((metadata ->> 'bumps')::int, 0) + 1)) WHERE id = %s",
                        [seeded["healthy"].id],
                    )
                bumps["n"] += 1
        finally:
            conn.close()

    def one_run(index: int) -> str:
        run_id = f"concurrent__{index}"
        plan = select_backups(raw, {}, window_end)
        chunks = plan.pop("chunks")
        chunk_results = [verify_and_record(chunk, plan["settings"], run_id) for chunk in chunks]
        statistics = aggregate(chunk_results, plan, run_id)
        raise_alerts(chunk_results, plan, statistics, run_id, DAG_ID)
        return run_id

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            run_ids = list(pool.map(one_run, range(6)))
    finally:
        stop.set()
        writer.join()

    assert_one_alert_per_failure_seen_by_every_run(stores, seeded, run_ids, webhook)
    assert len(smtp.messages) == 3
    assert_latest_check_kept(stores, seeded)
    assert metadata(stores, seeded["healthy"].id)["bumps"] == bumps["n"], "no update of the other writer lost"
    assert metadata(stores, seeded["healthy"].id)["seeded"] is True
    # The history keeps transitions: each copy's first result, at most once per run.
    per_run = query(stores, "SELECT run_id, count(*) AS n FROM backup_integrity_result GROUP BY run_id")
    assert all(r["n"] <= 3 + 3 + 2 for r in per_run)
    assert len(query(stores, "SELECT DISTINCT backup_id, backend FROM backup_integrity_result")) == 3 + 3 + 2


def test_a_slow_scheduled_run_and_a_backfill_run_overlapping(
    stores, through_proxies, airflow_db, webhook, tmp_path, r2_store
):
    """Two DAG runs in two processes (each with its own Airflow metadata DB), one slowed by its store."""
    seeded = seed_failures(stores)
    slow_store = through_proxies["r2"]
    slow_store.set_mode("pass", delay=3)
    now = datetime.now(UTC).replace(microsecond=0)
    homes = [private_airflow_home(airflow_db, tmp_path / name) for name in ("scheduled", "backfill")]
    homes[0]["AIRFLOW_CONN_BACKUP_R2"] = json.dumps(s3_connection(slow_store, read_timeout=10))
    fast_r2 = s3_connection(slow_store)
    fast_r2["extra"]["endpoint_url"] = r2_store.endpoint_url
    homes[1]["AIRFLOW_CONN_BACKUP_R2"] = json.dumps(fast_r2)

    scheduled = start_dag_process(now + timedelta(hours=1), run_after=now, env=homes[0])
    scheduled.wait_for("[DAG TEST] starting task_id=verify_chunk")
    # An older window that still holds the backups (created two hours ago).
    backfill = start_dag_process(now - timedelta(hours=1), run_after=now + timedelta(seconds=1), env=homes[1])
    assert scheduled.process.poll() is None, "the scheduled run was still running when the backfill began"
    backfill_outcome = backfill.finish()
    scheduled_outcome = scheduled.finish()

    assert scheduled_outcome["state"] == backfill_outcome["state"] == "failed"
    assert_one_alert_per_failure_seen_by_every_run(
        stores, seeded, [scheduled_outcome["run_id"], backfill_outcome["run_id"]], webhook
    )
    assert_latest_check_kept(stores, seeded)
