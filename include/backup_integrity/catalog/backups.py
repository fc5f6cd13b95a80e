"""Reading backups from the catalog and writing the verifier's results back.

Functions take an open DB-API connection (psycopg2) so that they can be used
from a task, a script or a test alike; table names come from the validated
settings and are always quoted as identifiers.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import (
    bulk_upsert,
    copy_rows,
    is_unique_violation,
    sql,
    transaction,
)
from include.backup_integrity.domain.records import PASSED, BackupRecord, CheckResult

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.config.settings import Settings

log = logging.getLogger(__name__)

#: Serialises schema creation and alert bookkeeping across concurrent runs.
ADVISORY_LOCK_KEY = 0x0B1C_1A7E


def read_sql(name: str) -> str:
    return resources.files("include.backup_integrity.catalog").joinpath("sql", name).read_text()


def table(name: str) -> sql.Composable:
    """A possibly schema-qualified table name, quoted."""
    return sql.Identifier(*name.split("."))


def lock(cur: Any) -> None:
    """Take the verifier's lock until the transaction ends: serialises concurrent runs' writes."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])


def ensure_schema(conn: Any) -> None:
    """Create the verifier's own tables if they are not there yet (idempotent, race-safe).

    Every run calls this; when every table and index already exists (the usual case) it
    only looks, because ``CREATE INDEX IF NOT EXISTS`` takes a table lock that waits
    for autovacuum and for other runs' writes.
    """
    script = read_sql("integrity_tables.sql")
    with transaction(conn) as cur:
        cur.execute(
            "SELECT count(*) FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL",
            [re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", script)],
        )
        if cur.fetchone()[0] == 0:
            return
    with transaction(conn) as cur:
        lock(cur)
        cur.execute(script)


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
    return update_metadata_lazily(cur, settings, {k: v["timestamp"] for k, v in summaries.items()}, summaries)


#: How this package writes check times (``utc_now_iso``): fixed width, UTC, so that two of
#: them compare as times when compared as text.
CANONICAL_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00"
_CANONICAL_TIME = re.compile(CANONICAL_TIME)


def canonical_time(value: str) -> str:
    """``value`` written as :data:`CANONICAL_TIME` (raises ValueError when it is not a time)."""
    if _CANONICAL_TIME.fullmatch(value):
        return value
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"not an ISO 8601 time: {value!r}")
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")


def update_metadata_lazily(
    cur: Any,
    settings: Settings,
    timestamps: dict[str, str],
    summaries: dict[str, dict[str, Any]],
    passed: dict[str, Any] | None = None,
) -> int:
    """Merge ``last_integrity_check`` into the metadata of each backup of ``timestamps``.

    A backup of ``summaries`` gets that summary; any other gets ``passed`` with its own
    check time. Each UPDATE merges into the JSON in place (``||``), so other keys, and
    other writers of other keys, are never lost. A later check already recorded (e.g.
    by a newer concurrent run) is kept: the caller holds the verifier's advisory lock,
    so comparing first is race-free. The database compares the check times this
    package wrote (as text, one statement for all); a time in any other format is
    compared as a time here. Only the failed backups' summaries cross the wire.
    """
    if not timestamps:
        return 0
    t = table(settings.backups_table)
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS stage_last_integrity_check "
        "(id uuid, checked_at text, summary jsonb) ON COMMIT DROP"
    )
    cur.execute("TRUNCATE stage_last_integrity_check")
    rows = []
    for backup_id, checked_at in timestamps.items():
        summary = summaries.get(backup_id)
        if summary is None and passed is None:
            raise ValueError(f"no last_integrity_check for backup {backup_id}")
        checked_at = canonical_time(checked_at)
        rows.append(
            (
                backup_id,
                checked_at,
                None if summary is None else json.dumps({**summary, "timestamp": checked_at}),
            )
        )
    copy_rows(cur, "stage_last_integrity_check", ["id", "checked_at", "summary"], rows)
    warn_metadata_not_an_object(cur, t)
    current = sql.SQL("(b.metadata -> 'last_integrity_check' ->> 'timestamp')")
    # Only an object (or null) is merged into: ``||`` would append to an array or a scalar.
    merge = sql.SQL(
        "UPDATE {t} AS b SET metadata = (CASE WHEN jsonb_typeof(b.metadata) = 'object' THEN b.metadata "
        "ELSE '{{}}'::jsonb END) || jsonb_build_object("
        "'last_integrity_check', COALESCE(s.summary, jsonb_build_object('timestamp', s.checked_at) "
        "|| %s::jsonb)) FROM stage_last_integrity_check s WHERE b.id = s.id "
        "AND COALESCE(jsonb_typeof(b.metadata), 'null') IN ('object', 'null') AND "
    ).format(t=t)
    passed_fields = json.dumps({k: v for k, v in (passed or {}).items() if k != "timestamp"})
    cur.execute(
        merge + sql.SQL("({c} IS NULL OR ({c} ~ %s AND {c} <= s.checked_at))").format(c=current),
        [passed_fields, f"^{CANONICAL_TIME}$"],
    )
    updated = max(cur.rowcount, 0)
    cur.execute(
        sql.SQL(
            "SELECT s.id::text, s.checked_at, {c} FROM stage_last_integrity_check s JOIN {t} AS b "
            "ON b.id = s.id WHERE {c} !~ %s"
        ).format(c=current, t=t),
        [f"^{CANONICAL_TIME}$"],
    )
    other_format = [
        backup_id
        for backup_id, checked_at, previous in cur.fetchall()
        if (parse_timestamp(previous) or datetime.min.replace(tzinfo=UTC)) <= parse_timestamp(checked_at)
    ]
    if other_format:
        cur.execute(merge + sql.SQL("s.id = ANY(%s::uuid[])"), [passed_fields, other_format])
        updated += max(cur.rowcount, 0)
    return updated


