"""The restore drill end to end with ``dag.test()``: real backups made by pg_dump, tar and a
WAL-archiving server, encrypted by openssl, in the real folder and both S3 servers; restored
by the system's pg_restore and psql into scratch databases of a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devtools import drill_samples as samples
from devtools.runs import DagRunOutcome
from devtools.seed import corrupt_same_size, delete, restore, seed_backup, write_local
from devtools.services import free_port
from tests.support.catalog import query
from tests.support.connections import set_connection, set_variable
from tests.support.drills import (
    PASSPHRASE,
    drill_alerts,
    drill_rows,
    last_restore_test,
    run_drill_dag,
    scratch_databases,
    target_connection,
)
from tests.support.runs import load_dag

HOUR = timedelta(hours=1)
STATISTICS = ("backups_drilled", "restored_successfully", "restore_failures", "restore_errors")


@pytest.fixture(scope="module")
def dumps(postgres):
    """Dumps of a sample database in pg_dump's three single-file formats."""
    name = f"drill_source_{uuid.uuid4().hex[:8]}"
    samples.create_source_database(postgres, name)
    return {fmt: samples.pg_dump(postgres, name, fmt) for fmt in ("custom", "plain", "tar")}


@pytest.fixture(scope="module")
def wal_segments():
    return samples.archived_wal_segments(2)


@pytest.fixture
def configure(airflow_db, airflow_env, postgres, monkeypatch):
    """Set the Variable's ``restore_drill`` (openssl decryption by default) and the drill's connections."""
    assert scratch_databases(postgres) == []
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_RESTORE_TARGET", target_connection(postgres))
    set_connection(monkeypatch, "backup_decrypt", {"conn_type": "generic", "password": PASSPHRASE})

    def set_drill(**restore_drill):
        set_variable(
            monkeypatch,
            {**airflow_env, "restore_drill": {"decrypt_command": samples.OPENSSL_DECRYPT, **restore_drill}},
        )

    set_drill()
    yield set_drill
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        for name in scratch_databases(postgres):
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def encrypted(data: bytes) -> bytes:
    return samples.encrypt(data, PASSPHRASE)


def seed(stores, backup_type: str, content: bytes, hours_ago: float = 2):
    return seed_backup(
        stores, backup_type=backup_type, content=content, created_at=datetime.now(UTC) - hours_ago * HOUR
    )


def verify_all() -> None:
    """An hourly verifier run: every copy seeded so far gets a passed integrity check.

    A drill fetches only copies whose last check passed, so every backup drilled is verified first.
    """
    outcome = DagRunOutcome(load_dag().test(logical_date=datetime.now(UTC) + HOUR))
    assert outcome.state == "success", outcome


def counts(run) -> dict[str, int]:
    return {key: run.statistics[key] for key in STATISTICS}


def create_leftover(postgres, name: str, created_at: datetime) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(
            f'COMMENT ON DATABASE "{name}" IS \'restore_drill scratch database, created '
            f"{created_at.isoformat()} by an earlier run'"
        )


