"""What the verifier's tasks hand each other: results, the run's failures, passes spelled out.

Chunks leave their failures in the catalog and send their count and their passes
as packed ids (see :class:`~include.backup_integrity.domain.records.ChunkOutcome`),
so no XCom grows with the number of failures; the tasks after them put the
failures back (:func:`with_failures`) and read them through these helpers, so
each reads them the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.secrets import redact
from include.backup_integrity.domain.records import PASSED, CheckResult
from include.backup_integrity.domain.repair import REFUSED

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import ChunkOutcome
    from include.backup_integrity.domain.repair import RepairOutcome


def redact_result(result: CheckResult) -> CheckResult:
    """A result with any registered credential masked in its free text (it goes to XCom and alerts)."""
    actual = result["actual"]
    if actual:
        actual = {k: (redact(v) if isinstance(v, str) else v) for k, v in actual.items()}
    message = redact(result["message"]) or ""
    return {**result, "message": message, "path": redact(result["path"]), "actual": actual}


def with_failures(outcomes: Iterable[ChunkOutcome], settings: Any, run_id: str) -> list[ChunkOutcome]:
    """The chunks' outcomes with the failures each handed over through the catalog put back.

    An outcome that carries its failures itself (an earlier release's XCom) is kept as it is.
    """
    from include.backup_integrity.catalog.connection import connect_catalog
    from include.backup_integrity.catalog.handover import load_chunk_failures

    outcomes = list(outcomes)
    if not any(o.get("failure_count") and not o["failures"] for o in outcomes):
        return outcomes
    conn = connect_catalog(settings)
    try:
        with conn.cursor() as cur:
            handed = load_chunk_failures(cur, run_id)
        conn.commit()
    finally:
        conn.close()
    return put_back(outcomes, handed, run_id)


def put_back(
    outcomes: Iterable[ChunkOutcome], handed: dict[str, list[CheckResult]], run_id: str
) -> list[ChunkOutcome]:
    """Each outcome with the failures handed over under its label; all of them, or an error."""
    from include.backup_integrity.catalog.handover import HandoverMissing

    complete = []
    for outcome in outcomes:
        count = outcome.get("failure_count") or 0
        if count and not outcome["failures"]:
            failures = handed.get(outcome["label"], [])
            if len(failures) != count:
                raise HandoverMissing(
                    f"chunk {outcome['label']!r} of run {run_id} handed over {count} failure(s), "
                    f"the catalog holds {len(failures)} (its rows were removed): clear its verify_chunk "
                    "to check it again"
                )
            outcome = {**outcome, "failures": failures}
        complete.append(outcome)
    return complete


def compact_repairs(repairs: list[RepairOutcome] | dict[str, Any]) -> dict[str, Any]:
    """Repairs as XCom carries them: those that copy or plan in full, the refused by count only.

    What is copied or planned is bounded by ``repair_max_copies``; refusals (a backend
    incident refuses every copy on that backend) are recorded in ``backup_integrity_repair``
    and read back by :func:`expand_repairs`.
    """
    if isinstance(repairs, dict):
        return repairs
    kept = [o for o in repairs if o["status"] != REFUSED]
    return {"outcomes": kept, "refused": len(repairs) - len(kept)}


def expand_repairs(
    repairs: list[RepairOutcome] | dict[str, Any] | None, settings: Any, run_id: str
) -> list[RepairOutcome] | None:
    """Every repair outcome of the run: the refused ones read back from the catalog, then the rest."""
    if repairs is None or isinstance(repairs, list):
        return repairs
    refused: list[Any] = []
    if repairs.get("refused"):
        from include.backup_integrity.catalog.connection import connect_catalog
        from include.backup_integrity.catalog.repairs import load_refused

        conn = connect_catalog(settings)
        try:
            with conn.cursor() as cur:
                refused = load_refused(cur, run_id)
            conn.commit()
        finally:
            conn.close()
        if len(refused) != repairs["refused"]:
            log.warning(
                "run %s: %d refused repair(s) recorded, %d reported", run_id, len(refused), repairs["refused"]
            )
    return [*refused, *repairs["outcomes"]]


def failures_of(outcomes: Iterable[ChunkOutcome], plan: dict[str, Any]) -> list[CheckResult]:
    """Every failure of the run: those decided from the catalog, then each chunk's."""
    failures = list(plan["decided"])
    for outcome in outcomes:
        failures.extend(outcome["failures"])
    return failures


def passed_result(backup_id: str, outcome: ChunkOutcome, evidence: str) -> CheckResult:
    """A pass spelled out from a chunk's compact outcome."""
    return CheckResult(
        backup_id=backup_id,
        backend=outcome["backend"],
        kind=PASSED,
        message=f"passed ({evidence or 'size'} evidence)",
        path=None,
        expected={},
        actual=None,
        mode=outcome["mode"],
        evidence=evidence or None,
        checked_at=outcome["checked_at"],
    )
