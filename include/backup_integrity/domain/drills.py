"""Restore drills as values: what a drill is, how it ends, what is chosen, what the alerts become.

A drill takes one backup through five stages (fetch, decrypt, decompress, restore,
check) and ends ``passed``, ``failed`` (the tools ran and rejected the catalog's
bytes) or ``error`` (the environment failed and nothing was concluded). Everything
here is a pure decision over plain values: choosing backups, naming and ageing scratch
databases, telling an environment failure from a rejection, the run's statistics,
whether a type is overdue, and which ``restore_*`` alerts open, update or resolve.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The drill DAG: the producer marked on its alert rows (``domain.ownership``).
DRILL_DAG_ID = "restore_drill"

FETCH = "fetch"
DECRYPT = "decrypt"
DECOMPRESS = "decompress"
RESTORE = "restore"
CHECK = "check"
STAGES = (FETCH, DECRYPT, DECOMPRESS, RESTORE, CHECK)

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
STATUSES = (PASSED, FAILED, ERROR)

PG_DUMP = "pg_dump"
TAR = "tar"
WAL = "wal"
NO_FORMAT = "none"
FORMATS = (PG_DUMP, TAR, WAL, NO_FORMAT)

RESTORE_FAILED = "restore_failed"
RESTORE_ERROR = "restore_error"
RESTORE_OVERDUE = "restore_overdue"
DRILL_ALERT_KINDS = (RESTORE_FAILED, RESTORE_ERROR, RESTORE_OVERDUE)
SEVERITY_BY_KIND = {RESTORE_FAILED: "CRITICAL", RESTORE_ERROR: "ERROR", RESTORE_OVERDUE: "ERROR"}
KIND_LABEL = {
    RESTORE_FAILED: "restore drill failed",
    RESTORE_ERROR: "restore drill could not run",
    RESTORE_OVERDUE: "restore drills overdue",
}
#: The alert a drill of each status opens, and the alerts of the same backup it resolves.
OPENS = {FAILED: RESTORE_FAILED, ERROR: RESTORE_ERROR}
RESOLVES = {PASSED: (RESTORE_FAILED, RESTORE_ERROR), FAILED: (RESTORE_ERROR,), ERROR: ()}

#: The check every ``pg_dump`` type gets unless the operator says otherwise.
DEFAULT_PG_DUMP_CHECK = (
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema'))"
)

SCRATCH_PREFIX = "restore_drill_"
#: The only databases a drill ever creates or drops.
SCRATCH_NAME = re.compile(r"^restore_drill_[0-9a-f]{8}$")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


class DrillCopy(TypedDict):
    """One place a backup can be fetched from, and what its last integrity check said."""

    backend: str
    path: str
    last_check: str | None


class DrillItem(TypedDict):
    """One backup to drill: the unit of fan-out of the ``drill`` task."""

    backup_id: str
    backup_type: str
    format: str
    label: str
    filename: str
    size_bytes: int | None
    checksum: str | None
    created_at: str
    copies: list[DrillCopy]


class DrillOutcome(TypedDict):
    """How one drill ended; ``stage`` is the last stage reached (``check`` when it passed)."""

    backup_id: str
    backup_type: str
    format: str
    status: str
    stage: str
    source_backend: str | None
    message: str
    started_at: str
    finished_at: str
    duration_seconds: float
    bytes_fetched: int | None
    details: dict[str, Any]


class DrillStatistics(TypedDict, total=False):
    """The return value of ``record_drills``; the first four keys are the contract."""

    backups_drilled: int
    restored_successfully: int
    restore_failures: int
    restore_errors: int
    configured: bool
    run_id: str
    window_start: str | None
    window_end: str | None
    skipped_backup_ids: list[str]
    by_type: dict[str, dict[str, int]]
    overdue_types: list[str]


class DrillStop(Exception):
    """Ends a drill early: ``status`` (failed or error) at ``stage``, for ``message``."""

    def __init__(self, status: str, stage: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.stage = stage
        self.message = message


def rejected(stage: str, message: str) -> DrillStop:
    """The tool ran and rejected the data: the backup does not restore."""
    return DrillStop(FAILED, stage, message)


def environment_failed(stage: str, message: str) -> DrillStop:
    """The environment failed: nothing was concluded about the backup."""
    return DrillStop(ERROR, stage, message)


def drill_label(backup_type: str, backup_id: str) -> str:
    """What a mapped ``drill`` instance is about, for its name in the UI."""
    return f"{backup_type} {backup_id}"


# ----------------------------------------------------------------------------- choosing


@dataclass(frozen=True)
class Candidate:
    """A COMPLETED backup of the window with a copy that last passed its integrity check."""

    backup_id: str
    backup_type: str
    created_at: datetime
    last_drilled_at: datetime | None = None


def choose(candidates: Iterable[Candidate], per_type: int) -> list[Candidate]:
    """Per type, ``per_type`` backups: the newest never drilled first, then the one drilled longest ago."""
    by_type: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_type[candidate.backup_type].append(candidate)
    chosen: list[Candidate] = []
    for backup_type in sorted(by_type):
        group = by_type[backup_type]
        never = sorted(
            (c for c in group if c.last_drilled_at is None),
            key=lambda c: (-c.created_at.timestamp(), c.backup_id),
        )
        drilled = sorted(
            (c for c in group if c.last_drilled_at is not None),
            key=lambda c: (c.last_drilled_at, -c.created_at.timestamp(), c.backup_id),  # type: ignore[arg-type,return-value]
        )
        chosen.extend((never + drilled)[:per_type])
    return chosen


def copy_order(copies: Iterable[DrillCopy], backend_order: Iterable[str]) -> list[DrillCopy]:
    """The copies to try: only those whose last integrity check passed, in the stores' order.

    The order is the ``stores`` Variable's (the operator's preferred source order, by
    default local, r2, b2). A copy never checked, one the store could not be asked
    about and one found missing or damaged are never fetched; every fetched copy is
    still compared with the catalog's SHA-256 and size.
    """
    rank = {name: index for index, name in enumerate(backend_order)}
    passed = [c for c in copies if c["last_check"] == PASSED]
    return sorted(passed, key=lambda c: rank.get(c["backend"], len(rank)))


# ----------------------------------------------------------------------------- scratch databases


def scratch_database_name(token_hex: str) -> str:
    """``restore_drill_`` and 8 hex characters (from ``secrets.token_hex(4)``)."""
    name = SCRATCH_PREFIX + token_hex
    if not SCRATCH_NAME.match(name):
        raise ValueError(f"not a scratch database name: {name!r}")
    return name


def scratch_comment(created_at: datetime, run_id: str) -> str:
    """The comment a scratch database is created with: it dates the database for the cleanup."""
    return f"restore_drill scratch database, created {created_at.astimezone(UTC).isoformat()} by {run_id}"


def scratch_created_at(comment: str | None) -> datetime | None:
    """When a scratch database was created, from its comment (None when it does not say)."""
    found = _ISO_TIME.search(comment or "")
    if not found:
        return None
    try:
        return datetime.fromisoformat(found.group(0).replace("Z", "+00:00"))
    except ValueError:
        return None


def leftover_scratch_databases(
    databases: Iterable[tuple[str, str | None]], now: datetime, timeout: timedelta
) -> list[str]:
    """The scratch databases (by name and comment) older than a drill may last: a crash left them."""
    leftovers = []
    for name, comment in databases:
        created = scratch_created_at(comment)
        if SCRATCH_NAME.match(name) and created is not None and now - created > timeout:
            leftovers.append(name)
    return sorted(leftovers)


# ----------------------------------------------------------------------------- classification

#: What a restore tool prints when the environment failed rather than the data.
_ENVIRONMENT_SIGNS = (
    ("no space left on device", "no space left"),
    ("could not extend file", "the target server's disk is full"),
    ("could not connect to server", "the target server cannot be reached"),
    ("connection to server at", "the target server cannot be reached"),
    ("connection to server on socket", "the target server cannot be reached"),
    ("server closed the connection unexpectedly", "the target server closed the connection"),
    ("terminating connection due to administrator command", "the target server ended the session"),
    ("the database system is shutting down", "the target server is shutting down"),
    ("the database system is starting up", "the target server is starting up"),
    ("too many connections", "the target server refused another connection"),
    ("out of memory", "the target server ran out of memory"),
    ("password authentication failed", "the target server refused the credentials"),
)


def environment_problem(tool_output: str) -> str | None:
    """Why a restore tool's failure is the environment's (no space, server gone), or None."""
    lowered = tool_output.lower()
    for sign, meaning in _ENVIRONMENT_SIGNS:
        if sign in lowered:
            return meaning
    return None


def tail_of(text: str, limit: int = 600) -> str:
    """The end of a tool's output, where its error is, on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


# ----------------------------------------------------------------------------- statistics


def drill_statistics(
    outcomes: Iterable[DrillOutcome],
    *,
    run_id: str,
    configured: bool = True,
    window_start: str | None = None,
    window_end: str | None = None,
    skipped_backup_ids: Iterable[str] = (),
    overdue_types: Iterable[str] = (),
) -> DrillStatistics:
    outcomes = list(outcomes)
    counts = Counter(o["status"] for o in outcomes)
    by_type: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        entry = by_type.setdefault(outcome["backup_type"], dict.fromkeys(STATUSES, 0))
        entry[outcome["status"]] += 1
    return DrillStatistics(
        backups_drilled=len(outcomes),
        restored_successfully=counts[PASSED],
        restore_failures=counts[FAILED],
        restore_errors=counts[ERROR],
        configured=configured,
        run_id=run_id,
        window_start=window_start,
        window_end=window_end,
        skipped_backup_ids=list(skipped_backup_ids),
        by_type=by_type,
        overdue_types=sorted(overdue_types),
    )


def drills_failed(statistics: DrillStatistics) -> bool:
    return bool(statistics.get("restore_failures") or statistics.get("restore_errors"))
