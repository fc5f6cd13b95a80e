"""The restore drill's catalog side against a real PostgreSQL: the history table and its revision,
candidates, last_restore_test, overdue inputs, the restore_* alerts and the overview; and the
scratch databases on a real target server."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devtools.runs import REPO, alerts, query
from devtools.seed import seed_backup
from include.backup_integrity.catalog import drills as drill_store
from include.backup_integrity.catalog.alert_store import apply_alert_changes
from include.backup_integrity.catalog.backups import select_by_ids
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.catalog.object_state import save_checks
from include.backup_integrity.catalog.schema import current_revision, head_revision
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.drill_alerts import judge_overdue, plan_drill_alerts
from include.backup_integrity.domain.drills import DrillOutcome
from include.backup_integrity.domain.records import MISSING, PASSED
from include.backup_integrity.tasks.drill_target import (
    RestoreTarget,
    create_scratch_database,
    drop_leftovers,
    drop_scratch_database,
)
from tests.support.records import check_result

SETTINGS = Settings()
ALERTS = "backups_backupalert"
NOW = datetime.now(UTC).replace(microsecond=0)
MIGRATION = REPO / "include/backup_integrity/catalog/migrations/versions/0002_restore_drills.py"
RUNS_MIGRATION = REPO / "include/backup_integrity/catalog/migrations/versions/0010_restore_runs.py"


@pytest.fixture
def drills_catalog(catalog):
    """The test's catalog migrated to head: revision 0002_restore_drills created the drill history."""
    assert current_revision(catalog) == head_revision()
    return catalog


def outcome(backup, status="passed", stage="check", finished=NOW, source="local") -> DrillOutcome:
    return DrillOutcome(
        backup_id=backup.id,
        backup_type=backup.backup_type,
        format="pg_dump",
        status=status,
        stage=stage,
        source_backend=source,
        message=f"{status} at {stage}",
        started_at=(finished - timedelta(seconds=30)).isoformat(),
        finished_at=finished.isoformat(),
        duration_seconds=30.0,
        bytes_fetched=2048,
        details={"archive_format": "custom"},
    )


def passed_everywhere(conn, backup, run_id="verify-1", at=NOW):
    results = [
        {**check_result(backup.id, b, PASSED, checked_at=at.isoformat()), "path": backup.paths[b]}
        for b in ("local", "r2", "b2")
        if backup.paths.get(b)
    ]
    with transaction(conn) as cur:
        save_checks(cur, run_id, results, {})


def record(conn, run_id, window_end, outcomes):
    with transaction(conn) as cur:
        drill_store.record_drills(cur, run_id, window_end, outcomes)
        return drill_store.update_restore_metadata(cur, SETTINGS, outcomes, run_id)


def test_the_revision_follows_the_baseline_and_its_ddl_may_run_again(stores, catalog):
    from alembic.script import ScriptDirectory

    from include.backup_integrity.catalog.schema import alembic_config

    chain = [r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()][::-1]
    assert chain[:2] == ["0001_baseline", "0002_restore_drills"], (
        "one chain, the drills right after the baseline"
    )
    assert chain[-1] == head_revision()
    spec = importlib.util.spec_from_file_location("revision_0002", MIGRATION)
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)

    assert (revision.revision, revision.down_revision) == ("0002_restore_drills", "0001_baseline")

    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(stores.catalog_dsn.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection, Operations.context(MigrationContext.configure(connection)):
        revision.upgrade()  # again, on a catalog that has the table: no change, no error
    engine.dispose()
    columns = query(
        stores,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'backup_integrity_restore' "
        "ORDER BY ordinal_position",
    )
    assert [c["column_name"] for c in columns][:8] == [
        "run_id",
        "backup_id",
        "backup_type",
        "format",
        "status",
        "stage",
        "source_backend",
        "message",
    ]


def test_the_runs_revision_follows_the_console_indexes_and_creates_the_table_the_module_describes(
    stores, drills_catalog
):
    spec = importlib.util.spec_from_file_location("revision_0010", RUNS_MIGRATION)
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)

    assert (revision.revision, revision.down_revision) == ("0010_restore_runs", "0009_console_indexes")
    shipped = (REPO / "include/backup_integrity/catalog/sql/integrity_tables.sql").read_text()
    assert revision.RESTORE_RUN_TABLE_DDL.strip() + ";" in shipped
    columns = query(
        stores,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'backup_integrity_restore_run' ORDER BY ordinal_position",
    )
    assert [(c["column_name"], c["data_type"], c["is_nullable"]) for c in columns] == [
        ("run_id", "text", "NO"),
        ("window_end", "timestamp with time zone", "NO"),
        ("recorded_at", "timestamp with time zone", "NO"),
        ("statistics", "jsonb", "YES"),
    ]


