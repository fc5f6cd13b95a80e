"""The dashboard's SQL: read-only queries that aggregate and paginate in the database.

Everything the page shows is computed in PostgreSQL (one page of backups at a time,
counts grouped in SQL), so it stays fast with 100k backups. Each function returns
the rows it read as small named tuples; :mod:`.view` turns them into the page's
records. Nothing here writes: :func:`start_read_only_session` makes every
transaction of the dashboard's connection read-only, each statement bounded by
:data:`STATEMENT_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.domain.alerts import ALERT_TYPE, OPEN_STATUSES
from include.backup_integrity.domain.ownership import VERIFIER_DAG_ID
from include.backup_integrity.domain.records import EVIDENCE_CONTENT, PASSED

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings

#: Every statement of a request stops after this long (the slowest, full-read coverage at 100k
#: backups, takes about 0.5 s, 2 s under heavy load): a busy or locked catalog costs a page an
#: error, never a hung API server worker.
STATEMENT_TIMEOUT_SECONDS = 5
#: SQLSTATE of a statement cancelled by ``statement_timeout``.
QUERY_CANCELED = "57014"

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_ALERTS_LISTED = 100

CopyKey = tuple[str, str]
"""(backup_id, backend): one copy of one backup."""


class DashboardError(ValueError):
    """A request the dashboard cannot answer (a bad page number, say)."""


def start_read_only_session(conn: Any) -> None:
    """Make every later transaction on ``conn`` read-only, each statement bounded by the timeout.

    Session settings, not ``SET LOCAL``: the schema check and the section each run in
    their own transaction, and neither may write or wait for long.
    """
    with conn.cursor() as cur:
        cur.execute("SET default_transaction_read_only = on")
        cur.execute(f"SET statement_timeout = '{int(STATEMENT_TIMEOUT_SECONDS)}s'")
    conn.commit()


def is_statement_timeout(exc: BaseException) -> bool:
    """Whether the catalog cancelled a statement for running past the timeout, in either driver."""
    return (getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)) == QUERY_CANCELED


class BackupRow(NamedTuple):
    backup_id: str
    backup_type: str
    filename: str
    created_at: datetime | None
    size_bytes: int | None


class ResultRow(NamedTuple):
    """A copy's last result (``backend`` is empty for a record no backend could be chosen for)."""

    kind: str
    evidence: str | None
    checked_at: datetime | None
    message: str | None
    run_id: str | None


class MatrixRows(NamedTuple):
    """One page of backups and, for each of their copies, the last result, repair and full read."""

    page: int
    page_size: int
    only_failing: bool
    total: int
    backups: list[BackupRow]
    latest: dict[CopyKey, ResultRow]
    repaired: dict[CopyKey, datetime]
    full_reads: dict[CopyKey, datetime]


class AlertRow(NamedTuple):
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
    created_at: datetime | None
    repair_error: str | None


class AlertRows(NamedTuple):
    total: int
    alerts: list[AlertRow]


class RunRow(NamedTuple):
    run_id: str
    dag_id: str
    mode: str
    window_start: Any
    window_end: Any
    statistics: dict[str, Any] | None
    recorded_at: datetime | None


class FullReadCounts(NamedTuple):
    """Of one backend's copies: how many were read in full in the last day, 7 and 30 days, ever."""

    day: int
    week: int
    month: int
    ever: int
    oldest: datetime | None


class CoverageRows(NamedTuple):
    completed_by_type: dict[str, int]
    full_reads: dict[str, FullReadCounts]


class FailureCount(NamedTuple):
    day: date
    kind: str
    copies: int


def check_page(page: int, page_size: int) -> None:
    """Refuse a page the matrix cannot show, naming the bound it breaks."""
    if page < 1:
        raise DashboardError(f"page must be >= 1, got {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise DashboardError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")


def open_integrity_alerts() -> sql.Composable:
    """The condition that selects the verifier's open alerts."""
    return sql.SQL("alert_type = {type} AND status IN ({statuses})").format(
        type=sql.Literal(ALERT_TYPE),
        statuses=sql.SQL(", ").join(sql.Literal(status) for status in OPEN_STATUSES),
    )


