"""Alert ownership on a real PostgreSQL catalog: others' rows never change, earlier releases' are adopted.

The alert table is the application's. Rows the application, or the task this package
replaces, wrote there (some of them ``INTEGRITY_FAILURE`` rows with a ``details.kind``
like ours) must come out of every write of the verifier exactly as they went in.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from devtools.runs import alerts
from devtools.seed import seed_backup
from include.backup_integrity.catalog.alert_markers import adopt_earlier_alerts
from include.backup_integrity.catalog.alert_store import apply_alert_changes
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.catalog.schema import current_revision, head_revision, upgrade_schema
from include.backup_integrity.domain.records import MISSING, PASSED
from tests.support.catalog_schema import restore_dump
from tests.support.ownership import SOURCE, VERIFIER, WATCHDOG, alert_row_text, insert_alert_row
from tests.support.records import check_result

T1, T2, T3 = "2026-11-30T10:00:00+00:00", "2026-11-30T11:00:00+00:00", "2026-11-30T12:00:00+00:00"


def apply(conn, results, run_id):
    with transaction(conn) as cur:
        return apply_alert_changes(cur, "backups_backupalert", results, run_id)


def details_of(conn, alert_id, table="backups_backupalert"):
    with transaction(conn) as cur:
        cur.execute(f"SELECT details FROM {table} WHERE id = %s", [alert_id])
        return cur.fetchone()[0]


def test_the_verifier_writes_its_marker_and_never_changes_a_foreign_row_of_the_same_copy(stores, catalog):
    backup = seed_backup(stores)
    celery = insert_alert_row(catalog, {"kind": MISSING, "backend": "r2"}, backup_id=backup.id)
    application = insert_alert_row(
        catalog, {"kind": MISSING, "backend": "r2"}, backup_id=backup.id, alert_type="STORAGE_WARNING"
    )
    foreign_summary = insert_alert_row(catalog, {"kind": "summary", "alert_ids": [celery]})
    # Resolved by someone else after our check: it must not stop the verifier opening its own alert.
    resolved = insert_alert_row(
        catalog,
        {"kind": MISSING, "backend": "r2"},
        backup_id=backup.id,
        status="RESOLVED",
        resolved_at="2030-01-01T00:00:00+00:00",
    )
    foreign = {alert_id: alert_row_text(catalog, alert_id) for alert_id in (celery, application, resolved)}
    foreign[foreign_summary] = alert_row_text(catalog, foreign_summary)

    apply(catalog, [check_result(backup.id, "r2", MISSING, checked_at=T1)], "run-1")
    apply(catalog, [check_result(backup.id, "r2", MISSING, checked_at=T2)], "run-2")
    apply(catalog, [check_result(backup.id, "r2", PASSED, checked_at=T3)], "run-3")

    assert {alert_id: alert_row_text(catalog, alert_id) for alert_id in foreign} == foreign
    [ours] = [a for a in alerts(stores) if a["id"] not in foreign]
    assert ours["details"]["source"] == SOURCE
    assert ours["details"]["producer"] == VERIFIER
    assert ours["details"]["occurrences"] == 2, "observed again by run-2, not confused with the foreign row"
    assert ours["status"] == "RESOLVED"


def test_the_verifier_leaves_the_watchdogs_kind_alone_even_under_its_own_marker(stores, catalog):
    stalled = insert_alert_row(catalog, {"kind": "verifier_stalled", "source": SOURCE, "producer": VERIFIER})
    before = alert_row_text(catalog, stalled)
    backup = seed_backup(stores)

    apply(catalog, [check_result(backup.id, "r2", MISSING, checked_at=T1)], "run-1")
    apply(catalog, [check_result(backup.id, "r2", PASSED, checked_at=T2)], "run-2")

    assert alert_row_text(catalog, stalled) == before


@pytest.fixture
def previous_release(postgres):
    """The previous release's catalog (its dump) with rows of other writers added, not yet upgraded."""
    dsn = postgres.create_database(f"release_{uuid.uuid4().hex[:8]}")
    restore_dump(dsn)
    conn = psycopg.connect(dsn)
    yield conn
    conn.close()


