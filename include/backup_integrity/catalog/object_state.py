"""What the verifier remembers about each (backup, backend) object between runs.

The fingerprint the store gave when the object's SHA-256 was last proven lets an
hourly run say "unchanged since it was verified" from a listing alone; the time
of the last byte-for-byte read orders the rotating re-hash and is the coverage
users look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import bulk_upsert
from include.backup_integrity.catalog.results import record_results

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from include.backup_integrity.domain.records import CheckResult


@dataclass(frozen=True)
class ObjectState:
    fingerprint: str | None = None
    sha256: str | None = None
    sha256_evidence: str | None = None
    sha256_fingerprint: str | None = None
    sha256_verified_at: datetime | None = None
    last_read_at: datetime | None = None
    last_read_bytes: int | None = None
    probed_fingerprint: str | None = None
    #: The object-lock retain-until date the last read found (None: no retention), and when.
    retain_until: datetime | None = None
    retention_read_at: datetime | None = None


_STATE_COLUMNS = (
    "fingerprint, sha256, sha256_evidence, sha256_fingerprint, sha256_verified_at, "
    "last_read_at, last_read_bytes, probed_fingerprint, retain_until, retention_read_at"
)
OBJECT_COLUMNS = [
    "backup_id",
    "backend",
    "path",
    "last_kind",
    "last_evidence",
    "last_checked_at",
    "last_run_id",
    *_STATE_COLUMNS.split(", "),
]


@dataclass(frozen=True)
class RecordedObject:
    """An object's row as the verifier last left it: its state and the outcome that wrote it."""

    state: ObjectState
    path: str | None
    kind: str
    evidence: str | None


def load_recorded(conn: Any, backend: str, backup_ids: list[str]) -> dict[str, RecordedObject]:
    if not backup_ids:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT backup_id::text, path, last_kind, last_evidence, {_STATE_COLUMNS} "
            "FROM backup_integrity_object WHERE backend = %s AND backup_id = ANY(%s::uuid[])",
            [backend, backup_ids],
        )
        return {row[0]: RecordedObject(ObjectState(*row[4:]), *row[1:4]) for row in cur.fetchall()}


def save_checks(
    cur: Any,
    run_id: str,
    results: Iterable[CheckResult],
    states: dict[str, ObjectState],
    recorded: dict[str, RecordedObject] | None = None,
) -> int:
    """Record each check's transition (result history) and the object's state, idempotently.

    The history keeps a copy's first result and every change of kind or evidence:
    a steady pass, or a failure that persists unchanged, adds no result row. The
    per-object state keeps when each copy was last checked (``last_checked_at``,
    ``last_run_id``): a row already saying exactly this (same path, outcome and
    state, as in the hourly steady state) only has those two columns set, in one
    statement, instead of being rewritten whole. An older run finishing late
    never overwrites a newer run's state. Returns how many result rows it wrote.
    """
    results = list(results)
    recorded = recorded or {}
    changed = [
        r
        for r in results
        if r["backend"] is None
        or (before := recorded.get(r["backup_id"])) is None
        or (before.kind, before.evidence) != (r["kind"], r["evidence"])
    ]
    record_results(cur, run_id, changed)
    state_rows = []
    touched: list[tuple[str, str, str]] = []
    for r in results:
        if r["backend"] is None:
            continue
        state = states.get(r["backup_id"], ObjectState())
        before = recorded.get(r["backup_id"])
        if before == RecordedObject(state, r["path"], r["kind"], r["evidence"]):
            touched.append((r["backup_id"], r["backend"], r["checked_at"]))
            continue
        state_rows.append(
            (
                r["backup_id"],
                r["backend"],
                r["path"],
                r["kind"],
                r["evidence"],
                r["checked_at"],
                run_id,
                state.fingerprint,
                state.sha256,
                state.sha256_evidence,
                state.sha256_fingerprint,
                state.sha256_verified_at,
                state.last_read_at,
                state.last_read_bytes,
                state.probed_fingerprint,
                state.retain_until,
                state.retention_read_at,
            )
        )
    bulk_upsert(
        cur,
        "backup_integrity_object",
        OBJECT_COLUMNS,
        state_rows,
        "backup_id, backend",
        ", ".join(f"{c} = EXCLUDED.{c}" for c in OBJECT_COLUMNS[2:])
        + " WHERE backup_integrity_object.last_checked_at <= EXCLUDED.last_checked_at",
    )
    mark_checked(cur, run_id, touched)
    return len(changed)


def mark_checked(cur: Any, run_id: str, checks: list[tuple[str, str, str]]) -> None:
    """Set when each unchanged (backup_id, backend, checked_at) copy was last checked, and by which run."""
    if not checks:
        return
    cur.execute(
        "UPDATE backup_integrity_object o SET last_checked_at = c.checked_at, last_run_id = %s "
        "FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[]) AS c(backup_id, backend, checked_at) "
        "WHERE o.backup_id = c.backup_id AND o.backend = c.backend AND o.last_checked_at < c.checked_at",
        [run_id, [c[0] for c in checks], [c[1] for c in checks], [c[2] for c in checks]],
    )
