"""Reading backups from the catalog and writing the verifier's results back.

Functions take an open DB-API connection (psycopg2) so that they can be used
from a task, a script or a test alike; table names come from the validated
settings and are always quoted as identifiers.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from include.backup_integrity.db import bulk_upsert, sql, transaction
from include.backup_integrity.records import PASSED, BackupRecord, CheckResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from include.backup_integrity.config import Settings

#: Serialises schema creation and alert bookkeeping across concurrent runs.
ADVISORY_LOCK_KEY = 0x0B1C_1A7E


def read_sql(name: str) -> str:
    return resources.files("include.backup_integrity").joinpath("sql", name).read_text()


def table(name: str) -> sql.Composable:
    """A possibly schema-qualified table name, quoted."""
    return sql.Identifier(*name.split("."))


def lock(cur: Any) -> None:
    """Take the verifier's lock until the transaction ends: serialises concurrent runs' writes."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])


def ensure_schema(conn: Any) -> None:
    """Create the verifier's own tables if they are not there yet (idempotent, race-safe)."""
    with transaction(conn) as cur:
        lock(cur)
        cur.execute(read_sql("integrity_tables.sql"))


COLUMNS = sql.SQL(
    "id::text, backup_type, filename, size_bytes, checksum, local_path, r2_path, b2_path, status, created_at"
)


def record_of(row: tuple[Any, ...]) -> BackupRecord:
    created_at = row[9]
    return BackupRecord(
        id=row[0],
        backup_type=row[1],
        filename=row[2],
        size_bytes=row[3],
        checksum=row[4],
        local_path=row[5],
        r2_path=row[6],
        b2_path=row[7],
        created_at=created_at.isoformat() if isinstance(created_at, datetime) else str(created_at),
    )


def window_for(end: datetime, lookback_days: int) -> tuple[datetime, datetime]:
    return end - timedelta(days=lookback_days), end


def select_window(
    conn: Any, settings: Settings, start: datetime, end: datetime, limit: int | None
) -> list[BackupRecord]:
    """COMPLETED backups created in ``[start, end)``, newest first, at most ``limit``."""
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE status = 'COMPLETED' "
        "AND created_at >= %s AND created_at < %s ORDER BY created_at DESC, id LIMIT %s"
    ).format(cols=COLUMNS, table=table(settings.backups_table))
    with conn.cursor() as cur:
        cur.execute(query, [start, end, limit])
        return [record_of(row) for row in cur.fetchall()]


def select_by_ids(
    conn: Any, settings: Settings, backup_ids: Iterable[str]
) -> tuple[list[BackupRecord], list[str]]:
    """The named COMPLETED backups whatever their age, and the ids that were skipped."""
    requested: dict[str, str] = {}
    skipped: list[str] = []
    for raw in backup_ids:
        try:
            requested[str(uuid.UUID(raw))] = raw
        except (ValueError, AttributeError, TypeError):
            skipped.append(raw)
    if not requested:
        return [], skipped
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE id::text = ANY(%s) ORDER BY created_at DESC, id"
    ).format(cols=COLUMNS, table=table(settings.backups_table))
    with conn.cursor() as cur:
        cur.execute(query, [list(requested)])
        rows = cur.fetchall()
    found = {row[0]: row for row in rows}
    for normalised, raw in requested.items():
        row = found.get(normalised)
        if row is None or row[8] != "COMPLETED":
            skipped.append(raw)
    records = [record_of(row) for row in rows if row[8] == "COMPLETED"]
    return records, skipped


def backup_check_summaries(results: Iterable[CheckResult], run_id: str) -> dict[str, dict[str, Any]]:
    """``metadata.last_integrity_check`` for every backup that has results."""
    summaries: dict[str, dict[str, Any]] = {}
    for result in results:
        entry = summaries.setdefault(
            result["backup_id"],
            {
                "timestamp": result["checked_at"],
                "status": "passed",
                "mode": result["mode"],
                "errors": [],
                "run_id": run_id,
            },
        )
        entry["timestamp"] = max(entry["timestamp"], result["checked_at"])
        if result["kind"] != PASSED:
            entry["status"] = "failed"
            entry["errors"].append(
                {"backend": result["backend"], "kind": result["kind"], "message": result["message"]}
            )
    for entry in summaries.values():
        entry["errors"].sort(key=lambda e: (e["backend"] or "", e["kind"]))
    return summaries


def update_metadata(cur: Any, settings: Settings, summaries: dict[str, dict[str, Any]]) -> int:
    """Merge ``last_integrity_check`` into each backup's metadata, unless a later check is there."""
    return update_metadata_lazily(
        cur, settings, {k: v["timestamp"] for k, v in summaries.items()}, summaries.__getitem__
    )