def test_the_upgrade_adopts_the_rows_an_earlier_release_wrote_and_no_other(previous_release):
    conn = previous_release
    with conn.cursor() as cur:
        cur.execute("SELECT id, details ->> 'kind' FROM backups_backupalert ORDER BY id")
        released = dict(cur.fetchall())
        cur.execute("SELECT backup_id::text FROM backups_backupalert WHERE backup_id IS NOT NULL LIMIT 1")
        (backup_id,) = cur.fetchone()
    # The release's watchdog left a stall alert: an occurrence and a notice name it.
    stall = insert_alert_row(conn, {"kind": "verifier_stalled", "run_id": "scheduled__w"})
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO backup_integrity_alert_occurrence (alert_id, run_id, checked_at) "
            "VALUES (%s, 'scheduled__w', now())",
            [stall],
        )
        cur.execute(
            "INSERT INTO backup_integrity_notification (alert_id, event, run_id, title, body, notify_type) "
            "VALUES (%s, 'opened', 'scheduled__w', 'stalled', 'stalled', 'failure')",
            [stall],
        )
    conn.commit()
    foreign = [
        insert_alert_row(conn, {"kind": MISSING, "backend": "r2"}, backup_id=backup_id),  # the replaced task
        insert_alert_row(conn, {"kind": "verifier_stalled"}),
        insert_alert_row(conn, {"kind": MISSING}, backup_id=backup_id, alert_type="BACKUP_FAILED"),
        insert_alert_row(conn, {"note": "no kind at all"}, status="RESOLVED"),
    ]
    untouched = {alert_id: alert_row_text(conn, alert_id) for alert_id in foreign}

    upgrade_schema(conn)

    assert current_revision(conn) == head_revision()
    for alert_id, kind in released.items():
        details = details_of(conn, alert_id)
        assert (details["source"], details["producer"], details["kind"]) == (SOURCE, VERIFIER, kind)
    assert (details_of(conn, stall)["source"], details_of(conn, stall)["producer"]) == (SOURCE, WATCHDOG)
    assert {alert_id: alert_row_text(conn, alert_id) for alert_id in foreign} == untouched
    with transaction(conn) as cur:
        assert adopt_earlier_alerts(cur, "backups_backupalert") == 0, (
            "adopted once; a marked row stays as it is"
        )


def test_the_adoption_works_on_the_alert_table_the_variable_names(stores):
    conn = psycopg.connect(stores.catalog_dsn)
    try:
        conn.execute("CREATE SCHEMA ops")
        conn.execute("CREATE TABLE ops.integrity_alerts (LIKE backups_backupalert INCLUDING ALL)")
        conn.execute(read_previous_release_tables())
        conn.commit()
        ours = insert_alert_row(conn, {"kind": MISSING}, alerts_table="ops.integrity_alerts", alert_id=41)
        # The default table, not the Variable's, holds a row of the same id: another writer's.
        same_id_elsewhere = insert_alert_row(conn, {"kind": MISSING}, alert_id=41)
        conn.execute(
            "INSERT INTO backup_integrity_alert_occurrence (alert_id, run_id, checked_at) "
            "VALUES (%s, 'r', now())",
            [ours],
        )
        conn.commit()
        before = alert_row_text(conn, same_id_elsewhere)

        upgrade_schema(conn, "ops.integrity_alerts")

        assert details_of(conn, ours, "ops.integrity_alerts")["producer"] == VERIFIER
        assert alert_row_text(conn, same_id_elsewhere) == before
    finally:
        conn.close()


def read_previous_release_tables():
    from include.backup_integrity.catalog.schema import read_shipped_sql

    return read_shipped_sql("integrity_tables.sql")
