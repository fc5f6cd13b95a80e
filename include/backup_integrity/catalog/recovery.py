"""What the recovery checks read from the catalog: the newest backup per type, WAL rows, base backups.

Each query is bounded by the run's window (or one row per type), so none of them
holds the whole catalog. The verdicts are the domain's
(:mod:`include.backup_integrity.domain.freshness`, :mod:`include.backup_integrity.domain.wal`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.domain.freshness import NewestOfType
from include.backup_integrity.domain.records import CHECKSUM_MISMATCH, MISSING, PASSED, SIZE_MISMATCH
from include.backup_integrity.domain.wal import WalRow

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from include.backup_integrity.config.settings import Settings

WAL_ARCHIVE = "WAL_ARCHIVE"
#: The latest check kinds that make a copy absent (a backend_error is unknown, not absent).
ABSENT_KINDS = (MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH)


def newest_of_types(
    conn: Any, settings: Settings, backup_types: Iterable[str], as_of: datetime
) -> list[NewestOfType]:
    """Per type: the newest COMPLETED ``created_at`` up to ``as_of``, and how many FAILED rows are newer."""
    found = []
    t = table(settings.backups_table)
    with conn.cursor() as cur:
        for backup_type in backup_types:
            cur.execute(
                sql.SQL(
                    "WITH newest AS (SELECT max(created_at) AS at FROM {t} "
                    "WHERE backup_type = %s AND status = 'COMPLETED' AND created_at <= %s) "
                    "SELECT newest.at, (SELECT count(*) FROM {t} f WHERE f.backup_type = %s "
                    "AND f.status = 'FAILED' AND f.created_at <= %s "
                    "AND (newest.at IS NULL OR f.created_at > newest.at)) FROM newest"
                ).format(t=t),
                [backup_type, as_of, backup_type, as_of],
            )
            at, newer_failed = cur.fetchone()
            found.append(NewestOfType(backup_type, at, int(newer_failed)))
    return found


def wal_rows(conn: Any, settings: Settings, window_start: datetime, window_end: datetime) -> list[WalRow]:
    """The window's COMPLETED WAL rows; ``absent`` when every expected copy's latest check failed."""
    expected = list(settings.expected_backends.get(WAL_ARCHIVE, []))
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT b.id::text, b.filename, b.created_at, "
                "  cardinality(%s::text[]) > 0 AND (SELECT count(*) FROM backup_integrity_object o "
                "   WHERE o.backup_id = b.id AND o.backend = ANY(%s::text[]) "
                "   AND o.last_kind = ANY(%s::text[])) = cardinality(%s::text[]) "
                "FROM {t} b WHERE b.backup_type = %s AND b.status = 'COMPLETED' "
                "AND b.created_at >= %s AND b.created_at < %s ORDER BY b.created_at, b.id"
            ).format(t=table(settings.backups_table)),
            [expected, expected, list(ABSENT_KINDS), expected, WAL_ARCHIVE, window_start, window_end],
        )
        return [WalRow(r[0], r[1], r[2].isoformat(), bool(r[3])) for r in cur.fetchall()]


def oldest_verified_base(
    conn: Any, settings: Settings, backup_type: str, start: str, end: str
) -> tuple[str, str] | None:
    """(id, created_at) of the oldest COMPLETED ``backup_type`` backup in [start, end] with a passed copy."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT b.id::text, b.created_at FROM {t} b WHERE b.backup_type = %s "
                "AND b.status = 'COMPLETED' AND b.created_at >= %s AND b.created_at <= %s "
                "AND EXISTS (SELECT 1 FROM backup_integrity_object o WHERE o.backup_id = b.id "
                "AND o.last_kind = %s) ORDER BY b.created_at, b.id LIMIT 1"
            ).format(t=table(settings.backups_table)),
            [backup_type, start, end, PASSED],
        )
        row = cur.fetchone()
    return (row[0], row[1].isoformat()) if row else None


def retention_reads(
    conn: Any,
    settings: Settings,
    backend: str,
    window_start: datetime,
    window_end: datetime,
    min_days: float,
    also: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The window's copies on ``backend`` whose last retention read was short, and those in ``also``.

    ``also`` (backup ids with an open ``retention_short`` alert) are returned whatever
    their retention, so that a long-enough read resolves them; the long-enough rest stay
    in the database.
    """
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT b.id::text, b.created_at, o.retain_until, o.retention_read_at, "
                "  (o.retain_until IS NULL OR o.retain_until < b.created_at + make_interval(secs => %s)) "
                "FROM {t} b JOIN backup_integrity_object o ON o.backup_id = b.id AND o.backend = %s "
                "WHERE b.status = 'COMPLETED' AND b.created_at >= %s AND b.created_at < %s "
                "AND o.retention_read_at IS NOT NULL AND ("
                "  o.retain_until IS NULL OR o.retain_until < b.created_at + make_interval(secs => %s) "
                "  OR b.id = ANY(%s::uuid[])) ORDER BY b.created_at, b.id"
            ).format(t=table(settings.backups_table)),
            [min_days * 86400, backend, window_start, window_end, min_days * 86400, list(also)],
        )
        return [
            {
                "backup_id": r[0],
                "backend": backend,
                "created_at": r[1].isoformat(),
                "retain_until": r[2].isoformat() if r[2] else None,
                "read_at": r[3].isoformat(),
                "min_retention_days": min_days,
                "short": bool(r[4]),
            }
            for r in cur.fetchall()
        ]


def open_retention_alerts(cur: Any, alerts_table: str) -> dict[str, list[str]]:
    """Per backend, the backups with an open ``retention_short`` alert of the verifier."""
    from include.backup_integrity.catalog.alert_store import load_open_alerts
    from include.backup_integrity.domain.recovery import RETENTION_SHORT

    found: dict[str, list[str]] = {}
    for alert in load_open_alerts(cur, alerts_table):
        if alert.details.get("kind") == RETENTION_SHORT and alert.backup_id:
            found.setdefault(str(alert.details.get("backend")), []).append(alert.backup_id)
    return found