def test_a_drill_run_is_kept_once_and_a_cleared_run_rewrites_its_row(stores, drills_catalog):
    with transaction(drills_catalog) as cur:
        drill_store.record_drill_run(cur, "run-1", NOW - timedelta(days=1))
        drill_store.record_drill_run(cur, "run-1", NOW - timedelta(days=1), {"backups_drilled": 0})
    with transaction(drills_catalog) as cur:  # the run, cleared and run again
        drill_store.record_drill_run(cur, "run-1", NOW, {"backups_drilled": 2})
        drill_store.record_drill_run(cur, "run-2", NOW + timedelta(days=1))

    rows = query(
        stores, "SELECT run_id, window_end, statistics FROM backup_integrity_restore_run ORDER BY run_id"
    )
    assert rows == [
        {"run_id": "run-1", "window_end": NOW, "statistics": {"backups_drilled": 2}},
        {"run_id": "run-2", "window_end": NOW + timedelta(days=1), "statistics": None},
    ]


def test_candidates_are_completed_backups_of_the_window_with_a_copy_that_passed(stores, drills_catalog):
    verified = seed_backup(stores, created_at=NOW - timedelta(hours=2))
    never_checked = seed_backup(stores, created_at=NOW - timedelta(hours=2))
    failing = seed_backup(stores, created_at=NOW - timedelta(hours=2))
    old = seed_backup(stores, created_at=NOW - timedelta(days=40))
    running = seed_backup(stores, created_at=NOW - timedelta(hours=2), status="IN_PROGRESS")
    wal = seed_backup(stores, backup_type="WAL_ARCHIVE", created_at=NOW - timedelta(hours=3))
    for backup in (verified, old, running, wal):
        passed_everywhere(drills_catalog, backup)
    with transaction(drills_catalog) as cur:
        save_checks(
            cur, "verify-1", [{**check_result(failing.id, "r2", MISSING), "path": failing.paths["r2"]}], {}
        )
    record(drills_catalog, "drill-1", NOW, [outcome(wal, finished=NOW - timedelta(days=1))])

    found = drill_store.load_candidates(
        drills_catalog, SETTINGS, ["FULL_DATABASE", "WAL_ARCHIVE"], NOW - timedelta(days=30), NOW
    )

    by_id = {c.backup_id: c for c in found}
    assert set(by_id) == {verified.id, wal.id}
    assert never_checked.id not in by_id
    assert by_id[verified.id].last_drilled_at is None
    assert by_id[wal.id].last_drilled_at == NOW - timedelta(days=1)

    records, _ = select_by_ids(drills_catalog, SETTINGS, [verified.id, never_checked.id, wal.id])
    copies = drill_store.copies_of(drills_catalog, records)
    assert [(c["backend"], c["last_check"]) for c in copies[verified.id]] == [
        ("local", "passed"),
        ("r2", "passed"),
        ("b2", "passed"),
    ]
    assert [c["last_check"] for c in copies[never_checked.id]] == [None, None, None]
    assert [c["backend"] for c in copies[wal.id]] == ["r2", "b2"]


def test_a_drill_is_kept_once_per_run_and_last_restore_test_is_merged_unless_a_later_one_is_there(
    stores, drills_catalog
):
    backup = seed_backup(stores)

    assert record(drills_catalog, "run-1", NOW, [outcome(backup, "failed", "restore")]) == 1
    record(drills_catalog, "run-1", NOW, [outcome(backup, "failed", "decrypt")])  # a retried task
    record(drills_catalog, "run-0", NOW, [outcome(backup, "passed", finished=NOW - timedelta(days=1))])

    rows = query(stores, "SELECT run_id, status, stage FROM backup_integrity_restore ORDER BY run_id")
    assert rows == [
        {"run_id": "run-0", "status": "passed", "stage": "check"},
        {"run_id": "run-1", "status": "failed", "stage": "decrypt"},
    ]
    meta = query(stores, "SELECT metadata FROM backups_backup WHERE id = %s", [backup.id])[0]["metadata"]
    assert meta["seeded"] is True
    assert meta["last_restore_test"] == {
        "timestamp": NOW.isoformat(timespec="microseconds"),
        "status": "failed",
        "stage": "decrypt",
        "source_backend": "local",
        "duration_seconds": 30.0,
        "run_id": "run-1",
        "message": "failed at decrypt",
    }, "the older drill recorded later did not overwrite the newer one"


