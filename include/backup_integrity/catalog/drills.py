"""The restore drills in the catalog: candidates, the drill history, metadata, alerts, the overview.

Every drill is kept in ``backup_integrity_restore`` and every configured drill run in
``backup_integrity_restore_run``; each drilled backup gets
``metadata.last_restore_test`` merged into its metadata like ``last_integrity_check``;
the ``restore_*`` alerts live in the catalog's alert table with the verifier's
lifecycle, written through the alert store's functions and notified through its
outbox. Functions take an open DB-API connection or a cursor inside the caller's
transaction.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from include.backup_integrity.catalog import alert_store
from include.backup_integrity.catalog.alert_markers import owned_by
from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.catalog.outbox import queue_notice
from include.backup_integrity.domain.alerts import ALERT_TYPE, OPEN_STATUSES, notice_body
from include.backup_integrity.domain.checks import path_for
from include.backup_integrity.domain.drill_alerts import DrillAlert, DrillAlertPlan, OpenDrillAlert
from include.backup_integrity.domain.drills import (
    DRILL_ALERT_KINDS,
    DRILL_DAG_ID,
    PASSED,
    RESTORE_OVERDUE,
    Candidate,
    DrillCopy,
    DrillOutcome,
)
from include.backup_integrity.domain.timestamps import CANONICAL_TIME, canonical_time

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.records import BackupRecord

log = logging.getLogger(__name__)

RESTORE_TABLE = "backup_integrity_restore"

#: The drill history: one row per (run, backup). ``window_end`` is the end of the drill
#: run's data interval, the clock ``restore_overdue`` counts in. Created by the Alembic
#: revision ``0002_restore_drills``, which executes this very text (``integrity_tables.sql``
#: ships it too, for standalone use).
RESTORE_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS backup_integrity_restore (
    run_id text NOT NULL,
    backup_id uuid NOT NULL,
    backup_type text NOT NULL,
    format text NOT NULL,
    status text NOT NULL,
    stage text NOT NULL,
    source_backend text NULL,
    message text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    duration_seconds double precision NOT NULL,
    bytes_fetched bigint NULL,
    details jsonb NOT NULL DEFAULT '{}',
    window_end timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, backup_id),
    CONSTRAINT backup_integrity_restore_status_check CHECK (status IN ('passed', 'failed', 'error')),
    CONSTRAINT backup_integrity_restore_stage_check
        CHECK (stage IN ('fetch', 'decrypt', 'decompress', 'restore', 'check'))
);
CREATE INDEX IF NOT EXISTS backup_integrity_restore_backup_idx
    ON backup_integrity_restore (backup_id, finished_at DESC);
CREATE INDEX IF NOT EXISTS backup_integrity_restore_type_idx
    ON backup_integrity_restore (backup_type, status, window_end DESC);
"""


RESTORE_RUN_TABLE = "backup_integrity_restore_run"


def server_identity(conn: Any) -> tuple[str, str]:
    """(system_identifier, current_database()): what tells two databases apart, whatever the host."""
    with conn.cursor() as cur:
        cur.execute("SELECT system_identifier::text, current_database() FROM pg_control_system()")
        system_identifier, database = cur.fetchone()
    conn.rollback()
    return str(system_identifier), str(database)


def load_candidates(
    conn: Any, settings: Settings, backup_types: list[str], start: datetime, end: datetime
) -> list[Candidate]:
    """COMPLETED backups of these types created in ``[start, end)`` with a copy whose last check passed."""
    if not backup_types:
        return []
    query = sql.SQL(
        "SELECT b.id::text, b.backup_type, b.created_at, r.last_drilled_at FROM {backups} AS b "
        "LEFT JOIN (SELECT backup_id, max(finished_at) AS last_drilled_at FROM backup_integrity_restore "
        "GROUP BY backup_id) AS r ON r.backup_id = b.id "
        "WHERE b.status = 'COMPLETED' AND b.backup_type = ANY(%s) AND b.created_at >= %s "
        "AND b.created_at < %s AND EXISTS (SELECT 1 FROM backup_integrity_object AS o "
        "WHERE o.backup_id = b.id AND o.last_kind = %s)"
    ).format(backups=table(settings.backups_table))
    with conn.cursor() as cur:
        cur.execute(query, [backup_types, start, end, PASSED])
        rows = cur.fetchall()
    conn.rollback()
    return [Candidate(row[0], row[1], row[2], row[3]) for row in rows]


