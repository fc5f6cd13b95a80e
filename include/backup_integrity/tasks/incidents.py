"""Backend incidents in the task bodies: the run's tallies, the backends it holds back, refused repairs.

The decision is :mod:`include.backup_integrity.domain.incidents`; this module
feeds it the run's outcomes and plan. ``select_backups`` puts the incidents open
when the run started into the plan (``open_incidents``), so ``repair_copies`` and
``aggregate_results`` decide without the catalog; ``raise_alerts`` decides again
on the alert rows themselves, under the verifier's lock.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.incidents import (
    REPAIR_REFUSAL,
    IncidentRule,
    OpenIncident,
    RunIncidents,
    assess_run,
)
from include.backup_integrity.domain.repair import REFUSED, outcome_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import ChunkOutcome
    from include.backup_integrity.domain.repair import RepairOutcome, RepairTask

log = logging.getLogger(__name__)


def rule_of(settings: Settings) -> IncidentRule:
    return IncidentRule(min_copies=settings.incident_min_copies, ratio=settings.incident_ratio)


def run_incidents(outcomes: Iterable[ChunkOutcome], plan: dict[str, Any]) -> RunIncidents:
    """The run's tallies per backend under the Variable's incident rule."""
    return assess_run(outcomes, plan["decided"], rule_of(Settings.from_dict(plan["settings"])))


def open_incidents_for_plan(open_incidents: Iterable[OpenIncident]) -> list[dict[str, Any]]:
    """The open incidents as the plan carries them (XCom: plain JSON)."""
    return [asdict(incident) for incident in open_incidents]


def held_backends(outcomes: Iterable[ChunkOutcome], plan: dict[str, Any]) -> list[str]:
    """The backends in incident for this run: found so now, or open when it started and not disproved."""
    open_incidents = [OpenIncident(**incident) for incident in plan.get("open_incidents") or []]
    return run_incidents(outcomes, plan).decide(open_incidents).held


def refuse_repairs_on(
    tasks: list[RepairTask], held: Iterable[str]
) -> tuple[list[RepairTask], list[RepairOutcome]]:
    """The repairs still to plan or make, and those refused because their backend is in incident."""
    held = set(held)
    kept = [t for t in tasks if t["backend"] not in held]
    refused = [
        outcome_of(
            t,
            REFUSED,
            source_backend=None,
            source_path=None,
            reason=REPAIR_REFUSAL,
            error=f"{REPAIR_REFUSAL} on {t['backend']}: no copy is written there until a run finds "
            "the backend under the incident threshold",
        )
        for t in tasks
        if t["backend"] in held
    ]
    if refused:
        log.warning("%d repair(s) refused: backend incident on %s", len(refused), ", ".join(sorted(held)))
    return kept, refused