#: Backups whose metadata one statement batch updates.
METADATA_BATCH = 5000


def update_metadata_lazily(
    cur: Any,
    settings: Settings,
    timestamps: dict[str, str],
    summary_for: Callable[[str], dict[str, Any]],
) -> int:
    """Merge ``last_integrity_check`` (built on demand) into each backup's metadata.

    Each UPDATE merges into the JSON in place (``||``), so other keys, and other
    writers of other keys, are never lost. The caller holds the verifier's
    advisory lock, so reading the current check time first is race-free; it is
    compared as a time, whatever format an earlier writer used. Summaries are
    built one batch at a time, so memory does not hold one per backup.
    """
    t = table(settings.backups_table)
    select = sql.SQL(
        "SELECT id::text, metadata -> 'last_integrity_check' ->> 'timestamp' FROM {t} "
        "WHERE id = ANY(%s::uuid[])"
    ).format(t=t)
    update = sql.SQL(
        "UPDATE {t} SET metadata = COALESCE(metadata, '{{}}'::jsonb) "
        "|| jsonb_build_object('last_integrity_check', %s::jsonb) WHERE id = %s::uuid"
    ).format(t=t)
    ids = list(timestamps)
    updated = 0
    for offset in range(0, len(ids), METADATA_BATCH):
        batch = ids[offset : offset + METADATA_BATCH]
        cur.execute(select, [batch])
        current = {row[0]: parse_timestamp(row[1]) for row in cur.fetchall()}
        rows = []
        for backup_id in batch:
            if backup_id not in current:
                continue  # the row is gone from the catalog
            previous = current[backup_id]
            if previous is not None and previous > parse_timestamp(timestamps[backup_id]):
                continue  # a later check (e.g. by a newer concurrent run) is already recorded
            rows.append((json.dumps(summary_for(backup_id)), backup_id))
        if rows:
            _apply_metadata(cur, t, update, rows)
            updated += len(rows)
    return updated


def _apply_metadata(cur: Any, t: sql.Composable, update: sql.Composable, rows: list[tuple[str, str]]) -> None:
    """One UPDATE … FROM a COPY-filled staging table (psycopg 3), else one statement per row."""
    if not hasattr(cur, "copy"):
        cur.executemany(update, rows)
        return
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS stage_last_integrity_check (summary jsonb, id uuid) ON COMMIT DROP"
    )
    cur.execute("TRUNCATE stage_last_integrity_check")
    with cur.copy("COPY stage_last_integrity_check (summary, id) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(
        sql.SQL(
            "UPDATE {t} AS b SET metadata = COALESCE(b.metadata, '{{}}'::jsonb) "
            "|| jsonb_build_object('last_integrity_check', s.summary) "
            "FROM stage_last_integrity_check s WHERE b.id = s.id"
        ).format(t=t)
    )


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` accepted; naive taken as UTC), or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


RESULT_COLUMNS = [
    "run_id",
    "backup_id",
    "backend",
    "kind",
    "mode",
    "evidence",
    "path",
    "message",
    "expected",
    "actual",
    "checked_at",
]


def result_row(run_id: str, r: CheckResult) -> tuple[Any, ...]:
    """A check as a ``backup_integrity_result`` row, in :data:`RESULT_COLUMNS` order."""
    return (
        run_id,
        r["backup_id"],
        r["backend"] or "",
        r["kind"],
        r["mode"],
        r["evidence"],
        r["path"],
        r["message"],
        json.dumps(r["expected"]),
        json.dumps(r["actual"]) if r["actual"] is not None else None,
        r["checked_at"],
    )


def record_results(cur: Any, run_id: str, results: Iterable[CheckResult]) -> None:
    """Keep every check's outcome, once per (run, backup, backend)."""
    bulk_upsert(
        cur,
        "backup_integrity_result",
        RESULT_COLUMNS,
        [result_row(run_id, r) for r in results],
        "run_id, backup_id, backend",
        ", ".join(f"{c} = EXCLUDED.{c}" for c in RESULT_COLUMNS[3:]),
    )


def record_run(cur: Any, run_id: str, dag_id: str, statistics: dict[str, Any]) -> None:
    cur.execute(
        "INSERT INTO backup_integrity_run (run_id, dag_id, mode, window_start, window_end, statistics) "
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (run_id) DO UPDATE SET "
        "mode = EXCLUDED.mode, window_start = EXCLUDED.window_start, "
        "window_end = EXCLUDED.window_end, statistics = EXCLUDED.statistics, recorded_at = now()",
        [
            run_id,
            dag_id,
            statistics.get("mode", "quick"),
            statistics.get("window_start"),
            statistics.get("window_end"),
            json.dumps(statistics),
        ],
    )
