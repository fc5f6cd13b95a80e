"""Deliver queued notices through Apprise, target by target, and record what was accepted.

The Apprise provider's own notifier discards the result of each delivery; here
every target configured in the ``backup_notify`` connection is called on its
own, and a notice stays in the outbox until every target has accepted it (or it
has been tried :data:`MAX_ATTEMPTS` times), so a later run retries it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from include.backup_integrity.catalog import table
from include.backup_integrity.config import NOTIFY_CONN_ID
from include.backup_integrity.db import sql, transaction

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 24


@dataclass
class Target:
    """One Apprise service; ``name`` is its URL with credentials masked."""

    name: str
    service: Any

    def send(self, title: str, body: str, notify_type: str) -> bool:
        try:
            return bool(self.service.notify(body=body, title=title, notify_type=notify_type))
        except Exception:  # a broken channel must never break verification
            log.exception("notification target %s raised", self.name)
            return False


def _mask(value: str) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret(value)


def load_targets(conn_id: str = NOTIFY_CONN_ID) -> list[Target] | None:
    """The connection's Apprise targets; None when the connection does not exist, [] when it is unusable."""
    import apprise
    from airflow.providers.apprise.hooks.apprise import AppriseHook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    try:
        config = AppriseHook(apprise_conn_id=conn_id).get_config_from_conn(connection)
    except (KeyError, TypeError, ValueError):
        log.error(
            'connection %r has no valid extra.config (expected {"path": "<apprise url>"} or a list '
            "of them); notifications stay queued until it is fixed",
            conn_id,
        )
        return []
    entries = config if isinstance(config, list) else [config]
    targets: list[Target] = []
    for entry in entries:
        path = str(entry.get("path") or "") if isinstance(entry, dict) else str(entry)
        if path:
            _mask(path)  # Apprise URLs in extra carry tokens and passwords Airflow does not mask
        bundle = apprise.Apprise()
        if not path or not bundle.add(path):
            log.error("backup_notify: a configured target is not a valid Apprise URL; skipped")
            continue
        for service in bundle:
            name = service.url(privacy=True).split("?")[0]
            targets.append(Target(name=name, service=service))
    return targets


def send_direct(title: str, body: str, notify_type: str = "failure") -> list[str]:
    """Send one message now (no outbox); return the targets that accepted it."""
    targets = load_targets()
    if targets is None:
        log.warning("connection %r is not configured; notification not sent: %s", NOTIFY_CONN_ID, title)
        return []
    return [t.name for t in targets if t.send(title, body, notify_type)]


def deliver_pending(conn: Any, alerts_table: str, targets: list[Target] | None) -> dict[str, int]:
    """Send every pending notice once, each in its own short transaction."""
    report = {"sent": 0, "failed": 0}
    if targets is None:
        log.warning(
            "connection %r is not configured: alert rows are written but no notification is sent",
            NOTIFY_CONN_ID,
        )
        with transaction(conn) as cur:
            cur.execute(
                "UPDATE backup_integrity_notification SET sent_at = now(), last_attempt_at = now(), "
                "last_error = %s WHERE sent_at IS NULL",
                [f"not sent: connection {NOTIFY_CONN_ID!r} is not configured"],
            )
        return report
    if not targets:
        log.error("connection %r names no usable target: notifications stay queued", NOTIFY_CONN_ID)
        return report
    last_id = 0
    while True:
        with transaction(conn) as cur:
            cur.execute(
                "SELECT id, alert_id, title, body, notify_type, delivered_to, attempts "
                "FROM backup_integrity_notification WHERE sent_at IS NULL AND attempts < %s "
                "AND id > %s ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                [MAX_ATTEMPTS, last_id],
            )
            row = cur.fetchone()
            if row is None:
                return report
            notice_id, alert_id, title, body, notify_type, delivered, _attempts = row
            last_id = notice_id
            delivered = list(delivered or [])
            failed = []
            for target in targets:
                if target.name in delivered:
                    continue
                if target.send(title, body, notify_type):
                    delivered.append(target.name)
                else:
                    failed.append(target.name)
            complete = not failed
            error = None if complete else f"not accepted by: {', '.join(failed)}"
            if error:
                log.error("notification %s for alert %s: %s (will retry)", notice_id, alert_id, error)
                report["failed"] += 1
            else:
                report["sent"] += 1
            cur.execute(
                "UPDATE backup_integrity_notification SET delivered_to = %s::jsonb, "
                "attempts = attempts + 1, last_attempt_at = now(), last_error = %s, "
                "sent_at = CASE WHEN %s THEN now() ELSE NULL END WHERE id = %s",
                [json.dumps(delivered), error, complete, notice_id],
            )
            _record_on_alert(cur, alerts_table, alert_id, delivered, error)


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
