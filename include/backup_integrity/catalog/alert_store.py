"""The alert store: the alerts table and its occurrences, written for the verifier and the watchdog.

:func:`apply_alert_changes` writes the plan of
:func:`~include.backup_integrity.domain.alerts.plan_alert_changes` inside the
caller's transaction (which holds the verifier's advisory lock, so that concurrent
runs are serialised) and queues the notices each change owes in the outbox; they
are delivered only after commit by :mod:`include.backup_integrity.notify.delivery`.
The watchdog writes its own ``verifier_stalled`` alert with the same public
functions: :func:`insert_alert`, :func:`add_occurrence` and :func:`observe`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.alert_markers import owned_by
from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.catalog.outbox import queue_notice
from include.backup_integrity.domain.alerts import (
    ALERT_TYPE,
    OPEN_STATUSES,
    SUMMARY,
    AlertKey,
    CountedFailure,
    OpenAlert,
    SummaryChange,
    notice_body,
    opened_notice,
    plan_alert_changes,
    repaired_notice,
    resolved_notice,
    summary_content,
)
from include.backup_integrity.domain.ownership import VERIFIER_DAG_ID, with_markers
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    MISSING,
    REPAIRED,
    SIZE_MISMATCH,
    CheckResult,
)
from include.backup_integrity.domain.recovery import plan_recovery
from include.backup_integrity.domain.timestamps import is_later, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.incidents import RunIncidents
    from include.backup_integrity.domain.recovery import RecoveryJudgement


def load_open_alerts(cur: Any, alerts_table: str) -> list[OpenAlert]:
    """The verifier's open alerts: rows with its marker, of the kinds it owns (never another writer's).

    The application, and the task this package replaces, write ``INTEGRITY_FAILURE``
    rows with a ``details.kind`` too; only the marker tells ours apart.
    """
    owned, owned_params = owned_by(VERIFIER_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT id, backup_id::text, severity, status, details FROM {t} "
            "WHERE alert_type = %s AND status = ANY(%s) AND {owned} ORDER BY id"
        ).format(t=table(alerts_table), owned=owned),
        [ALERT_TYPE, list(OPEN_STATUSES), *owned_params],
    )
    return [OpenAlert(row[0], row[1], row[2], row[3], row[4] or {}) for row in cur.fetchall()]


def insert_alert(
    cur: Any,
    alerts_table: str,
    backup_id: str | None,
    severity: str,
    message: str,
    details: dict,
    *,
    producer: str,
) -> int:
    """Open a new ``ACTIVE`` alert of the package's type, marked as written by ``producer`` (a DAG id)."""
    cur.execute(
        sql.SQL(
            "INSERT INTO {t} (backup_id, alert_type, severity, message, details, "
            "notification_channels, status, acknowledged_at, acknowledged_by, resolved_at, created_at) "
            "VALUES (%s::uuid, %s, %s, %s, %s::jsonb, '[]'::jsonb, 'ACTIVE', NULL, NULL, NULL, now()) "
            "RETURNING id"
        ).format(t=table(alerts_table)),
        [backup_id, ALERT_TYPE, severity, message, json.dumps(with_markers(details, producer))],
    )
    return cur.fetchone()[0]


def add_occurrence(cur: Any, alert_id: int, run_id: str, checked_at: str) -> int:
    """Count one run's sighting of an alert (once per run, however often retried); return the count."""
    cur.execute(
        "INSERT INTO backup_integrity_alert_occurrence (alert_id, run_id, checked_at) "
        "VALUES (%s, %s, %s) ON CONFLICT (alert_id, run_id) DO UPDATE "
        "SET checked_at = GREATEST(backup_integrity_alert_occurrence.checked_at, EXCLUDED.checked_at)",
        [alert_id, run_id, checked_at],
    )
    cur.execute("SELECT count(*) FROM backup_integrity_alert_occurrence WHERE alert_id = %s", [alert_id])
    return cur.fetchone()[0]


