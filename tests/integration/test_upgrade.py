"""The path users take: the previous release's catalog, upgraded by this code's first DAG run.

The catalog is restored from the previous release's dump (tests/fixtures, made by
scripts/make_upgrade_fixture.sh from real runs of that release); the stores get the
same bytes back, damaged as the dump says, so this code's run sees what the release
last saw. The upgrade happens where it does in production: in ``select_backups``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devtools.runs import DagRunOutcome, load_dag
from devtools.seed import put_object, write_local
from include.backup_integrity.catalog.schema import current_revision, head_revision
from tests.support.catalog import alerts, query
from tests.support.catalog_schema import (
    CATALOG_TABLES,
    PREVIOUS_RELEASE_NEW_TABLES,
    PREVIOUS_RELEASE_UPGRADE_DDL,
    clear_ddl_log,
    ddl_log,
    install_ddl_log,
    restore_dump,
    snapshot,
)
from tests.support.ownership import as_upgraded, canonical_snapshot

OPEN = ("ACTIVE", "ACKNOWLEDGED")


def fixture_content(seed: int, size: int) -> bytes:
    """The bytes of a fixture backup, as scripts/upgrade_fixture_runs.py made them."""
    return hashlib.shake_256(f"backup-integrity upgrade fixture {seed}".encode()).digest(size)


def damaged(content: bytes, kind: str) -> bytes | None:
    """A copy as the release's seed helpers damaged it (``None``: deleted)."""
    if kind == "missing":
        return None
    if kind == "size_mismatch":
        return content[: len(content) // 2]
    assert kind == "checksum_mismatch", kind
    flipped = bytearray(content)
    flipped[len(flipped) // 2] ^= 0xFF
    return bytes(flipped)


@pytest.fixture
def previous_release(stores):
    """The stores' catalog replaced by the release's dump, the bytes put back; DDL recorded from then on."""
    conn = psycopg.connect(stores.catalog_dsn)
    conn.execute(f"DROP TABLE {', '.join(reversed(CATALOG_TABLES))}")  # the dump brings its own
    conn.commit()
    restore_dump(stores.catalog_dsn)
    rows = query(
        stores,
        "SELECT id::text, size_bytes, checksum, local_path, r2_path, b2_path, metadata FROM backups_backup",
    )
    for row in rows:
        fixture = row["metadata"]["fixture"]
        content = fixture_content(fixture["content_seed"], row["size_bytes"])
        assert hashlib.sha256(content).hexdigest() == row["checksum"], row["id"]
        for backend in ("local", "r2", "b2"):
            key = row[f"{backend}_path"]
            kind = fixture["damage"].get(backend)
            body = content if kind is None else damaged(content, kind)
            if key is None or body is None:
                continue
            if backend == "local":
                write_local(stores, key, body)
            else:
                put_object(stores, backend, key, body)
    install_ddl_log(conn)
    yield conn, [row["id"] for row in rows]
    conn.close()


def run_first_task(airflow_db, logical_date: datetime) -> DagRunOutcome:
    """``select_backups`` alone, through ``dag.test()``: the task that upgrades the schema."""
    dag = load_dag().partial_subset(task_ids=["select_backups"], include_upstream=False)
    return DagRunOutcome(dag.test(logical_date=logical_date))


def test_the_first_run_upgrades_the_previous_release_with_no_data_lost_and_a_second_does_no_ddl(
    previous_release, airflow_db, airflow_env
):
    conn, _ = previous_release
    before = snapshot(conn)
    assert current_revision(conn) is None

    first = run_first_task(airflow_db, datetime.now(UTC) + timedelta(hours=1))

    assert first.state == "success", first
    assert current_revision(conn) == head_revision()
    assert ddl_log(conn) == PREVIOUS_RELEASE_UPGRADE_DDL, "the release's tables are only stamped"
    upgraded = {**as_upgraded(before), **PREVIOUS_RELEASE_NEW_TABLES}  # new: empty
    assert canonical_snapshot(snapshot(conn)) == upgraded, (
        "every row of every table is as the release left it, its alerts marked as the package's"
    )

    clear_ddl_log(conn)
    second = run_first_task(airflow_db, datetime.now(UTC) + timedelta(hours=2))
    assert second.state == "success", second
    assert ddl_log(conn) == [], "a second run is a no-op for the schema"
    assert canonical_snapshot(snapshot(conn)) == upgraded


def test_the_first_full_run_keeps_the_release_history_and_updates_its_alerts_without_duplicates(
    previous_release, run_dag, stores
):
    conn, backup_ids = previous_release
    before = snapshot(conn)
    alerts_before = {a["id"]: a for a in alerts(stores)}
    open_before = {
        (a["backup_id"], a["details"].get("backend"), a["details"]["kind"]): a["id"]
        for a in alerts_before.values()
        if a["status"] in OPEN
    }
    assert len(open_before) == 5, "four damaged copies and the release's run summary"

    outcome = run_dag({"mode": "full", "backup_ids": backup_ids})

    assert outcome.statistics is not None, outcome
    assert outcome.statistics["total_backups_checked"] == len(backup_ids)
    assert outcome.statistics["integrity_failures"] == 4, "the same four damaged copies, nothing else"
    assert outcome.state == "failed", "integrity failures fail the run, as before the upgrade"
    assert current_revision(conn) == head_revision()

    alerts_after = {a["id"]: a for a in alerts(stores)}
    open_after = {
        (a["backup_id"], a["details"].get("backend"), a["details"]["kind"]): a["id"]
        for a in alerts_after.values()
        if a["status"] in OPEN
    }
    assert open_after == open_before, "the release's open alerts are observed again, none repeated"
    assert set(alerts_after) == set(alerts_before), "no new alert row"
    for alert_id in open_before.values():
        assert (
            alerts_after[alert_id]["details"]["occurrences"]
            == alerts_before[alert_id]["details"]["occurrences"] + 1
        )
    resolved = [a for a in alerts_before.values() if a["status"] == "RESOLVED"]
    assert [alerts_after[a["id"]]["status"] for a in resolved] == ["RESOLVED"]

    before, after = as_upgraded(before), canonical_snapshot(snapshot(conn))
    for table in ("backup_integrity_run", "backup_integrity_alert_occurrence"):
        assert set(before[table]) < set(after[table]), f"{table}: the release's rows kept, this run's added"
    # The history keeps transitions: the same findings as the release's last run add no result.
    for table in ("backup_integrity_result", "backup_integrity_repair", "backup_integrity_notification"):
        assert set(before[table]) <= set(after[table]), f"{table}: the release's rows are kept as they were"
    for table, key in (("backup_integrity_object", ("backup_id", "backend")), ("backups_backup", ("id",))):
        assert keys(before[table], key) == keys(after[table], key), (
            f"{table}: the same rows, updated in place"
        )


def keys(rows: list[str], key: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {tuple(json.loads(row)[name] for name in key) for row in rows}