def test_metadata_that_is_not_an_object_is_left_alone_and_null_becomes_one(stores, drills_catalog):
    array = seed_backup(stores, row_overrides={"metadata": "[1, 2]"})
    null = seed_backup(stores, row_overrides={"metadata": "null"})

    assert record(drills_catalog, "run-1", NOW, [outcome(array), outcome(null)]) == 1

    rows = {
        r["id"]: r["metadata"]
        for r in query(
            stores,
            "SELECT id::text AS id, metadata FROM backups_backup WHERE id = ANY(%s::uuid[])",
            [[array.id, null.id]],
        )
    }
    assert rows[array.id] == [1, 2]
    assert rows[null.id]["last_restore_test"]["status"] == "passed"


def test_overdue_inputs_count_the_window_and_the_runs_clock(stores, drills_catalog):
    full = seed_backup(stores, created_at=NOW - timedelta(hours=5))
    seed_backup(stores, created_at=NOW - timedelta(hours=6))
    record(drills_catalog, "run-1", NOW - timedelta(days=12), [outcome(full, "passed")])
    record(drills_catalog, "run-2", NOW - timedelta(days=2), [outcome(full, "failed", "restore")])

    with transaction(drills_catalog) as cur:
        in_window, last_passed, first = drill_store.overdue_inputs(
            cur, SETTINGS, ["FULL_DATABASE", "WAL_ARCHIVE"], NOW - timedelta(days=30), NOW
        )

    assert in_window == {"FULL_DATABASE": 2}
    assert last_passed == {"FULL_DATABASE": NOW - timedelta(days=12)}
    assert first == NOW - timedelta(days=12)
    verdict = judge_overdue(
        "FULL_DATABASE",
        backups_in_window=2,
        last_passed_at=last_passed["FULL_DATABASE"],
        first_drill_at=first,
        as_of=NOW,
        max_age_days=8,
    )
    assert verdict.overdue


def test_the_overdue_clock_starts_at_the_first_drill_run_even_one_that_drilled_nothing(
    stores, drills_catalog
):
    seed_backup(stores, created_at=NOW - timedelta(hours=5))  # never drilled: no copy passed
    types = ["FULL_DATABASE"]
    with transaction(drills_catalog) as cur:
        assert drill_store.overdue_inputs(cur, SETTINGS, types, NOW - timedelta(days=30), NOW)[2] is None
        drill_store.record_drill_run(cur, "run-1", NOW - timedelta(days=9))
        drill_store.record_drill_run(cur, "run-2", NOW - timedelta(days=1))
        in_window, last_passed, first = drill_store.overdue_inputs(
            cur, SETTINGS, types, NOW - timedelta(days=30), NOW
        )

    assert (in_window, last_passed, first) == ({"FULL_DATABASE": 1}, {}, NOW - timedelta(days=9))
    assert judge_overdue(
        "FULL_DATABASE",
        backups_in_window=1,
        last_passed_at=None,
        first_drill_at=first,
        as_of=NOW,
        max_age_days=8,
    ).overdue


def test_drills_recorded_before_the_runs_table_still_date_the_first_run(stores, drills_catalog):
    full = seed_backup(stores, created_at=NOW - timedelta(hours=5))
    record(drills_catalog, "run-old", NOW - timedelta(days=20), [outcome(full, "failed", "restore")])
    with transaction(drills_catalog) as cur:
        drill_store.record_drill_run(cur, "run-new", NOW - timedelta(days=2))
        first = drill_store.overdue_inputs(cur, SETTINGS, ["FULL_DATABASE"], NOW - timedelta(days=30), NOW)[2]

    assert first == NOW - timedelta(days=20), "the earlier of the runs and the drills"


