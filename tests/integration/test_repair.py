"""Repair end to end with ``dag.test()``: real PostgreSQL, two moto S3 servers, a real folder,
a real webhook. A bad copy is healed only from a copy verified good, and proven afterwards."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from devtools.faultproxy import FaultProxy
from devtools.runs import DAG_ID, release_metadata_db, xcom
from devtools.seed import corrupt_same_size, delete, seed_backup
from tests.support.catalog import alerts, last_check, open_alerts_by_key, query
from tests.support.connections import s3_connection, set_connection, set_variable


def stored_bytes(stores, backup, backend: str) -> bytes | None:
    key = backup.paths[backend]
    if backend == "local":
        full = os.path.join(stores.local_root, key)
        if not os.path.exists(full):
            return None
        with open(full, "rb") as handle:
            return handle.read()
    client, bucket = stores.s3(backend)
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


def alert_for(stores, backup_id: str, backend: str, kind: str) -> dict:
    rows = [
        a
        for a in alerts(stores)
        if a["backup_id"] == backup_id
        and a["details"].get("backend") == backend
        and a["details"].get("kind") == kind
    ]
    assert len(rows) == 1, rows
    return rows[0]


def test_apply_restores_deleted_and_corrupted_copies_from_a_verified_replica(
    stores, run_dag, webhook, monkeypatch, airflow_env
):
    # local -> S3: deleted from r2, same-size corrupted on b2; only the local copy is good.
    from_local = seed_backup(stores)
    delete(stores, from_local, "r2")
    corrupt_same_size(stores, from_local, "b2")
    # S3 -> local: deleted locally; and same-size corrupted locally.
    deleted_local = seed_backup(stores)
    delete(stores, deleted_local, "local")
    corrupted_local = seed_backup(stores)
    corrupt_same_size(stores, corrupted_local, "local")
    # S3 -> S3, larger than one part: multipart upload to r2 from b2.
    large_wal = seed_backup(stores, backup_type="WAL_ARCHIVE", size=9 * 1024 * 1024 + 123)
    corrupt_same_size(stores, large_wal, "r2")
    # No copy is good anywhere: nothing to repair from.
    lost = seed_backup(stores)
    for backend in ("local", "r2", "b2"):
        corrupt_same_size(stores, lost, backend)
    # The catalog does not say where the b2 copy belongs.
    unrecorded = seed_backup(stores, on=("local", "r2"), record_paths=("local", "r2"))

    # Ten notices: above the digest threshold, so it is raised to see each one on its own.
    set_variable(monkeypatch, {**airflow_env, "repair": "apply", "notify_digest_after": 50})
    outcome = run_dag({"mode": "full"})

    stats = outcome.statistics
    assert stats["checksum_mismatches"] == 2 + 1 + 3
    assert stats["missing_files"] == 2 + 1
    assert stats["repaired"] == 5
    assert stats["repair_failed"] == 3 + 1
    assert outcome.state == "failed", "the unrepaired copies still fail the run"

    for backup, backend in (
        (from_local, "r2"),
        (from_local, "b2"),
        (deleted_local, "local"),
        (corrupted_local, "local"),
        (large_wal, "r2"),
    ):
        assert stored_bytes(stores, backup, backend) == backup.content, (backup.id, backend)
    head = stores.r2.head_object(Bucket=stores.r2_bucket, Key=large_wal.paths["r2"])
    assert head["ETag"].strip('"').endswith("-2"), "written as a two-part multipart upload"
    for backend in ("local", "r2", "b2"):
        assert hashlib.sha256(stored_bytes(stores, lost, backend)).hexdigest() != lost.sha256, (
            "no copy overwritten without a verified source"
        )
    assert not [name for _, _, files in os.walk(stores.local_root) for name in files if ".repair-" in name]

    plan = {(e["backup_id"], e["backend"]): e for e in stats["repair_plan"]}
    assert plan[(from_local.id, "r2")]["source_backend"] == "local"
    assert plan[(from_local.id, "b2")]["kind"] == "checksum_mismatch"
    assert plan[(deleted_local.id, "local")]["source_backend"] in ("r2", "b2")
    assert plan[(large_wal.id, "r2")]["source_backend"] == "b2"
    assert plan[(lost.id, "local")]["source_backend"] is None
    assert "unverified source" in plan[(lost.id, "local")]["reason"]
    assert plan[(unrecorded.id, "b2")]["source_backend"] is None
    assert "no location" in plan[(unrecorded.id, "b2")]["reason"]

    repaired_alert = alert_for(stores, from_local.id, "r2", "missing")
    assert repaired_alert["status"] == "RESOLVED"
    assert repaired_alert["details"]["resolution"] == "repaired"
    repair = repaired_alert["details"]["repair"]
    assert repair["source_backend"] == "local"
    assert repair["sha256"] == from_local.sha256
    assert repair["repaired_at"]
    assert alert_for(stores, large_wal.id, "r2", "checksum_mismatch")["details"]["repair"][
        "source_backend"
    ] == ("b2")

    still_open = open_alerts_by_key(stores)
    for backend in ("local", "r2", "b2"):
        lost_alert = still_open[(lost.id, backend, "checksum_mismatch")]
        assert lost_alert["status"] == "ACTIVE"
        assert "unverified source" in lost_alert["details"]["repair_error"]
    assert "no location" in still_open[(unrecorded.id, "b2", "missing")]["details"]["repair_error"]
    assert not any(key[0] in (from_local.id, deleted_local.id, corrupted_local.id) for key in still_open)

    # One notice per repaired copy (saying what was found and what was done), none "opened" for it.
    repaired_notices = [m for m in webhook.messages if m["title"].startswith("[REPAIRED]")]
    assert len(repaired_notices) == 5
    notice = next(
        m for m in repaired_notices if "restored from local" in m["title"] and "on r2" in m["title"]
    )
    assert "Found:" in notice["message"]
    assert "Repaired:" in notice["message"]
    assert from_local.sha256 in notice["message"]
    opened_titles = [m["title"] for m in webhook.messages if not m["title"].startswith("[REPAIRED]")]
    assert len(opened_titles) == 4 + 1, opened_titles  # lost x3, unrecorded, the summary

    rows = query(
        stores,
        "SELECT status, count(*) AS n FROM backup_integrity_repair WHERE run_id = %s GROUP BY status",
        [outcome.run_id],
    )
    assert {r["status"]: r["n"] for r in rows} == {"repaired": 5, "refused": 4}

    # The repaired copies now pass a full check of their own.
    again = run_dag({"mode": "full", "backup_ids": [from_local.id, deleted_local.id, large_wal.id]})
    assert again.state == "success"
    assert again.statistics["checks_passed"] == 3 + 3 + 2


@pytest.fixture
def statsd(monkeypatch):
    """A StatsD listener, and Airflow's metrics pointed at it (as a worker's [metrics] would)."""
    from airflow.sdk._shared.observability.metrics import stats as shared

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(sock.getsockname()[1]))
    monkeypatch.setattr(shared, "_factory", None)
    monkeypatch.setattr(shared, "_backend", None)
    yield sock
    sock.close()


def received(sock) -> list[str]:
    lines = []
    with contextlib.suppress(TimeoutError):
        while True:
            lines.extend(sock.recvfrom(65535)[0].decode().splitlines())
    return lines


def test_a_run_whose_failures_were_all_repaired_succeeds_with_one_notice_each(
    stores, run_dag, webhook, monkeypatch, airflow_env, statsd
):
    deleted = seed_backup(stores)
    delete(stores, deleted, "b2")
    corrupted = seed_backup(stores)
    corrupt_same_size(stores, corrupted, "r2")
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})  # the Variable's key, no param

    # quick mode: no source was read in the checks; the repair reads and verifies one first.
    outcome = run_dag()

    metrics = [line for line in received(statsd) if ".backup_integrity." in line]
    assert "airflow.backup_integrity.repaired:2|g" in metrics
    assert "airflow.backup_integrity.missing_files:1|g" in metrics
    assert "airflow.backup_integrity.total_backups_checked:2|g" in metrics

    assert outcome.state == "success"
    assert outcome.statistics["repaired"] == 2
    assert outcome.statistics["repair_failed"] == 0
    assert outcome.statistics["missing_files"] == 1
    assert outcome.statistics["checksum_mismatches"] == 1
    assert stored_bytes(stores, deleted, "b2") == deleted.content
    assert stored_bytes(stores, corrupted, "r2") == corrupted.content
    assert len(webhook.messages) == 2, [m["title"] for m in webhook.messages]
    assert all(m["title"].startswith("[REPAIRED]") for m in webhook.messages)
    assert open_alerts_by_key(stores) == {}, "no summary and no open alert is left behind"
    check = last_check(stores, deleted.id)
    assert check["errors"][0]["kind"] == "missing", "what was found stays on record"
    assert check["repairs"] == [
        {"backend": "b2", "kind": "missing", "status": "repaired", "source_backend": "r2"}
    ]

    # The param overrides the key for one run.
    delete(stores, deleted, "b2")
    planned = run_dag({"repair": "off"})
    assert planned.state == "failed"
    assert "repair_plan" not in planned.statistics
    assert stored_bytes(stores, deleted, "b2") is None


def test_an_alert_opened_earlier_is_resolved_as_repaired_by_a_later_repair(
    stores, run_dag, webhook, monkeypatch, airflow_env
):
    backup = seed_backup(stores)
    delete(stores, backup, "local")
    first = run_dag()
    assert first.state == "failed"
    assert [m["title"] for m in webhook.messages] == ["[CRITICAL] Backup integrity: missing on local"]

    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})
    second = run_dag({"repair": "apply"})  # the param may name the Variable's level

    assert second.state == "success"
    row = alert_for(stores, backup.id, "local", "missing")
    assert row["status"] == "RESOLVED"
    assert row["details"]["resolution"] == "repaired"
    assert row["details"]["occurrences"] == 2
    assert [m["title"] for m in webhook.messages][1:] == [
        "[REPAIRED] Backup integrity: missing on local, restored from r2"
    ]


def test_plan_mode_lists_the_repairs_and_copies_nothing(stores, run_dag, webhook):
    deleted = seed_backup(stores)
    delete(stores, deleted, "r2")
    lost = seed_backup(stores, on=("r2",), record_paths=("local", "r2", "b2"))
    corrupt_same_size(stores, lost, "r2")

    outcome = run_dag({"repair": "plan", "mode": "quick"})  # quick: no copy is read in this run

    assert outcome.state == "failed"
    stats = outcome.statistics
    assert "repaired" not in stats
    assert "repair_failed" not in stats
    plan = sorted(stats["repair_plan"], key=lambda e: (e["backup_id"] == lost.id, e["backend"]))
    assert plan[0] == {
        "backup_id": deleted.id,
        "backend": "r2",
        "kind": "missing",
        "source_backend": "b2",  # its SHA-256 is the store's own; local passed on size only
        "reason": plan[0]["reason"],
    }
    assert "verifies its SHA-256 first" in plan[0]["reason"]
    assert [(e["backend"], e["source_backend"]) for e in plan[1:]] == [
        ("b2", None),
        ("local", None),
        ("r2", None),
    ]
    assert stored_bytes(stores, deleted, "r2") is None
    assert open_alerts_by_key(stores)[(deleted.id, "r2", "missing")]["status"] == "ACTIVE"
    assert not any(m["title"].startswith("[REPAIRED]") for m in webhook.messages)


@pytest.fixture
def r2_requests(r2_server, monkeypatch, airflow_env):
    """backup_r2 through a proxy that passes everything and logs each request (method, target)."""
    proxy = FaultProxy(r2_server.port, http=True).start()
    set_connection(monkeypatch, "backup_r2", s3_connection(proxy))
    yield proxy
    proxy.stop()


def rerun_task(task_id: str, run_id: str) -> None:
    """``airflow tasks test``: the task instance of that run, run again in a process of its own."""
    release_metadata_db()
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "test", DAG_ID, task_id, run_id],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if task_id == "repair_copies":
        assert "proven by an earlier try of this run" in done.stdout + done.stderr


def puts_of(proxy: FaultProxy, key: str) -> int:
    return sum(1 for method, target, _ in list(proxy.log) if method == "PUT" and key in target)


def test_a_cleared_repair_does_not_copy_what_an_earlier_try_proved(
    stores, run_dag, webhook, r2_requests, monkeypatch, airflow_env
):
    """repair_copies and what follows it cleared (as from the UI, with downstream) copy nothing twice."""
    gone_r2 = seed_backup(stores)
    delete(stores, gone_r2, "r2")
    corrupted_local = seed_backup(stores)
    corrupt_same_size(stores, corrupted_local, "local")

    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})
    first = run_dag({"mode": "full"})  # full: the same-size corruption is read

    assert first.state == "success"
    assert first.statistics["repaired"] == 2
    assert puts_of(r2_requests, gone_r2.paths["r2"]) == 1
    local_file = os.path.join(stores.local_root, corrupted_local.paths["local"])
    written = os.stat(local_file)
    notices = len(webhook.messages)
    alert_rows = alerts(stores)

    # The repair task and those after it run again for the same run, as `airflow tasks clear
    # --downstream` has the scheduler do: each reads the XComs its upstream left, so
    # repair_copies is handed the same two bad copies a second time.
    for task_id in ("repair_copies", "aggregate_results", "raise_alerts"):
        rerun_task(task_id, first.run_id)
    # The same repairs, from the record; only what the second try sent (no copy) is priced anew.
    priced = ("requests_sent", "estimated_cost_usd")
    again_stats = {k: v for k, v in xcom(first.dag_run, "aggregate_results").items() if k not in priced}
    assert again_stats == {k: v for k, v in first.statistics.items() if k not in priced}
    assert puts_of(r2_requests, gone_r2.paths["r2"]) == 1, "not uploaded again"
    again = os.stat(local_file)
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns), "not rewritten"
    assert stored_bytes(stores, gone_r2, "r2") == gone_r2.content
    assert stored_bytes(stores, corrupted_local, "local") == corrupted_local.content
    assert len(webhook.messages) == notices, "no notice twice"
    assert [(a["id"], a["status"]) for a in alerts(stores)] == [(a["id"], a["status"]) for a in alert_rows]
    rows = query(
        stores,
        "SELECT status, count(*) AS n FROM backup_integrity_repair WHERE run_id = %s GROUP BY status",
        [first.run_id],
    )
    assert {r["status"]: r["n"] for r in rows} == {"repaired": 2}


def task_states(outcome) -> dict[str, str]:
    return {t.task_id: str(t.state) for t in outcome.dag_run.get_task_instances()}


def test_a_param_cannot_raise_repair_to_apply_when_the_variable_says_otherwise(stores, run_dag, webhook):
    backup = seed_backup(stores)
    delete(stores, backup, "r2")

    refused = run_dag({"repair": "apply"})  # the Variable's repair is off (the default)

    assert refused.state == "failed"
    states = task_states(refused)
    assert states["select_backups"] == "failed"
    assert "success" not in states.values(), "nothing checked, nothing copied"
    assert stored_bytes(stores, backup, "r2") is None

    planned = run_dag({"repair": "plan"})  # plan writes nothing: always allowed
    assert [(e["backup_id"], e["backend"]) for e in planned.statistics["repair_plan"]] == [(backup.id, "r2")]
    assert stored_bytes(stores, backup, "r2") is None


def repair_rows(stores, run_id: str) -> dict[str, tuple[str, str | None]]:
    rows = query(
        stores,
        "SELECT backup_id::text AS id, status, reason FROM backup_integrity_repair WHERE run_id = %s",
        [run_id],
    )
    return {r["id"]: (r["status"], r["reason"]) for r in rows}


def test_repairs_are_capped_per_run_newest_first_and_an_oversize_object_is_refused(
    stores, run_dag, monkeypatch, airflow_env
):
    now = datetime.now(UTC)
    sizes = {"a": 1000, "b": 5000, "c": 1500, "d": 1000, "e": 100}  # "a" is the newest
    seeded = {
        name: seed_backup(stores, size=size, created_at=now - timedelta(hours=2 + index))
        for index, (name, size) in enumerate(sizes.items())
    }
    for backup in seeded.values():
        delete(stores, backup, "r2")
    set_variable(
        monkeypatch, {**airflow_env, "repair": "apply", "repair_max_copies": 3, "repair_max_bytes": 3000}
    )

    first = run_dag()

    assert (first.statistics["repaired"], first.statistics["repair_failed"]) == (2, 3)
    written = {name for name, backup in seeded.items() if stored_bytes(stores, backup, "r2") is not None}
    assert written == {"a", "c"}, "the bytes are spent on the newest backups"
    rows = repair_rows(stores, first.run_id)
    assert rows[seeded["b"].id] == ("refused", "larger than repair_max_bytes (5000 > 3000 bytes)")
    assert rows[seeded["d"].id] == rows[seeded["e"].id] == ("refused", "repair cap")

    set_variable(
        monkeypatch, {**airflow_env, "repair": "apply", "repair_max_copies": 1, "repair_max_bytes": 3000}
    )
    second = run_dag()  # the count cap: one copy, the newest of what is left ("b" is still too large)

    assert (second.statistics["repaired"], second.statistics["repair_failed"]) == (1, 2)
    assert stored_bytes(stores, seeded["d"], "r2") == seeded["d"].content
    assert stored_bytes(stores, seeded["e"], "r2") is None
    rows = repair_rows(stores, second.run_id)
    assert rows[seeded["e"].id] == ("refused", "repair cap")
    assert rows[seeded["b"].id][0] == "refused"


def test_a_path_another_catalog_row_records_is_never_written(stores, run_dag, monkeypatch, airflow_env):
    backup = seed_backup(stores)
    delete(stores, backup, "local")
    folder, name = os.path.split(backup.paths["local"])
    # A FAILED row that records the same local file, spelled differently, and a copy on r2 elsewhere.
    seed_backup(
        stores, status="FAILED", on=(), row_overrides={"local_path": f"./{folder}//{name}", "r2_path": "x/y"}
    )
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})

    outcome = run_dag()

    assert (outcome.statistics["repaired"], outcome.statistics["repair_failed"]) == (0, 1)
    assert stored_bytes(stores, backup, "local") is None
    assert repair_rows(stores, outcome.run_id)[backup.id] == ("refused", "shared path")


def test_wrong_copies_are_kept_beside_the_repaired_ones_on_local_and_on_s3(
    stores, run_dag, monkeypatch, airflow_env
):
    backup = seed_backup(stores)
    corrupt_same_size(stores, backup, "local")
    corrupt_same_size(stores, backup, "r2")
    bad_local, bad_r2 = stored_bytes(stores, backup, "local"), stored_bytes(stores, backup, "r2")
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})

    outcome = run_dag({"mode": "full"})

    assert outcome.statistics["repaired"] == 2
    assert stored_bytes(stores, backup, "local") == backup.content
    assert stored_bytes(stores, backup, "r2") == backup.content
    folder, name = os.path.split(os.path.join(stores.local_root, backup.paths["local"]))
    [kept_local] = [f for f in os.listdir(folder) if f != name]
    assert re.fullmatch(re.escape(name) + r"\.bad-\d{8}T\d{6}Z", kept_local)
    with open(os.path.join(folder, kept_local), "rb") as handle:
        assert handle.read() == bad_local
    listed = stores.r2.list_objects_v2(Bucket=stores.r2_bucket, Prefix=backup.paths["r2"])["Contents"]
    [kept_key] = [o["Key"] for o in listed if o["Key"] != backup.paths["r2"]]
    assert re.fullmatch(re.escape(backup.paths["r2"]) + r"\.bad-\d{8}T\d{6}Z", kept_key)
    assert stores.r2.get_object(Bucket=stores.r2_bucket, Key=kept_key)["Body"].read() == bad_r2


def test_a_path_holding_a_registered_secret_is_repaired_at_the_real_path(
    stores, run_dag, monkeypatch, airflow_env, b2_server
):
    secret = "PathSecret-7f3a9c41"
    b2 = {**b2_server.airflow_connection("backup_b2"), "password": secret}
    set_connection(monkeypatch, "backup_b2", b2)
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})
    real_path = f"vault/{secret}/full.dump"
    backup = seed_backup(stores, on=("r2", "b2"), row_overrides={"local_path": real_path})

    outcome = run_dag()

    assert outcome.statistics["repaired"] == 1
    with open(os.path.join(stores.local_root, real_path), "rb") as handle:
        assert handle.read() == backup.content
    assert not os.path.exists(os.path.join(stores.local_root, "vault/***")), "never the redacted form"
    recorded = query(stores, "SELECT reason, error FROM backup_integrity_repair")
    assert secret not in repr(recorded)
    assert secret not in repr(outcome.statistics)