def observe(
    cur: Any,
    alerts_table: str,
    alert_id: int,
    run_id: str,
    checked_at: str,
    severity: str,
    message: str,
    details: dict[str, Any],
) -> bool:
    """Count this run's sighting; describe the failure anew when it is the latest. True if it was."""
    occurrences = add_occurrence(cur, alert_id, run_id, checked_at)
    cur.execute(
        sql.SQL("SELECT details FROM {t} WHERE id = %s FOR UPDATE").format(t=table(alerts_table)),
        [alert_id],
    )
    current = cur.fetchone()[0] or {}
    merged = dict(current)
    merged["occurrences"] = occurrences
    newer = is_later(checked_at, parse_timestamp(current.get("last_seen")))
    if newer:
        # The latest observation describes the failure; first_seen never moves.
        merged.update({k: v for k, v in details.items() if k not in ("first_seen", "occurrences")})
        merged["last_seen"] = checked_at
    cur.execute(
        sql.SQL(
            "UPDATE {t} SET details = %s::jsonb, message = CASE WHEN %s THEN %s ELSE message END, "
            "severity = CASE WHEN %s THEN %s ELSE severity END WHERE id = %s"
        ).format(t=table(alerts_table)),
        [json.dumps(merged), newer, message, newer, severity, alert_id],
    )
    return newer


def apply_alert_changes(
    cur: Any,
    alerts_table: str,
    results: list[CheckResult],
    run_id: str,
    repairs: Iterable[dict[str, Any]] = (),
    incidents: RunIncidents | None = None,
    recovery: RecoveryJudgement | None = None,
) -> dict[str, int]:
    """Write the run's alert changes and queue their notices; the caller owns the transaction.

    ``repairs`` are the outcomes of this run's applied repairs: a repaired failure's
    alert is resolved as ``repaired`` with one notice saying what was found and what
    was repaired; one not repaired stays open with ``details.repair_error``.
    """
    open_alerts = load_open_alerts(cur, alerts_table)
    plan = plan_alert_changes(
        open_alerts, results, run_id, incidents, recovery=plan_recovery(open_alerts, recovery, run_id)
    )
    alert_ids: dict[AlertKey, int] = {a.key: a.id for a in open_alerts if a.details.get("kind") != SUMMARY}
    repair_by_key: dict[AlertKey, dict[str, Any]] = {
        (r["backup_id"], r["backend"], r["kind"]): r for r in repairs
    }

    opened = repaired = 0
    for alert in plan.new:
        if _resolved_later(cur, alerts_table, alert.key, alert.details["last_seen"]):
            continue  # an older run's finding, already disproved by a later check
        outcome = repair_by_key.get(alert.key)
        if outcome is not None and outcome["status"] != REPAIRED:
            alert.details["repair_error"] = outcome["error"] or outcome["reason"]
        alert_id = insert_alert(
            cur,
            alerts_table,
            alert.key[0],
            alert.severity,
            alert.message,
            alert.details,
            producer=VERIFIER_DAG_ID,
        )
        add_occurrence(cur, alert_id, run_id, alert.details["last_seen"])
        alert_ids[alert.key] = alert_id
        if outcome is not None and outcome["status"] == REPAIRED:
            repaired += _resolve_repaired(cur, alerts_table, alert_id, outcome, run_id)
            continue
        opened += 1
        title, body = opened_notice(alert)
        queue_notice(cur, alert_id, "opened", run_id, title, body, "failure")

    for seen in plan.observed:
        observe(
            cur,
            alerts_table,
            seen.alert_id,
            run_id,
            seen.checked_at,
            seen.severity,
            seen.message,
            seen.details,
        )
        outcome = repair_by_key.get(
            (seen.details.get("backup_id"), seen.details.get("backend"), seen.details["kind"])
        )
        if outcome is None:
            continue
        if outcome["status"] == REPAIRED:
            repaired += _resolve_repaired(cur, alerts_table, seen.alert_id, outcome, run_id)
        else:
            cur.execute(
                sql.SQL("UPDATE {t} SET details = details || %s::jsonb WHERE id = %s").format(
                    t=table(alerts_table)
                ),
                [json.dumps({"repair_error": outcome["error"] or outcome["reason"]}), seen.alert_id],
            )

    # Older alerts about the same copy (say, "missing" before it came back the wrong size)
    # are settled too: the copy has just been read back byte for byte.
    for outcome in repair_by_key.values():
        if outcome["status"] != REPAIRED:
            continue
        for alert in open_alerts:
            if (
                alert.backup_id == outcome["backup_id"]
                and alert.details.get("backend") == outcome["backend"]
                and alert.details.get("kind") in (MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH)
                and alert.key not in repair_by_key
            ):
                repaired += _resolve_repaired(cur, alerts_table, alert.id, outcome, run_id)

    for resolution in plan.resolved:
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET status = 'RESOLVED', resolved_at = %s, "
                "details = details || %s::jsonb WHERE id = %s AND status = ANY(%s) "
                "RETURNING message, details"
            ).format(t=table(alerts_table)),
            [
                resolution.resolved_at,
                json.dumps(resolution.details),
                resolution.alert_id,
                list(OPEN_STATUSES),
            ],
        )
        row = cur.fetchone()
        if row:
            title, body = resolved_notice(resolution, row[0], row[1])
            queue_notice(cur, resolution.alert_id, "resolved", run_id, title, body, "success")

    summary_id = _apply_summary(cur, alerts_table, plan.summary, alert_ids, run_id)
    _resolve_finished_summaries(cur, alerts_table, keep_open=summary_id, run_id=run_id)
    return {
        "opened": opened,
        "updated": len(plan.observed),
        "resolved": len(plan.resolved),
        "repaired": repaired,
    }


