"""The console pages' SQL: one backup, one alert, and the filtered, sorted, paginated alerts.

Read-only like :mod:`.queries`, and bounded the same way: each page reads one
backup's rows (by its indexed ``backup_id``) or one page of alerts. Only alert rows
the package wrote (``details.source``) are shown here, since only those take actions.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.catalog.outbox import OWN_ROW
from include.backup_integrity.dashboard.queries import (
    DEFAULT_PAGE_SIZE,
    DashboardError,
    as_uuid,
    check_page,
    last_full_reads,
)
from include.backup_integrity.domain.alerts import ALERT_STATUSES

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings

SEVERITIES = ("CRITICAL", "ERROR", "WARNING", "INFO")
SEVERITY_RANK = "CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'ERROR' THEN 1 WHEN 'WARNING' THEN 2 ELSE 3 END"
#: The alerts page's sort keys and the SQL each sorts by (ties: newest first).
ALERT_SORTS = {
    "created": "created_at",
    "severity": SEVERITY_RANK,
    "status": "status",
    "kind": "details ->> 'kind'",
    "store": "details ->> 'backend'",
    "backup": "backup_id",
}
AGE = re.compile(r"^(\d{1,6})([hd])$")
BACKUP_ALERTS_LISTED = 100
#: The package's rows, as a literal (not a parameter): the planner then uses the partial index of
#: revision 0009_console_indexes for the alerts page's order and count.
OWN_ROWS = sql.SQL("details @> {}::jsonb").format(sql.Literal(OWN_ROW))


class AlertDetail(NamedTuple):
    id: int
    backup_id: str | None
    alert_type: str
    severity: str
    status: str
    message: str
    details: dict[str, Any]
    notification_channels: list[str]
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    created_at: datetime | None

    @property
    def kind(self) -> str | None:
        return self.details.get("kind")

    @property
    def backend(self) -> str | None:
        return self.details.get("backend")

    @property
    def notes(self) -> list[dict[str, Any]]:
        return list(self.details.get("notes") or [])

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.details.get("history") or [])

    @property
    def shown_details(self) -> list[tuple[str, Any]]:
        """The details worth a row of their own (notes, history and markers are shown apart)."""
        hidden = {"notes", "history", "source", "producer"}
        return sorted((k, v) for k, v in self.details.items() if k not in hidden)


ALERT_COLUMNS = sql.SQL(
    "id, backup_id::text, alert_type, severity, status, message, details, notification_channels, "
    "acknowledged_at, acknowledged_by, resolved_at, created_at"
)


def read_alert(cur: Any, settings: Settings, alert_id: int) -> AlertDetail | None:
    """One alert row the package wrote; None for any other id."""
    cur.execute(
        sql.SQL("SELECT {c} FROM {t} WHERE id = %s AND details @> %s::jsonb").format(
            c=ALERT_COLUMNS, t=table(settings.alerts_table)
        ),
        [alert_id, OWN_ROW],
    )
    row = cur.fetchone()
    return None if row is None else AlertDetail(*row)


class AlertFilters(NamedTuple):
    status: str | None = None
    kind: str | None = None
    store: str | None = None
    severity: str | None = None
    age: str | None = None
    sort: str = "created"
    order: str = "desc"

    def query(self, **changes: Any) -> dict[str, Any]:
        """The filters as query parameters (the empty ones left out), with ``changes`` applied."""
        values = {**self._asdict(), **changes}
        return {k: v for k, v in values.items() if v not in (None, "")}


def check_filters(filters: AlertFilters) -> None:
    """Refuse a filter the alerts page does not know, naming the parameter and what it takes."""
    if filters.status and filters.status not in ALERT_STATUSES:
        raise DashboardError(f"status must be one of {list(ALERT_STATUSES)}, got {filters.status!r}")
    if filters.severity and filters.severity not in SEVERITIES:
        raise DashboardError(f"severity must be one of {list(SEVERITIES)}, got {filters.severity!r}")
    if filters.age and not AGE.match(filters.age):
        raise DashboardError(f"age must be hours or days like '24h' or '7d', got {filters.age!r}")
    if filters.sort not in ALERT_SORTS:
        raise DashboardError(f"sort must be one of {list(ALERT_SORTS)}, got {filters.sort!r}")
    if filters.order not in ("asc", "desc"):
        raise DashboardError(f"order must be 'asc' or 'desc', got {filters.order!r}")


def age_limit(age: str) -> timedelta:
    number, unit = AGE.match(age).groups()  # type: ignore[union-attr]
    return timedelta(hours=int(number)) if unit == "h" else timedelta(days=int(number))


class AlertPage(NamedTuple):
    filters: AlertFilters
    page: int
    page_size: int
    total: int
    alerts: list[AlertDetail]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def read_alerts_page(
    cur: Any,
    settings: Settings,
    filters: AlertFilters,
    now: datetime,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AlertPage:
    """One page of the package's alerts matching ``filters`` (``age``: created within it), sorted."""
    check_page(page, page_size)
    check_filters(filters)
    where: list[sql.Composable] = [OWN_ROWS]
    params: list[Any] = []
    for column, value in (
        ("status", filters.status),
        ("severity", filters.severity),
        ("details ->> 'kind'", filters.kind),
        ("details ->> 'backend'", filters.store),
    ):
        if value:
            where.append(sql.SQL(column + " = %s"))
            params.append(value)
    if filters.age:
        where.append(sql.SQL("created_at >= %s"))
        params.append(now - age_limit(filters.age))
    condition = sql.SQL(" AND ").join(where)
    alerts = table(settings.alerts_table)
    cur.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {w}").format(t=alerts, w=condition), params)
    total = cur.fetchone()[0]
    direction = sql.SQL("ASC" if filters.order == "asc" else "DESC")
    cur.execute(
        sql.SQL(
            "SELECT {c} FROM {t} WHERE {w} ORDER BY {key} {d} NULLS LAST, created_at DESC, id DESC "
            "LIMIT %s OFFSET %s"
        ).format(c=ALERT_COLUMNS, t=alerts, w=condition, key=sql.SQL(ALERT_SORTS[filters.sort]), d=direction),
        [*params, page_size, (page - 1) * page_size],
    )
    return AlertPage(filters, page, page_size, total, [AlertDetail(*row) for row in cur.fetchall()])


