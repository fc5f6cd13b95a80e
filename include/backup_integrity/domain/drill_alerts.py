"""Restore drills' alerts: whether a type is overdue, and what the ``restore_*`` alerts become.

Pure: the drills' outcomes, the overdue verdicts and the alerts open now go in; the plan
of alerts to open, sightings to add and alerts to resolve comes out, written by
:mod:`include.backup_integrity.catalog.drills` with the alert store's functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain.drills import (
    OPENS,
    RESOLVES,
    RESTORE_FAILED,
    RESTORE_OVERDUE,
    SEVERITY_BY_KIND,
    DrillOutcome,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime


# ----------------------------------------------------------------------------- overdue


@dataclass(frozen=True)
class OverdueVerdict:
    """Whether a backup type has gone too long without a passed drill, as of a run's window end."""

    backup_type: str
    overdue: bool
    passed_recently: bool
    backups_in_window: int
    last_passed_at: str | None
    first_drill_at: str | None
    as_of: str
    max_age_days: float


def judge_overdue(
    backup_type: str,
    *,
    backups_in_window: int,
    last_passed_at: datetime | None,
    first_drill_at: datetime | None,
    as_of: datetime,
    max_age_days: float,
) -> OverdueVerdict:
    """Overdue: backups in the window, none of which passed a drill within ``max_age_days``, and
    drill runs recorded for that long.

    ``last_passed_at`` is the latest pass of one of the window's backups. Ages count in
    the runs' own clock (each drill run's window end), and from the first drill run
    recorded: a new installation is not overdue on its first day.
    """
    horizon = as_of - timedelta(days=max_age_days)
    passed_recently = last_passed_at is not None and last_passed_at >= horizon
    overdue = (
        backups_in_window > 0
        and not passed_recently
        and first_drill_at is not None
        and first_drill_at <= horizon
    )
    return OverdueVerdict(
        backup_type=backup_type,
        overdue=overdue,
        passed_recently=passed_recently,
        backups_in_window=backups_in_window,
        last_passed_at=last_passed_at.isoformat() if last_passed_at else None,
        first_drill_at=first_drill_at.isoformat() if first_drill_at else None,
        as_of=as_of.isoformat(),
        max_age_days=max_age_days,
    )


# ----------------------------------------------------------------------------- alerts

#: (backup id, kind) for a drill's alerts; (backup type, kind) for restore_overdue.
DrillAlertKey = tuple[str, str]


@dataclass(frozen=True)
class OpenDrillAlert:
    id: int
    backup_id: str | None
    details: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.details.get("kind", ""))

    @property
    def key(self) -> DrillAlertKey:
        if self.kind == RESTORE_OVERDUE:
            return (str(self.details.get("backup_type") or ""), self.kind)
        return (self.backup_id or "", self.kind)


@dataclass
class DrillAlert:
    """An alert to open, or the latest sighting of one already open."""

    key: DrillAlertKey
    backup_id: str | None
    severity: str
    title: str
    message: str
    details: dict[str, Any]
    seen_at: str


@dataclass
class DrillResolution:
    alert_id: int
    kind: str
    resolved_at: str
    message: str
    details: dict[str, Any]


@dataclass
class DrillAlertPlan:
    opened: list[DrillAlert] = field(default_factory=list)
    observed: list[tuple[int, DrillAlert]] = field(default_factory=list)
    resolved: list[DrillResolution] = field(default_factory=list)


def drill_alert(outcome: DrillOutcome, run_id: str) -> DrillAlert:
    """The ``restore_failed`` or ``restore_error`` alert a drill that did not pass stands for."""
    kind = OPENS[outcome["status"]]
    backup_id, backup_type, stage = outcome["backup_id"], outcome["backup_type"], outcome["stage"]
    source = outcome["source_backend"]
    if kind == RESTORE_FAILED:
        message = (
            f"Backup {backup_id} ({backup_type}) does not restore: its copy from {source} matches the "
            f"catalog, but the {stage} stage rejected it. {outcome['message']}"
        )
        title = f"[CRITICAL] Restore drill failed: {backup_type} backup {backup_id} ({stage})"
    else:
        message = (
            f"Backup {backup_id} ({backup_type}) could not be drilled (stage {stage}); nothing was "
            f"concluded about it. {outcome['message']}"
        )
        title = f"[ERROR] Restore drill could not run: {backup_type} backup {backup_id} ({stage})"
    details = {
        "kind": kind,
        "backup_id": backup_id,
        "backend": source,
        "stage": stage,
        "message": outcome["message"],
        "status": outcome["status"],
        "backup_type": backup_type,
        "format": outcome["format"],
        "run_id": run_id,
        "duration_seconds": outcome["duration_seconds"],
    }
    return DrillAlert(
        (backup_id, kind), backup_id, SEVERITY_BY_KIND[kind], title, message, details, outcome["finished_at"]
    )


