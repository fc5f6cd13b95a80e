"""The dashboard's view model: typed records built from the rows of :mod:`.queries`.

Pure: no database, no clock (``now`` is given). The records are what the JSON API
returns (:func:`as_json`, field for field) and what the page's templates show; the
few properties they carry (a cell's colour and tooltip, the run's statistics in
order) are presentation only and never reach the JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.settings import BACKENDS
from include.backup_integrity.domain.cost import projected_30_days
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
)
from include.backup_integrity.domain.statistics import CONTRACT_STATISTICS
from include.backup_integrity.domain.timestamps import parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from include.backup_integrity.catalog.drills import RestoreTypeRow
    from include.backup_integrity.dashboard.queries import (
        AlertRows,
        ChainRow,
        CostRows,
        CoverageRows,
        FailureCount,
        MatrixRows,
        ResultRow,
        RunRow,
    )

CHART_DAYS = 30

#: Cell states of the matrix, besides the failure kinds themselves.
REPAIRED = "repaired"
COULD_NOT_CHECK = "could_not_check"
NOT_EXPECTED = "not_expected"
NOT_CHECKED = "not_checked"

#: The legend, in its order.
STATE_COLOURS = {
    PASSED: "#2e7d32",
    REPAIRED: "#66bb6a",
    MISSING: "#c62828",
    SIZE_MISMATCH: "#ef6c00",
    CHECKSUM_MISMATCH: "#8e24aa",
    INVALID_RECORD: "#6d4c41",
    COULD_NOT_CHECK: "#f9a825",
    NOT_CHECKED: "#90a4ae",
    NOT_EXPECTED: "#eceff1",
}
STATE_LABELS = {
    PASSED: "passed",
    REPAIRED: "repaired",
    MISSING: "missing",
    SIZE_MISMATCH: "size mismatch",
    CHECKSUM_MISMATCH: "checksum mismatch",
    INVALID_RECORD: "invalid record",
    COULD_NOT_CHECK: "could not check",
    NOT_CHECKED: "not checked yet",
    NOT_EXPECTED: "not expected",
}
#: The run's statistics in the order the README lists them (the database keeps no order).
STATISTICS_ORDER = (
    *CONTRACT_STATISTICS,
    "checks_total",
    "checks_passed",
    "repaired",
    "repair_failed",
    "repair",
    "repair_plan",
    "mode",
    "window_start",
    "window_end",
    "skipped_backup_ids",
)


def failure_state(kind: str) -> str:
    """The matrix state a failure kind is shown as (a backend error means the copy could not be checked)."""
    return COULD_NOT_CHECK if kind == BACKEND_ERROR else kind


def iso(value: Any) -> str | None:
    """A time as the JSON carries it (ISO 8601); other values as text."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def as_json(value: Any) -> Any:
    """A record (or a list of them) as the plain dicts and lists the API returns."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [as_json(item) for item in value]
    return value


# --------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class Cell:
    """One copy (backup x backend): its state and the last result behind it."""

    state: str
    label: str
    kind: str | None
    evidence: str | None
    checked_at: str | None
    message: str | None
    run_id: str | None
    repaired_at: str | None
    last_full_read: str | None

    @property
    def colour(self) -> str:
        return STATE_COLOURS[self.state]

    @property
    def tip(self) -> str:
        """The tooltip: the state, when it was last checked and read in full, and why it failed."""
        tip = (
            f"{self.label}; last check {self.checked_at or 'never'}; "
            f"last full read {self.last_full_read or 'never'}"
        )
        if self.message and self.state not in (PASSED, NOT_EXPECTED):
            tip += f"; {self.message}"
        return tip


@dataclass(frozen=True)
class MatrixRow:
    backup_id: str
    backup_type: str
    filename: str
    created_at: str | None
    size_bytes: int | None
    cells: dict[str, Cell]


@dataclass(frozen=True)
class MatrixPage:
    page: int
    page_size: int
    only_failing: bool
    total: int
    pages: int
    backends: list[str]
    rows: list[MatrixRow]


def cell_state(kind: str | None, repaired_after: bool, expected: bool) -> str:
    if not expected:
        return NOT_EXPECTED
    if kind is None:
        return NOT_CHECKED
    if kind == PASSED:
        return PASSED
    if repaired_after:
        return REPAIRED
    return failure_state(kind)


def matrix_cell(rows: MatrixRows, backup_id: str, backend: str, expected: list[str]) -> Cell:
    """A copy's cell: coloured by its last result, unless a later repair fixed it.

    A record no backend could be chosen for (its result has an empty backend) marks
    the backends the record was not expected on as invalid, when it is newer.
    """
    empty: tuple[None, ...] = (None,) * 5
    last: ResultRow | tuple[None, ...] = rows.latest.get((backup_id, backend)) or empty
    kind, evidence, checked_at, message, run_id = last
    repaired_at = rows.repaired.get((backup_id, backend))
    repaired_after = bool(repaired_at and checked_at and repaired_at >= checked_at)
    unroutable = rows.latest.get((backup_id, ""))
    if unroutable and (not checked_at or unroutable.checked_at > checked_at) and backend not in expected:
        kind, evidence, checked_at, message, run_id = unroutable
        state = INVALID_RECORD
    else:
        state = cell_state(kind, repaired_after, backend in expected)
    return Cell(
        state=state,
        label=STATE_LABELS[state],
        kind=kind,
        evidence=evidence,
        checked_at=iso(checked_at),
        message=message,
        run_id=run_id,
        repaired_at=iso(repaired_at),
        last_full_read=iso(rows.full_reads.get((backup_id, backend))),
    )


def matrix_page(
    rows: MatrixRows, expected_backends: dict[str, list[str]], stores: Sequence[str] = BACKENDS
) -> MatrixPage:
    """The page of backups x stores (a column per configured store), cells coloured by the last result."""
    out = []
    for backup in rows.backups:
        expected = expected_backends.get(backup.backup_type, [])
        out.append(
            MatrixRow(
                backup_id=backup.backup_id,
                backup_type=backup.backup_type,
                filename=backup.filename,
                created_at=iso(backup.created_at),
                size_bytes=backup.size_bytes,
                cells={b: matrix_cell(rows, backup.backup_id, b, expected) for b in stores},
            )
        )
    return MatrixPage(
        page=rows.page,
        page_size=rows.page_size,
        only_failing=rows.only_failing,
        total=rows.total,
        pages=max(1, -(-rows.total // rows.page_size)),
        backends=list(stores),
        rows=out,
    )


# --------------------------------------------------------------------------- alerts, run, coverage


@dataclass(frozen=True)
class Alert:
    id: int
    backup_id: str | None
    severity: str
    status: str
    message: str
    kind: str | None
    backend: str | None
    first_seen: str | None
    last_seen: str | None
    occurrences: int
    age_seconds: float | None
    age: str
    repair_error: str | None


@dataclass(frozen=True)
class OpenAlerts:
    total: int
    alerts: list[Alert]


def open_alerts(rows: AlertRows, now: datetime) -> OpenAlerts:
    """The open alerts with their age, counted from when the failure was first seen."""
    listed = []
    for row in rows.alerts:
        first_seen = parse_timestamp(row.first_seen) or row.created_at
        age = max(0.0, (now - first_seen).total_seconds()) if first_seen else None
        listed.append(
            Alert(
                id=row.id,
                backup_id=row.backup_id,
                severity=row.severity,
                status=row.status,
                message=row.message,
                kind=row.kind,
                backend=row.backend,
                first_seen=iso(first_seen),
                last_seen=row.last_seen,
                occurrences=row.occurrences,
                age_seconds=age,
                age=human_age(age),
                repair_error=row.repair_error,
            )
        )
    return OpenAlerts(total=rows.total, alerts=listed)


@dataclass(frozen=True)
class LastRun:
    run_id: str
    dag_id: str
    mode: str
    window_start: str | None
    window_end: str | None
    statistics: dict[str, Any] | None
    recorded_at: str | None

    @property
    def statistics_rows(self) -> list[tuple[str, Any]]:
        """(key, value) in the README's order; a list or mapping is shown as its length."""
        order = {key: i for i, key in enumerate(STATISTICS_ORDER)}
        stats = self.statistics or {}
        return [
            (key, len(value) if isinstance(value, list | dict) else value)
            for key, value in sorted(stats.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
            if key != "run_id"
        ]


def last_run(row: RunRow | None) -> LastRun | None:
    if row is None:
        return None
    return LastRun(
        run_id=row.run_id,
        dag_id=row.dag_id,
        mode=row.mode,
        window_start=iso(row.window_start),
        window_end=iso(row.window_end),
        statistics=row.statistics,
        recorded_at=iso(row.recorded_at),
    )


@dataclass(frozen=True)
class BackendCoverage:
    backend: str
    expected_copies: int
    read_last_day: int
    read_last_7_days: int
    read_last_30_days: int
    ever_read: int
    never_read: int
    oldest_last_read: str | None


@dataclass(frozen=True)
class Coverage:
    backends: list[BackendCoverage]


def coverage(
    rows: CoverageRows, expected_backends: dict[str, list[str]], stores: Sequence[str] = BACKENDS
) -> Coverage:
    """Per store: copies expected (by the backups' types), and how recently they were read in full."""
    expected = dict.fromkeys(stores, 0)
    for backup_type, count in rows.completed_by_type.items():
        for backend in expected_backends.get(backup_type, []):
            expected[backend] = expected.get(backend, 0) + count
    per_backend = []
    for backend in stores:
        reads = rows.full_reads.get(backend)
        day, week, month, ever, oldest = reads if reads else (0, 0, 0, 0, None)
        per_backend.append(
            BackendCoverage(
                backend=backend,
                expected_copies=expected[backend],
                read_last_day=day,
                read_last_7_days=week,
                read_last_30_days=month,
                ever_read=ever,
                never_read=max(0, expected[backend] - ever),
                oldest_last_read=iso(oldest),
            )
        )
    return Coverage(backends=per_backend)


# --------------------------------------------------------------------------- failures per day


@dataclass(frozen=True)
class DayFailures:
    day: str
    total: int
    by_kind: dict[str, int]


def failures_per_day(
    counts: Iterable[FailureCount], today: date, days: int = CHART_DAYS
) -> list[DayFailures]:
    """Failing copies per day and kind for the last ``days`` days up to ``today``; gaps are zeros."""
    start = chart_start(today, days)
    by_day: dict[date, dict[str, int]] = {}
    for count in counts:
        by_day.setdefault(count.day, {})[count.kind] = count.copies
    series = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        by_kind = by_day.get(day, {})
        series.append(DayFailures(day=day.isoformat(), total=sum(by_kind.values()), by_kind=by_kind))
    return series


def chart_start(today: date, days: int = CHART_DAYS) -> date:
    return today - timedelta(days=days - 1)


# --------------------------------------------------------------------------- restore drills


@dataclass(frozen=True)
class RestoreDrillType:
    """A backup type's last restore drill, its age, and whether drills of it are overdue."""

    backup_type: str
    backup_id: str | None
    status: str | None
    stage: str | None
    message: str | None
    drilled_at: str | None
    age_seconds: float | None
    age: str
    last_passed_at: str | None
    run_id: str | None
    overdue: bool


def restore_drills(rows: Iterable[RestoreTypeRow], now: datetime) -> list[RestoreDrillType]:
    listed = []
    for row in rows:
        age = max(0.0, (now - row.drilled_at).total_seconds()) if row.drilled_at else None
        listed.append(
            RestoreDrillType(
                backup_type=row.backup_type,
                backup_id=row.backup_id,
                status=row.status,
                stage=row.stage,
                message=row.message,
                drilled_at=iso(row.drilled_at),
                age_seconds=age,
                age=human_age(age),
                last_passed_at=iso(row.last_passed_at),
                run_id=row.run_id,
                overdue=row.overdue,
            )
        )
    return listed


# --------------------------------------------------------------------------- recovery and cost


@dataclass(frozen=True)
class RecoveryChain:
    """The WAL chain's coverage, and a recovery claim only when ``base_backup_type`` backs one."""

    line: str
    wal_chain: dict[str, Any] | None
    recovery_window: dict[str, Any] | None
    last_segment_age_seconds: float | None


def recovery_chain(row: ChainRow | None, now: datetime) -> RecoveryChain | None:
    if row is None or not row.wal_chain or not row.wal_chain.get("to"):
        return None
    chain = row.wal_chain
    last = datetime.fromisoformat(chain["to"])
    age = max(0.0, (now - last).total_seconds())
    line = (
        f"WAL archived without a hole from {chain['from'][:16]} to {chain['to'][:16]} "
        f"(timeline {chain['timeline']}, {chain['from_segment']} to {chain['to_segment']}), "
        f"last segment {int(age // 60)} minutes ago"
    )
    window = row.recovery_window
    if window:
        line = (
            f"Recoverable to any point from {window['from'][:16]} to {window['to'][:16]} "
            f"(base backup {window['base_backup_id']}). " + line
        )
    return RecoveryChain(line, chain, window, age)


@dataclass(frozen=True)
class StoreCost:
    store: str
    last_run_usd: float
    projected_30_days_usd: float


def store_costs(rows: CostRows, now: datetime) -> list[StoreCost]:
    """The last run's cost per store and its 30-day projection (see ``projected_30_days``)."""
    history_days = (now - rows.first_recorded_at).total_seconds() / 86400 if rows.first_recorded_at else 0.0
    return [
        StoreCost(
            store,
            cost,
            rows.last_30_days.get(store, 0.0)
            if history_days >= 30
            else projected_30_days([cost], history_days),
        )
        for store, cost in sorted(rows.last_run.items(), key=lambda kv: (kv[0] == "total", kv[0]))
    ]


# --------------------------------------------------------------------------- the whole page


@dataclass(frozen=True)
class Summary:
    """Everything the page shows (``/api/summary``)."""

    generated_at: str
    matrix: MatrixPage
    open_alerts: OpenAlerts
    last_run: LastRun | None
    coverage: Coverage
    failures_per_day: list[DayFailures]
    restore_drills: list[RestoreDrillType] = dataclasses.field(default_factory=list)
    recovery_chain: RecoveryChain | None = None
    costs: list[StoreCost] = dataclasses.field(default_factory=list)


def iter_states(summary: Summary) -> Iterable[tuple[str, str, str]]:
    """(backup_id, backend, state) of every matrix cell: what tests and scripts look at."""
    for row in summary.matrix.rows:
        for backend, cell in row.cells.items():
            yield row.backup_id, backend, cell.state
