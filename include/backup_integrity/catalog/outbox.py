"""The notification outbox: notices queued with the alert change that owes them, sent after commit.

A notice is written in the same transaction as its alert change, keyed on
``(alert_id, event)`` so that a retried run never queues it twice; the notifier
(:mod:`include.backup_integrity.notify.delivery`) claims each pending notice,
sends it, and records here which targets accepted it. A notice is retried by every
run until each target has accepted it; one still undelivered ``notice_max_age_hours``
after it was queued would tell of a state long gone, so it is given up instead:
``expired_at`` is set and its alert says so in ``details.notification_error`` (never
sent late, never dropped silently).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.domain.ownership import SOURCE, WATCHDOG_DAG_ID

log = logging.getLogger(__name__)

#: Only alert rows the package wrote are written to (the marker any of its DAGs writes).
OWN_ROW = json.dumps({"source": SOURCE})
#: The watchdog's alert rows: their notices are never counted into, nor sent in, a digest.
WATCHDOG_ROW = json.dumps({"source": SOURCE, "producer": WATCHDOG_DAG_ID})


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


@dataclass(frozen=True)
class ExpiredNotice:
    """A notice given up, and why."""

    id: int
    alert_id: int
    event: str
    reason: str


def claim_next(cur: Any, after_id: int, max_age_hours: float) -> PendingNotice | None:
    """Lock the next pending notice after ``after_id`` until the transaction ends (others skip it).

    Only a notice younger than ``max_age_hours`` is claimed: an older one is never sent late.
    A notice of a digest (:func:`claim_digest`) is only ever sent in it.
    """
    cur.execute(
        "SELECT id, alert_id, title, body, notify_type, delivered_to "
        "FROM backup_integrity_notification WHERE sent_at IS NULL AND expired_at IS NULL "
        "AND digest_run_id IS NULL AND created_at > now() - make_interval(secs => %s) "
        "AND id > %s ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
        [max_age_seconds(max_age_hours), after_id],
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
            "ELSE details || jsonb_build_object('notification_error', %s::text) END "
            "WHERE id = %s AND details @> %s::jsonb"
        ).format(t=table(alerts_table)),
        [json.dumps(delivered), error, error, alert_id, OWN_ROW],
    )


def expire_stale(cur: Any, alerts_table: str, max_age_hours: float) -> list[ExpiredNotice]:
    """Mark every pending notice older than ``max_age_hours`` expired, and record it on its alert.

    A notice another run is sending right now (its row locked) is skipped: that run
    decides it. The caller owns the transaction.
    """
    cur.execute(
        "SELECT id, alert_id, event, delivered_to, last_error FROM backup_integrity_notification "
        "WHERE sent_at IS NULL AND expired_at IS NULL AND created_at <= now() - make_interval(secs => %s) "
        "ORDER BY id FOR UPDATE SKIP LOCKED",
        [max_age_seconds(max_age_hours)],
    )
    expired = []
    for notice_id, alert_id, event, delivered_to, last_error in cur.fetchall():
        reason = expiry_reason(max_age_hours, list(delivered_to or []), last_error)
        cur.execute(
            "UPDATE backup_integrity_notification SET expired_at = now(), last_error = %s WHERE id = %s",
            [reason, notice_id],
        )
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET details = details || jsonb_build_object('notification_error', %s::text) "
                "WHERE id = %s AND details @> %s::jsonb"
            ).format(t=table(alerts_table)),
            [f"notice {event!r} {reason}", alert_id, OWN_ROW],
        )
        log.error("notification %s (%s) for alert %s %s", notice_id, event, alert_id, reason)
        expired.append(ExpiredNotice(notice_id, alert_id, event, reason))
    return expired


def count_queued(cur: Any) -> int:
    """Notices still waiting to be delivered (neither sent nor expired)."""
    cur.execute(
        "SELECT count(*) FROM backup_integrity_notification WHERE sent_at IS NULL AND expired_at IS NULL"
    )
    return int(cur.fetchone()[0])


def expiry_reason(max_age_hours: float, delivered_to: list[str], last_error: str | None) -> str:
    """What an expired notice's record says: how long it waited, where it arrived, the last error."""
    reason = f"expired: not delivered within notice_max_age_hours ({max_age_hours:g} h)"
    if delivered_to:
        reason += f"; accepted only by {', '.join(delivered_to)}"
    if last_error:
        reason += f"; last error: {last_error}"
    return reason