def test_real_backups_of_every_format_restore_and_are_recorded(
    stores, configure, postgres, dumps, wal_segments, webhook
):
    configure(checks={"TENANT_BACKUP": [f"SELECT count(*) = 200 FROM public.{samples.SAMPLE_TABLE}"]})
    full = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]))
    tar_format = seed(stores, "FULL_DATABASE", encrypted(dumps["tar"]), hours_ago=3)
    tenant = seed(stores, "TENANT_BACKUP", encrypted(samples.gzipped(dumps["plain"])))
    config = seed(
        stores,
        "CONFIGURATION",
        encrypted(samples.tar_gz({"etc/app.conf": b"debug = false\n", "etc/keys/README": b"x" * 5000})),
    )
    wal = seed(stores, "WAL_ARCHIVE", encrypted(wal_segments[0]))
    verify_all()
    create_leftover(postgres, "restore_drill_0badc0de", datetime.now(UTC) - 2 * HOUR)  # a crash's
    create_leftover(postgres, "restore_drill_0000beef", datetime.now(UTC))  # a drill still running
    create_leftover(postgres, "restore_drill_not_ours", datetime.now(UTC) - 48 * HOUR)  # not a drill name

    run = run_drill_dag({"per_type": 2})

    assert run.state == "success", run
    assert counts(run) == {
        "backups_drilled": 5,
        "restored_successfully": 5,
        "restore_failures": 0,
        "restore_errors": 0,
    }
    assert run.statistics["by_type"]["FULL_DATABASE"] == {"passed": 2, "failed": 0, "error": 0}
    rows = {r["backup_id"]: r for r in drill_rows(stores, run.run_id)}
    assert {b.id for b in (full, tar_format, tenant, config, wal)} == set(rows)
    assert rows[full.id]["details"]["archive_format"] == "custom"
    assert rows[tar_format.id]["details"]["archive_format"] == "tar"
    assert rows[tenant.id]["details"]["archive_format"] == "plain"
    assert rows[tenant.id]["details"]["gzip"] is True
    assert rows[config.id]["details"]["members"] == 2
    assert rows[wal.id]["details"]["postgresql_version"] == "15"
    assert rows[wal.id]["source_backend"] == "r2", "WAL lives on r2 and b2; r2 comes first"
    for backup in (full, tar_format, tenant, config):
        assert rows[backup.id]["source_backend"] == "local"
    for backup in (full, tar_format, tenant):
        assert rows[backup.id]["details"]["scratch_dropped"] is True
        assert rows[backup.id]["details"]["scratch_database"].startswith("restore_drill_")
    for backup in (full, tar_format, tenant, config, wal):
        test = last_restore_test(stores, backup.id)
        assert set(test) == {
            "timestamp",
            "status",
            "stage",
            "source_backend",
            "duration_seconds",
            "run_id",
            "message",
        }
        assert (test["status"], test["stage"], test["run_id"]) == ("passed", "check", run.run_id)
        assert test["source_backend"] == rows[backup.id]["source_backend"]
        assert test["duration_seconds"] > 0
        meta = query(stores, "SELECT metadata FROM backups_backup WHERE id = %s", [backup.id])[0]["metadata"]
        assert meta["seeded"] is True, "the application's keys are kept"
        assert meta["last_integrity_check"]["status"] == "passed"
    assert scratch_databases(postgres) == ["restore_drill_0000beef", "restore_drill_not_ours"]
    assert drill_alerts(stores) == []
    assert webhook.messages == []