def _resolve_repaired(
    cur: Any, alerts_table: str, alert_id: int, outcome: dict[str, Any], run_id: str
) -> int:
    """Resolve an alert whose copy was repaired; queue the one notice that says both what and how."""
    repair = {
        "source_backend": outcome["source_backend"],
        "sha256": outcome["sha256"],
        "repaired_at": outcome["repaired_at"],
    }
    cur.execute(
        sql.SQL(
            "UPDATE {t} SET status = 'RESOLVED', resolved_at = %s, "
            "details = (details - 'repair_error') || %s::jsonb WHERE id = %s AND status = ANY(%s) "
            "RETURNING message, details"
        ).format(t=table(alerts_table)),
        [
            outcome["repaired_at"],
            json.dumps({"resolution": "repaired", "resolved_by_run_id": run_id, "repair": repair}),
            alert_id,
            list(OPEN_STATUSES),
        ],
    )
    row = cur.fetchone()
    if row is None:
        return 0
    message, details = row
    title, body = repaired_notice(message, details, outcome)
    queue_notice(cur, alert_id, "repaired", run_id, title, body, "warning")
    return 1


def _resolved_later(cur: Any, alerts_table: str, key: AlertKey, checked_at: str) -> bool:
    """Whether an alert for this failure was resolved by a check later than ``checked_at``."""
    backup_id, backend, kind = key
    owned, owned_params = owned_by(VERIFIER_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT 1 FROM {t} WHERE alert_type = %s AND status = 'RESOLVED' "
            "AND backup_id IS NOT DISTINCT FROM %s::uuid "
            "AND (details ->> 'backend') IS NOT DISTINCT FROM %s AND details ->> 'kind' = %s "
            "AND resolved_at > %s AND {owned} LIMIT 1"
        ).format(t=table(alerts_table), owned=owned),
        [ALERT_TYPE, backup_id, backend, kind, checked_at, *owned_params],
    )
    return cur.fetchone() is not None


def _counted_failures(cur: Any, alerts_table: str, alert_ids: Iterable[int]) -> dict[int, CountedFailure]:
    """The open alerts among ``alert_ids``, as a summary counts them."""
    owned, owned_params = owned_by(VERIFIER_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT id, backup_id::text, details FROM {t} WHERE id = ANY(%s) AND status = ANY(%s) AND {owned}"
        ).format(t=table(alerts_table), owned=owned),
        [sorted(alert_ids), list(OPEN_STATUSES), *owned_params],
    )
    counted = {}
    for alert_id, backup_id, details in cur.fetchall():
        checks = int(details.get("affected_count") or 1) if details.get("kind") == BACKEND_ERROR else 1
        counted[alert_id] = CountedFailure(backup_id, details.get("backend"), details["kind"], checks)
    return counted


