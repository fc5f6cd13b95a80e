"""The repair record: one ``backup_integrity_repair`` row per (run, backup, backend).

``repair_copies`` writes each copy's outcome as soon as it is known, so a later
try of the same run finds what an earlier one already proved (:func:`load_recorded`)
and does not copy it again; ``raise_alerts`` adds a row for every bad copy the
repair task never reached, without overwriting what it did record.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

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
