"""Deliver queued notices through Apprise, target by target, and record what was accepted.

The Apprise provider's own notifier discards the result of each delivery; here
every target configured in the ``backup_notify`` connection is called on its
own, and a notice stays in the outbox until every target has accepted it, so a
later run retries it. While ``backup_notify`` is missing or cannot be resolved, or
names no usable target, notices stay queued. One older than ``notice_max_age_hours``
is marked expired instead (:func:`~include.backup_integrity.catalog.outbox.expire_stale`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog import outbox
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.config.secrets import apprise_secrets, mask, redact
from include.backup_integrity.config.settings import NOTIFY_CONN_ID

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: How long a delivery that already happened is retried to be recorded while the catalog is down.
RECORD_RETRY_SECONDS = 60.0


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


def load_targets(conn_id: str = NOTIFY_CONN_ID) -> list[Target] | None:
    """The connection's Apprise targets; None when it cannot be resolved now, [] when it is unusable.

    Missing and unresolvable (a secrets backend that raises) are alike here: the
    connection may be back at the next run, so notices wait for it.
    """
    import apprise
    from airflow.providers.apprise.hooks.apprise import AppriseHook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    except Exception as exc:  # a secrets backend's outage must not lose or break anything
        reason = f"{type(exc).__name__}: {redact(str(exc))}"
        log.warning("connection %r could not be resolved (%s)", conn_id, reason)
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
        for secret in apprise_secrets(path) if path else []:
            mask(secret)  # Apprise URLs in extra carry tokens and passwords Airflow does not mask
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


def deliver_pending(
    conn: Any,
    alerts_table: str,
    targets: list[Target] | None,
    reconnect: Callable[[], Any] | None = None,
    *,
    max_age_hours: float,
    digest_after: int | None = None,
) -> dict[str, int]:
    """Expire the notices older than ``max_age_hours``, then send every other pending one once.

    A run that queued more than ``digest_after`` notices (the watchdog's not counted)
    sends each target one digest of them instead (:func:`send_digests`).

    Each notice is sent in its own short transaction, locked (``FOR UPDATE SKIP
    LOCKED``) while it is sent, so concurrent runs never send the same one. When the
    catalog goes away after a target has accepted a notice, the delivery is recorded
    on a new connection (``reconnect``, retried for up to :data:`RECORD_RETRY_SECONDS`)
    so that the retry of the task does not send it again. Without usable targets
    (``None`` or ``[]``) nothing is sent and the notices stay queued.
    """
    report = {"sent": 0, "failed": 0}
    with transaction(conn) as cur:
        report["expired"] = len(outbox.expire_stale(cur, alerts_table, max_age_hours))
        queued = outbox.count_queued(cur) if not targets else 0
    if targets is None:
        log.warning(
            "connection %r is missing or cannot be resolved: alert rows are written, and %d "
            "notification(s) stay queued until it is back",
            NOTIFY_CONN_ID,
            queued,
        )
        return {**report, "queued": queued}
    if not targets:
        log.error(
            "connection %r names no usable target: %d notification(s) stay queued", NOTIFY_CONN_ID, queued
        )
        return {**report, "queued": queued}
    if digest_after is not None:
        report.update(send_digests(conn, alerts_table, targets, digest_after, max_age_hours))
    last_id = 0
    opened: list[Any] = []
    try:
        while True:
            attempt: dict[str, Any] = {}
            try:
                with transaction(conn) as cur:
                    if not _claim_and_send(cur, targets, last_id, attempt, max_age_hours):
                        return report
                    _record_delivery(cur, alerts_table, attempt)
            except Exception as exc:
                if not attempt.get("delivered") or reconnect is None or not is_connection_error(exc):
                    raise
                log.warning(
                    "the catalog went away after notification %s was accepted by %s; recording it anew",
                    attempt["id"],
                    ", ".join(attempt["delivered"]),
                )
                conn = _record_after_reconnect(reconnect, alerts_table, attempt)
                opened.append(conn)
            last_id = attempt["id"]
            report["sent" if attempt["complete"] else "failed"] += 1
    finally:
        for extra in opened:
            with contextlib.suppress(Exception):
                extra.close()


def send_digests(
    conn: Any, alerts_table: str, targets: list[Target], digest_after: int, max_age_hours: float
) -> dict[str, int]:
    """Send one digest per qualifying run to each target that has not accepted it yet.

    The run's notices are locked while it is sent (so a concurrent run never sends them
    too) and each records the targets that accepted the digest; a target that refused
    it gets the same digest (the same notices) from the next attempt, and none of them
    is ever sent on its own.
    """
    from include.backup_integrity.notify.digest import alerts_page_url, digest_message

    report = {"digests": 0, "in_digests": 0}
    with transaction(conn) as cur:
        runs = outbox.digest_runs(cur, alerts_table, digest_after, max_age_hours)
    alerts_url = alerts_page_url() if runs else None
    for run_id in runs:
        with transaction(conn) as cur:
            items = outbox.claim_digest(cur, alerts_table, run_id, max_age_hours)
            if not items:
                continue  # another run is sending it right now
            title, body, notify_type = digest_message(run_id, items, alerts_url)
            title, body = redact(title) or "", redact(body) or ""
            owed = [t for t in targets if any(t.name not in item.delivered_to for item in items)]
            delivered = [t.name for t in owed if t.send(title, body, notify_type)]
            failed = [t.name for t in owed if t.name not in delivered]
            error = f"digest not accepted by: {', '.join(failed)}" if failed else None
            if failed:
                log.error("digest of run %s (%d notices): %s (will retry)", run_id, len(items), error)
            outbox.record_digest_delivery(cur, alerts_table, run_id, items, delivered, error, not failed)
        report["digests"] += 1
        report["in_digests"] += len(items)
    return report


def _claim_and_send(
    cur: Any, targets: list[Target], last_id: int, attempt: dict[str, Any], max_age_hours: float
) -> bool:
    """Lock the next notice young enough to send; send it to each target that has not accepted it."""
    notice = outbox.claim_next(cur, last_id, max_age_hours)
    if notice is None:
        return False
    attempt.update(id=notice.id, alert_id=notice.alert_id, delivered=[], complete=False, error=None)
    title, body = redact(notice.title) or "", redact(notice.body) or ""
    failed = []
    for target in targets:
        if target.name in notice.delivered_to:
            continue
        if target.send(title, body, notice.notify_type):
            attempt["delivered"].append(target.name)
        else:
            failed.append(target.name)
    attempt["complete"] = not failed
    if failed:
        attempt["error"] = f"not accepted by: {', '.join(failed)}"
        log.error(
            "notification %s for alert %s: %s (will retry)", notice.id, notice.alert_id, attempt["error"]
        )
    return True


def _record_delivery(cur: Any, alerts_table: str, attempt: dict[str, Any]) -> None:
    outbox.record_delivery(
        cur,
        alerts_table,
        attempt["id"],
        attempt["alert_id"],
        attempt["delivered"],
        attempt["error"],
        attempt["complete"],
    )


def _record_after_reconnect(reconnect: Callable[[], Any], alerts_table: str, attempt: dict[str, Any]) -> Any:
    """Record a delivery that already happened on a fresh connection, retrying while the catalog is down."""
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    delay = 0.5
    while True:
        conn = None
        try:
            conn = reconnect()
            with transaction(conn) as cur:
                _record_delivery(cur, alerts_table, attempt)
            return conn
        except Exception as exc:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            if not is_connection_error(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def is_connection_error(exc: BaseException) -> bool:
    """Whether a database error means the connection was lost (rather than a bad statement)."""
    return type(exc).__name__ in ("OperationalError", "InterfaceError") or isinstance(exc, OSError)