def _apply_summary(
    cur: Any, alerts_table: str, change: SummaryChange | None, alert_ids: dict[AlertKey, int], run_id: str
) -> int | None:
    """Open the summary, or update the open one to count this run's failures and those still open."""
    if change is None:
        return None
    wanted = {alert_ids[k] for k in change.failure_keys if k in alert_ids} | set(change.existing_alert_ids)
    counted = _counted_failures(cur, alerts_table, wanted)
    if not counted:
        return change.existing_id
    severity, message, details = summary_content(list(counted.values()), run_id)
    details["alert_ids"] = sorted(counted)
    checked_at = change.checked_at
    if change.existing_id is None:
        if len(counted) < 2 and sum(f.checks for f in counted.values()) < 2:
            return None
        details.update(first_seen=checked_at, last_seen=checked_at, occurrences=1)
        summary_id = insert_alert(
            cur, alerts_table, None, severity, message, details, producer=VERIFIER_DAG_ID
        )
        add_occurrence(cur, summary_id, run_id, checked_at)
        queue_notice(
            cur,
            summary_id,
            "opened",
            run_id,
            f"[{severity}] Backup integrity: {details['failed_checks']} failures",
            notice_body(message, details),
            "failure",
        )
        return summary_id
    latest = observe(cur, alerts_table, change.existing_id, run_id, checked_at, severity, message, details)
    if not latest:
        # Concurrent runs (a backfill) commit in any order: a run whose checks are older than the
        # summary's last_seen still adds its open failures, so what it counts never depends on order.
        counted = {
            k: v for k, v in details.items() if k not in ("run_id", "first_seen", "last_seen", "occurrences")
        }
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET details = details || %s::jsonb, message = %s, severity = %s WHERE id = %s"
            ).format(t=table(alerts_table)),
            [json.dumps(counted), message, severity, change.existing_id],
        )
    if details["fingerprint"] != change.existing_fingerprint:
        queue_notice(
            cur,
            change.existing_id,
            f"changed:{run_id}",
            run_id,
            f"[{severity}] Backup integrity: failures changed, {details['failed_checks']} open now",
            notice_body(message, details),
            "failure",
        )
    return change.existing_id


def _resolve_finished_summaries(cur: Any, alerts_table: str, keep_open: int | None, run_id: str) -> None:
    """Resolve every open summary none of whose counted alerts is still open (and extras)."""
    t = table(alerts_table)
    owned, owned_params = owned_by(VERIFIER_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT id, details FROM {t} WHERE alert_type = %s AND status = ANY(%s) "
            "AND details ->> 'kind' = 'summary' AND {owned} ORDER BY id DESC"
        ).format(t=t, owned=owned),
        [ALERT_TYPE, list(OPEN_STATUSES), *owned_params],
    )
    summaries = cur.fetchall()
    newest = keep_open if keep_open is not None else (summaries[0][0] if summaries else None)
    for summary_id, details in summaries:
        counted = [int(i) for i in (details or {}).get("alert_ids", [])]
        still_open = len(_counted_failures(cur, alerts_table, counted))
        if summary_id == newest and still_open:
            continue
        reason = "all counted alerts resolved" if not still_open else "superseded by a newer summary"
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET status = 'RESOLVED', resolved_at = now(), "
                "details = details || %s::jsonb WHERE id = %s"
            ).format(t=t),
            [json.dumps({"resolution": reason}), summary_id],
        )
        if not still_open:
            queue_notice(
                cur,
                summary_id,
                "resolved",
                run_id,
                "[RESOLVED] Backup integrity: every failure of the summary is resolved",
                f"Resolved: all {len(counted)} alert(s) counted by summary alert {summary_id} are resolved.",
                "success",
            )
