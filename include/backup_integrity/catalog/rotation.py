"""This run's slice of the rotating re-hash, computed once in SQL over the run's scope.

The order and the budget are :mod:`include.backup_integrity.domain.rotation`'s;
here PostgreSQL sums the sizes in that order and returns, per backend, the last
object of the slice (the cutoff each chunk compares against).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.scope import scope_cte
from include.backup_integrity.domain.rotation import RotationPlan, derived_budget

if TYPE_CHECKING:
    from datetime import datetime

    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.records import Scope


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
        column = sql.Identifier(settings.store(backend).path_column)
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
