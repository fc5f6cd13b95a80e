"""The DAG end to end with ``dag.test()``: real PostgreSQL, two moto S3 servers, a real folder,
real webhook and SMTP receivers. Every assertion is about rows, metadata, notices and run state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devtools.runs import DagRunOutcome
from devtools.seed import (
    corrupt_same_size,
    delete,
    insert_row,
    restore,
    seed_backup,
    truncate,
)
from devtools.services import free_port
from tests.support.catalog import alerts, last_check, metadata, open_alerts_by_key, query, results
from tests.support.connections import s3_connection, set_variable
from tests.support.runs import load_dag, window_end_for


def test_healthy_backups_pass_everywhere_they_are_expected(stores, run_dag, webhook):
    full = seed_backup(stores, backup_type="FULL_DATABASE")
    tenant = seed_backup(stores, backup_type="TENANT_BACKUP")
    config = seed_backup(stores, backup_type="CONFIGURATION")
    wal = seed_backup(stores, backup_type="WAL_ARCHIVE")

    outcome = run_dag()

    assert outcome.state == "success"
    stats = outcome.statistics
    assert stats["total_backups_checked"] == 4
    assert stats["verified_successfully"] == 4
    assert stats["integrity_failures"] == 0
    for key in (
        "missing_files",
        "storage_mismatches",
        "checksum_mismatches",
        "backend_errors",
        "invalid_records",
    ):
        assert stats[key] == 0
    checked = results(stores, outcome.run_id)
    assert {b for (_, b) in checked if _ == wal.id} == {"r2", "b2"}, "WAL is expected on r2 and b2 only"
    assert len(checked) == 3 * 3 + 2
    for backup in (full, tenant, config, wal):
        check = last_check(stores, backup.id)
        assert check["status"] == "passed"
        assert check["mode"] == "rolling", "the default mode"
        assert check["errors"] == []
        assert check["run_id"] == outcome.run_id
        assert datetime.fromisoformat(check["timestamp"]).utcoffset() == timedelta(0)
        assert metadata(stores, backup.id)["seeded"] is True, "other metadata keys are kept"
    assert alerts(stores) == []
    assert webhook.messages == []


def test_each_failure_kind_becomes_one_alert_and_the_run_fails(
    stores, run_dag, webhook, smtp, monkeypatch, airflow_env
):
    # Seven notices: above the digest threshold of 5, so it is raised to see each one on its own.
    set_variable(monkeypatch, {**airflow_env, "notify_digest_after": 10})
    healthy = seed_backup(stores)
    missing_r2 = seed_backup(stores)
    delete(stores, missing_r2, "r2")
    short_local = seed_backup(stores)
    truncate(stores, short_local, "local")
    corrupt_b2 = seed_backup(stores)
    corrupt_same_size(stores, corrupt_b2, "b2")  # the store recomputes its SHA-256: quick mode sees it
    not_recorded = seed_backup(stores, on=("local", "r2", "b2"), record_paths=("local", "r2"))
    bad_checksum = seed_backup(stores, row_overrides={"checksum": "not-a-sha256"})
    unknown_type = seed_backup(stores, backup_type="MYSTERY_DUMP", on=("r2",))

    outcome = run_dag()

    assert outcome.state == "failed"
    stats = outcome.statistics
    assert stats["total_backups_checked"] == 7
    assert stats["verified_successfully"] == 1
    assert stats["integrity_failures"] == 6
    assert stats["missing_files"] == 2  # deleted from r2 + b2 path not recorded
    assert stats["storage_mismatches"] == 1
    assert stats["checksum_mismatches"] == 1
    assert stats["backend_errors"] == 0
    assert stats["invalid_records"] == 3 + 1  # bad checksum on its three backends + the unknown type

    by_key = open_alerts_by_key(stores)
    assert (missing_r2.id, "r2", "missing") in by_key
    assert (short_local.id, "local", "size_mismatch") in by_key
    assert (corrupt_b2.id, "b2", "checksum_mismatch") in by_key
    assert (not_recorded.id, "b2", "missing") in by_key
    assert "not recorded in catalog" in by_key[(not_recorded.id, "b2", "missing")]["message"]
    for backend in ("local", "r2", "b2"):
        assert (bad_checksum.id, backend, "invalid_record") in by_key
    assert (unknown_type.id, None, "invalid_record") in by_key
    assert not any(key[0] == healthy.id for key in by_key)

    missing_alert = by_key[(missing_r2.id, "r2", "missing")]
    assert missing_alert["alert_type"] == "INTEGRITY_FAILURE"
    assert missing_alert["severity"] == "CRITICAL"
    assert missing_alert["status"] == "ACTIVE"
    details = missing_alert["details"]
    for key in (
        "kind",
        "backend",
        "backup_id",
        "path",
        "expected",
        "actual",
        "run_id",
        "first_seen",
        "last_seen",
        "occurrences",
    ):
        assert key in details, key
    assert details["backup_id"] == missing_r2.id
    assert details["path"] == missing_r2.paths["r2"]
    assert details["expected"]["sha256"] == missing_r2.sha256
    assert details["run_id"] == outcome.run_id
    assert details["occurrences"] == 1
    assert details["first_seen"] == details["last_seen"]
    size_alert = by_key[(short_local.id, "local", "size_mismatch")]
    assert size_alert["details"]["actual"]["size_bytes"] == len(short_local.content) // 2
    assert size_alert["details"]["expected"]["size_bytes"] == len(short_local.content)
    assert by_key[(bad_checksum.id, "r2", "invalid_record")]["severity"] == "ERROR"

    summary = by_key[(None, None, "summary")]
    assert summary["backup_id"] is None
    assert summary["severity"] == "CRITICAL"
    assert summary["details"]["counts"]["missing"] == 2

    check = last_check(stores, missing_r2.id)
    assert check["status"] == "failed"
    assert check["errors"] == [
        {"backend": "r2", "kind": "missing", "message": f"r2 has no object at {missing_r2.paths['r2']!r}"}
    ]
    assert last_check(stores, healthy.id)["status"] == "passed"

    # One notice per alert row (the summary included), each delivered to the webhook and by email.
    assert len(webhook.messages) == len(by_key)
    assert len(smtp.messages) == len(by_key)
    for row in by_key.values():
        assert len(row["notification_channels"]) == 2
        assert any(c.startswith("json://") for c in row["notification_channels"])
        assert any(c.startswith("mailto://") for c in row["notification_channels"])


def test_quick_mode_never_downloads_but_full_mode_reads_every_byte(stores, run_dag):
    # Uploaded without a stored SHA-256: quick mode can only compare sizes.
    silent = seed_backup(stores, server_sha256=False)
    corrupt_same_size(stores, silent, "local")
    damaged = bytearray(silent.content)
    damaged[0] ^= 1
    stores.r2.put_object(Bucket=stores.r2_bucket, Key=silent.paths["r2"], Body=bytes(damaged))

    quick = run_dag({"mode": "quick"})
    assert quick.state == "success", "same-size corruption is invisible without a hash"
    assert dict(results(stores, quick.run_id).items()) == {
        (silent.id, "local"): "passed",
        (silent.id, "r2"): "passed",
        (silent.id, "b2"): "passed",
    }
    evidence = query(
        stores, "SELECT DISTINCT evidence FROM backup_integrity_result WHERE run_id = %s", [quick.run_id]
    )
    assert [r["evidence"] for r in evidence] == ["size"]

    full = run_dag({"mode": "full"})
    assert full.state == "failed"
    assert full.statistics["checksum_mismatches"] == 2
    assert full.statistics["mode"] == "full"
    found = results(stores, full.run_id)
    assert found[(silent.id, "local")] == "checksum_mismatch"
    assert found[(silent.id, "r2")] == "checksum_mismatch"
    assert found[(silent.id, "b2")] == "passed"
    check = last_check(stores, silent.id)
    assert check["mode"] == "full"
    assert sorted(e["backend"] for e in check["errors"]) == ["local", "r2"]


def test_wal_archives_are_checked_on_r2_and_b2_only(stores, run_dag):
    wal_ok = seed_backup(stores, backup_type="WAL_ARCHIVE")
    wal_missing_b2 = seed_backup(stores, backup_type="WAL_ARCHIVE")
    delete(stores, wal_missing_b2, "b2")

    outcome = run_dag()

    assert outcome.state == "failed"
    found = results(stores, outcome.run_id)
    assert found == {
        (wal_ok.id, "r2"): "passed",
        (wal_ok.id, "b2"): "passed",
        (wal_missing_b2.id, "r2"): "passed",
        (wal_missing_b2.id, "b2"): "missing",
    }
    assert list(open_alerts_by_key(stores)) == [(wal_missing_b2.id, "b2", "missing")]


def test_the_window_and_the_cap_choose_which_backups_are_checked(stores, run_dag, monkeypatch, airflow_env):
    logical_date = datetime.now(UTC).replace(minute=30) - timedelta(days=1)
    end = window_end_for(logical_date)
    inside_new = seed_backup(stores, created_at=end - timedelta(minutes=5))
    inside_old = seed_backup(stores, created_at=end - timedelta(days=2, hours=23))
    too_old = seed_backup(stores, created_at=end - timedelta(days=3, minutes=1))
    at_end = seed_backup(stores, created_at=end)  # the window is half-open
    failed_status = seed_backup(stores, created_at=end - timedelta(hours=1), status="FAILED")

    set_variable(monkeypatch, {**airflow_env, "lookback_days": 3})
    outcome = run_dag(logical_date=logical_date)
    checked = {b for (b, _) in results(stores, outcome.run_id)}
    assert checked == {inside_new.id, inside_old.id}
    assert outcome.statistics["window_end"] == end.isoformat()
    assert outcome.statistics["window_start"] == (end - timedelta(days=3)).isoformat()
    for untouched in (too_old, at_end, failed_status):
        assert last_check(stores, untouched.id) is None

    # An hour later the window also holds the backup created exactly at the old end: the newest.
    capped = run_dag({"max_backups": 1}, logical_date=logical_date + timedelta(hours=1))
    assert {b for (b, _) in results(stores, capped.run_id)} == {at_end.id}, "newest first"

    wider = run_dag({"lookback_days": 5}, logical_date=logical_date + timedelta(hours=2))
    assert {b for (b, _) in results(stores, wider.run_id)} == {
        inside_new.id,
        inside_old.id,
        too_old.id,
        at_end.id,
    }


def test_backup_ids_param_checks_exactly_those_whatever_their_age(stores, run_dag):
    ancient = seed_backup(stores, created_at=datetime(2024, 1, 1, tzinfo=UTC))
    recent = seed_backup(stores)
    seed_backup(stores)  # in the window, but not asked for
    pending = seed_backup(stores, status="RUNNING")
    unknown = "00000000-0000-4000-8000-000000000000"

    outcome = run_dag({"backup_ids": [ancient.id, recent.id, pending.id, unknown, "not-a-uuid"]})

    assert outcome.state == "success"
    assert {b for (b, _) in results(stores, outcome.run_id)} == {ancient.id, recent.id}
    assert outcome.statistics["total_backups_checked"] == 2
    assert sorted(outcome.statistics["skipped_backup_ids"]) == sorted([pending.id, unknown, "not-a-uuid"])


def test_a_second_run_updates_open_alerts_instead_of_repeating_them(stores, run_dag, webhook, smtp):
    gone = seed_backup(stores)
    delete(stores, gone, "b2")
    short = seed_backup(stores)
    truncate(stores, short, "r2")

    first = run_dag()
    rows_after_first = alerts(stores)
    notices_after_first = len(webhook.messages)
    assert notices_after_first == 3  # two alerts and the summary

    second = run_dag()
    rows = alerts(stores)
    assert [r["id"] for r in rows] == [r["id"] for r in rows_after_first], "no new rows"
    assert len(webhook.messages) == notices_after_first, "no re-notification"
    assert len(smtp.messages) == notices_after_first
    for row in rows:
        assert row["status"] == "ACTIVE"
        assert row["details"]["occurrences"] == 2
        assert row["details"]["run_id"] == second.run_id
        assert row["details"]["first_seen"] < row["details"]["last_seen"]
    first_by_id = {r["id"]: r for r in rows_after_first}
    for row in rows:
        assert row["details"]["first_seen"] == first_by_id[row["id"]]["details"]["first_seen"]

    # Re-running the very same run (a clear) changes nothing and sends nothing.
    again = run_dag(again=first)
    assert again.run_id == first.run_id
    assert len(alerts(stores)) == len(rows)
    assert all(r["details"]["occurrences"] == 2 for r in alerts(stores))
    assert len(webhook.messages) == notices_after_first


def test_fixed_backups_resolve_their_alerts_with_a_notice(stores, run_dag, webhook):
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    flipped = seed_backup(stores, server_sha256=False)
    corrupt_same_size(stores, flipped, "local")

    first = run_dag({"mode": "full"})
    assert first.state == "failed"
    assert set(open_alerts_by_key(stores)) == {
        (gone.id, "r2", "missing"),
        (flipped.id, "local", "checksum_mismatch"),
        (None, None, "summary"),
    }
    webhook.clear()

    restore(stores, gone, "r2")
    restore(stores, flipped, "local")
    quick = run_dag({"mode": "quick"})
    assert quick.state == "success"
    still_open = open_alerts_by_key(stores)
    assert set(still_open) == {(flipped.id, "local", "checksum_mismatch"), (None, None, "summary")}, (
        "a size check never resolves a checksum mismatch"
    )
    resolved = [r for r in alerts(stores) if r["status"] == "RESOLVED"]
    assert [r["details"]["kind"] for r in resolved] == ["missing"]
    assert resolved[0]["resolved_at"] is not None
    assert [m["title"] for m in webhook.messages] == [
        m["title"] for m in webhook.messages if m["title"].startswith("[RESOLVED]")
    ]
    assert len(webhook.messages) == 1

    full = run_dag({"mode": "full"})
    assert full.state == "success"
    assert open_alerts_by_key(stores) == {}, "content verified: the mismatch and the summary resolve"
    assert len(webhook.messages) == 3
    assert all(m["title"].startswith("[RESOLVED]") for m in webhook.messages)


def test_a_backend_that_is_down_is_a_backend_error_never_missing(stores, run_dag, monkeypatch, webhook):
    backup = seed_backup(stores)
    other = seed_backup(stores)
    delete(stores, backup, "b2")
    run_dag()
    assert (backup.id, "b2", "missing") in open_alerts_by_key(stores)

    dead = free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_B2",
        json.dumps(s3_connection(f"http://127.0.0.1:{dead}", retries={"max_attempts": 1})),
    )
    webhook.clear()
    outage = run_dag()

    assert outage.state == "failed"
    assert outage.statistics["backend_errors"] == 2
    assert outage.statistics["missing_files"] == 0
    found = results(stores, outage.run_id)
    assert found[(backup.id, "b2")] == "backend_error"
    assert found[(other.id, "b2")] == "backend_error"
    assert found[(backup.id, "r2")] == "passed"
    grouped = [r for r in alerts(stores) if r["details"]["kind"] == "backend_error"]
    assert len(grouped) == 1, "one alert per backend per outage"
    assert grouped[0]["backup_id"] is None
    assert grouped[0]["details"]["backend"] == "b2"
    assert grouped[0]["severity"] == "ERROR"
    assert grouped[0]["details"]["affected_count"] == 2
    missing = open_alerts_by_key(stores)[(backup.id, "b2", "missing")]
    assert missing["details"]["occurrences"] == 1, "a check that could not run resolves and counts nothing"
    assert last_check(stores, other.id)["errors"][0]["kind"] == "backend_error"

    second_outage = run_dag()
    assert len([r for r in alerts(stores) if r["details"]["kind"] == "backend_error"]) == 1
    assert (
        next(r for r in alerts(stores) if r["details"]["kind"] == "backend_error")["details"]["occurrences"]
        == 2
    )
    assert second_outage.state == "failed"


def test_without_a_notify_connection_alerts_are_still_written(stores, run_dag, monkeypatch, webhook):
    gone = seed_backup(stores)
    delete(stores, gone, "local")
    monkeypatch.delenv("AIRFLOW_CONN_BACKUP_NOTIFY")

    outcome = run_dag()

    assert outcome.state == "failed"
    rows = alerts(stores)
    assert [(r["details"]["kind"], r["notification_channels"]) for r in rows] == [("missing", [])]
    assert webhook.messages == []


def test_a_crash_of_the_verifier_is_reported_by_the_failure_callback(stores, run_dag, monkeypatch, webhook):
    seed_backup(stores)
    set_variable(monkeypatch, '{"local_root": ')  # not JSON: the run must stop, loudly

    outcome = run_dag()

    assert outcome.state == "failed"
    assert alerts(stores) == []
    crash = [m for m in webhook.messages if "crashed" in m["title"]]
    assert len(crash) == 1
    assert "select_backups" in crash[0]["message"]


def test_integrity_failures_are_not_reported_as_a_crash(stores, run_dag, webhook):
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    outcome = run_dag()
    assert outcome.state == "failed"
    assert not [m for m in webhook.messages if "crashed" in m["title"]]


def test_manually_inserted_rows_with_unsafe_paths_are_invalid_records(stores, run_dag, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_bytes(b"not a backup")
    link_dir = tmp_path / "backups" / "linked"
    link_dir.symlink_to(tmp_path)
    base = seed_backup(stores, on=("r2", "b2"), record_paths=("r2", "b2"))
    rows = {
        "dotdot": "../outside.txt",
        "absolute": str(secret),
        "symlink": "linked/outside.txt",
    }
    ids = {}
    for index, (name, path) in enumerate(rows.items()):
        backup_id = f"00000000-0000-4000-8000-00000000000{index}"
        ids[name] = backup_id
        insert_row(
            stores,
            {
                "id": backup_id,
                "backup_type": "CONFIGURATION",
                "filename": f"{name}.enc",
                "size_bytes": 12,
                "checksum": "a" * 64,
                "local_path": path,
                "r2_path": None,
                "b2_path": None,
                "status": "COMPLETED",
                "created_at": datetime.now(UTC) - timedelta(hours=1),
                "metadata": "{}",
            },
        )

    outcome = run_dag()

    found = results(stores, outcome.run_id)
    for name, backup_id in ids.items():
        assert found[(backup_id, "local")] == "invalid_record", name
        assert found[(backup_id, "r2")] == "missing"
    assert found[(base.id, "r2")] == "passed"
    reasons = {
        r["details"]["path"]: r["details"]["reason"]
        for r in alerts(stores)
        if r["details"]["kind"] == "invalid_record"
    }
    assert "symlink" in reasons["linked/outside.txt"]
    assert ".." in reasons["../outside.txt"]
    assert "absolute" in reasons[str(secret)]


def test_a_window_with_nothing_to_ask_a_store_still_reports(stores, run_dag, webhook):
    odd = seed_backup(stores, backup_type="MYSTERY_DUMP", on=())

    outcome = run_dag()

    assert outcome.state == "failed"
    assert outcome.statistics["invalid_records"] == 1
    assert list(open_alerts_by_key(stores)) == [(odd.id, None, "invalid_record")]
    assert last_check(stores, odd.id)["errors"][0]["kind"] == "invalid_record"
    assert len(webhook.messages) == 1


def test_an_empty_window_is_a_successful_run(stores, run_dag):
    seed_backup(stores, created_at=datetime.now(UTC) - timedelta(days=60))

    outcome = run_dag()

    assert outcome.state == "success"
    assert outcome.statistics["total_backups_checked"] == 0
    assert alerts(stores) == []


def test_one_parsed_dag_runs_each_conf_on_its_own(stores, airflow_env):
    """dag.test() runs tasks in-process; one run's conf must not leak into the next run."""
    asked = seed_backup(stores)
    other = seed_backup(stores)
    dag = load_dag()

    first = DagRunOutcome(dag.test(run_conf={"mode": "full", "backup_ids": [asked.id]}))
    second = DagRunOutcome(dag.test())

    assert {b for (b, _) in results(stores, first.run_id)} == {asked.id}
    assert first.statistics["mode"] == "full"
    assert {b for (b, _) in results(stores, second.run_id)} == {asked.id, other.id}
    assert second.statistics["mode"] == "rolling"