def overdue_alert(verdict: OverdueVerdict, run_id: str) -> DrillAlert:
    last = f"the last pass was at {verdict.last_passed_at}" if verdict.last_passed_at else "none ever passed"
    message = (
        f"No {verdict.backup_type} backup has passed a restore drill in the last "
        f"{verdict.max_age_days:g} days ({last}; drills recorded since {verdict.first_drill_at}): "
        "nothing proves these backups restore."
    )
    details = {
        "kind": RESTORE_OVERDUE,
        "backup_id": None,
        "backend": None,
        "backup_type": verdict.backup_type,
        "stage": None,
        "message": message,
        "run_id": run_id,
        "max_age_days": verdict.max_age_days,
        "last_passed_at": verdict.last_passed_at,
        "first_drill_at": verdict.first_drill_at,
        "backups_in_window": verdict.backups_in_window,
    }
    return DrillAlert(
        (verdict.backup_type, RESTORE_OVERDUE),
        None,
        SEVERITY_BY_KIND[RESTORE_OVERDUE],
        f"[{SEVERITY_BY_KIND[RESTORE_OVERDUE]}] Restore drills overdue: {verdict.backup_type}",
        message,
        details,
        verdict.as_of,
    )


def plan_drill_alerts(
    open_alerts: Iterable[OpenDrillAlert],
    outcomes: Iterable[DrillOutcome],
    verdicts: Iterable[OverdueVerdict],
    run_id: str,
    now: str,
) -> DrillAlertPlan:
    """Every change to the ``restore_*`` alerts this run's drills and verdicts call for.

    One alert per (backup, kind): a drill that did not pass opens one or adds a sighting;
    a pass resolves the backup's ``restore_failed`` and ``restore_error``; a failure
    resolves its ``restore_error`` (the drill could run after all). A type overdue opens
    one ``restore_overdue``, resolved once a drill of the type has passed.
    """
    plan = DrillAlertPlan()
    open_by_key: dict[DrillAlertKey, OpenDrillAlert] = {}
    for alert in sorted(open_alerts, key=lambda a: a.id):
        open_by_key.setdefault(alert.key, alert)

    def raise_or_observe(alert: DrillAlert) -> None:
        existing = open_by_key.get(alert.key)
        if existing is None:
            plan.opened.append(alert)
        else:
            plan.observed.append((existing.id, alert))

    for outcome in outcomes:
        if outcome["status"] in OPENS:
            raise_or_observe(drill_alert(outcome, run_id))
        for kind in RESOLVES[outcome["status"]]:
            existing = open_by_key.get((outcome["backup_id"], kind))
            if existing is None:
                continue
            plan.resolved.append(
                DrillResolution(
                    existing.id,
                    kind,
                    outcome["finished_at"],
                    f"Backup {outcome['backup_id']} ({outcome['backup_type']}): a restore drill "
                    f"ended {outcome['status']} at stage {outcome['stage']} (run {run_id}).",
                    {
                        "resolution": f"drill_{outcome['status']}",
                        "resolved_by_run_id": run_id,
                        "resolved_by": {"status": outcome["status"], "stage": outcome["stage"]},
                    },
                )
            )
    for verdict in verdicts:
        if verdict.overdue:
            raise_or_observe(overdue_alert(verdict, run_id))
            continue
        existing = open_by_key.get((verdict.backup_type, RESTORE_OVERDUE))
        if existing is not None and verdict.passed_recently:
            plan.resolved.append(
                DrillResolution(
                    existing.id,
                    RESTORE_OVERDUE,
                    now,
                    f"A {verdict.backup_type} backup passed a restore drill at {verdict.last_passed_at} "
                    f"(run {run_id}).",
                    {"resolution": "drill_passed", "resolved_by_run_id": run_id},
                )
            )
    return plan
