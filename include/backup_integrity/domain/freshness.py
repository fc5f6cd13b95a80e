"""Freshness: is the backup job still producing backups of each type?

A catalog that stops growing keeps every integrity check green: the verifier would
prove yesterday's backups forever. Each window run judges, per type with a limit,
the newest COMPLETED backup against the run's window end. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

#: A run whose window ended longer than this before it started is a backfill: it judges no freshness.
BACKFILL_AFTER = timedelta(hours=2)


def is_backfill(window_end: datetime, started_at: datetime) -> bool:
    """Whether a run verifies a window that ended more than two hours before it started."""
    return started_at - window_end > BACKFILL_AFTER


@dataclass(frozen=True)
class NewestOfType:
    """The newest COMPLETED backup of a type up to the window end, and the FAILED rows after it."""

    backup_type: str
    newest_created_at: datetime | None
    newer_failed: int


@dataclass(frozen=True)
class FreshnessVerdict:
    backup_type: str
    stale: bool
    newest_created_at: str | None
    max_age_hours: float
    newer_failed: int
    as_of: str


def judge_freshness(newest: NewestOfType, max_age_hours: float, as_of: datetime) -> FreshnessVerdict:
    """Stale when there is no COMPLETED backup of the type, or the newest is older than the limit."""
    created = newest.newest_created_at
    stale = created is None or as_of - created > timedelta(hours=max_age_hours)
    return FreshnessVerdict(
        backup_type=newest.backup_type,
        stale=stale,
        newest_created_at=created.isoformat() if created else None,
        max_age_hours=max_age_hours,
        newer_failed=newest.newer_failed,
        as_of=as_of.isoformat(),
    )