def copies_of(conn: Any, records: Iterable[BackupRecord]) -> dict[str, list[DrillCopy]]:
    """Each backup's recorded copies, with the kind of the last integrity check of each."""
    records = list(records)
    if not records:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT backup_id::text, backend, path, last_kind FROM backup_integrity_object "
            "WHERE backup_id = ANY(%s::uuid[])",
            [[r["id"] for r in records]],
        )
        checked = {(row[0], row[1]): (row[2], row[3]) for row in cur.fetchall()}
    conn.rollback()
    copies: dict[str, list[DrillCopy]] = {}
    for record in records:
        entries: list[DrillCopy] = []
        for backend in record["paths"]:  # the configured stores, in the operator's order
            path = path_for(record, backend)
            if path is None:
                continue
            recorded_path, last_kind = checked.get((record["id"], backend), (None, None))
            # A check of another path says nothing about this one.
            entries.append(
                DrillCopy(backend=backend, path=path, last_check=last_kind if recorded_path == path else None)
            )
        copies[record["id"]] = entries
    return copies


# ----------------------------------------------------------------------------- the history


def record_drills(cur: Any, run_id: str, window_end: datetime, outcomes: Iterable[DrillOutcome]) -> None:
    """Keep each drill of the run, once per (run, backup): a retried task rewrites its row."""
    columns = (
        "run_id, backup_id, backup_type, format, status, stage, source_backend, message, started_at, "
        "finished_at, duration_seconds, bytes_fetched, details, window_end"
    )
    for o in outcomes:
        cur.execute(
            f"INSERT INTO {RESTORE_TABLE} ({columns}) VALUES "
            "(%s, %s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) "
            "ON CONFLICT (run_id, backup_id) DO UPDATE SET backup_type = EXCLUDED.backup_type, "
            "format = EXCLUDED.format, status = EXCLUDED.status, stage = EXCLUDED.stage, "
            "source_backend = EXCLUDED.source_backend, message = EXCLUDED.message, "
            "started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "
            "duration_seconds = EXCLUDED.duration_seconds, bytes_fetched = EXCLUDED.bytes_fetched, "
            "details = EXCLUDED.details, window_end = EXCLUDED.window_end, recorded_at = now()",
            [
                run_id,
                o["backup_id"],
                o["backup_type"],
                o["format"],
                o["status"],
                o["stage"],
                o["source_backend"],
                o["message"],
                o["started_at"],
                o["finished_at"],
                o["duration_seconds"],
                o["bytes_fetched"],
                json.dumps(o["details"]),
                window_end,
            ],
        )


def record_drill_run(
    cur: Any, run_id: str, window_end: datetime, statistics: dict[str, Any] | None = None
) -> None:
    """Keep the drill run, once per run: a cleared or retried run rewrites its row."""
    cur.execute(
        f"INSERT INTO {RESTORE_RUN_TABLE} (run_id, window_end, statistics) VALUES (%s, %s, %s::jsonb) "
        "ON CONFLICT (run_id) DO UPDATE SET window_end = EXCLUDED.window_end, "
        "statistics = EXCLUDED.statistics, recorded_at = now()",
        [run_id, window_end, None if statistics is None else json.dumps(statistics)],
    )


def last_restore_test(outcome: DrillOutcome, run_id: str) -> dict[str, Any]:
    """``metadata.last_restore_test`` of a drilled backup."""
    return {
        "timestamp": canonical_time(outcome["finished_at"]),
        "status": outcome["status"],
        "stage": outcome["stage"],
        "source_backend": outcome["source_backend"],
        "duration_seconds": outcome["duration_seconds"],
        "run_id": run_id,
        "message": outcome["message"],
    }


