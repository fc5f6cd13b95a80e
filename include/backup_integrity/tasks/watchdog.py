"""The dead-man's switch: the verifier's own silence is an alert.

An integrity check that stops running raises nothing, so a watchdog DAG asks
Airflow, every quarter hour, whether a run of ``verify_storage_integrity`` has
finished (success or failed: a failed run found problems, it did not stall) for
the latest hour whose deadline (scheduled time + ``stall_after_hours``) has passed,
or for any later hour. If none has, or none was even created, it opens one
``verifier_stalled`` alert in the core's alert table and queues its notice in the
core's outbox; while the verifier stays silent it only updates that alert, and
it resolves it (with a notice) once such a run has finished.

:func:`assess` is pure: it is handed a way to count the verifier's runs (in a
task, the Task SDK's ``get_dr_count``; in a unit test, a list).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from include.backup_integrity.catalog.alert_markers import owned_by
from include.backup_integrity.catalog.alert_store import add_occurrence, insert_alert, observe
from include.backup_integrity.catalog.connection import sql, transaction
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.catalog.outbox import queue_notice
from include.backup_integrity.catalog.sessions import SessionTimeouts, naming_waits, take_advisory_lock
from include.backup_integrity.domain.alerts import ALERT_TYPE, OPEN_STATUSES
from include.backup_integrity.domain.ownership import STALLED_KIND, WATCHDOG_DAG_ID

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings

log = logging.getLogger(__name__)

VERIFIER_DAG_ID = "verify_storage_integrity"
STALLED = STALLED_KIND
SEVERITY = "CRITICAL"
#: The verifier's schedule (``0 * * * *``): one run per hour, its data interval the hour before.
SCHEDULE_STEP = timedelta(hours=1)
FINISHED_STATES = ("success", "failed")
#: The watchdog's own lock (never the verifier's: a verifier run that is stuck holding its
#: lock must not stop the one component meant to notice it).
WATCHDOG_ADVISORY_LOCK_KEY = 0x0B1C_57A1


class RunCounter(Protocol):
    """Counts the verifier's DAG runs, as the Task SDK's ``get_dr_count`` does."""

    def __call__(self, logical_dates: list[datetime] | None, states: list[str] | None) -> int: ...


@dataclass(frozen=True)
class Verdict:
    """What the watchdog concluded at ``checked_at``."""

    stalled: bool
    checked_at: str
    #: The latest scheduled time whose deadline has passed.
    scheduled_for: str
    deadline: str
    stall_after_hours: float
    finished_runs: int
    created_runs: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _floor_to_step(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def overdue_slot(checked_at: datetime, stall_after_hours: float) -> datetime:
    """The latest scheduled time ``S`` of the verifier with ``S + stall_after_hours <= checked_at``."""
    return _floor_to_step(checked_at - timedelta(hours=stall_after_hours))


def assess(checked_at: datetime, stall_after_hours: float, count_runs: RunCounter) -> Verdict:
    """Whether the verifier stalled: no run for the overdue hour or a later one has finished."""
    if checked_at.tzinfo is None:
        checked_at = checked_at.replace(tzinfo=UTC)
    checked_at = datetime.fromtimestamp(checked_at.timestamp(), UTC)  # a plain datetime, also for pendulum
    slot = overdue_slot(checked_at, stall_after_hours)
    deadline = slot + timedelta(hours=stall_after_hours)
    slots = []
    moment = slot
    while moment <= checked_at:
        slots.append(moment)
        moment += SCHEDULE_STEP
    # A scheduled (or backfilled) run for the hour ending at S has logical date S - 1h.
    logical_dates = [s - SCHEDULE_STEP for s in slots]
    finished = count_runs(logical_dates, list(FINISHED_STATES))
    created = count_runs(logical_dates, None)
    if finished:
        reason = (
            f"{finished} run(s) of {VERIFIER_DAG_ID} for the hour ending {slot:%Y-%m-%d %H:%M} UTC "
            "or later have finished"
        )
    elif created:
        reason = (
            f"{created} run(s) of {VERIFIER_DAG_ID} for the hour ending {slot:%Y-%m-%d %H:%M} UTC or "
            f"later exist, but none has finished within {stall_after_hours:g} h of its scheduled time "
            "(stuck in the queue, no worker, or a task that never ends)"
        )
    elif count_runs(None, None) == 0:
        reason = f"no run of {VERIFIER_DAG_ID} was ever created (is the DAG paused or not deployed?)"
    else:
        reason = (
            f"no run of {VERIFIER_DAG_ID} was created for the hour ending {slot:%Y-%m-%d %H:%M} UTC "
            "or later (is the DAG paused, or the scheduler down?)"
        )
    return Verdict(
        stalled=not finished,
        checked_at=checked_at.isoformat(),
        scheduled_for=slot.isoformat(),
        deadline=deadline.isoformat(),
        stall_after_hours=stall_after_hours,
        finished_runs=finished,
        created_runs=created,
        reason=reason,
    )


# --------------------------------------------------------------------------- database


def _open_stalled_alert(cur: Any, alerts_table: str) -> tuple[int, dict[str, Any]] | None:
    """The watchdog's own open stall alert (its marker; never another writer's row)."""
    owned, owned_params = owned_by(WATCHDOG_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT id, details FROM {t} WHERE alert_type = %s AND status = ANY(%s) "
            "AND details ->> 'kind' = %s AND {owned} ORDER BY id LIMIT 1 FOR UPDATE"
        ).format(t=table(alerts_table), owned=owned),
        [ALERT_TYPE, list(OPEN_STATUSES), STALLED, *owned_params],
    )
    row = cur.fetchone()
    return (row[0], row[1] or {}) if row else None


def _message(verdict: Verdict) -> str:
    return (
        f"The backup-integrity verifier has stalled: no run finished by {verdict.deadline} "
        f"({verdict.stall_after_hours:g} h after the run scheduled for {verdict.scheduled_for}); "
        f"{verdict.reason}. Backups are not being verified."
    )


def _details(verdict: Verdict, run_id: str) -> dict[str, Any]:
    return {
        "kind": STALLED,
        "backend": None,
        "backup_id": None,
        "path": None,
        "expected": {"finished_run_for": verdict.scheduled_for, "by": verdict.deadline},
        "actual": {"finished_runs": verdict.finished_runs, "created_runs": verdict.created_runs},
        "run_id": run_id,
        "dag_id": VERIFIER_DAG_ID,
        "scheduled_for": verdict.scheduled_for,
        "deadline": verdict.deadline,
        "stall_after_hours": verdict.stall_after_hours,
        "reason": verdict.reason,
    }


def apply_verdict(cur: Any, alerts_table: str, verdict: Verdict, run_id: str) -> str:
    """Open, update or resolve the ``verifier_stalled`` alert; the caller owns the transaction.

    Returns what changed: ``opened``, ``updated``, ``resolved`` or ``none``.
    """
    take_advisory_lock(cur, WATCHDOG_ADVISORY_LOCK_KEY, "another run of the watchdog")  # one stall alert
    existing = _open_stalled_alert(cur, alerts_table)
    message = _message(verdict)
    if verdict.stalled and existing is None:
        details = _details(verdict, run_id)
        details.update(first_seen=verdict.checked_at, last_seen=verdict.checked_at, occurrences=1)
        alert_id = insert_alert(cur, alerts_table, None, SEVERITY, message, details, producer=WATCHDOG_DAG_ID)
        add_occurrence(cur, alert_id, run_id, verdict.checked_at)
        body = "\n".join([message, "", f"deadline: {verdict.deadline}", f"watchdog run: {run_id}"])
        queue_notice(
            cur,
            alert_id,
            "opened",
            run_id,
            f"[{SEVERITY}] Backup integrity verifier stalled",
            body,
            "failure",
        )
        return "opened"
    if verdict.stalled and existing is not None:
        details = _details(verdict, run_id)
        # The alert keeps naming the first missed deadline; the latest goes under latest_*.
        for key in ("scheduled_for", "deadline", "expected"):
            details[f"latest_{key}"] = details.pop(key)
        observe(cur, alerts_table, existing[0], run_id, verdict.checked_at, SEVERITY, message, details)
        return "updated"
    if existing is not None:
        alert_id = existing[0]
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET status = 'RESOLVED', resolved_at = %s, details = details || %s::jsonb "
                "WHERE id = %s AND status = ANY(%s)"
            ).format(t=table(alerts_table)),
            [
                verdict.checked_at,
                json.dumps(
                    {
                        "resolution": "verifier_ran",
                        "resolved_by_run_id": run_id,
                        "resolved_because": verdict.reason,
                    }
                ),
                alert_id,
                list(OPEN_STATUSES),
            ],
        )
        queue_notice(
            cur,
            alert_id,
            "resolved",
            run_id,
            "[RESOLVED] Backup integrity verifier is running again",
            f"Resolved: {verdict.reason} (checked at {verdict.checked_at}).",
            "success",
        )
        return "resolved"
    return "none"


def watch(settings: Settings, verdict: Verdict, run_id: str) -> dict[str, Any]:
    """Record the verdict in the catalog and deliver its notices (after commit)."""
    from include.backup_integrity.catalog.connection import connect_catalog
    from include.backup_integrity.catalog.schema import upgrade_schema
    from include.backup_integrity.notify import delivery as notify

    timeouts = SessionTimeouts.of(settings)
    conn = connect_catalog(settings)
    try:
        upgrade_schema(conn, settings.alerts_table)  # the outbox may not exist yet if the verifier never ran
        with naming_waits(timeouts, "recording the watchdog's verdict"), transaction(conn) as cur:
            change = apply_verdict(cur, settings.alerts_table, verdict, run_id)
        log.log(
            logging.ERROR if verdict.stalled else logging.INFO,
            "verifier %s (%s): %s",
            "STALLED" if verdict.stalled else "alive",
            change,
            verdict.reason,
        )
        with naming_waits(timeouts, "recording the delivery of notices"):
            delivery = notify.deliver_pending(
                conn,
                settings.alerts_table,
                notify.load_targets(),
                max_age_hours=settings.notice_max_age_hours,
                digest_after=settings.notify_digest_after,
            )
    finally:
        conn.close()
    return {"verdict": verdict.to_dict(), "alert": change, "notifications": delivery}
