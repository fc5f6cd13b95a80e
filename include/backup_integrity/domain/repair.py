"""Which bad copy is healed from which good one, and what a run reports about it: pure decisions.

:func:`plan_repairs` turns the run's results into one :class:`RepairTask` per
repairable failure (``missing``, ``size_mismatch``, ``checksum_mismatch``), with
the other backends' passing copies as candidate sources, best evidence first, or
with the reason it is refused. The copying itself lives in
:mod:`include.backup_integrity.tasks.repair`; here are the records it fills in,
the proof an earlier try of the same run left behind (:func:`proven_outcome`),
what is reported when the repair task did not finish (:func:`unfinished_outcomes`)
and the statistics keys repair adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from include.backup_integrity.domain.records import (
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_SERVER_SHA256,
    EVIDENCE_SIZE,
    FAILED,
    MISSING,
    PASSED,
    PLANNED,
    REFUSED,
    REPAIRED,
    SIZE_MISMATCH,
    CheckResult,
)
from include.backup_integrity.domain.stores import rank_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

OFF, PLAN, APPLY = "off", "plan", "apply"
REPAIRABLE_KINDS = (MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH)

# Outcome statuses (PLANNED, REPAIRED, FAILED, REFUSED) are defined in ``records``: the alert
# store reads them too. "refused": nothing could be copied safely (no verified source, no
# recorded location); "failed": a copy was attempted and did not verify, or the repair task
# ended before it got there.

_EVIDENCE_RANK = {EVIDENCE_CONTENT: 0, EVIDENCE_SERVER_SHA256: 1, EVIDENCE_SIZE: 2}
#: The stores of a Variable without ``stores``, in their order of preference as sources.
DEFAULT_SOURCE_ORDER = ("local", "r2", "b2")


class Source(TypedDict):
    """A copy that passed its checks in this run, and how strongly."""

    backend: str
    path: str
    evidence: str | None


class RepairTask(TypedDict):
    """One bad copy and where a good one may come from (the plan's unit)."""

    backup_id: str
    backend: str
    kind: str
    path: str | None
    expected_sha256: str
    expected_size: int
    sources: list[Source]
    reason: str


class RepairOutcome(TypedDict):
    """What became of one bad copy; the first five keys are the ``repair_plan`` entry."""

    backup_id: str
    backend: str
    kind: str
    source_backend: str | None
    reason: str
    status: str
    path: str | None
    source_path: str | None
    sha256: str | None
    repaired_at: str | None
    error: str | None


def plan_repairs(
    results: Iterable[CheckResult], source_order: Sequence[str] = DEFAULT_SOURCE_ORDER
) -> list[RepairTask]:
    """One task per repairable failure; sources are the same backup's passing copies, best first.

    Best means: read byte for byte in this run, then the store's own SHA-256,
    then size only (those two are re-read and verified before use); ties go to
    the stores in ``source_order`` (the configured stores' order: local first by default).
    """
    results = list(results)
    passing: dict[str, list[Source]] = {}
    for result in results:
        if result["kind"] == PASSED and result["backend"] and result["path"]:
            passing.setdefault(result["backup_id"], []).append(
                Source(backend=result["backend"], path=result["path"], evidence=result["evidence"])
            )
    rank = rank_of(source_order)
    tasks: list[RepairTask] = []
    for result in results:
        if result["kind"] not in REPAIRABLE_KINDS or not result["backend"]:
            continue
        backend = result["backend"]
        sources = sorted(
            (s for s in passing.get(result["backup_id"], []) if s["backend"] != backend),
            key=lambda s: (_EVIDENCE_RANK.get(s["evidence"] or "", 9), rank.get(s["backend"], len(rank))),
        )
        path = result["path"] or None
        if path is None:
            sources = []
            reason = (
                f"the catalog records no location on {backend}; it must name where the copy "
                "belongs before it can be repaired"
            )
        elif not sources:
            reason = (
                f"no other copy of this backup passed its checks in this run; refusing to repair "
                f"{backend} from an unverified source"
            )
        elif sources[0]["evidence"] == EVIDENCE_CONTENT:
            reason = (
                f"copy from {sources[0]['backend']} ({sources[0]['path']}), verified in this run by "
                "a full SHA-256 read"
            )
        else:
            reason = (
                f"copy from {sources[0]['backend']} ({sources[0]['path']}), which passed on "
                f"{sources[0]['evidence'] or 'size'} only: the repair reads it and verifies its "
                "SHA-256 first"
            )
        expected = result["expected"] or {}
        tasks.append(
            RepairTask(
                backup_id=result["backup_id"],
                backend=backend,
                kind=result["kind"],
                path=path,
                expected_sha256=str(expected.get("sha256") or "").strip().lower(),
                expected_size=int(expected.get("size_bytes") or 0),
                sources=sources,
                reason=reason,
            )
        )
    return tasks


def outcome_of(task: RepairTask, status: str, **fields: Any) -> RepairOutcome:
    source = task["sources"][0] if task["sources"] else None
    outcome = RepairOutcome(
        backup_id=task["backup_id"],
        backend=task["backend"],
        kind=task["kind"],
        source_backend=source["backend"] if source else None,
        reason=task["reason"],
        status=status,
        path=task["path"],
        source_path=source["path"] if source else None,
        sha256=None,
        repaired_at=None,
        error=None,
    )
    outcome.update(fields)  # type: ignore[typeddict-item]
    return outcome


def planned_outcomes(tasks: Iterable[RepairTask]) -> list[RepairOutcome]:
    """What ``repair = "plan"`` reports: the plan, nothing copied."""
    return [outcome_of(t, PLANNED if t["sources"] else REFUSED) for t in tasks]


def proven_outcome(task: RepairTask, recorded: dict[str, Any] | None) -> RepairOutcome | None:
    """The outcome an earlier try of this run recorded for the task's copy, if it proved the copy.

    Only a ``repaired`` record of the same kind and SHA-256 counts: the written copy was
    read back and matched, so copying it again would only repeat the work.
    """
    if (
        recorded is None
        or recorded.get("status") != REPAIRED
        or recorded.get("kind") != task["kind"]
        or recorded.get("sha256") != task["expected_sha256"]
    ):
        return None
    source_path = next(
        (s["path"] for s in task["sources"] if s["backend"] == recorded.get("source_backend")), None
    )
    return outcome_of(
        task,
        REPAIRED,
        source_backend=recorded.get("source_backend"),
        source_path=source_path,
        reason=recorded.get("reason") or task["reason"],
        sha256=recorded["sha256"],
        repaired_at=recorded.get("repaired_at"),
        error=None,
    )


#: Refusal reasons of the careful-repair rules (the ``reason`` of the outcome).
REPAIR_CAP = "repair cap"
SHARED_PATH = "shared path"


def refused_outcome(task: RepairTask, reason: str, error: str) -> RepairOutcome:
    """A copy the rules refuse to write: nothing is read or written for it."""
    return outcome_of(task, REFUSED, source_backend=None, source_path=None, reason=reason, error=error)


def copies_something(task: RepairTask) -> bool:
    """Whether the task would write a copy (it has a location and a source to read from)."""
    return bool(task["path"] and task["sources"])


def refuse_shared_paths(
    tasks: list[RepairTask], shared: set[tuple[str, str]]
) -> tuple[list[RepairTask], list[RepairOutcome]]:
    """Refuse the copies whose (backup_id, backend) target another catalog row also records."""
    kept = [t for t in tasks if (t["backup_id"], t["backend"]) not in shared]
    refused = [
        refused_outcome(
            t,
            SHARED_PATH,
            f"{SHARED_PATH}: another catalog row records the same location on {t['backend']}; "
            "not overwritten (one of the rows is wrong, and repairing it would damage the other)",
        )
        for t in tasks
        if (t["backup_id"], t["backend"]) in shared
    ]
    return kept, refused


def cap_repairs(
    tasks: list[RepairTask], newest_first: list[str], max_copies: int, max_bytes: int
) -> tuple[list[RepairTask], list[RepairOutcome]]:
    """Keep the copies one run may write, newest backups first; refuse the rest ("repair cap").

    ``newest_first`` orders the backup ids. A single object larger than ``max_bytes`` is
    refused on its own; once the count or the bytes are spent, every later copy is left to
    the next run. Tasks that would copy nothing (already refused) pass through untouched.
    """
    rank = {backup_id: index for index, backup_id in enumerate(newest_first)}
    order = sorted(
        (i for i, t in enumerate(tasks) if copies_something(t)),
        key=lambda i: (
            rank.get(tasks[i]["backup_id"], len(rank)),
            tasks[i]["backup_id"],
            tasks[i]["backend"],
        ),
    )
    refused: dict[int, RepairOutcome] = {}
    copies = spent = 0
    full = False
    for index in order:
        task = tasks[index]
        size = task["expected_size"]
        if size > max_bytes:
            refused[index] = refused_outcome(
                task,
                f"larger than repair_max_bytes ({size} > {max_bytes} bytes)",
                f"the object ({size} bytes) is larger than repair_max_bytes ({max_bytes}); "
                "it is never repaired automatically",
            )
            continue
        if full or copies + 1 > max_copies or spent + size > max_bytes:
            full = True
            refused[index] = refused_outcome(
                task,
                REPAIR_CAP,
                f"{REPAIR_CAP}: this run writes {copies} of at most {max_copies} copies and {spent} of "
                f"at most {max_bytes} bytes; left to the next run",
            )
            continue
        copies += 1
        spent += size
    kept = [t for i, t in enumerate(tasks) if i not in refused]
    return kept, [refused[i] for i in sorted(refused)]


def unfinished_outcomes(tasks: Iterable[RepairTask], why: str) -> list[RepairOutcome]:
    """Every bad copy reported as not repaired, when the repair task itself did not finish."""
    return [
        outcome_of(t, FAILED, source_backend=None, source_path=None, reason=why, error=why) for t in tasks
    ]


def plan_entry(outcome: RepairOutcome) -> dict[str, Any]:
    """One ``repair_plan`` entry of the run's statistics."""
    return {k: outcome[k] for k in ("backup_id", "backend", "kind", "source_backend", "reason")}  # type: ignore[literal-required]


#: Entries of ``repair_plan`` the statistics list (``repair_plan_total`` counts them all): the
#: statistics travel through XCom and the run table, whatever an incident makes of the plan.
REPAIR_PLAN_LISTED = 100


def repair_statistics(mode: str, outcomes: list[RepairOutcome]) -> dict[str, Any]:
    """The statistics keys repair adds: ``repair_plan`` (its first entries) and ``repair_plan_total``;
    in apply mode ``repaired`` and ``repair_failed``."""
    if mode == OFF:
        return {}
    stats: dict[str, Any] = {
        "repair": mode,
        "repair_plan": [plan_entry(o) for o in outcomes[:REPAIR_PLAN_LISTED]],
        "repair_plan_total": len(outcomes),
    }
    if mode == APPLY:
        stats["repaired"] = sum(1 for o in outcomes if o["status"] == REPAIRED)
        stats["repair_failed"] = sum(1 for o in outcomes if o["status"] != REPAIRED)
    return stats


def describe_plan(outcomes: Iterable[RepairOutcome]) -> list[str]:
    """Log lines, one per bad copy."""
    lines = []
    for o in outcomes:
        where = f"{o['backup_id']} {o['kind']} on {o['backend']} ({o['path'] or 'no location'})"
        lines.append(f"{where}: {o['reason']}")
    return lines
