"""The application's backups table: reading the backups to check, and writing each one's last check back.

Functions take an open DB-API connection so that they can be used from a task, a
script or a test alike; table names come from the validated settings and are
always quoted as identifiers. (The verifier's own tables are the migrations' work: :mod:`.schema`.)
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import copy_rows, sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.domain.records import PASSED, BackupRecord, CheckResult
from include.backup_integrity.domain.timestamps import CANONICAL_TIME, canonical_time, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.config.settings import Settings

log = logging.getLogger(__name__)

#: The columns every catalog row is read with, before the stores' path columns.
FIXED_COLUMNS = "id::text, backup_type, filename, size_bytes, checksum, status, created_at"
STATUS_INDEX = 5


def path_columns(settings: Settings) -> list[str]:
    """The configured stores' path columns, each once, in the stores' order."""
    return list(dict.fromkeys(store.path_column for store in settings.store_specs))


def columns(settings: Settings) -> sql.Composable:
    """What a catalog row is read as: the fixed columns, then the stores' path columns."""
    paths = [sql.Identifier(c) for c in path_columns(settings)]
    return sql.SQL(", ").join([sql.SQL(FIXED_COLUMNS), *paths])


def record_of(row: tuple[Any, ...], settings: Settings) -> BackupRecord:
    """A row read with :func:`columns` as a record, with each store's recorded path."""
    created_at = row[6]
    at = {column: row[7 + index] for index, column in enumerate(path_columns(settings))}
    return BackupRecord(
        id=row[0],
        backup_type=row[1],
        filename=row[2],
        size_bytes=row[3],
        checksum=row[4],
        paths={store.name: at[store.path_column] for store in settings.store_specs},
        created_at=created_at.isoformat() if isinstance(created_at, datetime) else str(created_at),
    )


def missing_path_columns(conn: Any, settings: Settings) -> list[tuple[str, str]]:
    """(store, path_column) of every configured store whose column the backups table lacks."""
    schema, _, name = settings.backups_table.rpartition(".")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = COALESCE(NULLIF(%s, ''), current_schema())",
            [name, schema],
        )
        present = {row[0] for row in cur.fetchall()}
    if not present:  # the table itself is missing: reported where it is read
        return []
    return [(s.name, s.path_column) for s in settings.store_specs if s.path_column not in present]


def window_for(end: datetime, lookback_days: int) -> tuple[datetime, datetime]:
    return end - timedelta(days=lookback_days), end


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
    ).format(cols=columns(settings), table=table(settings.backups_table))
    with conn.cursor() as cur:
        cur.execute(query, [list(requested)])
        rows = cur.fetchall()
    found = {row[0]: row for row in rows}
    for normalised, raw in requested.items():
        row = found.get(normalised)
        if row is None or row[STATUS_INDEX] != "COMPLETED":
            skipped.append(raw)
    records = [record_of(row, settings) for row in rows if row[STATUS_INDEX] == "COMPLETED"]
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