def test_a_recent_pass_of_a_backup_outside_the_window_does_not_keep_the_type_from_being_overdue(
    stores, drills_catalog
):
    old = seed_backup(stores, created_at=NOW - timedelta(days=45))  # drilled through backup_ids
    in_window = seed_backup(stores, created_at=NOW - timedelta(days=3))
    other_type = seed_backup(stores, backup_type="TENANT_BACKUP", created_at=NOW - timedelta(days=3))
    record(drills_catalog, "run-1", NOW - timedelta(days=20), [outcome(in_window, "failed", "restore")])
    record(drills_catalog, "run-2", NOW - timedelta(days=1), [outcome(old), outcome(other_type)])

    with transaction(drills_catalog) as cur:
        counted, last_passed, first = drill_store.overdue_inputs(
            cur, SETTINGS, ["FULL_DATABASE", "TENANT_BACKUP"], NOW - timedelta(days=30), NOW
        )

    assert counted == {"FULL_DATABASE": 1, "TENANT_BACKUP": 1}
    assert last_passed == {"TENANT_BACKUP": NOW - timedelta(days=1)}, "the old backup's pass is not counted"
    verdict = judge_overdue(
        "FULL_DATABASE",
        backups_in_window=counted["FULL_DATABASE"],
        last_passed_at=last_passed.get("FULL_DATABASE"),
        first_drill_at=first,
        as_of=NOW,
        max_age_days=8,
    )
    assert verdict.overdue


def apply_plan(conn, outcomes, verdicts, run_id):
    with transaction(conn) as cur:
        open_alerts = drill_store.load_open_drill_alerts(cur, ALERTS)
        plan = plan_drill_alerts(open_alerts, outcomes, verdicts, run_id, NOW.isoformat())
        return drill_store.apply_drill_alerts(cur, ALERTS, plan, run_id)


def notices(stores):
    return query(stores, "SELECT alert_id, event, title FROM backup_integrity_notification ORDER BY id")


def test_drill_alerts_open_once_dedup_and_resolve_with_one_notice_each(stores, drills_catalog):
    backup = seed_backup(stores)
    t1, t2, t3 = (NOW + timedelta(hours=h) for h in (1, 2, 3))

    assert (
        apply_plan(drills_catalog, [outcome(backup, "failed", "restore", finished=t1)], [], "run-1")["opened"]
        == 1
    )
    assert apply_plan(drills_catalog, [outcome(backup, "failed", "check", finished=t2)], [], "run-2") == {
        "opened": 0,
        "updated": 1,
        "resolved": 0,
    }
    (alert,) = alerts(stores)
    assert alert["details"]["occurrences"] == 2
    assert alert["details"]["stage"] == "check", "the latest sighting describes the failure"
    assert alert["details"]["first_seen"] == t1.isoformat()

    # The hourly verifier's passes never resolve a drill alert.
    with transaction(drills_catalog) as cur:
        apply_alert_changes(
            cur, ALERTS, [check_result(backup.id, "local", PASSED, checked_at=t3.isoformat())], "verify-9"
        )
    assert alerts(stores)[0]["status"] == "ACTIVE"

    assert apply_plan(drills_catalog, [outcome(backup, "passed", finished=t3)], [], "run-3")["resolved"] == 1
    (alert,) = alerts(stores)
    assert (alert["status"], alert["details"]["resolved_by_run_id"]) == ("RESOLVED", "run-3")
    assert [n["event"] for n in notices(stores)] == ["opened", "resolved"]
    assert notices(stores)[0]["title"].startswith("[CRITICAL] Restore drill failed: FULL_DATABASE")


