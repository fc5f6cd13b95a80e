"""The restore drill's first task may be the first to meet a previous release's catalog: it
upgrades the alert table the Variable names, as the verifier's ``select_backups`` would.

Each catalog is the previous release's dump with its alert table moved to
``ops.integrity_alerts`` (the Variable's ``alerts_table``). Revisions 0004_alert_markers
and 0009_console_indexes act on the alert table; the default ``backups_backupalert``
either does not exist or is another application's, and is left exactly as it was.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from include.backup_integrity.catalog.schema import current_revision, head_revision
from include.backup_integrity.tasks.drill import choose_backups
from include.backup_integrity.tasks.select import select_backups
from tests.support.catalog_schema import (
    ALERT_INDEX_DDL,
    CATALOG_TABLES,
    ddl_log,
    install_ddl_log,
    restore_dump,
)
from tests.support.connections import set_catalog_connection
from tests.support.drills import target_connection
from tests.support.ownership import SOURCE

ALERTS_TABLE = "ops.integrity_alerts"
DEFAULT_ALERTS_TABLE = "backups_backupalert"


def previous_release_with_custom_alert_table(dsn: str, *, default_table: bool) -> None:
    """The previous release's catalog whose alert table is ``ops.integrity_alerts``.

    With ``default_table``, ``backups_backupalert`` also exists: another application's copy
    of the same rows (same ids, no markers), which an upgrade of the wrong table would mark.
    """
    conn = psycopg.connect(dsn)
    try:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(CATALOG_TABLES))}")
        conn.commit()
        restore_dump(dsn)
        conn.execute("CREATE SCHEMA ops")
        conn.execute(f"ALTER TABLE {DEFAULT_ALERTS_TABLE} SET SCHEMA ops")
        conn.execute(f"ALTER TABLE ops.{DEFAULT_ALERTS_TABLE} RENAME TO integrity_alerts")
        if default_table:
            conn.execute(f"CREATE TABLE {DEFAULT_ALERTS_TABLE} (LIKE {ALERTS_TABLE} INCLUDING ALL)")
            conn.execute(f"INSERT INTO {DEFAULT_ALERTS_TABLE} SELECT * FROM {ALERTS_TABLE}")
        conn.commit()
        install_ddl_log(conn)
    finally:
        conn.close()


def table_state(dsn: str, name: str) -> dict[str, object] | None:
    """Columns, indexes and rows of a table (None: it does not exist)."""
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is None:
            return None
        schema, _, table = name.rpartition(".")
        schema = schema or "public"
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s ORDER BY 1",
            [schema, table],
        ).fetchall()
        rows = conn.execute(f"SELECT to_jsonb(t)::text FROM {name} AS t ORDER BY id").fetchall()
    return {"columns": columns, "indexes": indexes, "rows": [row[0] for row in rows]}


@pytest.mark.parametrize("default_table", [False, True], ids=["no default table", "default table elsewhere"])
def test_the_drills_first_task_upgrades_the_configured_alert_table_as_the_verifier_does(
    stores, airflow_env, postgres, monkeypatch, default_table
):
    drill_dsn = stores.catalog_dsn
    verifier_db = f"catalog_{uuid.uuid4().hex[:10]}"
    verifier_dsn = postgres.create_database(verifier_db)
    for dsn in (drill_dsn, verifier_dsn):
        previous_release_with_custom_alert_table(dsn, default_table=default_table)
    default_before = table_state(drill_dsn, DEFAULT_ALERTS_TABLE)
    assert (default_before is not None) == default_table
    raw = json.dumps({**airflow_env, "alerts_table": ALERTS_TABLE, "restore_drill": {}})
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_RESTORE_TARGET", target_connection(postgres))
    window_end = datetime.now(UTC) + timedelta(hours=1)

    choose_backups(raw, {}, window_end)

    set_catalog_connection(monkeypatch, postgres, verifier_db)
    select_backups(raw, {}, window_end, "scheduled__verifier")

    with psycopg.connect(drill_dsn) as conn:
        assert current_revision(conn) == head_revision()
        drill_ddl = ddl_log(conn)
    drilled = table_state(drill_dsn, ALERTS_TABLE)
    verified = table_state(verifier_dsn, ALERTS_TABLE)
    assert drilled == verified, "the drill's upgrade left the alert table as the verifier's does"
    index_names = {name for name, _ in drilled["indexes"]}
    assert {identity.removeprefix("public.") for _, identity in ALERT_INDEX_DDL} <= index_names
    assert any(f'"source": "{SOURCE}"' in row for row in drilled["rows"]), "0004 marked the release's rows"
    assert table_state(drill_dsn, DEFAULT_ALERTS_TABLE) == default_before
    assert not [entry for entry in drill_ddl if DEFAULT_ALERTS_TABLE in (entry[1] or "")], drill_ddl