def full_reads_query(backup_filter: sql.Composable | None = None) -> sql.Composable:
    """When each copy was last read byte for byte: (backup_id, backend, last_read).

    The one place that knows where that evidence lives: the rotation's record of
    each object's last read (``backup_integrity_object.last_read_at``), checks
    that hashed the content, and repairs (whose written copy is read back and hashed).
    """
    where = sql.SQL(" AND ") + backup_filter if backup_filter is not None else sql.SQL("")
    return sql.SQL(
        "SELECT backup_id, backend, max(at) AS last_read FROM ("
        "SELECT backup_id, backend, last_read_at AS at FROM backup_integrity_object "
        "WHERE last_read_at IS NOT NULL{where} "
        "UNION ALL SELECT backup_id, backend, checked_at FROM backup_integrity_result "
        "WHERE evidence = {content}{where} "
        "UNION ALL SELECT backup_id, backend, repaired_at FROM backup_integrity_repair "
        "WHERE status = 'repaired'{where}) reads GROUP BY backup_id, backend"
    ).format(content=sql.Literal(EVIDENCE_CONTENT), where=where)


def last_full_reads(cur: Any, backup_ids: list[str]) -> dict[CopyKey, datetime]:
    cur.execute(
        full_reads_query(sql.SQL("backup_id = ANY(%s::uuid[])")), [backup_ids, backup_ids, backup_ids]
    )
    return {(str(row[0]), row[1]): row[2] for row in cur.fetchall()}


def read_matrix(
    cur: Any,
    settings: Settings,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    only_failing: bool = False,
) -> MatrixRows:
    """One page of the newest COMPLETED backups, and what is known about each of their copies.

    ``only_failing`` keeps the backups with an open alert, so that a handful of
    failures among 100k backups is one click away.
    """
    check_page(page, page_size)
    where = sql.SQL("status = 'COMPLETED'")
    if only_failing:
        where += sql.SQL(
            " AND id IN (SELECT backup_id FROM {a} WHERE {open} AND backup_id IS NOT NULL)"
        ).format(a=table(settings.alerts_table), open=open_integrity_alerts())
    backups = table(settings.backups_table)
    cur.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {w}").format(t=backups, w=where))
    total = cur.fetchone()[0]
    cur.execute(
        sql.SQL(
            "SELECT id::text, backup_type, filename, created_at, size_bytes FROM {t} "
            "WHERE {w} ORDER BY created_at DESC, id LIMIT %s OFFSET %s"
        ).format(t=backups, w=where),
        [page_size, (page - 1) * page_size],
    )
    rows = [BackupRow(*row) for row in cur.fetchall()]
    ids = [row.backup_id for row in rows]
    latest: dict[CopyKey, ResultRow] = {}
    repaired: dict[CopyKey, datetime] = {}
    reads: dict[CopyKey, datetime] = {}
    if ids:
        # The history keeps transitions: the newest says what the copy is; the object's state
        # says when it was last checked (and by which run) in that state.
        cur.execute(
            "SELECT r.backup_id::text, r.backend, r.kind, r.evidence, "
            "GREATEST(r.checked_at, CASE WHEN o.last_kind = r.kind THEN o.last_checked_at END), r.message, "
            "CASE WHEN o.last_kind = r.kind AND o.last_checked_at > r.checked_at THEN o.last_run_id "
            "ELSE r.run_id END "
            "FROM (SELECT DISTINCT ON (backup_id, backend) * FROM backup_integrity_result "
            "WHERE backup_id = ANY(%s::uuid[]) ORDER BY backup_id, backend, checked_at DESC) r "
            "LEFT JOIN backup_integrity_object o ON o.backup_id = r.backup_id AND o.backend = r.backend",
            [ids],
        )
        latest = {(r[0], r[1]): ResultRow(*r[2:]) for r in cur.fetchall()}
        cur.execute(
            "SELECT backup_id::text, backend, max(repaired_at) FROM backup_integrity_repair "
            "WHERE backup_id = ANY(%s::uuid[]) AND status = 'repaired' GROUP BY 1, 2",
            [ids],
        )
        repaired = {(r[0], r[1]): r[2] for r in cur.fetchall()}
        reads = last_full_reads(cur, ids)
    return MatrixRows(page, page_size, only_failing, total, rows, latest, repaired, reads)