def test_the_overview_shows_each_types_last_drill_and_the_overdue_ones(stores, drills_catalog):
    full = seed_backup(stores)
    wal = seed_backup(stores, backup_type="WAL_ARCHIVE")
    record(drills_catalog, "run-1", NOW, [outcome(full, "passed", finished=NOW - timedelta(hours=3))])
    record(
        drills_catalog, "run-2", NOW, [outcome(full, "failed", "restore", finished=NOW - timedelta(hours=1))]
    )
    overdue = judge_overdue(
        "TENANT_BACKUP",
        backups_in_window=1,
        last_passed_at=None,
        first_drill_at=NOW - timedelta(days=20),
        as_of=NOW,
        max_age_days=8,
    )
    apply_plan(drills_catalog, [outcome(wal, "error", "fetch", source=None)], [overdue], "run-2")

    with transaction(drills_catalog) as cur:
        rows = {r.backup_type: r for r in drill_store.restore_overview(cur, ALERTS)}

    assert set(rows) == {"FULL_DATABASE", "TENANT_BACKUP"}
    assert (rows["FULL_DATABASE"].status, rows["FULL_DATABASE"].stage) == ("failed", "restore")
    assert rows["FULL_DATABASE"].drilled_at == NOW - timedelta(hours=1)
    assert rows["FULL_DATABASE"].last_passed_at == NOW - timedelta(hours=3)
    assert rows["FULL_DATABASE"].overdue is False
    assert rows["TENANT_BACKUP"].overdue is True
    assert rows["TENANT_BACKUP"].status is None


def test_the_dashboard_shows_a_restore_drills_section_last_with_overdue_types_in_red(stores, drills_catalog):
    from include.backup_integrity.dashboard.app import summary
    from include.backup_integrity.dashboard.page import render_page

    full = seed_backup(stores)
    failing = outcome(full, "failed", "check", finished=NOW - timedelta(hours=2))
    failing["message"] = "check 1 (<script>x</script>) returned [(False,)]"
    record(drills_catalog, "run-1", NOW, [failing])
    overdue = judge_overdue(
        "FULL_DATABASE",
        backups_in_window=1,
        last_passed_at=None,
        first_drill_at=NOW - timedelta(days=20),
        as_of=NOW,
        max_age_days=8,
    )
    apply_plan(drills_catalog, [], [overdue], "run-1")

    with transaction(drills_catalog) as cur:
        model = summary(cur, SETTINGS, now=NOW)
    html = render_page(model)

    (drill,) = model.restore_drills
    assert (drill.backup_type, drill.status, drill.stage, drill.age, drill.overdue) == (
        "FULL_DATABASE",
        "failed",
        "check",
        "2.0 h",
        True,
    )
    assert drill.last_passed_at is None
    section = html[html.index("<h2>Restore drills</h2>") :]
    assert html.index("<h2>Restore drills</h2>") > html.index("<h2>Last run</h2>"), "the section comes last"
    assert '<tr data-backup-type="FULL_DATABASE" class="overdue"' in section
    assert "&lt;script&gt;" in section
    assert "<script>" not in section
    assert "tr.overdue td{color:#c62828" in html


def test_server_identity_ignores_host_names_but_not_databases(postgres, stores, catalog):
    same = psycopg.connect(stores.catalog_dsn.replace("127.0.0.1", "localhost"))
    other = psycopg.connect(postgres.dsn("postgres"))
    try:
        assert drill_store.server_identity(same) == drill_store.server_identity(catalog)
        assert drill_store.server_identity(other)[0] == drill_store.server_identity(catalog)[0]
        assert drill_store.server_identity(other)[1] == "postgres"
    finally:
        same.close()
        other.close()


def scratch(postgres):
    with psycopg.connect(postgres.dsn()) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname LIKE 'restore\\_drill\\_%' ORDER BY 1"
        ).fetchall()
    return dict(rows)


def test_scratch_databases_are_created_with_their_time_and_only_old_ones_are_dropped(postgres):
    target = RestoreTarget("127.0.0.1", postgres.port, postgres.user, None, "postgres")
    name = create_scratch_database(target, "run-x")
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE restore_drill_00000000")
        conn.execute(
            "COMMENT ON DATABASE restore_drill_00000000 IS "
            f"'restore_drill scratch database, created {(NOW - timedelta(hours=3)).isoformat()} by run-old'"
        )
    try:
        assert name in scratch(postgres)
        assert "by run-x" in scratch(postgres)[name]

        dropped = drop_leftovers(target, timedelta(minutes=60))

        assert dropped == ["restore_drill_00000000"]
        assert list(scratch(postgres)) == [name]
    finally:
        assert drop_scratch_database(target, name)
    assert scratch(postgres) == {}
    with pytest.raises(ValueError, match="not a scratch database name"):
        drop_scratch_database(target, "postgres")
