"""The notification outbox: notices queued with the alert change that owes them, sent after commit.

A notice is written in the same transaction as its alert change, keyed on
``(alert_id, event)`` so that a retried run never queues it twice; the notifier
(:mod:`include.backup_integrity.notify.delivery`) claims each pending notice,
sends it, and records here which targets accepted it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table


@dataclass(frozen=True)
class PendingNotice:
    """A queued notice, and the targets that have accepted it already."""

    id: int
    alert_id: int
    title: str
    body: str
    notify_type: str
    delivered_to: list[str]


def queue_notice(
    cur: Any, alert_id: int, event: str, run_id: str, title: str, body: str, notify_type: str
) -> None:
    """Queue one notice for an alert's change (a second one for the same event is ignored)."""
    cur.execute(
        "INSERT INTO backup_integrity_notification (alert_id, event, run_id, title, body, notify_type) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (alert_id, event) DO NOTHING",
        [alert_id, event, run_id, title, body, notify_type],
    )


def settle_unsendable(cur: Any, reason: str) -> None:
    """Mark every pending notice as done without sending it (there is nowhere to send it)."""
    cur.execute(
        "UPDATE backup_integrity_notification SET sent_at = now(), last_attempt_at = now(), "
        "last_error = %s WHERE sent_at IS NULL",
        [reason],
    )


def claim_next(cur: Any, after_id: int, max_attempts: int) -> PendingNotice | None:
    """Lock the next pending notice after ``after_id`` until the transaction ends (others skip it)."""
    cur.execute(
        "SELECT id, alert_id, title, body, notify_type, delivered_to "
        "FROM backup_integrity_notification WHERE sent_at IS NULL AND attempts < %s "
        "AND id > %s ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        [max_attempts, after_id],
    )
    row = cur.fetchone()
    if row is None:
        return None
    notice_id, alert_id, title, body, notify_type, delivered = row
    return PendingNotice(notice_id, alert_id, title, body, notify_type, list(delivered or []))


def record_delivery(
    cur: Any,
    alerts_table: str,
    notice_id: int,
    alert_id: int,
    delivered: list[str],
    error: str | None,
    complete: bool,
) -> None:
    """Add the targets that accepted to the notice and its alert; mark it sent when all did."""
    cur.execute(
        "UPDATE backup_integrity_notification SET delivered_to = (SELECT COALESCE(jsonb_agg(DISTINCT t), "
        "'[]'::jsonb) FROM jsonb_array_elements_text(delivered_to || %s::jsonb) AS t), "
        "attempts = attempts + 1, last_attempt_at = now(), last_error = %s, "
        "sent_at = CASE WHEN %s THEN now() ELSE NULL END WHERE id = %s RETURNING delivered_to",
        [json.dumps(delivered), error, complete, notice_id],
    )
    delivered_to = cur.fetchone()[0]
    _record_on_alert(cur, alerts_table, alert_id, delivered_to, error)


def _record_on_alert(
    cur: Any, alerts_table: str, alert_id: int, delivered: list[str], error: str | None
) -> None:
    """The alert row shows where its notices arrived, and the last delivery error if any."""
    cur.execute(
        sql.SQL(
            "UPDATE {t} SET notification_channels = (SELECT COALESCE(jsonb_agg(DISTINCT c), '[]'::jsonb) "
            "FROM jsonb_array_elements_text(notification_channels || %s::jsonb) AS c), "
            "details = CASE WHEN %s::text IS NULL THEN details - 'notification_error' "
            "ELSE details || jsonb_build_object('notification_error', %s::text) END WHERE id = %s"
        ).format(t=table(alerts_table)),
        [json.dumps(delivered), error, error, alert_id],
    )
