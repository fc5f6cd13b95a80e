"""Pruning the verifier's history older than ``retention_days``, in bounded batches.

Each run prunes after its alert transaction, a batch per transaction (so no
lock is held for long and the application's writes are never queued behind a
large delete), and stops when its time budget is spent: what is left waits for
the next run. Never pruned: open alerts (the application's table is not
touched), per-object state, the newest result of each copy (it describes the
copy's current state), undelivered notices still being retried, the restore
drills' history and runs (``backup_integrity_restore`` and ``_restore_run``: a few
rows a day, and the earliest run is the start of ``restore_overdue``'s clock), and
anything in the stores (kept bad copies included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.handover import forget_recorded_runs
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.domain.alerts import ALERT_TYPE, OPEN_STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable

#: Rows one DELETE removes at most (one short transaction each).
PRUNE_BATCH_ROWS = 5000
#: Seconds a run spends pruning at most; the rest is left to the next run.
PRUNE_BUDGET_SECONDS = 120.0


@dataclass
class PruneReport:
    """Rows removed per table, and whether the budget ran out before everything old was gone."""

    pruned: dict[str, int] = field(default_factory=dict)
    complete: bool = True

    @property
    def total(self) -> int:
        return sum(self.pruned.values())


def prune_statements(alerts_table: str) -> list[tuple[str, sql.Composable]]:
    """(table, one batch's DELETE) per kind of history; each takes the cutoff and the batch size."""
    open_alert = sql.SQL(
        "SELECT 1 FROM {alerts} a WHERE a.id = o.alert_id AND a.alert_type = {type} AND a.status IN ({open})"
    ).format(
        alerts=table(alerts_table),
        type=sql.Literal(ALERT_TYPE),
        open=sql.SQL(", ").join(sql.Literal(s) for s in OPEN_STATUSES),
    )
    batch = "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} o WHERE {where} LIMIT %s))"

    def delete(name: str, where: sql.Composable) -> tuple[str, sql.Composable]:
        return name, sql.SQL(batch).format(t=sql.Identifier(name), where=where)

    return [
        delete(
            "backup_integrity_result",
            sql.SQL(
                "o.checked_at < %s AND EXISTS (SELECT 1 FROM backup_integrity_result n "
                "WHERE n.backup_id = o.backup_id AND n.backend = o.backend AND n.checked_at > o.checked_at)"
            ),
        ),
        delete("backup_integrity_run", sql.SQL("o.recorded_at < %s")),
        delete(
            "backup_integrity_notification",
            sql.SQL("o.created_at < %s AND (o.sent_at IS NOT NULL OR o.expired_at IS NOT NULL)"),
        ),
        delete(
            "backup_integrity_alert_occurrence",
            sql.SQL("o.checked_at < %s AND NOT EXISTS ({open_alert})").format(open_alert=open_alert),
        ),
        delete("backup_integrity_repair", sql.SQL("o.recorded_at < %s")),
        delete("backup_integrity_store_deadline", sql.SQL("o.first_timeout_at < %s")),
    ]


def prune_history(
    conn: Any,
    alerts_table: str,
    retention_days: int,
    run_id: str,
    *,
    now: datetime | None = None,
    batch_rows: int = PRUNE_BATCH_ROWS,
    budget_seconds: float = PRUNE_BUDGET_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> PruneReport:
    """Delete history older than ``retention_days``, ``batch_rows`` at a time, within ``budget_seconds``.

    Also removes the failures earlier runs handed over between their tasks once
    those runs are recorded (or older than the cutoff). Each batch commits by itself.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    deadline = clock() + budget_seconds
    report = PruneReport()
    with conn.cursor() as cur:
        handed_over = forget_recorded_runs(cur, run_id, cutoff)
    conn.commit()
    if handed_over:
        report.pruned["backup_integrity_chunk_failure"] = handed_over
    for name, statement in prune_statements(alerts_table):
        while True:
            if clock() >= deadline:
                report.complete = False
                return report
            with conn.cursor() as cur:
                cur.execute(statement, [cutoff, batch_rows])
                deleted = cur.rowcount or 0
            conn.commit()
            if deleted:
                report.pruned[name] = report.pruned.get(name, 0) + deleted
            if deleted < batch_rows:
                break
    return report
