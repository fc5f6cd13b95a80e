"""Looking at a catalog's schema and data from outside: what the schema and upgrade tests compare.

Everything here reads PostgreSQL's own catalogs or the tables' rows, so a test proves
what the database holds, not what our code believes it did.
"""

from __future__ import annotations

import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from include.backup_integrity.catalog.connection import ADVISORY_LOCK_KEY
from include.backup_integrity.catalog.schema import VERSION_TABLE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: The previous release's catalog database after real runs (scripts/make_upgrade_fixture.sh).
PREVIOUS_RELEASE = "79647eb"
UPGRADE_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / f"catalog_release_{PREVIOUS_RELEASE}.sql"

#: The tables a run of the verifier reads and writes, besides its own ``backup_integrity_*``.
CATALOG_TABLES = ("backups_backup", "backups_backupalert")

DDL_LOG = "test_ddl_log"

#: The DDL revision 0002_restore_drills runs on a catalog of the previous release (the drill history).
DRILL_TABLE_DDL = [
    ("CREATE TABLE", "public.backup_integrity_restore"),
    ("CREATE INDEX", "public.backup_integrity_restore_pkey"),
    ("CREATE INDEX", "public.backup_integrity_restore_backup_idx"),
    ("CREATE INDEX", "public.backup_integrity_restore_type_idx"),
]
#: The DDL revision 0010_restore_runs runs on a catalog without it (every drill run, the overdue clock).
RESTORE_RUN_TABLE_DDL = [
    ("CREATE TABLE", "public.backup_integrity_restore_run"),
    ("CREATE INDEX", "public.backup_integrity_restore_run_pkey"),
]
#: The indexes revision 0009_console_indexes adds to the alert table (the application's) it finds.
ALERT_INDEX_DDL = [
    ("CREATE INDEX", "public.backup_integrity_alert_backup_idx"),
    ("CREATE INDEX", "public.backup_integrity_alert_status_idx"),
    ("CREATE INDEX", "public.backup_integrity_alert_created_idx"),
]


#: The DDL revision 0006_bounded_growth runs on a catalog of an earlier release: the chunks'
#: hand-over of failures and the indexes the retention's pruning uses.
BOUNDED_GROWTH_DDL = [
    ("CREATE TABLE", "public.backup_integrity_chunk_failure"),
    ("CREATE INDEX", "public.backup_integrity_chunk_failure_pkey"),
    ("CREATE INDEX", "public.backup_integrity_run_recorded_idx"),
    ("CREATE INDEX", "public.backup_integrity_repair_recorded_idx"),
]


#: The DDL the upgrade of the previous release (the fixture) runs, revision by revision: the
#: version table, then the drill history (0002), the shared store deadline's table (0003), the
#: outbox's expiry column (0005), the chunks' hand-over of failures and the pruning's indexes
#: (0006), the learned store capabilities (0007), the objects' two retention columns (0008), the
#: outbox's digest column and the alert table's indexes (0009), the drill runs (0010).
PREVIOUS_RELEASE_UPGRADE_DDL = [
    ("CREATE TABLE", "public.backup_integrity_alembic_version"),
    ("CREATE INDEX", "public.backup_integrity_alembic_version_pkc"),
    *DRILL_TABLE_DDL,
    ("CREATE TABLE", "public.backup_integrity_store_deadline"),
    ("CREATE INDEX", "public.backup_integrity_store_deadline_pkey"),
    ("ALTER TABLE", "public.backup_integrity_notification"),
    *BOUNDED_GROWTH_DDL,
    ("CREATE TABLE", "public.backup_integrity_store_capability"),
    ("CREATE INDEX", "public.backup_integrity_store_capability_pkey"),
    ("ALTER TABLE", "public.backup_integrity_object"),
    ("ALTER TABLE", "public.backup_integrity_object"),
    ("ALTER TABLE", "public.backup_integrity_notification"),
    *ALERT_INDEX_DDL,
    *RESTORE_RUN_TABLE_DDL,
]

#: The tables that upgrade creates, empty.
PREVIOUS_RELEASE_NEW_TABLES = {
    "backup_integrity_store_deadline": [],
    "backup_integrity_restore": [],
    "backup_integrity_chunk_failure": [],
    "backup_integrity_store_capability": [],
    "backup_integrity_restore_run": [],
}


def restore_dump(dsn: str, path: Path = UPGRADE_FIXTURE) -> None:
    """Load a plain-SQL ``pg_dump`` with the system ``psql``, stopping at the first error."""
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", dsn, "--file", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )


def verifier_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
        "AND tablename LIKE 'backup\\_integrity\\_%%' AND tablename <> %s ORDER BY 1",
        [VERSION_TABLE],
    ).fetchall()
    conn.commit()
    return [row[0] for row in rows]


def describe_schema(conn: psycopg.Connection, *, column_order: bool = False) -> dict[str, Any]:
    """Tables, columns (type, nullability, default), constraints and indexes of the verifier's tables."""
    tables = verifier_tables(conn)
    columns = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default, ordinal_position "
        "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ANY(%s) "
        "ORDER BY table_name, ordinal_position",
        [tables],
    ).fetchall()
    constraints = conn.execute(
        "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname = ANY(%s) "
        "AND t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) ORDER BY 1, 2",
        [tables],
    ).fetchall()
    indexes = conn.execute(
        "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename = ANY(%s) ORDER BY 1, 2",
        [tables],
    ).fetchall()
    conn.commit()
    description: dict[str, Any] = {
        "tables": tables,
        "columns": {(t, c): (kind, nullable, default) for t, c, kind, nullable, default, _ in columns},
        "constraints": constraints,
        "indexes": indexes,
    }
    if column_order:
        description["column_order"] = [(t, c) for t, c, *_ in columns]
    return description


def snapshot(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of the verifier's tables and of the catalog's, as sorted JSON text."""
    data = {}
    for name in [*verifier_tables(conn), *CATALOG_TABLES]:
        rows = conn.execute(f"SELECT to_jsonb(t)::text FROM {name} AS t").fetchall()
        data[name] = sorted(row[0] for row in rows)
    conn.commit()
    return data


def install_ddl_log(conn: psycopg.Connection) -> None:
    """Record every DDL command from now on (an event trigger; needs a superuser, as the test server has)."""
    conn.execute(f"CREATE TABLE {DDL_LOG} (tag text NOT NULL, identity text)")
    conn.execute(
        "CREATE FUNCTION test_log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO {DDL_LOG} SELECT command_tag, object_identity FROM pg_event_trigger_ddl_commands(); "
        "END $$"
    )
    conn.execute("CREATE EVENT TRIGGER test_log_ddl ON ddl_command_end EXECUTE FUNCTION test_log_ddl()")
    conn.commit()


def ddl_log(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(f"SELECT tag, identity FROM {DDL_LOG} ORDER BY ctid").fetchall()
    conn.commit()
    return [(tag, identity) for tag, identity in rows]


def clear_ddl_log(conn: psycopg.Connection) -> None:
    conn.execute(f"DELETE FROM {DDL_LOG}")
    conn.commit()


@contextmanager
def verifier_lock_held(dsn: str) -> Iterator[psycopg.Connection]:
    """Another session holds the verifier's advisory lock until the block ends."""
    holder = psycopg.connect(dsn)
    try:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        yield holder
    finally:
        holder.rollback()
        holder.close()


def advisory_waiters(dsn: str) -> int:
    """Sessions waiting for an advisory lock right now."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()[0]


def run_in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``target`` in a thread; the dict gets its ``result`` or its ``error``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome
