"""The repair record: one ``backup_integrity_repair`` row per (run, backup, backend).

``repair_copies`` writes each copy's outcome as soon as it is known, so a later
try of the same run finds what an earlier one already proved (:func:`load_recorded`)
and does not copy it again; ``raise_alerts`` adds a row for every bad copy the
repair task never reached, without overwriting what it did record.
"""

from __future__ import annotations

import os
from datetime import UTC
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.repair import RepairOutcome

_COLUMNS = "run_id, backup_id, backend, kind, status, source_backend, sha256, reason, error, repaired_at"
_VALUES = "VALUES (%s, %s::uuid, %s, %s, %s, %s, %s, %s, %s, %s)"


def _rows(run_id: str, outcomes: Iterable[RepairOutcome]) -> list[tuple[Any, ...]]:
    return [
        (
            run_id,
            o["backup_id"],
            o["backend"],
            o["kind"],
            o["status"],
            o["source_backend"],
            o["sha256"],
            o["reason"],
            o["error"],
            o["repaired_at"],
        )
        for o in outcomes
    ]


def record_repairs(cur: Any, run_id: str, outcomes: Iterable[RepairOutcome]) -> None:
    """Keep what each repair did, once per (run, backup, backend); a later try's outcome wins."""
    rows = _rows(run_id, outcomes)
    if rows:
        cur.executemany(
            f"INSERT INTO backup_integrity_repair ({_COLUMNS}) {_VALUES} "
            "ON CONFLICT (run_id, backup_id, backend) DO UPDATE SET kind = EXCLUDED.kind, "
            "status = EXCLUDED.status, source_backend = EXCLUDED.source_backend, "
            "sha256 = EXCLUDED.sha256, reason = EXCLUDED.reason, error = EXCLUDED.error, "
            "repaired_at = EXCLUDED.repaired_at",
            rows,
        )


def record_unrecorded(cur: Any, run_id: str, outcomes: Iterable[RepairOutcome]) -> None:
    """Add the outcomes that have no row yet; a row the repair task wrote is left as it is."""
    rows = _rows(run_id, outcomes)
    if rows:
        cur.executemany(
            f"INSERT INTO backup_integrity_repair ({_COLUMNS}) {_VALUES} "
            "ON CONFLICT (run_id, backup_id, backend) DO NOTHING",
            rows,
        )


def load_recorded(cur: Any, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """What earlier tries of this run recorded, by (backup_id, backend)."""
    cur.execute(
        "SELECT backup_id::text, backend, kind, status, source_backend, sha256, reason, error, "
        "repaired_at FROM backup_integrity_repair WHERE run_id = %s",
        [run_id],
    )
    recorded: dict[tuple[str, str], dict[str, Any]] = {}
    for backup_id, backend, kind, status, source, sha256, reason, error, repaired_at in cur.fetchall():
        recorded[(backup_id, backend)] = {
            "kind": kind,
            "status": status,
            "source_backend": source,
            "sha256": sha256,
            "reason": reason,
            "error": error,
            "repaired_at": (
                repaired_at.astimezone(UTC).isoformat(timespec="microseconds") if repaired_at else None
            ),
        }
    return recorded


def load_refused(cur: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's refused repairs as outcomes (a refusal writes nothing, so it has no paths to keep)."""
    cur.execute(
        "SELECT backup_id::text, backend, kind, source_backend, reason, status, sha256, error "
        "FROM backup_integrity_repair WHERE run_id = %s AND status = 'refused' "
        "ORDER BY recorded_at, backup_id, backend",
        [run_id],
    )
    names = ("backup_id", "backend", "kind", "source_backend", "reason", "status", "sha256", "error")
    return [
        {**dict(zip(names, row, strict=True)), "path": None, "source_path": None, "repaired_at": None}
        for row in cur.fetchall()
    ]


def shared_targets(
    conn: Any, settings: Settings, targets: Iterable[tuple[str, str, str]]
) -> set[tuple[str, str]]:
    """The (backup_id, backend) targets whose location another catalog row (any status) records too.

    ``targets`` are (backup_id, backend, path) with the catalog's own path. S3 keys are
    compared exactly; local paths after :func:`os.path.normpath` (the SQL narrows the
    candidates to rows whose path ends with the same file name).
    """
    shared: set[tuple[str, str]] = set()
    with conn.cursor() as cur:
        for backup_id, backend, path in targets:
            store = settings.store(backend)
            column = sql.Identifier(store.path_column)
            if store.is_local:
                wanted = os.path.normpath(path)
                name = os.path.basename(wanted)
                query = sql.SQL(
                    "SELECT {c} FROM {t} WHERE id::text <> %s AND {c} IS NOT NULL AND right({c}, %s) = %s"
                ).format(c=column, t=table(settings.backups_table))
                cur.execute(query, [backup_id, len(name), name])
                if any(os.path.normpath(other) == wanted for (other,) in cur.fetchall()):
                    shared.add((backup_id, backend))
            else:
                query = sql.SQL("SELECT 1 FROM {t} WHERE id::text <> %s AND {c} = %s LIMIT 1").format(
                    c=column, t=table(settings.backups_table)
                )
                cur.execute(query, [backup_id, path])
                if cur.fetchone():
                    shared.add((backup_id, backend))
    return shared