def test_chunk_size_one_maps_one_task_per_backup_per_backend(stores, run_dag, monkeypatch, airflow_env):
    seed_backup(stores)
    seed_backup(stores)
    seed_backup(stores, backup_type="WAL_ARCHIVE")
    set_variable(monkeypatch, {**airflow_env, "chunk_size": 1})

    outcome = run_dag()

    assert outcome.state == "success"
    labels = mapped_labels(outcome)
    assert len(labels) == 3 + 3 + 2
    assert sorted(label.split(":")[0] for label in labels if label.startswith("local")) == [
        "local 1/2",
        "local 2/2",
    ]


def test_a_window_larger_than_max_map_length_is_chunked_to_fit(stores, run_dag, monkeypatch, airflow_env):
    for _ in range(5):
        seed_backup(stores, size=16)
    set_variable(monkeypatch, {**airflow_env, "chunk_size": 1})
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "6")

    outcome = run_dag()

    assert outcome.state == "success"
    assert outcome.statistics["checks_total"] == 15
    assert len(mapped_labels(outcome)) <= 6


def test_a_run_without_a_data_interval_ends_its_window_at_run_after(stores, airflow_env):
    recent = seed_backup(stores, created_at=datetime.now(UTC) - timedelta(minutes=2))

    outcome = DagRunOutcome(load_dag().test(logical_date=None))

    assert outcome.dag_run.data_interval_end is None
    assert {b for (b, _) in results(stores, outcome.run_id)} == {recent.id}