def read_open_alerts(cur: Any, settings: Settings, limit: int = MAX_ALERTS_LISTED) -> AlertRows:
    """The open integrity alerts (at most ``limit``), most severe and newest first, and their count."""
    alerts = table(settings.alerts_table)
    cur.execute(
        sql.SQL("SELECT count(*) FROM {t} WHERE {open}").format(t=alerts, open=open_integrity_alerts())
    )
    total = cur.fetchone()[0]
    cur.execute(
        sql.SQL(
            "SELECT id, backup_id::text, severity, status, message, details ->> 'kind', "
            "details ->> 'backend', details ->> 'first_seen', details ->> 'last_seen', "
            "COALESCE((details ->> 'occurrences')::int, 1), created_at, details ->> 'repair_error' "
            "FROM {t} WHERE {open} "
            "ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'ERROR' THEN 1 ELSE 2 END, "
            "created_at DESC, id DESC LIMIT %s"
        ).format(t=alerts, open=open_integrity_alerts()),
        [limit],
    )
    return AlertRows(total, [AlertRow(*row) for row in cur.fetchall()])


def read_last_run(cur: Any) -> RunRow | None:
    cur.execute(
        "SELECT run_id, dag_id, mode, window_start, window_end, statistics, recorded_at "
        "FROM backup_integrity_run ORDER BY recorded_at DESC LIMIT 1"
    )
    row = cur.fetchone()
    return None if row is None else RunRow(*row)


def coverage_stamp(cur: Any) -> tuple[Any, ...]:
    """What changes whenever a run records results: the key under which coverage may be cached."""
    cur.execute(
        "SELECT max(recorded_at), count(*), current_database(), inet_server_addr()::text, "
        "inet_server_port() FROM backup_integrity_run"
    )
    return tuple(cur.fetchone())


def read_coverage(cur: Any, settings: Settings, now: datetime) -> CoverageRows:
    """Two aggregates: COMPLETED backups per type, and full reads per backend by age."""
    backups = table(settings.backups_table)
    cur.execute(
        sql.SQL("SELECT backup_type, count(*) FROM {t} WHERE status = 'COMPLETED' GROUP BY 1").format(
            t=backups
        )
    )
    completed = dict(cur.fetchall())
    cur.execute(
        sql.SQL(
            "SELECT r.backend, count(*) FILTER (WHERE r.last_read >= %s), "
            "count(*) FILTER (WHERE r.last_read >= %s), count(*) FILTER (WHERE r.last_read >= %s), "
            "count(*), min(r.last_read) FROM ({reads}) r GROUP BY r.backend"
        ).format(reads=full_reads_query()),
        [now - timedelta(days=1), now - timedelta(days=7), now - timedelta(days=30)],
    )
    reads = {row[0]: FullReadCounts(*row[1:]) for row in cur.fetchall()}
    return CoverageRows(completed, reads)