def test_each_stage_fails_for_its_reason_and_alerts_once(
    stores, configure, postgres, dumps, wal_segments, webhook, smtp
):
    configure(checks={"TENANT_BACKUP": [f"SELECT count(*) > 1000 FROM public.{samples.SAMPLE_TABLE}"]})
    no_copy_matches = seed(stores, "WAL_ARCHIVE", encrypted(wal_segments[1]))
    lost_key = seed(
        stores,
        "FULL_DATABASE",
        samples.encrypt_for_another_key(dumps["custom"], "a key nobody has", PASSPHRASE),
    )
    bad_gzip = seed(stores, "CONFIGURATION", encrypted(samples.gzipped(b"config " * 4000)[:-64] + b"\0" * 64))
    cut_dump = seed(stores, "FULL_DATABASE", encrypted(samples.cut_short(dumps["custom"])))
    no_trailer = seed(stores, "FULL_DATABASE", encrypted(samples.without_trailer(dumps["plain"])))
    check_false = seed(stores, "TENANT_BACKUP", encrypted(dumps["custom"]))
    verify_all()  # every copy is intact: the hourly verifier passes them all
    for backend in ("r2", "b2"):
        corrupt_same_size(stores, no_copy_matches, backend)  # ...after which both copies rot
    backups = [no_copy_matches, lost_key, bad_gzip, cut_dump, no_trailer, check_false]

    run = run_drill_dag({"backup_ids": [b.id for b in backups]})

    assert run.state == "failed", run
    assert run.task_states()["record_drills"] == "success"
    assert run.task_states()["check_outcome"] == "failed"
    assert counts(run) == {
        "backups_drilled": 6,
        "restored_successfully": 0,
        "restore_failures": 5,
        "restore_errors": 1,
    }
    rows = {r["backup_id"]: r for r in drill_rows(stores, run.run_id)}
    expected = {
        no_copy_matches.id: ("error", "fetch", "no copy matches the catalog"),
        lost_key.id: ("failed", "decrypt", "bad decrypt"),
        bad_gzip.id: ("failed", "decompress", "gzip"),
        cut_dump.id: ("failed", "restore", "pg_restore exited with status 1"),
        no_trailer.id: ("failed", "restore", "does not end with pg_dump's completion trailer"),
        check_false.id: ("failed", "check", "not one true value"),
    }
    for backup_id, (status, stage, text) in expected.items():
        row = rows[backup_id]
        assert (row["status"], row["stage"]) == (status, stage), row
        assert text in row["message"], row["message"]
        test = last_restore_test(stores, backup_id)
        assert (test["status"], test["stage"], test["message"]) == (status, stage, row["message"])
    assert rows[no_copy_matches.id]["source_backend"] is None
    assert "r2:" in rows[no_copy_matches.id]["message"]
    assert "b2:" in rows[no_copy_matches.id]["message"]
    assert rows[lost_key.id]["source_backend"] == "local"
    assert scratch_databases(postgres) == [], "every scratch database was dropped, whatever happened"

    by_backup = {a["backup_id"]: a for a in drill_alerts(stores)}
    assert set(by_backup) == set(expected)
    for backup_id, (status, stage, _) in expected.items():
        alert = by_backup[backup_id]
        kind, severity = ("restore_error", "ERROR") if status == "error" else ("restore_failed", "CRITICAL")
        assert (alert["alert_type"], alert["severity"], alert["status"]) == (
            "INTEGRITY_FAILURE",
            severity,
            "ACTIVE",
        )
        details = alert["details"]
        assert details["kind"] == kind
        assert details["backup_id"] == backup_id
        assert details["stage"] == stage
        assert details["message"] == rows[backup_id]["message"]
        assert details["backend"] == rows[backup_id]["source_backend"]
        assert details["occurrences"] == 1
        assert len(alert["notification_channels"]) == 2, "marked like the verifier's rows"
    # Six notices, more than notify_digest_after (5): one digest per channel stands for them all.
    assert len(webhook.messages) == len(smtp.messages) == 1, [m["title"] for m in webhook.messages]
    assert webhook.messages[0]["title"].startswith("[CRITICAL] Backup integrity: 6 changes (6 opened)")

    again = run_drill_dag({"backup_ids": [b.id for b in backups]})

    assert again.state == "failed"
    rows_after = drill_alerts(stores)
    assert len(rows_after) == 6, "deduplicated: one row per (backup, kind)"
    assert {a["details"]["occurrences"] for a in rows_after} == {2}
    assert {a["details"]["run_id"] for a in rows_after} == {again.run_id}
    assert len(webhook.messages) == 1, "notified once"