def test_a_configuration_error_fails_at_once_and_names_the_key(stores, run_dag, monkeypatch, webhook):
    seed_backup(stores)
    set_variable(monkeypatch, {"local_root": stores.local_root, "chunk_size": "fifty"})
    dag = load_dag()
    dag.get_task("select_backups").retries = 3  # a configuration error must not be retried

    outcome = DagRunOutcome(dag.test())

    assert outcome.state == "failed"
    ti = next(t for t in outcome.dag_run.get_task_instances() if t.task_id == "select_backups")
    assert ti.try_number == 1
    assert alerts(stores) == []
    assert query(stores, "SELECT metadata FROM backups_backup")[0]["metadata"] == {"seeded": True}
    assert len([m for m in webhook.messages if "crashed" in m["title"]]) == 1


def mapped_labels(outcome: DagRunOutcome) -> list[str]:
    return [
        ti.rendered_map_index
        for ti in outcome.dag_run.get_task_instances()
        if ti.task_id == "verify_chunk" and ti.map_index >= 0
    ]


def test_a_refused_notification_is_recorded_and_retried_by_the_next_run(stores, run_dag, webhook, smtp):
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    webhook.status = 503

    first = run_dag()

    assert first.state == "failed"
    (row,) = alerts(stores)
    assert [c.split(":")[0] for c in row["notification_channels"]] == ["mailto"]
    assert "json://" in row["details"]["notification_error"]
    assert len(smtp.messages) == 1

    webhook.status = 200
    run_dag()

    (row,) = alerts(stores)
    assert sorted(c.split(":")[0] for c in row["notification_channels"]) == ["json", "mailto"]
    assert "notification_error" not in row["details"]
    assert len(webhook.messages) == 1, "the pending notice went out once the webhook accepted it"
    assert len(smtp.messages) == 1, "targets that already accepted are not sent it again"


