"""The run's deadlines for asking stores, wired to the catalog that shares them between tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog import deadlines as shared
from include.backup_integrity.catalog.connection import connect_catalog
from include.backup_integrity.domain.deadlines import chunk_deadline
from include.backup_integrity.stores.deadline import StoreDeadline

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import timedelta

    from include.backup_integrity.config.settings import Settings


def store_deadline(
    conn: Any,
    settings: Settings,
    run_id: str | None,
    backend: str,
    *,
    task_deadline: float | None = None,
) -> StoreDeadline:
    """``backend``'s deadline in this task: the run's first timeout so far, shared from now on.

    ``conn`` is only read here, before any store is asked; a timeout is shared later on
    a connection of its own. Without a ``run_id`` (a script) the clock is this task's own.
    """
    first = None
    share = None
    if run_id is not None:
        with conn.cursor() as cur:
            first = shared.first_timeout_at(cur, run_id, backend)
        conn.commit()
        share = shared.sharer(lambda: connect_catalog(settings), run_id, backend)
    return StoreDeadline(
        backend,
        settings.store_deadline_seconds,
        task_deadline=task_deadline,
        first_timeout_at=first,
        share=share,
    )


def chunk_store_deadline(
    conn: Any,
    settings: Settings,
    run_id: str,
    backend: str,
    *,
    started_at: float,
    execution_timeout: timedelta | None,
) -> StoreDeadline:
    """A chunk's deadline: a few minutes before its task's ``execution_timeout``, and the store's."""
    seconds = execution_timeout.total_seconds() if execution_timeout is not None else None
    return store_deadline(conn, settings, run_id, backend, task_deadline=chunk_deadline(started_at, seconds))


def preflight_deadlines(
    conn: Any, settings: Settings, run_id: str | None, backends: Iterable[str]
) -> dict[str, StoreDeadline]:
    """The S3 backends' deadlines for the bucket checks of ``select_backups``, on fresh clocks.

    The run starts here: whatever an earlier attempt of the same run recorded (a cleared
    run) is forgotten, so the stores are asked again as in a new run.
    """
    if run_id is not None:
        with conn.cursor() as cur:
            shared.forget_run(cur, run_id)
        conn.commit()
    return {
        b: store_deadline(conn, settings, run_id, b)
        for b in sorted(set(backends))
        if not settings.store(b).is_local
    }