#: Backups named one by one in the warning about metadata that is not an object (all are counted).
MAX_NAMED_IN_WARNING = 20


def warn_metadata_not_an_object(cur: Any, backups: sql.Composable) -> list[str]:
    """Log the staged backups whose ``metadata`` is not a JSON object: they are left unchanged.

    Their checks, results and alerts are recorded as for any other backup; only
    ``last_integrity_check`` has nowhere to go.
    """
    cur.execute(
        sql.SQL(
            "SELECT b.id::text, jsonb_typeof(b.metadata) FROM stage_last_integrity_check s "
            "JOIN {t} AS b ON b.id = s.id WHERE jsonb_typeof(b.metadata) NOT IN ('object', 'null') "
            "ORDER BY b.id"
        ).format(t=backups)
    )
    rows = cur.fetchall()
    for backup_id, kind in rows[:MAX_NAMED_IN_WARNING]:
        log.warning(
            "backup %s: metadata is a JSON %s, not an object; left unchanged (no last_integrity_check "
            "written; its checks and alerts are recorded as usual)",
            backup_id,
            kind,
        )
    if len(rows) > MAX_NAMED_IN_WARNING:
        log.warning(
            "%d more backup(s) whose metadata is not a JSON object were left unchanged",
            len(rows) - MAX_NAMED_IN_WARNING,
        )
    return [backup_id for backup_id, _ in rows]


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
    """Keep every check's outcome, once per (run, backup, backend).

    The first attempt at these checks (the usual case) COPYs them straight in, about
    half the database's work of an upsert through a staging table. A retried task,
    or a cleared one racing its earlier attempt, finds some recorded already: the
    COPY is undone to its savepoint and the rows are upserted instead.
    """
    rows = [result_row(run_id, r) for r in results]
    if not rows:
        return
    cur.execute("SAVEPOINT record_results")
    try:
        copy_rows(cur, "backup_integrity_result", RESULT_COLUMNS, rows)
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        cur.execute("ROLLBACK TO SAVEPOINT record_results")
        bulk_upsert(
            cur,
            "backup_integrity_result",
            RESULT_COLUMNS,
            rows,
            "run_id, backup_id, backend",
            ", ".join(f"{c} = EXCLUDED.{c}" for c in RESULT_COLUMNS[3:]),
        )
    cur.execute("RELEASE SAVEPOINT record_results")


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