def read_failures_per_day(cur: Any, start: date) -> list[FailureCount]:
    """Distinct failing copies per UTC day and kind since ``start`` (days without any are absent).

    The history keeps transitions, so a failure is the span from the result that
    started it to the copy's next result (exclusive), or, while it still holds, to
    when the copy was last checked (its object state): each UTC day the span
    touches counts the copy once.
    """
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    cur.execute(
        sql.SQL(
            "SELECT d::date AS day, s.kind, count(DISTINCT (s.backup_id, s.backend)) FROM ("
            "SELECT f.backup_id, f.backend, f.kind, f.checked_at AS began, COALESCE("
            "(SELECT min(n.checked_at) FROM backup_integrity_result n WHERE n.backup_id = f.backup_id "
            "AND n.backend = f.backend AND n.checked_at > f.checked_at) - interval '1 microsecond', "
            "GREATEST(f.checked_at, o.last_checked_at)) AS ended "
            "FROM backup_integrity_result f LEFT JOIN backup_integrity_object o "
            "ON o.backup_id = f.backup_id AND o.backend = f.backend "
            "WHERE f.kind <> {passed}) s "
            "CROSS JOIN LATERAL generate_series("
            "date_trunc('day', GREATEST(s.began, %s) AT TIME ZONE 'UTC'), "
            "date_trunc('day', s.ended AT TIME ZONE 'UTC'), interval '1 day') AS d "
            "WHERE s.ended >= %s GROUP BY 1, 2"
        ).format(passed=sql.Literal(PASSED)),
        [since, since],
    )
    return [FailureCount(*row) for row in cur.fetchall()]


def as_uuid(value: str) -> str | None:
    """``value`` as a canonical UUID, or None when it is not one (an unknown backup, then)."""
    import uuid

    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def read_backup_status(cur: Any, settings: Settings, backup_id: str) -> str | None:
    """The catalog's status of one backup (``COMPLETED``, ...), None when there is no such backup."""
    canonical = as_uuid(backup_id)
    if canonical is None:
        return None
    cur.execute(
        sql.SQL("SELECT status FROM {t} WHERE id = %s::uuid").format(t=table(settings.backups_table)),
        [canonical],
    )
    row = cur.fetchone()
    return None if row is None else row[0]


# --------------------------------------------------------------------------- recovery and cost


class ChainRow(NamedTuple):
    wal_chain: dict[str, Any] | None
    recovery_window: dict[str, Any] | None
    window_end: datetime | None


class CostRows(NamedTuple):
    """The last run's cost per store, the sums of the last 30 days, and since when runs carry a cost."""

    last_run: dict[str, float]
    last_30_days: dict[str, float]
    first_recorded_at: datetime | None


def read_recovery_chain(cur: Any) -> ChainRow | None:
    """The WAL chain and recovery window of the latest window run that judged them."""
    cur.execute(
        "SELECT statistics -> 'wal_chain', statistics -> 'recovery_window', window_end "
        "FROM backup_integrity_run WHERE dag_id = %s AND jsonb_typeof(statistics -> 'wal_chain') = 'object' "
        "ORDER BY recorded_at DESC LIMIT 1",
        [VERIFIER_DAG_ID],
    )
    row = cur.fetchone()
    return None if row is None else ChainRow(*row)


def read_costs(cur: Any, now: datetime) -> CostRows:
    """Per store: the latest run's ``estimated_cost_usd`` and the sum over the runs of the last 30 days."""
    cur.execute(
        "SELECT statistics -> 'estimated_cost_usd' FROM backup_integrity_run WHERE dag_id = %s "
        "AND jsonb_typeof(statistics -> 'estimated_cost_usd') = 'object' ORDER BY recorded_at DESC LIMIT 1",
        [VERIFIER_DAG_ID],
    )
    row = cur.fetchone()
    last = {k: float(v) for k, v in (row[0] if row else {}).items()}
    cur.execute(
        "SELECT cost.key, sum(cost.value::numeric) FROM backup_integrity_run r, "
        "jsonb_each_text(r.statistics -> 'estimated_cost_usd') AS cost WHERE r.dag_id = %s "
        "AND jsonb_typeof(r.statistics -> 'estimated_cost_usd') = 'object' AND r.recorded_at >= %s "
        "GROUP BY cost.key",
        [VERIFIER_DAG_ID, now - timedelta(days=30)],
    )
    sums = {key: float(total) for key, total in cur.fetchall()}
    cur.execute(
        "SELECT min(recorded_at) FROM backup_integrity_run WHERE dag_id = %s "
        "AND jsonb_typeof(statistics -> 'estimated_cost_usd') = 'object'",
        [VERIFIER_DAG_ID],
    )
    return CostRows(last, sums, cur.fetchone()[0])
