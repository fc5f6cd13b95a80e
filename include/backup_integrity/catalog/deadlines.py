"""The first timeout of each store in a run, shared by the run's chunks through the catalog.

A store that stops answering may cost a run ``store_deadline_seconds`` from its
first timeout, whichever chunk saw it: chunks run in separate processes (and
retries later), so the moment is kept in ``backup_integrity_store_deadline``, one
row per run and backend that timed out, the earliest kept. ``select_backups`` forgets
the run's rows, so a cleared run starts with fresh clocks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import transaction

if TYPE_CHECKING:
    from collections.abc import Callable

STORE_DEADLINE_TABLE = "backup_integrity_store_deadline"

#: The table as revision ``0003_store_deadlines`` creates it (``catalog/migrations/versions/``).
STORE_DEADLINE_DDL = """
CREATE TABLE IF NOT EXISTS backup_integrity_store_deadline (
    run_id text NOT NULL,
    backend text NOT NULL,
    first_timeout_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, backend)
)
"""


def first_timeout_at(cur: Any, run_id: str, backend: str) -> float | None:
    """When ``backend`` first timed out in ``run_id`` (seconds since the epoch), if it has."""
    cur.execute(
        "SELECT first_timeout_at FROM backup_integrity_store_deadline WHERE run_id = %s AND backend = %s",
        [run_id, backend],
    )
    row = cur.fetchone()
    return row[0].timestamp() if row else None


def forget_run(cur: Any, run_id: str) -> None:
    """Start the run's clocks afresh (a cleared run is asked again as a new one)."""
    cur.execute("DELETE FROM backup_integrity_store_deadline WHERE run_id = %s", [run_id])


def record_timeout(cur: Any, run_id: str, backend: str, at: float) -> float:
    """Record a timeout of ``backend`` at ``at``; return the run's earliest (which the deadline runs from)."""
    cur.execute(
        "INSERT INTO backup_integrity_store_deadline (run_id, backend, first_timeout_at) "
        "VALUES (%s, %s, %s) ON CONFLICT (run_id, backend) DO UPDATE SET first_timeout_at = "
        "LEAST(backup_integrity_store_deadline.first_timeout_at, EXCLUDED.first_timeout_at) "
        "RETURNING first_timeout_at",
        [run_id, backend, datetime.fromtimestamp(at, UTC)],
    )
    return cur.fetchone()[0].timestamp()


def sharer(connect: Callable[[], Any], run_id: str, backend: str) -> Callable[[float], float]:
    """``share`` for a :class:`~include.backup_integrity.stores.deadline.StoreDeadline`: a short
    transaction on a connection of its own, opened only when the store first times out."""

    def share(at: float) -> float:
        conn = connect()
        try:
            with transaction(conn) as cur:
                return record_timeout(cur, run_id, backend, at)
        finally:
            conn.close()

    return share