def test_a_pass_resolves_failed_and_error_alerts_and_a_failure_resolves_an_error(
    stores, configure, postgres, dumps, monkeypatch, webhook
):
    configure(checks={"TENANT_BACKUP": ["SELECT false"]})
    failed_then_passes = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]))
    error_then_passes = seed(stores, "CONFIGURATION", encrypted(samples.tar_gz({"a.conf": b"a = 1\n"})))
    error_then_fails = seed(stores, "TENANT_BACKUP", encrypted(dumps["plain"]))
    ids = [failed_then_passes.id, error_then_passes.id, error_then_fails.id]
    verify_all()  # then the copies rot: no copy matches the catalog
    set_connection(monkeypatch, "backup_decrypt", {"conn_type": "generic", "password": "the old passphrase"})
    for backup in (error_then_passes, error_then_fails):
        delete(stores, backup, "local")
        corrupt_same_size(stores, backup, "r2")
        corrupt_same_size(stores, backup, "b2")

    first = run_drill_dag({"backup_ids": ids})

    assert first.state == "failed"
    kinds = {(a["backup_id"], a["details"]["kind"]): a for a in drill_alerts(stores)}
    assert set(kinds) == {
        (failed_then_passes.id, "restore_failed"),
        (error_then_passes.id, "restore_error"),
        (error_then_fails.id, "restore_error"),
    }
    set_connection(monkeypatch, "backup_decrypt", {"conn_type": "generic", "password": PASSPHRASE})
    for backup in (error_then_passes, error_then_fails):
        for backend in ("local", "r2", "b2"):
            restore(stores, backup, backend)
    webhook.clear()

    second = run_drill_dag({"backup_ids": ids})

    assert second.state == "failed", "the tenant backup's check still fails"
    by_key = {(a["backup_id"], a["details"]["kind"]): a for a in drill_alerts(stores)}
    for key in kinds:
        assert by_key[key]["status"] == "RESOLVED", key
        assert by_key[key]["details"]["resolved_by_run_id"] == second.run_id
    assert by_key[(error_then_fails.id, "restore_failed")]["status"] == "ACTIVE"
    assert by_key[(error_then_fails.id, "restore_failed")]["details"]["stage"] == "check"
    titles = sorted(m["title"] for m in webhook.messages)
    assert len([t for t in titles if t.startswith("[RESOLVED]")]) == 3, titles
    assert len([t for t in titles if t.startswith("[CRITICAL]")]) == 1, titles


def test_the_drill_refuses_the_catalogs_own_database_whatever_the_host_name(
    stores, configure, postgres, dumps, monkeypatch
):
    backup = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]))
    verify_all()
    # The catalog connection says 127.0.0.1; the target says localhost: the same server and database.
    monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_RESTORE_TARGET", target_connection(postgres, stores.dbname, host="localhost")
    )

    run = run_drill_dag({"backup_ids": [backup.id]})

    assert run.state == "failed"
    (row,) = drill_rows(stores, run.run_id)
    assert (row["status"], row["stage"]) == ("error", "restore")
    assert "refusing to drill" in row["message"]
    assert "catalog's own database" in row["message"]
    assert query(stores, "SELECT to_regclass(%s) AS t", [f"public.{samples.SAMPLE_TABLE}"]) == [{"t": None}]
    assert scratch_databases(postgres) == []
    (alert,) = drill_alerts(stores)
    assert alert["details"]["kind"] == "restore_error"

    # Another database of the same server is a valid target.
    monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_RESTORE_TARGET", target_connection(postgres, "postgres", host="localhost")
    )
    assert run_drill_dag({"backup_ids": [backup.id]}).state == "success"
    assert drill_alerts(stores)[0]["status"] == "RESOLVED"


def test_a_type_without_a_passed_drill_for_max_age_days_is_overdue_until_one_passes(
    stores, configure, postgres, dumps, webhook
):
    configure(
        formats={"TENANT_BACKUP": "none", "CONFIGURATION": "none", "WAL_ARCHIVE": "none"}, max_age_days=8
    )
    broken = seed(stores, "FULL_DATABASE", encrypted(samples.cut_short(dumps["custom"])))
    verify_all()
    start = datetime.now(UTC) + 24 * HOUR

    first = run_drill_dag({"backup_ids": [broken.id]}, logical_date=start)
    assert first.state == "failed"
    assert first.statistics["overdue_types"] == [], "a new installation is not overdue on day one"
    later = run_drill_dag({"backup_ids": [broken.id]}, logical_date=start + timedelta(days=5))
    assert later.statistics["overdue_types"] == []

    overdue = run_drill_dag({"backup_ids": [broken.id]}, logical_date=start + timedelta(days=9))

    assert overdue.statistics["overdue_types"] == ["FULL_DATABASE"]
    (alert,) = [a for a in drill_alerts(stores) if a["details"]["kind"] == "restore_overdue"]
    assert alert["backup_id"] is None
    assert alert["details"]["backup_type"] == "FULL_DATABASE"
    assert alert["status"] == "ACTIVE"
    assert alert["alert_type"] == "INTEGRITY_FAILURE"
    assert any("Restore drills overdue: FULL_DATABASE" in m["title"] for m in webhook.messages)

    healthy = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]), hours_ago=1)
    verify_all()
    passed = run_drill_dag({"backup_ids": [healthy.id]}, logical_date=start + timedelta(days=10))

    assert passed.state == "success"
    (alert,) = [a for a in drill_alerts(stores) if a["details"]["kind"] == "restore_overdue"]
    assert alert["status"] == "RESOLVED"
    verified = DagRunOutcome(load_dag().test(logical_date=datetime.now(UTC) + 3 * HOUR))
    assert verified.state == "success", "the hourly verifier passes; it never resolves drill alerts"
    assert {a["status"] for a in drill_alerts(stores) if a["details"]["kind"] == "restore_failed"} == {
        "ACTIVE"
    }


