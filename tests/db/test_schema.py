"""The versioned schema on a real PostgreSQL: fresh, adopted, partial, differing, concurrent, behind.

DDL is observed with an event trigger and locks in ``pg_locks``, so each test proves
what the database saw, not what the code reports.
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import psycopg2
import pytest

from include.backup_integrity.catalog.schema import (
    VERSION_TABLE,
    SchemaError,
    SchemaMismatch,
    SchemaStatus,
    current_revision,
    head_revision,
    read_shipped_sql,
    schema_status,
    upgrade_schema,
)
from include.backup_integrity.dashboard.page import HERE as DASHBOARD_DIR
from tests.support.catalog_schema import (
    ALERT_INDEX_DDL,
    DRILL_TABLE_DDL,
    RESTORE_RUN_TABLE_DDL,
    advisory_waiters,
    clear_ddl_log,
    ddl_log,
    describe_schema,
    install_ddl_log,
    run_in_thread,
    snapshot,
    verifier_lock_held,
    verifier_tables,
)
from tests.support.connections import set_catalog_connection, set_variable

HEAD = "0010_restore_runs"
VERIFIER_TABLES = [
    "backup_integrity_alert_occurrence",
    "backup_integrity_chunk_failure",
    "backup_integrity_notification",
    "backup_integrity_object",
    "backup_integrity_repair",
    "backup_integrity_restore",
    "backup_integrity_restore_run",
    "backup_integrity_result",
    "backup_integrity_run",
    "backup_integrity_store_capability",
    "backup_integrity_store_deadline",
]

BACKUP_ID = "00000000-0000-0000-0000-0000000000b1"
#: The dashboard's own stylesheet, which every page inlines (the waiting page too).
CSS_RULE = (DASHBOARD_DIR / "static" / "dashboard.css").read_text().splitlines()[0]


@pytest.fixture
def db(stores):
    """The test's catalog database (the application's tables only), recording every DDL command."""
    conn = psycopg.connect(stores.catalog_dsn)
    install_ddl_log(conn)
    yield conn
    conn.close()


def previous_release_schema(conn):
    """The verifier's tables as the previous release's first run left them, with a row in each."""
    conn.execute(read_shipped_sql("integrity_tables.sql"))
    conn.execute("DROP TABLE backup_integrity_restore, backup_integrity_restore_run")  # no drills then
    conn.execute(
        "INSERT INTO backup_integrity_run (run_id, dag_id, mode, statistics) "
        "VALUES ('run-1', 'verify_storage_integrity', 'quick', '{\"total_backups_checked\": 1}')"
    )
    conn.execute(
        "INSERT INTO backup_integrity_result (run_id, backup_id, backend, kind, mode, message, checked_at) "
        "VALUES ('run-1', %s, 'r2', 'missing', 'quick', 'gone', now())",
        [BACKUP_ID],
    )
    conn.execute(
        "INSERT INTO backup_integrity_alert_occurrence (alert_id, run_id, checked_at) "
        "VALUES (7, 'run-1', now())"
    )
    conn.execute(
        "INSERT INTO backup_integrity_notification (alert_id, event, run_id, title, body, notify_type) "
        "VALUES (7, 'opened', 'run-1', 'Missing', 'gone from r2', 'failure')"
    )
    conn.execute(
        "INSERT INTO backup_integrity_object (backup_id, backend, last_kind, last_checked_at, last_run_id, "
        "probed_fingerprint) VALUES (%s, 'r2', 'missing', now(), 'run-1', 'etag-1')",
        [BACKUP_ID],
    )
    conn.execute(
        "INSERT INTO backup_integrity_repair (run_id, backup_id, backend, kind, status, reason) "
        "VALUES ('run-1', %s, 'r2', 'missing', 'planned', 'copy from b2')",
        [BACKUP_ID],
    )
    conn.commit()


def ddl_outside_version_table(conn):
    return [(tag, identity) for tag, identity in ddl_log(conn) if VERSION_TABLE not in identity]


@pytest.mark.parametrize("driver", [psycopg, psycopg2], ids=["psycopg3", "psycopg2"])
def test_a_fresh_catalog_is_migrated_to_head_and_nothing_else_is_touched(stores, db, driver):
    db.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")  # the application's
    db.execute("INSERT INTO alembic_version VALUES ('app_0042')")
    db.commit()
    clear_ddl_log(db)
    conn = driver.connect(stores.catalog_dsn)
    try:
        assert schema_status(conn) == SchemaStatus(None, HEAD, known=True)
        upgrade = upgrade_schema(conn)
        assert (upgrade.from_revision, upgrade.to_revision, upgrade.migrated) == (None, HEAD, True)
        assert current_revision(conn) == HEAD
        assert not schema_status(conn).pending
    finally:
        conn.close()

    assert head_revision() == HEAD
    assert verifier_tables(db) == VERIFIER_TABLES
    touched = {identity.split(".")[1] for _, identity in ddl_log(db)}
    assert all(name.startswith("backup_integrity_") for name in touched), touched
    assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("app_0042",)]
    assert db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [(HEAD,)]


def test_the_shipped_sql_creates_exactly_what_the_migrations_create(postgres):
    by_sql = psycopg.connect(postgres.create_database(f"sql_{uuid.uuid4().hex[:8]}"))
    by_migrations = psycopg.connect(postgres.create_database(f"alembic_{uuid.uuid4().hex[:8]}"))
    try:
        script = read_shipped_sql("integrity_tables.sql")
        by_sql.execute(script)
        by_sql.execute(script)  # standalone use may run it again: it is idempotent
        by_sql.commit()
        upgrade_schema(by_migrations)

        shipped = describe_schema(by_sql, column_order=True)
        migrated = describe_schema(by_migrations, column_order=True)
        assert shipped["tables"] == VERIFIER_TABLES
        for part in ("tables", "column_order", "columns", "constraints", "indexes"):
            assert shipped[part] == migrated[part], part
    finally:
        by_sql.close()
        by_migrations.close()


def test_a_complete_schema_of_the_previous_release_is_stamped_without_ddl(db):
    previous_release_schema(db)
    before = snapshot(db)
    clear_ddl_log(db)

    upgrade = upgrade_schema(db)

    assert (upgrade.from_revision, upgrade.migrated) == (None, True)
    assert current_revision(db) == HEAD
    assert ddl_log(db) == [
        ("CREATE TABLE", f"public.{VERSION_TABLE}"),
        ("CREATE INDEX", f"public.{VERSION_TABLE}_pkc"),
        *DRILL_TABLE_DDL,
        *ALERT_INDEX_DDL,
        *RESTORE_RUN_TABLE_DDL,
    ], "the release's tables are only stamped; revision 0002 adds the drill history, 0009 indexes, 0010 runs"
    assert snapshot(db) == {**before, "backup_integrity_restore": [], "backup_integrity_restore_run": []}


def test_a_partial_schema_gets_only_its_missing_parts_then_is_stamped(db, postgres):
    previous_release_schema(db)
    db.execute("DROP TABLE backup_integrity_repair")
    db.execute("DROP INDEX backup_integrity_result_failed_idx")
    db.execute("ALTER TABLE backup_integrity_object DROP COLUMN probed_fingerprint")  # an older release
    db.execute(
        "ALTER TABLE backup_integrity_notification "
        "DROP CONSTRAINT backup_integrity_notification_alert_id_event_key"
    )
    db.commit()
    before = snapshot(db)
    clear_ddl_log(db)

    assert upgrade_schema(db).migrated

    assert sorted(set(ddl_outside_version_table(db))) == sorted(
        [
            ("ALTER TABLE", "public.backup_integrity_notification"),  # its unique constraint
            ("ALTER TABLE", "public.backup_integrity_object"),  # its column
            ("CREATE INDEX", "public.backup_integrity_repair_backup_idx"),
            ("CREATE INDEX", "public.backup_integrity_repair_pkey"),
            ("CREATE INDEX", "public.backup_integrity_result_failed_idx"),
            ("CREATE TABLE", "public.backup_integrity_repair"),
            *DRILL_TABLE_DDL,  # revision 0002
            ("CREATE INDEX", "public.backup_integrity_repair_recorded_idx"),  # revision 0006, on it
            *ALERT_INDEX_DDL,  # revision 0009
            *RESTORE_RUN_TABLE_DDL,  # revision 0010
        ]
    )
    fresh = psycopg.connect(postgres.create_database(f"fresh_{uuid.uuid4().hex[:8]}"))
    try:
        upgrade_schema(fresh)
        assert describe_schema(db) == describe_schema(fresh)
    finally:
        fresh.close()
    after = snapshot(db)
    assert after["backup_integrity_repair"] == []
    for name, rows in before.items():
        if name == "backup_integrity_object":
            assert [json.loads(r) for r in after[name]] == [
                {**json.loads(r), "probed_fingerprint": None} for r in rows
            ]
        else:
            assert after[name] == rows, name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "ALTER TABLE backup_integrity_object ALTER COLUMN last_read_bytes TYPE integer",
            "backup_integrity_object.last_read_bytes is integer NULL, the baseline has bigint NULL",
        ),
        (
            "ALTER TABLE backup_integrity_result ALTER COLUMN evidence SET DEFAULT 'size'",
            "backup_integrity_result.evidence is text NULL default 'size'::text, the baseline has text NULL",
        ),
        (
            "UPDATE backup_integrity_result SET path = 'p'; "
            "ALTER TABLE backup_integrity_result ALTER COLUMN path SET NOT NULL",
            "backup_integrity_result.path is text NOT NULL, the baseline has text NULL",
        ),
        (
            "ALTER TABLE backup_integrity_object DROP COLUMN last_kind",
            "backup_integrity_object.last_kind is missing and cannot be added to a table with rows",
        ),
        (
            "DROP INDEX backup_integrity_result_checked_idx; "
            "CREATE INDEX backup_integrity_result_checked_idx ON backup_integrity_result (run_id)",
            "index backup_integrity_result_checked_idx is on backup_integrity_result USING btree (run_id), "
            "the baseline has on backup_integrity_result USING btree (checked_at)",
        ),
    ],
    ids=["type", "default", "nullability", "missing-not-null", "index"],
)
def test_a_difference_stops_the_upgrade_with_what_differs_and_changes_nothing(db, change, message):
    previous_release_schema(db)
    db.execute("DROP TABLE backup_integrity_repair")  # missing, but must not be created either
    db.execute(change)
    db.commit()
    before = snapshot(db)
    clear_ddl_log(db)

    with pytest.raises(SchemaMismatch, match="differ from revision 0001_baseline") as raised:
        upgrade_schema(db)

    assert message in str(raised.value)
    assert ddl_log(db) == []
    assert current_revision(db) is None
    assert "backup_integrity_repair" not in verifier_tables(db)
    assert snapshot(db) == before


def test_of_concurrent_upgraders_one_migrates_and_the_other_waits_and_finds_head(stores, db):
    def upgrader():
        conn = psycopg.connect(stores.catalog_dsn)
        try:
            return upgrade_schema(conn)
        finally:
            conn.close()

    with verifier_lock_held(stores.catalog_dsn):  # both find the schema missing, then queue on the lock
        started = [run_in_thread(upgrader) for _ in range(2)]
        deadline = time.monotonic() + 30
        while advisory_waiters(stores.catalog_dsn) < 2:
            assert time.monotonic() < deadline, "both upgraders wait for the verifier's lock"
            time.sleep(0.05)
    for thread, _ in started:
        thread.join(timeout=60)
    outcomes = [outcome for _, outcome in started]
    assert all("error" not in outcome for outcome in outcomes), outcomes
    upgrades = [outcome["result"] for outcome in outcomes]
    assert sorted(u.migrated for u in upgrades) == [False, True]
    assert {u.to_revision for u in upgrades} == {HEAD}
    assert next(u for u in upgrades if not u.migrated).from_revision == HEAD, "the waiter found head"
    assert db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [(HEAD,)]
    assert [tag for tag, _ in ddl_log(db)].count("CREATE TABLE") == len(VERIFIER_TABLES) + 1


def test_an_upgrade_at_head_takes_no_lock_and_runs_no_ddl(stores, db):
    upgrade_schema(db)
    clear_ddl_log(db)
    with verifier_lock_held(stores.catalog_dsn):
        thread, outcome = run_in_thread(lambda: upgrade_schema(psycopg.connect(stores.catalog_dsn)))
        thread.join(timeout=20)
        assert not thread.is_alive(), "an upgrade at head waited for the verifier's lock"
    assert outcome["result"].migrated is False
    assert outcome["result"].from_revision == HEAD
    assert ddl_log(db) == []


def test_a_revision_this_code_does_not_know_is_refused(db):
    upgrade_schema(db)
    db.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0099_from_the_future'")
    db.commit()

    status = schema_status(db)
    assert (status.known, status.pending) == (False, False)
    with pytest.raises(SchemaError, match="revision 0099_from_the_future, which this code does not know"):
        upgrade_schema(db)


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_dashboard_says_it_waits_for_the_verifier_while_the_schema_is_behind(
    stores, db, postgres, monkeypatch
):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from include.backup_integrity.dashboard.app import URL_PREFIX, create_app

    set_catalog_connection(monkeypatch, postgres, stores.dbname)
    set_variable(monkeypatch, {"local_root": stores.local_root})
    app = create_app()
    # Airflow's authentication is tested with a real login in tests/integration/test_dashboard.py.
    app.dependency_overrides[app.router.dependencies[0].dependency] = lambda: None
    app.dependency_overrides[get_user] = lambda: None  # the pages wait before they look at the user
    client = TestClient(app)
    clear_ddl_log(db)

    page = client.get("/")
    assert page.status_code == 200
    assert "schema at revision none, waiting for the verifier" in page.text
    assert 'id="schema-waiting"' in page.text
    assert CSS_RULE in page.text, "the waiting page has the dashboard's inline CSS"
    api = client.get("/api/alerts")
    assert (api.status_code, api.json()) == (
        503,
        {"detail": "schema at revision none, waiting for the verifier"},
    )
    for console_page in ("/alerts", "/alerts/1", f"/backups/{uuid.uuid4()}"):
        waiting = client.get(console_page)
        assert (waiting.status_code, waiting.headers["content-type"]) == (503, "text/html; charset=utf-8")
        assert 'id="schema-waiting"' in waiting.text, console_page
        assert "schema at revision none, waiting for the verifier" in waiting.text
        assert CSS_RULE in waiting.text
    # Mounted under the plugin's prefix, as Airflow mounts it: the API still answers in JSON.
    mounted = TestClient(app, root_path=URL_PREFIX)
    assert mounted.get(f"{URL_PREFIX}/api/alerts").json() == api.json()
    assert 'id="schema-waiting"' in mounted.get(f"{URL_PREFIX}/alerts").text
    assert ddl_log(db) == [], "the dashboard never runs DDL"
    assert verifier_tables(db) == []

    behind = SchemaStatus("0001_baseline", "0002_restore_drills", known=True)
    assert behind.pending
    assert behind.waiting_message == "schema at revision 0001_baseline, waiting for the verifier"

    upgrade_schema(db)
    assert client.get("/api/alerts").status_code == 200
    assert 'id="schema-waiting"' not in client.get("/").text


def test_the_alert_table_gets_the_consoles_indexes_but_no_second_one_on_backup_id(stores):
    conn = psycopg.connect(stores.catalog_dsn)
    try:
        conn.execute("CREATE INDEX backups_backupalert_backup_id_5f0b2c ON backups_backupalert (backup_id)")
        conn.commit()
        upgrade_schema(conn)
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'backups_backupalert'"
            ).fetchall()
        }
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'backups_backupalert'"
        ).fetchall()
    finally:
        conn.close()
    assert indexes == {
        "backups_backupalert_pkey",
        "backups_backupalert_backup_id_5f0b2c",  # the application's (Django's foreign key)
        "backup_integrity_alert_status_idx",
        "backup_integrity_alert_created_idx",
    }
    assert len(columns) == 12, "indexes only, never a column"
