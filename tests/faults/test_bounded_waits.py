"""Bounded waits: a lock held by the application, a store that stops answering and a chunk
running out of time each cost a run a bounded time, say what it waited for, and never
silence the watchdog. Timeouts are shrunk to seconds; the rules are the same at 900/30/120.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

from devtools.runs import REPO, DagRunOutcome, load_dag, xcom
from devtools.seed import delete, seed_backup
from include.backup_integrity.catalog.connection import connect_catalog
from include.backup_integrity.config.settings import parse_settings
from tests.support.catalog import alerts, query, results
from tests.support.connections import s3_connection, set_connection, set_variable
from tests.support.processes import private_airflow_home, start_dag_process

WATCHDOG = "verify_storage_integrity_watchdog"


def show(conn, name: str) -> str:
    with conn.cursor() as cur:
        cur.execute(f"SHOW {name}")
        return cur.fetchone()[0]


def test_every_catalog_session_carries_the_variable_s_bounds(airflow_env):
    settings = parse_settings({"db_statement_timeout_seconds": 7, "db_lock_timeout_seconds": 2})
    conn = connect_catalog(settings)
    try:
        assert show(conn, "statement_timeout") == "7s"
        assert show(conn, "lock_timeout") == "2s"
        assert show(conn, "idle_in_transaction_session_timeout") == "7s"
    finally:
        conn.close()
    conn = connect_catalog()  # no Variable at hand: its defaults
    try:
        assert show(conn, "statement_timeout") == "15min"
        assert show(conn, "lock_timeout") == "30s"
        assert show(conn, "idle_in_transaction_session_timeout") == "15min"
    finally:
        conn.close()


# ----------------------------------------------------------------------------- a row lock


def blocked_on_a_row_lock(stores) -> int:
    """Sessions of the catalog waiting for a lock while updating backups_backup."""
    (row,) = query(
        stores,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE%%backups_backup%%'",
    )
    return row["n"]


def run_watchdog(checked_at: datetime) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{WATCHDOG}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(WATCHDOG)
    for task in dag.tasks:
        task.retries = 0
    outcome = DagRunOutcome(dag.test(logical_date=checked_at))
    assert outcome.state == "success", outcome
    return xcom(outcome.dag_run, "check_verifier_ran")


def test_a_row_lock_held_while_a_run_writes_fails_it_in_bounded_time_and_the_watchdog_still_alerts(
    stores, airflow_env, airflow_db, monkeypatch, tmp_path, webhook
):
    """The application holds a backup row (an uncommitted UPDATE) while the alert transaction wants
    to write its metadata: the run waits ``db_lock_timeout_seconds`` per try and fails saying so,
    and meanwhile a watchdog run, which would once have queued behind the verifier's advisory
    lock, opens its ``verifier_stalled`` alert in seconds."""
    healthy = seed_backup(stores)
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    lock_seconds = 15
    set_variable(
        monkeypatch,
        {**airflow_env, "db_lock_timeout_seconds": lock_seconds, "db_statement_timeout_seconds": 60},
    )
    env = private_airflow_home(airflow_db, tmp_path / "verifier-home")

    application = stores.connect()
    try:
        with application.cursor() as cur:
            cur.execute("SELECT 1 FROM backups_backup WHERE id = %s FOR UPDATE", [healthy.id])
        now = datetime.now(UTC).replace(microsecond=0)
        verifier = start_dag_process(
            now + timedelta(hours=1), run_after=now, retries={"raise_alerts": 1}, env=env
        )
        deadline = time.monotonic() + 240
        while not blocked_on_a_row_lock(stores):
            assert verifier.process.poll() is None, verifier.output[-4000:]
            assert time.monotonic() < deadline, "the run never reached its metadata write"
            time.sleep(0.2)
        blocked_at = time.monotonic()

        report = run_watchdog(datetime(2031, 3, 1, 12, 0, tzinfo=UTC))
        watchdog_took = time.monotonic() - blocked_at
        outcome = verifier.finish(timeout=120)
        run_took = time.monotonic() - blocked_at
    finally:
        application.rollback()
        application.close()

    # Within two minutes, and in fact before the verifier's first try gave up: it never waited for it.
    assert watchdog_took < lock_seconds, watchdog_took
    assert report["verdict"]["stalled"] is True
    assert report["alert"] == "opened"
    stalled = [a for a in alerts(stores) if a["details"]["kind"] == "verifier_stalled"]
    assert len(stalled) == 1
    assert stalled[0]["status"] == "ACTIVE"
    assert [m for m in webhook.messages if "stalled" in m["title"]], "its notice went out"

    assert outcome["state"] == "failed"
    named = (
        f"waited {lock_seconds} s (db_lock_timeout_seconds) for a row lock on backups_backup "
        "while writing metadata"
    )
    assert verifier.output.count(named) >= 2, verifier.output[-4000:]
    # Two tries, each given up after the lock timeout, one second apart; no hang.
    assert run_took < 2 * lock_seconds + 1 + 20, run_took
    assert [a["details"]["kind"] for a in alerts(stores)] == ["verifier_stalled"], (
        "the alert transaction rolled back"
    )
    assert (
        "last_integrity_check"
        not in query(stores, "SELECT metadata FROM backups_backup WHERE id = %s", [gone.id])[0]["metadata"]
    )


# ----------------------------------------------------------------------------- a silent store


class ConnectionTimes:
    """When the proxy accepted each new connection (sampled every 20 ms, in a thread)."""

    def __init__(self, proxy) -> None:
        self.proxy = proxy
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ConnectionTimes:
        self._seen = self.proxy.connections
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            count = self.proxy.connections
            if count > self._seen:
                self.times.extend([time.time()] * (count - self._seen))
                self._seen = count


def test_a_store_that_stops_answering_costs_the_run_its_deadline_across_all_chunks(
    stores, through_proxies, run_with_retries, run_dag, monkeypatch, airflow_env
):
    store_deadline = 6
    set_variable(
        monkeypatch,
        {
            **airflow_env,
            "expected_backends": {"FULL_DATABASE": ["local", "b2"]},
            "chunk_size": 2,
            "max_chunks_per_backend": 4,
            "store_deadline_seconds": store_deadline,
        },
    )
    backups = [seed_backup(stores, size=16, on=("local", "b2")) for _ in range(8)]
    b2 = through_proxies["b2"]
    # One attempt may take connect 1 s + read 1 s; botocore would make 3 of each request.
    set_connection(
        monkeypatch,
        "backup_b2",
        s3_connection(b2, connect_timeout=1, read_timeout=1, retries={"mode": "standard", "max_attempts": 3}),
    )
    b2.set_mode("stall")

    with ConnectionTimes(b2) as connections:
        outcome = run_with_retries()

    assert outcome.state == "failed"
    stats = outcome.statistics
    assert stats["chunks"] == 8, "every chunk is in the aggregate"
    assert stats["checks_total"] == 16
    found = results(stores, outcome.run_id)
    assert {found[(b.id, "local")] for b in backups} == {"passed"}
    assert {found[(b.id, "b2")] for b in backups} == {"backend_error"}
    assert stats["missing_files"] == 0
    messages = [
        r["message"]
        for r in query(
            stores,
            "SELECT message FROM backup_integrity_result WHERE run_id = %s AND backend = 'b2'",
            [outcome.run_id],
        )
    ]
    not_asked = f"not asked: the store did not answer for {store_deadline} s"
    assert all(not_asked in m or "timeout" in m.lower() for m in messages), messages
    assert sum(not_asked in m for m in messages) >= 4, "the later chunks did not ask at all"

    (row,) = query(
        stores,
        "SELECT first_timeout_at FROM backup_integrity_store_deadline WHERE run_id = %s AND backend = 'b2'",
        [outcome.run_id],
    )
    first_timeout = row["first_timeout_at"].timestamp()
    assert connections.times, "b2 was asked"
    # The first attempt timed out one read timeout after it began (the connect succeeds at once) ...
    assert first_timeout - connections.times[0] < 1 + 1 + 0.5
    # ... and no attempt began that could not have ended by the deadline: connect + read = 2 s.
    assert connections.times[-1] + 2 <= first_timeout + store_deadline + 0.3, (
        connections.times,
        first_timeout,
    )
    assert len(connections.times) <= 6, "without the deadline: 3 attempts for each of 5 bucket checks"

    # The store is back and the run is cleared: the cleared run starts with fresh clocks.
    b2.passthrough()
    again = run_dag(again=outcome)
    assert again.run_id == outcome.run_id
    assert again.state == "success", again
    assert {results(stores, again.run_id)[(b.id, "b2")] for b in backups} == {"passed"}


# ----------------------------------------------------------------------------- a chunk's own deadline


def test_a_chunk_running_out_of_time_reports_what_it_did_not_ask_and_stays_in_the_aggregate(
    stores, through_proxies, airflow_db, monkeypatch, airflow_env
):
    set_variable(
        monkeypatch,
        {
            **airflow_env,
            "expected_backends": {"FULL_DATABASE": ["r2"]},
            "chunk_size": 60,
            "max_chunks_per_backend": 2,
        },
    )
    backups = [seed_backup(stores, size=16, on=("r2",)) for _ in range(120)]
    r2 = through_proxies["r2"]
    set_connection(monkeypatch, "backup_r2", s3_connection(r2, connect_timeout=1, read_timeout=3))
    r2.set_mode("pass", delay=1.5)  # a slow store: every request takes a second and a half

    dag = load_dag()
    # 12 s: the chunk stops asking 3 s before (a quarter of a short timeout) and starts no
    # request that could not end by then (connect 1 s + read 3 s): after about 5 s. That leaves
    # room for the listing and a round of reads even on a loaded machine, and never for all 60.
    dag.get_task("verify_chunk").execution_timeout = timedelta(seconds=12)
    outcome = DagRunOutcome(
        dag.test(logical_date=datetime.now(UTC) + timedelta(hours=1), run_conf={"mode": "full"})
    )

    assert outcome.state == "failed"
    chunks = [t for t in outcome.dag_run.get_task_instances() if t.task_id == "verify_chunk"]
    assert len(chunks) == 2
    assert all(str(t.state) == "success" for t in chunks), "no chunk was killed by its timeout"
    stats = outcome.statistics
    assert stats["chunks"] == 2
    assert stats["checks_total"] == len(backups), "no chunk dropped out of the aggregate"
    rows = query(
        stores, "SELECT kind, message FROM backup_integrity_result WHERE run_id = %s", [outcome.run_id]
    )
    assert len(rows) == len(backups)
    late = [r for r in rows if "not asked: task deadline" in r["message"]]
    assert late, "the slow store could not be asked about everything in time"
    assert {r["kind"] for r in late} == {"backend_error"}
    assert {r["kind"] for r in rows if r not in late} == {"passed"}, "what was asked was read and matched"
    assert stats["backend_errors"] == len(late)
    assert json.dumps(stats)  # the statistics still reach XCom whole
