"""Notices that waited too long: marked expired and recorded, never sent late, never dropped silently.

A notice is retried by every run until each target has accepted it. One still
undelivered ``notice_max_age_hours`` after it was queued (a channel down for days,
``backup_notify`` missing) would tell of a state long gone, so it is given up:
``expired_at`` is set on the notice and its alert says so in ``details.notification_error``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from include.backup_integrity.catalog.backups import table
from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.domain.ownership import SOURCE

log = logging.getLogger(__name__)

#: Only rows the package wrote are written to (the marker of any of its DAGs).
OWN_ROW = json.dumps({"source": SOURCE})


@dataclass(frozen=True)
class ExpiredNotice:
    """A notice given up, and why."""

    id: int
    alert_id: int
    event: str
    reason: str


def max_age_seconds(max_age_hours: float) -> float:
    return float(max_age_hours) * 3600.0


def expiry_reason(max_age_hours: float, delivered_to: list[str], last_error: str | None) -> str:
    """What an expired notice's record says: how long it waited, where it arrived, the last error."""
    reason = f"expired: not delivered within notice_max_age_hours ({max_age_hours:g} h)"
    if delivered_to:
        reason += f"; accepted only by {', '.join(delivered_to)}"
    if last_error:
        reason += f"; last error: {last_error}"
    return reason


def expire_stale_notices(cur: Any, alerts_table: str, max_age_hours: float) -> list[ExpiredNotice]:
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


#: The condition a notice must meet to be sent now: pending and young enough (a parameter: the age).
SENDABLE = "sent_at IS NULL AND expired_at IS NULL AND created_at > now() - make_interval(secs => %s)"