def max_age_seconds(max_age_hours: float) -> float:
    return float(max_age_hours) * 3600.0


# ----------------------------------------------------------------------------- digests


@dataclass(frozen=True)
class DigestItem:
    """A pending notice of a digest, with what its line shows of its alert."""

    notice_id: int
    alert_id: int
    event: str
    severity: str | None
    kind: str | None
    backend: str | None
    backup_id: str | None
    message: str | None
    delivered_to: list[str]


def _pending(alias: str = "n") -> str:
    return (
        f"{alias}.sent_at IS NULL AND {alias}.expired_at IS NULL "
        f"AND {alias}.created_at > now() - make_interval(secs => %(max_age)s)"
    )


def digest_runs(cur: Any, alerts_table: str, digest_after: int, max_age_hours: float) -> list[str]:
    """The runs whose pending notices go out as one digest, oldest first.

    A run qualifies when it queued more than ``digest_after`` notices (the watchdog's
    not counted) and some are still pending, or when a digest of it is still owed to
    a target that refused it.
    """
    cur.execute(
        sql.SQL(
            "SELECT n.run_id FROM backup_integrity_notification n LEFT JOIN {t} a ON a.id = n.alert_id "
            "WHERE NOT COALESCE(a.details @> %(watchdog)s::jsonb, false) GROUP BY n.run_id "
            "HAVING bool_or(" + _pending() + ") AND (count(*) > %(after)s "
            "OR bool_or(n.digest_run_id IS NOT NULL AND " + _pending() + ")) ORDER BY min(n.id)"
        ).format(t=table(alerts_table)),
        {"watchdog": WATCHDOG_ROW, "after": digest_after, "max_age": max_age_seconds(max_age_hours)},
    )
    return [row[0] for row in cur.fetchall()]


def claim_digest(cur: Any, alerts_table: str, run_id: str, max_age_hours: float) -> list[DigestItem]:
    """Lock the run's pending notices (the watchdog's excepted) until the transaction ends."""
    cur.execute(
        sql.SQL(
            "SELECT n.id, n.alert_id, n.event, a.severity, a.details ->> 'kind', a.details ->> 'backend', "
            "a.backup_id::text, a.message, n.delivered_to FROM backup_integrity_notification n "
            "LEFT JOIN {t} a ON a.id = n.alert_id WHERE n.run_id = %(run)s AND " + _pending() + " "
            "AND NOT COALESCE(a.details @> %(watchdog)s::jsonb, false) "
            "ORDER BY n.id FOR UPDATE OF n SKIP LOCKED"
        ).format(t=table(alerts_table)),
        {"run": run_id, "watchdog": WATCHDOG_ROW, "max_age": max_age_seconds(max_age_hours)},
    )
    return [DigestItem(*row[:8], list(row[8] or [])) for row in cur.fetchall()]


def record_digest_delivery(
    cur: Any,
    alerts_table: str,
    run_id: str,
    items: list[DigestItem],
    delivered: list[str],
    error: str | None,
    complete: bool,
) -> None:
    """Record the digest on each notice it stands for (and their alerts); sent when every target took it."""
    cur.execute(
        "UPDATE backup_integrity_notification SET delivered_to = (SELECT COALESCE(jsonb_agg(DISTINCT t), "
        "'[]'::jsonb) FROM jsonb_array_elements_text(delivered_to || %s::jsonb) AS t), "
        "attempts = attempts + 1, last_attempt_at = now(), last_error = %s, digest_run_id = %s, "
        "sent_at = CASE WHEN %s THEN now() ELSE NULL END WHERE id = ANY(%s) RETURNING alert_id, delivered_to",
        [json.dumps(delivered), error, run_id, complete, [item.notice_id for item in items]],
    )
    for alert_id, delivered_to in sorted(cur.fetchall()):
        _record_on_alert(cur, alerts_table, alert_id, delivered_to, error)