def test_the_decrypt_command_sees_only_a_minimal_environment_and_the_masked_passphrase(
    stores, configure, dumps, monkeypatch
):
    configure(decrypt_command=["sh", "-c", "env >&2; exit 3"])
    monkeypatch.setenv("AIRFLOW_CONN_SOME_SECRET_DB", "postgres://user:hunter2@db/x")
    backup = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]))
    verify_all()

    run = run_drill_dag({"backup_ids": [backup.id]})

    (row,) = drill_rows(stores, run.run_id)
    assert (row["status"], row["stage"]) == ("failed", "decrypt")
    assert "sh exited with status 3" in row["message"]
    assert "BACKUP_PASSPHRASE=***" in row["message"]
    assert PASSPHRASE not in row["message"]
    assert "AIRFLOW_" not in row["message"]
    assert "hunter2" not in row["message"]
    assert "HOME=" in row["message"]


def test_without_the_restore_drill_key_runs_succeed_doing_nothing(stores, airflow_db, airflow_env):
    seed(stores, "FULL_DATABASE", b"anything")

    run = run_drill_dag()

    assert run.state == "success", run
    assert run.statistics["configured"] is False
    assert counts(run) == dict.fromkeys(STATISTICS, 0)
    assert query(stores, "SELECT to_regclass('backup_integrity_restore') AS t") == [{"t": None}]
    assert os.environ.get("AIRFLOW_CONN_BACKUP_RESTORE_TARGET") is None


