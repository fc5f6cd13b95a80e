"""The verifier's own record of each run: every check's outcome and the run's statistics.

``backup_integrity_result`` keeps one row per (run, backup, backend), written once
per run however often its task is retried; ``backup_integrity_run`` keeps the
statistics ``aggregate_results`` returned.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import bulk_upsert, copy_rows, is_unique_violation

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import CheckResult

RESULT_COLUMNS = [
    "run_id",
    "backup_id",
    "backend",
    "kind",
    "mode",
    "evidence",
    "path",
    "message",
    "expected",
    "actual",
    "checked_at",
]


def result_row(run_id: str, r: CheckResult) -> tuple[Any, ...]:
    """A check as a ``backup_integrity_result`` row, in :data:`RESULT_COLUMNS` order."""
    return (
        run_id,
        r["backup_id"],
        r["backend"] or "",
        r["kind"],
        r["mode"],
        r["evidence"],
        r["path"],
        r["message"],
        json.dumps(r["expected"]),
        json.dumps(r["actual"]) if r["actual"] is not None else None,
        r["checked_at"],
    )


def record_results(cur: Any, run_id: str, results: Iterable[CheckResult]) -> None:
    """Keep every check's outcome, once per (run, backup, backend).

    The first attempt at these checks (the usual case) COPYs them straight in, about
    half the database's work of an upsert through a staging table. A retried task,
    or a cleared one racing its earlier attempt, finds some recorded already: the
    COPY is undone to its savepoint and the rows are upserted instead.
    """
    rows = [result_row(run_id, r) for r in results]
    if not rows:
        return
    cur.execute("SAVEPOINT record_results")
    try:
        copy_rows(cur, "backup_integrity_result", RESULT_COLUMNS, rows)
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        cur.execute("ROLLBACK TO SAVEPOINT record_results")
        bulk_upsert(
            cur,
            "backup_integrity_result",
            RESULT_COLUMNS,
            rows,
            "run_id, backup_id, backend",
            ", ".join(f"{c} = EXCLUDED.{c}" for c in RESULT_COLUMNS[3:]),
        )
    cur.execute("RELEASE SAVEPOINT record_results")


def record_run(cur: Any, run_id: str, dag_id: str, statistics: dict[str, Any]) -> None:
    cur.execute(
        "INSERT INTO backup_integrity_run (run_id, dag_id, mode, window_start, window_end, statistics) "
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (run_id) DO UPDATE SET "
        "mode = EXCLUDED.mode, window_start = EXCLUDED.window_start, "
        "window_end = EXCLUDED.window_end, statistics = EXCLUDED.statistics, recorded_at = now()",
        [
            run_id,
            dag_id,
            statistics.get("mode", "quick"),
            statistics.get("window_start"),
            statistics.get("window_end"),
            json.dumps(statistics),
        ],
    )
