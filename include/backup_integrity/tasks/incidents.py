"""Backend incidents in the task bodies: which backends a run holds back, and the repairs it refuses.

The decision is :mod:`include.backup_integrity.domain.incidents`; this module
feeds it the run's outcomes and settings, and reads the catalog only when a
backend has failures the run alone does not call an incident (an incident still
open from an earlier run may hold them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from include.backup_integrity.domain.incidents import REPAIR_REFUSAL, IncidentRule, RunIncidents, assess_run
from include.backup_integrity.domain.repair import REFUSED, outcome_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.records import CheckResult, ChunkOutcome
    from include.backup_integrity.domain.repair import RepairOutcome, RepairTask

log = logging.getLogger(__name__)


def rule_of(settings: Settings) -> IncidentRule:
    return IncidentRule(min_copies=settings.incident_min_copies, ratio=settings.incident_ratio)


def run_incidents(
    outcomes: Iterable[ChunkOutcome], decided: Iterable[CheckResult], settings: Settings
) -> RunIncidents:
    return assess_run(outcomes, decided, rule_of(settings))


def held_backends(incidents: RunIncidents, settings: Settings) -> list[str]:
    """The backends in incident for this run: found so now, or still open and not disproved."""
    suspects = {backend for backend, tally in incidents.tallies.items() if tally.affected}
    if suspects <= set(incidents.found):
        return incidents.found
    from include.backup_integrity.catalog.connection import connect_catalog, transaction
    from include.backup_integrity.catalog.incidents import load_open_incidents

    conn = connect_catalog()
    try:
        with transaction(conn) as cur:
            open_incidents = load_open_incidents(cur, settings.alerts_table)
    finally:
        conn.close()
    return incidents.decide(open_incidents).held


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
