"""The run's scope in the catalog, queried in SQL so that no task holds the whole catalog.

``select_backups`` sizes the chunks from counts and key boundaries computed by
PostgreSQL; each mapped chunk then reads only its own rows. Paths are compared
in byte order (``COLLATE "C"``), the order in which S3 lists keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.backups import columns, record_of
from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.records import BackupRecord, Chunk, Scope


def window_scope(start: datetime, end: datetime, limit: int | None) -> Scope:
    return {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "limit": limit,
        "backup_ids": [],
    }


def ids_scope(backup_ids: Iterable[str]) -> Scope:
    return {"window_start": None, "window_end": None, "limit": None, "backup_ids": list(backup_ids)}


def scope_cte(settings: Settings, scope: Scope) -> tuple[sql.Composable, list[Any]]:
    """``WITH scope AS (…)``: the COMPLETED rows the run covers, with its parameters."""
    t = table(settings.backups_table)
    cols = columns(settings)
    if scope["backup_ids"]:
        body = sql.SQL("SELECT {cols} FROM {t} WHERE status = 'COMPLETED' AND id = ANY(%s::uuid[])").format(
            cols=cols, t=t
        )
        return sql.SQL("WITH scope AS ({body}) ").format(body=body), [list(scope["backup_ids"])]
    where = "WHERE status = 'COMPLETED' AND created_at >= %s AND created_at < %s"
    params = [scope["window_start"], scope["window_end"]]
    if scope["limit"] is None:
        # No newest-first cut: no sort of the whole window (each chunk evaluates this again).
        body = sql.SQL("SELECT {cols} FROM {t} " + where).format(cols=cols, t=t)
    else:
        body = sql.SQL("SELECT {cols} FROM {t} " + where + " ORDER BY created_at DESC, id LIMIT %s").format(
            cols=cols, t=t
        )
        params.append(scope["limit"])
    return sql.SQL("WITH scope AS ({body}) ").format(body=body), params


def count_scope(conn: Any, settings: Settings, scope: Scope) -> int:
    cte, params = scope_cte(settings, scope)
    with conn.cursor() as cur:
        cur.execute(cte + sql.SQL("SELECT count(*) FROM scope"), params)
        return int(cur.fetchone()[0])


def unroutable_records(conn: Any, settings: Settings, scope: Scope) -> list[BackupRecord]:
    """Rows whose backup_type no backend is expected for (each becomes an invalid_record)."""
    cte, params = scope_cte(settings, scope)
    query = cte + sql.SQL(
        "SELECT * FROM scope WHERE NOT (backup_type = ANY(%s)) ORDER BY created_at DESC, id"
    )
    with conn.cursor() as cur:
        cur.execute(query, [*params, sorted(settings.expected_backends)])
        return [record_of(row, settings) for row in cur.fetchall()]


def key_ranges(
    conn: Any, settings: Settings, scope: Scope, backend: str, types: list[str], parts: int
) -> tuple[list[tuple[str, str, int]], int]:
    """Split the backend's recorded paths into ``parts`` ranges of about equal count.

    Returns the first path, last path and row count of each range (in byte
    order), and the number of rows with no recorded path.
    """
    column = sql.Identifier(settings.store(backend).path_column)
    cte, params = scope_cte(settings, scope)
    query = cte + sql.SQL(
        "SELECT part, min(path), max(path), count(*) FROM ("
        ' SELECT {c} COLLATE "C" AS path, ntile(%s) OVER (ORDER BY {c} COLLATE "C") AS part'
        " FROM scope WHERE backup_type = ANY(%s) AND {c} IS NOT NULL AND btrim({c}) <> ''"
        ") ranked GROUP BY part ORDER BY part"
    ).format(c=column)
    unrecorded = cte + sql.SQL(
        "SELECT count(*) FROM scope WHERE backup_type = ANY(%s) AND ({c} IS NULL OR btrim({c}) = '')"
    ).format(c=column)
    with conn.cursor() as cur:
        cur.execute(query, [*params, max(parts, 1), types])
        ranges = [(row[1], row[2], int(row[3])) for row in cur.fetchall()]
        cur.execute(unrecorded, [*params, types])
        missing_paths = int(cur.fetchone()[0])
    return ranges, missing_paths


def chunk_records(conn: Any, settings: Settings, chunk: Chunk) -> list[BackupRecord]:
    """The chunk's own rows: its backend's types, paths in its range (and unrecorded ones)."""
    column = sql.Identifier(settings.store(chunk["backend"]).path_column)
    cte, params = scope_cte(settings, chunk["scope"])
    conditions = [sql.SQL("backup_type = ANY(%s)")]
    values: list[Any] = [chunk["types"]]
    in_range = [sql.SQL("{c} IS NOT NULL AND btrim({c}) <> ''").format(c=column)]
    if chunk["after_path"] is not None:
        in_range.append(sql.SQL('{c} COLLATE "C" > %s').format(c=column))
        values.append(chunk["after_path"])
    if chunk["through_path"] is not None:
        in_range.append(sql.SQL('{c} COLLATE "C" <= %s').format(c=column))
        values.append(chunk["through_path"])
    where = sql.SQL("({})").format(sql.SQL(" AND ").join(in_range))
    if chunk["unrecorded"]:
        where = sql.SQL("({} OR {c} IS NULL OR btrim({c}) = '')").format(where, c=column)
    conditions.append(where)
    query = cte + sql.SQL('SELECT * FROM scope WHERE {} ORDER BY {c} COLLATE "C", id').format(
        sql.SQL(" AND ").join(conditions), c=column
    )
    with conn.cursor() as cur:
        cur.execute(query, [*params, *values])
        return [record_of(row, settings) for row in cur.fetchall()]


def routed_counts(conn: Any, settings: Settings, scope: Scope, route: dict[str, list[str]]) -> dict[str, int]:
    """Rows of the scope expected on each backend (recorded path or not)."""
    cte, params = scope_cte(settings, scope)
    counts: dict[str, int] = {}
    with conn.cursor() as cur:
        for backend, types in route.items():
            cur.execute(
                cte + sql.SQL("SELECT count(*) FROM scope WHERE backup_type = ANY(%s)"), [*params, types]
            )
            counts[backend] = int(cur.fetchone()[0])
    return counts
