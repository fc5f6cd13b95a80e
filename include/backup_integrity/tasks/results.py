"""What the verifier's tasks hand each other: results, the run's failures, passes spelled out.

Chunks send their failures in full and their passes as packed ids (see
:class:`~include.backup_integrity.domain.records.ChunkOutcome`); the tasks after
them read those through these helpers, so each reads them the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.secrets import redact
from include.backup_integrity.domain.records import PASSED, CheckResult

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import ChunkOutcome


def redact_result(result: CheckResult) -> CheckResult:
    """A result with any registered credential masked in its free text (it goes to XCom and alerts)."""
    actual = result["actual"]
    if actual:
        actual = {k: (redact(v) if isinstance(v, str) else v) for k, v in actual.items()}
    message = redact(result["message"]) or ""
    return {**result, "message": message, "path": redact(result["path"]), "actual": actual}


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