def test_environment_failures_end_as_errors_not_failures(stores, configure, postgres, dumps, monkeypatch):
    big = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]))
    small = seed(stores, "FULL_DATABASE", b"tiny")
    verify_all()
    configure(decrypt_command=["no-such-decrypter", "--stdin"], max_bytes=100)

    run = run_drill_dag({"backup_ids": [big.id, small.id]})

    rows = {r["backup_id"]: r for r in drill_rows(stores, run.run_id)}
    assert (rows[big.id]["status"], rows[big.id]["stage"]) == ("error", "fetch")
    assert "more than restore_drill.max_bytes (100)" in rows[big.id]["message"]
    assert (rows[small.id]["status"], rows[small.id]["stage"]) == ("error", "decrypt")
    assert "'no-such-decrypter' is not installed" in rows[small.id]["message"]

    configure()
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS drill_no_createdb")
        conn.execute("CREATE ROLE drill_no_createdb LOGIN NOCREATEDB")
        conn.execute("DROP ROLE IF EXISTS drill_createdb")
        conn.execute("CREATE ROLE drill_createdb LOGIN CREATEDB PASSWORD 'drill-target-password'")
    target = {"conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port, "schema": "postgres"}
    set_connection(monkeypatch, "backup_restore_target", {**target, "login": "drill_no_createdb"})
    refused = run_drill_dag({"backup_ids": [big.id]})
    (row,) = drill_rows(stores, refused.run_id)
    assert (row["status"], row["stage"]) == ("error", "restore")
    assert "CREATE DATABASE" in row["message"]
    assert "permission denied" in row["message"]

    set_connection(monkeypatch, "backup_restore_target", {**target, "port": free_port()})
    unreachable = run_drill_dag({"backup_ids": [big.id]})
    (row,) = drill_rows(stores, unreachable.run_id)
    assert (row["status"], row["stage"]) == ("error", "restore")
    assert "cannot be reached" in row["message"]

    # A role that may only create databases restores a custom dump (no owner, no privileges).
    set_connection(
        monkeypatch,
        "backup_restore_target",
        {**target, "login": "drill_createdb", "password": "drill-target-password"},
    )
    allowed = run_drill_dag({"backup_ids": [big.id]})
    assert allowed.state == "success", drill_rows(stores, allowed.run_id)
    assert scratch_databases(postgres) == []
    (alert,) = [a for a in drill_alerts(stores) if a["backup_id"] == big.id]
    assert (alert["details"]["kind"], alert["status"]) == ("restore_error", "RESOLVED")


def test_a_drill_past_its_timeout_is_an_error_and_its_processes_are_killed(stores, configure, dumps):
    marker = f"{uuid.uuid4().int % 100000 + 600000}"
    configure(decrypt_command=["sh", "-c", f"sleep {marker} & sleep {marker}"], timeout_minutes=0.05)
    backup = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]))
    verify_all()

    run = run_drill_dag({"backup_ids": [backup.id]})

    (row,) = drill_rows(stores, run.run_id)
    assert (row["status"], row["stage"]) == ("error", "decrypt")
    assert "ran out of time (timeout_minutes = 0.05)" in row["message"]
    sleeping = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert sleeping.stdout == "", "the command and the child it started were killed with their group"


def test_a_run_without_a_pg_dump_drill_still_drops_a_crashed_drills_database(stores, configure, postgres):
    config = seed(stores, "CONFIGURATION", encrypted(samples.tar_gz({"a.conf": b"a = 1\n"})))
    verify_all()
    create_leftover(postgres, "restore_drill_deadbeef", datetime.now(UTC) - 3 * HOUR)

    run = run_drill_dag({"backup_ids": [config.id]})

    assert run.state == "success", run
    assert scratch_databases(postgres) == []


def test_only_copies_that_passed_are_fetched_and_one_grown_past_max_bytes_is_passed_over(
    stores, configure, postgres
):
    grown_locally = seed(stores, "CONFIGURATION", encrypted(samples.tar_gz({"a.conf": b"a = 1\n"})))
    grown_everywhere = seed(stores, "CONFIGURATION", encrypted(samples.tar_gz({"b.conf": b"b = 2\n"})))
    verify_all()
    never_checked = seed(stores, "CONFIGURATION", encrypted(samples.tar_gz({"c.conf": b"c = 3\n"})))
    max_bytes = max(len(b.content) for b in (grown_locally, grown_everywhere, never_checked)) + 100
    configure(max_bytes=max_bytes)
    # After the last check the copies grow past max_bytes (the catalog's size is still under it).
    write_local(stores, grown_locally.paths["local"], grown_locally.content + os.urandom(256 * 1024))
    for backend in ("local", "r2", "b2"):
        body = grown_everywhere.content + os.urandom(256 * 1024)
        if backend == "local":
            write_local(stores, grown_everywhere.paths[backend], body)
        else:
            client, bucket = stores.s3(backend)
            client.put_object(Bucket=bucket, Key=grown_everywhere.paths[backend], Body=body)
    ids = [grown_locally.id, grown_everywhere.id, never_checked.id]

    run = run_drill_dag({"backup_ids": ids})

    assert run.state == "failed", run
    rows = {r["backup_id"]: r for r in drill_rows(stores, run.run_id)}
    assert (rows[grown_locally.id]["status"], rows[grown_locally.id]["source_backend"]) == ("passed", "r2")
    row = rows[grown_everywhere.id]
    assert (row["status"], row["stage"], row["source_backend"]) == ("error", "fetch", None)
    assert "no copy matches the catalog" in row["message"]
    for backend in ("local", "r2", "b2"):
        assert f"the copy on {backend} is larger than max_bytes ({max_bytes})" in row["message"]
    row = rows[never_checked.id]
    assert (row["status"], row["stage"]) == ("error", "fetch"), "its copies were never checked"
    assert "no copy matching the catalog: none whose last integrity check passed" in row["message"]
    assert "local: last check None" in row["message"]
    kinds = {(a["backup_id"], a["details"]["kind"]) for a in drill_alerts(stores)}
    assert kinds == {(grown_everywhere.id, "restore_error"), (never_checked.id, "restore_error")}