def update_restore_metadata(
    cur: Any, settings: Settings, outcomes: Iterable[DrillOutcome], run_id: str
) -> int:
    """Merge ``last_restore_test`` into each drilled backup's metadata, unless a later drill is there.

    The UPDATE merges in place (``||``), so the application's keys, and
    ``last_integrity_check``, are never lost. Metadata that is not a JSON object (an
    array, a string) is left as it is, with a warning naming the backup; a JSON null
    becomes an object holding ``last_restore_test``.
    """
    current = sql.SQL("(metadata -> 'last_restore_test' ->> 'timestamp')")
    statement = sql.SQL(
        "UPDATE {t} SET metadata = (CASE WHEN jsonb_typeof(metadata) = 'object' THEN metadata "
        "ELSE '{{}}'::jsonb END) || jsonb_build_object('last_restore_test', %s::jsonb) "
        "WHERE id = %s::uuid AND COALESCE(jsonb_typeof(metadata), 'null') IN ('object', 'null') "
        "AND (jsonb_typeof(metadata) IS DISTINCT FROM 'object' OR {c} IS NULL OR {c} !~ %s OR {c} <= %s) "
        "RETURNING id"
    ).format(t=table(settings.backups_table), c=current)
    updated = 0
    for outcome in outcomes:
        entry = last_restore_test(outcome, run_id)
        cur.execute(
            statement, [json.dumps(entry), outcome["backup_id"], f"^{CANONICAL_TIME}$", entry["timestamp"]]
        )
        if cur.fetchone() is not None:
            updated += 1
            continue
        cur.execute(
            sql.SQL("SELECT jsonb_typeof(metadata) FROM {t} WHERE id = %s::uuid").format(
                t=table(settings.backups_table)
            ),
            [outcome["backup_id"]],
        )
        row = cur.fetchone()
        if row is not None and row[0] not in ("object", "null", None):
            log.warning(
                "backup %s: metadata is a JSON %s, not an object; last_restore_test not written",
                outcome["backup_id"],
                row[0],
            )
    return updated


# ----------------------------------------------------------------------------- overdue


def overdue_inputs(
    cur: Any, settings: Settings, backup_types: list[str], start: datetime, end: datetime
) -> tuple[dict[str, int], dict[str, datetime], datetime | None]:
    """Per type: COMPLETED backups created in ``[start, end)``, and the run time of the latest
    passed drill of one of them; and the window end of the first drill run recorded at all.

    A pass of a backup outside the window (an old one drilled through ``backup_ids``)
    says nothing of the window's backups. The first run is the earliest of the drill
    runs (``backup_integrity_restore_run``, every configured run, even one that drilled
    nothing) and of the drills themselves (recorded before that table existed).
    """
    if not backup_types:
        return {}, {}, None
    backups = table(settings.backups_table)
    in_the_window = sql.SQL(
        "b.status = 'COMPLETED' AND b.backup_type = ANY(%s) AND b.created_at >= %s AND b.created_at < %s"
    )
    cur.execute(
        sql.SQL("SELECT b.backup_type, count(*) FROM {t} AS b WHERE {w} GROUP BY b.backup_type").format(
            t=backups, w=in_the_window
        ),
        [backup_types, start, end],
    )
    in_window = {row[0]: int(row[1]) for row in cur.fetchall()}
    cur.execute(
        sql.SQL(
            "SELECT b.backup_type, max(r.window_end) FROM {r} AS r JOIN {t} AS b ON b.id = r.backup_id "
            "WHERE r.status = %s AND {w} GROUP BY b.backup_type"
        ).format(r=sql.Identifier(RESTORE_TABLE), t=backups, w=in_the_window),
        [PASSED, backup_types, start, end],
    )
    last_passed = {row[0]: row[1] for row in cur.fetchall()}
    cur.execute(
        f"SELECT least((SELECT min(window_end) FROM {RESTORE_RUN_TABLE}), "
        f"(SELECT min(window_end) FROM {RESTORE_TABLE}))"
    )
    first = cur.fetchone()[0]
    return in_window, last_passed, first


# ----------------------------------------------------------------------------- alerts


def load_open_drill_alerts(cur: Any, alerts_table: str) -> list[OpenDrillAlert]:
    """The drill DAG's open alerts: rows with its marker, of its kinds (never another writer's)."""
    owned, owned_params = owned_by(DRILL_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT id, backup_id::text, details FROM {t} WHERE alert_type = %s AND status = ANY(%s) "
            "AND details ->> 'kind' = ANY(%s) AND {owned} ORDER BY id"
        ).format(t=table(alerts_table), owned=owned),
        [ALERT_TYPE, list(OPEN_STATUSES), list(DRILL_ALERT_KINDS), *owned_params],
    )
    return [OpenDrillAlert(row[0], row[1], row[2] or {}) for row in cur.fetchall()]


