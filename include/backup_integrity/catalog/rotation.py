"""The rotating full re-hash: every object read byte for byte at least once per period.

Each ``rolling`` run reads a slice of the objects in scope, oldest-read first
(never-read objects before all others), up to a byte budget. The slice is
computed once per run in SQL and handed to each chunk as a cutoff in that
order, so chunks agree on it without passing object lists around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.scope import scope_cte
from include.backup_integrity.domain.checks import PATH_COLUMNS

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.records import Scope

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


def plan_rotation(
    conn: Any,
    settings: Settings,
    scope: Scope,
    routes: dict[str, list[str]],
    now: datetime,
) -> RotationPlan:
    """This run's slice: per backend, the last object (in rotation order) to read."""
    plan = RotationPlan()
    if not routes:
        return plan
    cte, params = scope_cte(settings, scope)
    parts: list[sql.Composable] = []
    values: list[Any] = []
    for backend, types in routes.items():
        column = sql.Identifier(PATH_COLUMNS[backend])
        parts.append(
            sql.SQL(
                "SELECT s.id, %s::text AS backend, GREATEST(COALESCE(s.size_bytes, 0), 0) AS size, "
                "o.last_read_at FROM scope s LEFT JOIN backup_integrity_object o "
                "ON o.backup_id = s.id::uuid AND o.backend = %s "
                "WHERE s.backup_type = ANY(%s) AND s.{c} IS NOT NULL AND btrim(s.{c}) <> ''"
            ).format(c=column)
        )
        values += [backend, backend, types]
    objects = sql.SQL(" UNION ALL ").join(parts)
    period_start = now - timedelta(days=settings.rehash_period_days)
    query = cte + sql.SQL(
        ", objects AS ({objects}) "
        "SELECT count(*), COALESCE(sum(size), 0), "
        "count(*) FILTER (WHERE last_read_at IS NULL OR last_read_at < %s), min(last_read_at) "
        "FROM objects"
    ).format(objects=objects)
    with conn.cursor() as cur:
        cur.execute(query, [*params, *values, period_start])
        total_objects, total_bytes, stale, oldest = cur.fetchone()
    plan.total_objects, plan.total_bytes, plan.stale_objects = (
        int(total_objects),
        int(total_bytes),
        int(stale),
    )
    plan.oldest_read_at = oldest.isoformat() if oldest else None
    if settings.rehash_period_days == 0 or not total_objects:
        return plan
    plan.budget_bytes = settings.rehash_budget_bytes or derived_budget(
        plan.total_bytes, settings.rehash_period_days
    )
    # Running total in rotation order; a row is in the slice while the bytes before it fit
    # the budget, so each run reads at least one object, however large.
    slice_query = cte + sql.SQL(
        ", objects AS ({objects}), ordered AS ("
        " SELECT backend, id, size, last_read_at, sum(size) OVER ("
        '  ORDER BY last_read_at ASC NULLS FIRST, id COLLATE "C", backend ROWS UNBOUNDED PRECEDING)'
        " AS running "
        " FROM objects) "
        "SELECT DISTINCT ON (backend) backend, last_read_at, id, "
        " (SELECT count(*) FROM ordered i WHERE i.running - i.size < %s), "
        " (SELECT COALESCE(sum(size), 0) FROM ordered i WHERE i.running - i.size < %s) "
        "FROM ordered WHERE running - size < %s "
        'ORDER BY backend, last_read_at DESC NULLS LAST, id COLLATE "C" DESC'
    ).format(objects=objects)
    budget = plan.budget_bytes
    with conn.cursor() as cur:
        cur.execute(slice_query, [*params, *values, budget, budget, budget])
        for backend, last_read_at, backup_id, count, size in cur.fetchall():
            plan.cutoffs[backend] = [last_read_at.isoformat() if last_read_at else None, backup_id]
            plan.slice_objects, plan.slice_bytes = int(count), int(size)
    return plan