@pytest.mark.parametrize("conn_id", ["BACKUP_CATALOG", "BACKUP_B2"])
def test_a_missing_connection_is_named_before_any_check(stores, run_dag, monkeypatch, conn_id, capfd):
    seed_backup(stores)
    monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id}")

    outcome = run_dag()

    assert outcome.state == "failed"
    assert outcome.statistics is None, "nothing was checked or reported"
    assert alerts(stores) == []
    output = capfd.readouterr()
    assert f"Airflow connection '{conn_id.lower()}'" in output.out + output.err
    ti = next(t for t in outcome.dag_run.get_task_instances() if t.task_id == "select_backups")
    assert str(ti.state) == "failed"
    assert ti.try_number == 1


def test_metadata_keeps_other_keys_and_never_goes_back_in_time(stores, run_dag):
    backup = seed_backup(
        stores, row_overrides={"metadata": json.dumps({"tenant": "acme", "encrypted": True})}
    )
    future = "2099-01-01T00:00:00Z"  # written by a newer check (another writer's format)
    kept = seed_backup(
        stores,
        row_overrides={
            "metadata": json.dumps({"last_integrity_check": {"timestamp": future, "status": "passed"}})
        },
    )

    outcome = run_dag()

    merged = metadata(stores, backup.id)
    assert merged["tenant"] == "acme"
    assert merged["encrypted"] is True
    assert merged["last_integrity_check"]["run_id"] == outcome.run_id
    assert last_check(stores, kept.id) == {"timestamp": future, "status": "passed"}


