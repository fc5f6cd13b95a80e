"""A chunk's failures, handed to the run's later tasks through the catalog instead of XCom.

A whole backend missing is hundreds of thousands of failures; in XCom that would
be hundreds of megabytes through Airflow's metadata database. Each chunk writes
its failures here (in the transaction that records its checks) and hands on only
their count; ``repair_copies``, ``aggregate_results`` and ``raise_alerts`` read
them back by run and chunk label. The rows of a run are kept while it may still
be retried and removed by a later run once that run is recorded
(:func:`forget_recorded_runs`), so the table holds about one run's failures.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import copy_rows

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import CheckResult

CHUNK_FAILURE_TABLE = "backup_integrity_chunk_failure"

#: The table as revision ``0006_bounded_growth`` creates it (``catalog/migrations/versions/``).
CHUNK_FAILURE_DDL = """
CREATE TABLE IF NOT EXISTS backup_integrity_chunk_failure (
    run_id text NOT NULL,
    label text NOT NULL,
    backup_id uuid NOT NULL,
    backend text NOT NULL,
    result jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, label, backup_id, backend)
)
"""


class HandoverMissing(RuntimeError):
    """A chunk said it failed checks whose rows are gone (its run was pruned): nothing whole to use."""


def record_chunk_failures(cur: Any, run_id: str, label: str, failures: Iterable[CheckResult]) -> int:
    """Replace the chunk's handed-over failures with ``failures`` (a retried chunk writes them afresh)."""
    cur.execute(f"DELETE FROM {CHUNK_FAILURE_TABLE} WHERE run_id = %s AND label = %s", [run_id, label])
    rows = [(run_id, label, f["backup_id"], f["backend"] or "", json.dumps(f)) for f in failures]
    if rows:
        copy_rows(cur, CHUNK_FAILURE_TABLE, ["run_id", "label", "backup_id", "backend", "result"], rows)
    return len(rows)


def load_chunk_failures(cur: Any, run_id: str) -> dict[str, list[CheckResult]]:
    """Every chunk's handed-over failures of ``run_id``, by chunk label, in a stable order."""
    cur.execute(
        f"SELECT label, result FROM {CHUNK_FAILURE_TABLE} WHERE run_id = %s "
        "ORDER BY label, backup_id, backend",
        [run_id],
    )
    by_label: dict[str, list[CheckResult]] = {}
    for label, result in cur.fetchall():
        by_label.setdefault(label, []).append(result if isinstance(result, dict) else json.loads(result))
    return by_label


def forget_recorded_runs(cur: Any, run_id: str, older_than: Any) -> int:
    """Remove the hand-over of recorded runs (but ``run_id``, which may be retried) and of any older.

    A run is recorded for these rows only when its record is newer than they are: a cleared
    run being run again keeps its earlier record while its chunks hand over anew.
    """
    cur.execute(
        f"DELETE FROM {CHUNK_FAILURE_TABLE} f WHERE f.run_id <> %s AND (f.recorded_at < %s OR EXISTS "
        "(SELECT 1 FROM backup_integrity_run r "
        "WHERE r.run_id = f.run_id AND r.recorded_at >= f.recorded_at))",
        [run_id, older_than],
    )
    return cur.rowcount or 0
