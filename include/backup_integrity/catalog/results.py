"""The verifier's own record of each run: the history of each copy's outcome and the run's statistics.

``backup_integrity_result`` keeps transitions: a copy's first result and every
change of its kind or evidence, one row per (run, backup, backend) at most,
written once however often its task is retried. A steady pass or an unchanged
failure adds no row (the per-object state says when each copy was last checked,
an alert's ``occurrences`` how often a failure was seen), so the history grows
with what changes, not with how often the verifier runs. ``backup_integrity_run``
keeps the statistics ``aggregate_results`` returned, one row per run.
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


def latest_outcomes(
    cur: Any, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, str | None]]:
    """The (kind, evidence) of each copy's newest recorded result, by (backup_id, backend)."""
    keys = list(keys)
    if not keys:
        return {}
    cur.execute(
        "SELECT DISTINCT ON (r.backup_id, r.backend) r.backup_id::text, r.backend, r.kind, r.evidence "
        "FROM backup_integrity_result r JOIN unnest(%s::uuid[], %s::text[]) AS k(backup_id, backend) "
        "ON r.backup_id = k.backup_id AND r.backend = k.backend "
        "ORDER BY r.backup_id, r.backend, r.checked_at DESC",
        [[k[0] for k in keys], [k[1] for k in keys]],
    )
    return {(row[0], row[1]): (row[2], row[3]) for row in cur.fetchall()}


def record_transitions(cur: Any, run_id: str, results: Iterable[CheckResult]) -> int:
    """Record the results that differ in kind or evidence from their copy's newest row; return how many.

    For the checks that have no per-object state to compare with (those decided from
    the catalog row before any backend was chosen); a chunk's checks go through
    :func:`~include.backup_integrity.catalog.object_state.save_checks`.
    """
    results = list(results)
    latest = latest_outcomes(cur, {(r["backup_id"], r["backend"] or "") for r in results})
    changed = [
        r for r in results if latest.get((r["backup_id"], r["backend"] or "")) != (r["kind"], r["evidence"])
    ]
    record_results(cur, run_id, changed)
    return len(changed)


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