class CopyState(NamedTuple):
    """What is known of one copy: its last recorded check, and when its SHA-256 was last proven."""

    backend: str
    path: str | None
    last_kind: str | None
    last_evidence: str | None
    last_checked_at: datetime | None
    last_run_id: str | None
    sha256_verified_at: datetime | None
    last_full_read: datetime | None


class CheckRow(NamedTuple):
    run_id: str
    backend: str
    kind: str
    mode: str
    evidence: str | None
    message: str
    checked_at: datetime


class RepairRow(NamedTuple):
    run_id: str
    backend: str
    kind: str
    status: str
    source_backend: str | None
    reason: str
    error: str | None
    repaired_at: datetime | None
    recorded_at: datetime


class DrillRow(NamedTuple):
    run_id: str
    status: str
    stage: str
    source_backend: str | None
    message: str
    finished_at: datetime
    duration_seconds: float


class BackupDetail(NamedTuple):
    backup_id: str
    backup_type: str
    filename: str
    status: str
    created_at: datetime | None
    size_bytes: int | None
    checksum: str | None
    copies: list[CopyState]
    checks: list[CheckRow]
    checks_total: int
    checks_page: int
    checks_page_size: int
    checks_store: str | None
    alerts: list[AlertDetail]
    repairs: list[RepairRow]
    drills: list[DrillRow]

    @property
    def checks_pages(self) -> int:
        return max(1, -(-self.checks_total // self.checks_page_size))


def read_backup(
    cur: Any,
    settings: Settings,
    backup_id: str,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    store: str | None = None,
) -> BackupDetail | None:
    """One backup and everything recorded about it; None when the catalog has no such backup.

    Its checks are paginated, newest first, all stores or only ``store``'s.
    """
    check_page(page, page_size)
    canonical = as_uuid(backup_id)
    if canonical is None:
        return None
    cur.execute(
        sql.SQL(
            "SELECT id::text, backup_type, filename, status, created_at, size_bytes, checksum "
            "FROM {t} WHERE id = %s::uuid"
        ).format(t=table(settings.backups_table)),
        [canonical],
    )
    backup = cur.fetchone()
    if backup is None:
        return None
    cur.execute(
        "SELECT backend, path, last_kind, last_evidence, last_checked_at, last_run_id, sha256_verified_at "
        "FROM backup_integrity_object WHERE backup_id = %s::uuid ORDER BY backend",
        [canonical],
    )
    objects = {row[0]: row for row in cur.fetchall()}
    reads = last_full_reads(cur, [canonical])
    backends = sorted(
        set(objects) | {b for _, b in reads} | set(settings.expected_backends.get(backup[1], []))
    )
    copies = [
        CopyState(
            b, *(objects.get(b) or (b, None, None, None, None, None, None))[1:], reads.get((canonical, b))
        )
        for b in backends
    ]
    of_store = "AND backend = %s " if store else ""
    store_params = [store] if store else []
    cur.execute(
        f"SELECT count(*) FROM backup_integrity_result WHERE backup_id = %s::uuid {of_store}",
        [canonical, *store_params],
    )
    checks_total = cur.fetchone()[0]
    cur.execute(
        "SELECT run_id, backend, kind, mode, evidence, message, checked_at FROM backup_integrity_result "
        f"WHERE backup_id = %s::uuid {of_store}ORDER BY checked_at DESC, backend LIMIT %s OFFSET %s",
        [canonical, *store_params, page_size, (page - 1) * page_size],
    )
    checks = [CheckRow(*row) for row in cur.fetchall()]
    cur.execute(
        sql.SQL(
            "SELECT {c} FROM {t} WHERE backup_id = %s::uuid AND details @> %s::jsonb "
            "ORDER BY (status = 'RESOLVED'), created_at DESC, id DESC LIMIT %s"
        ).format(c=ALERT_COLUMNS, t=table(settings.alerts_table)),
        [canonical, OWN_ROW, BACKUP_ALERTS_LISTED],
    )
    alerts = [AlertDetail(*row) for row in cur.fetchall()]
    cur.execute(
        "SELECT run_id, backend, kind, status, source_backend, reason, error, repaired_at, recorded_at "
        "FROM backup_integrity_repair WHERE backup_id = %s::uuid ORDER BY recorded_at DESC LIMIT 50",
        [canonical],
    )
    repairs = [RepairRow(*row) for row in cur.fetchall()]
    cur.execute("SELECT to_regclass('backup_integrity_restore') IS NOT NULL")
    drills: list[DrillRow] = []
    if cur.fetchone()[0]:
        cur.execute(
            "SELECT run_id, status, stage, source_backend, message, finished_at, duration_seconds "
            "FROM backup_integrity_restore WHERE backup_id = %s::uuid ORDER BY finished_at DESC LIMIT 20",
            [canonical],
        )
        drills = [DrillRow(*row) for row in cur.fetchall()]
    return BackupDetail(
        *backup, copies, checks, checks_total, page, page_size, store, alerts, repairs, drills
    )