def _notice_body(alert: DrillAlert, details: dict[str, Any]) -> str:
    body = notice_body(alert.message, details)
    extra = [f"{k}: {details[k]}" for k in ("backup_type", "stage", "status") if details.get(k)]
    return "\n".join([body, *extra])


def apply_drill_alerts(cur: Any, alerts_table: str, plan: DrillAlertPlan, run_id: str) -> dict[str, int]:
    """Write the plan's alert changes and queue their notices; the caller owns the transaction.

    A new alert is notified once; a later sighting only updates it (occurrences, the
    latest stage and message); a resolution is notified once.
    """
    for alert in plan.opened:
        details = {**alert.details, "first_seen": alert.seen_at, "last_seen": alert.seen_at, "occurrences": 1}
        alert_id = alert_store.insert_alert(
            cur, alerts_table, alert.backup_id, alert.severity, alert.message, details, producer=DRILL_DAG_ID
        )
        alert_store.add_occurrence(cur, alert_id, run_id, alert.seen_at)
        queue_notice(cur, alert_id, "opened", run_id, alert.title, _notice_body(alert, details), "failure")
    for alert_id, alert in plan.observed:
        alert_store.observe(
            cur, alerts_table, alert_id, run_id, alert.seen_at, alert.severity, alert.message, alert.details
        )
    resolved = 0
    owned, owned_params = owned_by(DRILL_DAG_ID)
    for resolution in plan.resolved:
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET status = 'RESOLVED', resolved_at = %s, details = details || %s::jsonb "
                "WHERE id = %s AND status = ANY(%s) AND {owned} RETURNING message, details"
            ).format(t=table(alerts_table), owned=owned),
            [
                resolution.resolved_at,
                json.dumps(resolution.details),
                resolution.alert_id,
                list(OPEN_STATUSES),
                *owned_params,
            ],
        )
        row = cur.fetchone()
        if row is None:
            continue
        resolved += 1
        subject = row[1].get("backup_type") if resolution.kind == RESTORE_OVERDUE else row[1].get("backup_id")
        queue_notice(
            cur,
            resolution.alert_id,
            "resolved",
            run_id,
            f"[RESOLVED] Restore drill: {resolution.kind.replace('_', ' ')} ({subject})",
            f"Resolved: {resolution.message}\n\nWas: {row[0]}",
            "success",
        )
    return {"opened": len(plan.opened), "updated": len(plan.observed), "resolved": resolved}


# ----------------------------------------------------------------------------- the overview


class RestoreTypeRow(NamedTuple):
    """A backup type's last drill (all None when it was never drilled but is overdue)."""

    backup_type: str
    backup_id: str | None
    status: str | None
    stage: str | None
    message: str | None
    drilled_at: datetime | None
    run_id: str | None
    last_passed_at: datetime | None
    overdue: bool


def restore_overview(cur: Any, alerts_table: str) -> list[RestoreTypeRow]:
    """Per backup type drilled: its last drill, its last pass, and whether it is overdue (read only).

    Overdue is what the drill DAG concluded (an open ``restore_overdue`` alert), so the
    dashboard and the alerts always agree.
    """
    cur.execute(
        f"SELECT DISTINCT ON (backup_type) backup_type, backup_id::text, status, stage, message, "
        f"finished_at, run_id FROM {RESTORE_TABLE} ORDER BY backup_type, finished_at DESC"
    )
    last = cur.fetchall()
    cur.execute(
        f"SELECT backup_type, max(finished_at) FROM {RESTORE_TABLE} WHERE status = %s GROUP BY 1", [PASSED]
    )
    passed = dict(cur.fetchall())
    owned, owned_params = owned_by(DRILL_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT details ->> 'backup_type' FROM {t} WHERE alert_type = %s AND status = ANY(%s) "
            "AND details ->> 'kind' = %s AND {owned}"
        ).format(t=table(alerts_table), owned=owned),
        [ALERT_TYPE, list(OPEN_STATUSES), RESTORE_OVERDUE, *owned_params],
    )
    overdue = {row[0] for row in cur.fetchall()}
    rows = [
        RestoreTypeRow(*row, last_passed_at=passed.get(row[0]), overdue=row[0] in overdue) for row in last
    ]
    known = {row.backup_type for row in rows}
    rows += [
        RestoreTypeRow(t, None, None, None, None, None, None, None, overdue=True)
        for t in sorted(overdue - known)
    ]
    return sorted(rows, key=lambda row: row.backup_type)
