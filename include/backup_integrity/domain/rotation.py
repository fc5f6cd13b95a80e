"""The rotating full re-hash's order and budget: every object read byte for byte at least once per period.

Each ``rolling`` run reads a slice of the objects in scope, oldest-read first
(never-read objects before all others), up to a byte budget. The catalog computes
the slice once per run (:mod:`include.backup_integrity.catalog.rotation`) and hands
each chunk a cutoff in this order, so chunks agree on it without passing object
lists around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

HOURS_PER_DAY = 24


def derived_budget(total_bytes: int, period_days: int) -> int:
    """Bytes per hourly run so that ``total_bytes`` are read once per period."""
    hours = max(period_days * HOURS_PER_DAY, 1)
    return max(-(-total_bytes // hours), 1)


def sort_key(last_read_at: datetime | None, backup_id: str) -> tuple[int, datetime, str]:
    """The rotation's order: never read first, then oldest read, then by id."""
    if last_read_at is None:
        return (0, datetime.min.replace(tzinfo=UTC), backup_id)
    return (1, last_read_at, backup_id)


def cutoff_key(cutoff: list[str | None]) -> tuple[int, datetime, str]:
    read_at, backup_id = cutoff
    return sort_key(datetime.fromisoformat(read_at) if read_at else None, backup_id or "")


def is_due(last_read_at: datetime | None, backup_id: str, cutoff: list[str | None] | None) -> bool:
    """Whether this object is in this run's slice of the rotation."""
    if cutoff is None:
        return False
    return sort_key(last_read_at, backup_id) <= cutoff_key(cutoff)


@dataclass
class RotationPlan:
    budget_bytes: int = 0
    total_bytes: int = 0
    total_objects: int = 0
    slice_bytes: int = 0
    slice_objects: int = 0
    stale_objects: int = 0
    oldest_read_at: str | None = None
    cutoffs: dict[str, list[str | None]] = field(default_factory=dict)

    def statistics(self) -> dict[str, Any]:
        return {
            "rehash_budget_bytes": self.budget_bytes,
            "rehash_planned_objects": self.slice_objects,
            "rehash_planned_bytes": self.slice_bytes,
            "objects_in_scope": self.total_objects,
            "bytes_in_scope": self.total_bytes,
            "objects_not_read_within_period": self.stale_objects,
            "oldest_full_read_at": self.oldest_read_at,
        }