def test_without_the_restore_target_tar_drills_run_and_pg_dump_drills_end_error(
    stores, configure, postgres, dumps, monkeypatch, webhook
):
    full = seed(stores, "FULL_DATABASE", encrypted(dumps["custom"]))
    config = seed(stores, "CONFIGURATION", encrypted(samples.tar_gz({"a.conf": b"a = 1\n"})))
    verify_all()
    monkeypatch.delenv("AIRFLOW_CONN_BACKUP_RESTORE_TARGET")

    run = run_drill_dag({"backup_ids": [full.id, config.id]})

    assert run.state == "failed", run
    states = run.task_states()
    assert states["choose_backups"] == "success", "a missing target does not stop the run"
    assert [states[f"drill[{i}]"] for i in (0, 1)] == ["success", "success"]
    assert states["record_drills"] == "success"
    assert states["check_outcome"] == "failed", "an errored drill fails the run, at the outcome check"
    assert counts(run) == {
        "backups_drilled": 2,
        "restored_successfully": 1,
        "restore_failures": 0,
        "restore_errors": 1,
    }
    rows = {r["backup_id"]: r for r in drill_rows(stores, run.run_id)}
    assert set(rows) == {full.id, config.id}, "record_drills recorded both"
    assert (rows[config.id]["status"], rows[config.id]["stage"]) == ("passed", "check")
    assert (rows[full.id]["status"], rows[full.id]["stage"]) == ("error", "restore")
    assert "'backup_restore_target'" in rows[full.id]["message"]
    assert "is not defined" in rows[full.id]["message"]
    (alert,) = drill_alerts(stores)
    assert (alert["backup_id"], alert["details"]["kind"], alert["details"]["stage"]) == (
        full.id,
        "restore_error",
        "restore",
    )
    assert scratch_databases(postgres) == []


def test_runs_that_drill_nothing_start_the_overdue_clock(stores, configure, webhook):
    configure(
        formats={"TENANT_BACKUP": "none", "CONFIGURATION": "none", "WAL_ARCHIVE": "none"}, max_age_days=8
    )
    # No copy has passed an integrity check, so the backup is never chosen and never drilled.
    seed(stores, "FULL_DATABASE", encrypted(b"never verified"))
    start = datetime.now(UTC) + 24 * HOUR

    first = run_drill_dag(logical_date=start)

    assert first.state == "success", first
    assert (first.statistics["backups_drilled"], first.statistics["overdue_types"]) == (0, [])
    later = run_drill_dag(logical_date=start + timedelta(days=5))
    assert later.statistics["overdue_types"] == []

    overdue = run_drill_dag(logical_date=start + timedelta(days=9))

    assert overdue.statistics["overdue_types"] == ["FULL_DATABASE"]
    assert drill_rows(stores) == [], "nothing was ever drilled"
    runs = query(
        stores, "SELECT run_id, window_end, statistics FROM backup_integrity_restore_run ORDER BY window_end"
    )
    assert [r["run_id"] for r in runs] == [first.run_id, later.run_id, overdue.run_id]
    assert runs[-1]["statistics"]["overdue_types"] == ["FULL_DATABASE"]
    assert runs[0]["window_end"] == datetime.fromisoformat(first.statistics["window_end"])
    (alert,) = drill_alerts(stores)
    assert (alert["details"]["kind"], alert["details"]["backup_type"], alert["status"]) == (
        "restore_overdue",
        "FULL_DATABASE",
        "ACTIVE",
    )