def test_a_multipart_checksum_is_not_taken_for_the_contents_sha256(stores, run_dag):
    part = 5 * 1024 * 1024
    backup = seed_backup(
        stores, backup_type="WAL_ARCHIVE", size=part + 1024, on=("b2",), record_paths=("r2", "b2")
    )
    upload = stores.r2.create_multipart_upload(
        Bucket=stores.r2_bucket, Key=backup.paths["r2"], ChecksumAlgorithm="SHA256"
    )
    parts = []
    for number, chunk in enumerate((backup.content[:part], backup.content[part:]), start=1):
        answer = stores.r2.upload_part(
            Bucket=stores.r2_bucket,
            Key=backup.paths["r2"],
            PartNumber=number,
            UploadId=upload["UploadId"],
            Body=chunk,
            ChecksumAlgorithm="SHA256",
        )
        parts.append(
            {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": answer["ChecksumSHA256"]}
        )
    stores.r2.complete_multipart_upload(
        Bucket=stores.r2_bucket,
        Key=backup.paths["r2"],
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )

    quick = run_dag({"mode": "quick"})

    assert quick.state == "success"
    evidence = query(
        stores,
        "SELECT backend, evidence FROM backup_integrity_result WHERE run_id = %s ORDER BY backend",
        [quick.run_id],
    )
    assert evidence == [{"backend": "b2", "evidence": "server_sha256"}, {"backend": "r2", "evidence": "size"}]
    full = run_dag({"mode": "full"})
    assert full.state == "success"


def test_an_unusable_notify_connection_keeps_notices_queued(stores, run_dag, monkeypatch, webhook):
    gone = seed_backup(stores)
    delete(stores, gone, "b2")
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_NOTIFY", json.dumps({"conn_type": "apprise", "extra": {}}))

    broken = run_dag()

    assert broken.state == "failed"
    assert [r["details"]["kind"] for r in alerts(stores)] == ["missing"]
    assert [t.task_id for t in broken.dag_run.get_task_instances() if str(t.state) == "failed"] == [
        "check_outcome"
    ], "a broken channel never breaks verification"

    monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_NOTIFY",
        json.dumps({"conn_type": "apprise", "extra": {"config": {"path": webhook.apprise_url}}}),
    )
    run_dag()

    assert [m["title"] for m in webhook.messages] == ["[CRITICAL] Backup integrity: missing on b2"]
