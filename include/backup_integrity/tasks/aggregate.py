"""The ``aggregate_results`` task: the run's statistics, repair keys included, and its metrics.

It runs whatever became of ``repair_copies`` (its trigger rule is ``all_done``),
so a repair task that crashed still leaves statistics and alerts behind: every
bad copy is then reported as not repaired. It refuses to count a run whose plan
or chunks did not all finish (:class:`UpstreamIncomplete`): partial statistics
would pass checks that never ran.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.cost import estimate_cost
from include.backup_integrity.domain.repair import OFF, plan_repairs, repair_statistics, unfinished_outcomes
from include.backup_integrity.domain.statistics import statistics_from_outcomes
from include.backup_integrity.tasks.incidents import held_backends
from include.backup_integrity.tasks.results import expand_repairs as expand_outcomes
from include.backup_integrity.tasks.results import failures_of, with_failures

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import ChunkOutcome, Statistics
    from include.backup_integrity.domain.repair import RepairOutcome

log = logging.getLogger(__name__)

#: What an unrepaired copy says when the repair task ended before reporting it.
REPAIR_DID_NOT_FINISH = (
    "not repaired: the repair_copies task did not finish (see its log); the next run checks this copy again"
)


class UpstreamIncomplete(Exception):
    """select_backups or a chunk did not finish: there is nothing whole to count."""


def require_every_chunk(outcomes: list[ChunkOutcome], plan: dict[str, Any] | None) -> dict[str, Any]:
    """The plan, once every chunk it planned has handed in its outcome."""
    if plan is None:
        raise UpstreamIncomplete("select_backups did not finish: no plan to aggregate")
    expected = plan.get("chunk_count", len(outcomes))
    if len(outcomes) < expected:
        raise UpstreamIncomplete(f"only {len(outcomes)} of {expected} chunk(s) finished: no statistics")
    return plan


def complete_outcomes(
    outcomes: Iterable[ChunkOutcome], plan: dict[str, Any], run_id: str
) -> list[ChunkOutcome]:
    """The chunks' outcomes with the failures they handed over through the catalog."""
    outcomes = list(outcomes)
    if not any(o.get("failure_count") and not o["failures"] for o in outcomes):
        return outcomes
    return with_failures(outcomes, Settings.from_dict(plan["settings"]), run_id)


def expand_repairs(
    repairs: list[RepairOutcome] | dict[str, Any] | None, plan: dict[str, Any], run_id: str
) -> list[RepairOutcome] | None:
    """``repair_copies``'s outcomes in full (its refusals read back from the catalog)."""
    return expand_outcomes(repairs, Settings.from_dict(plan["settings"]), run_id)


def repairs_to_report(
    outcomes: Iterable[ChunkOutcome], plan: dict[str, Any], repairs: list[RepairOutcome] | None
) -> list[RepairOutcome]:
    """The repairs the run reports: ``repair_copies``'s, or every bad copy unrepaired when it crashed."""
    if plan.get("repair", OFF) == OFF:
        return []
    if repairs is not None:
        return list(repairs)
    unfinished = unfinished_outcomes(plan_repairs(failures_of(outcomes, plan)), REPAIR_DID_NOT_FINISH)
    log.error("repair_copies did not finish: %d bad copies reported as not repaired", len(unfinished))
    return unfinished


def run_cost(
    outcomes: list[ChunkOutcome],
    stats: Statistics,
    plan: dict[str, Any],
    repair_requests: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """``estimated_cost_usd`` and ``estimated_cost_unpriced`` at the Variable's ``prices``.

    Priced: every request sent to each store (``requests_sent``: an S3 store's attempts as
    botocore sent them, retries included; a local folder's operations), the copies of
    repairs, the bucket probe's reads, and the bytes read.
    """
    requests: dict[str, Counter[str]] = {}
    bytes_read: Counter[str] = Counter()
    for outcome in outcomes:
        sent = outcome.get("requests_sent")
        requests.setdefault(outcome["backend"], Counter()).update(
            outcome["requests"] if sent is None else sent
        )
        bytes_read[outcome["backend"]] += outcome["bytes_read"]
    for store, kinds in (repair_requests or {}).items():
        requests.setdefault(store, Counter()).update(kinds)
    for store, count in (stats.get("bucket_probe_requests") or {}).items():  # type: ignore[attr-defined]
        requests.setdefault(store, Counter())["bucket_config"] += count
    costs, unpriced = estimate_cost(requests, bytes_read, plan["settings"].get("prices") or {})
    return {
        "estimated_cost_usd": costs,
        "estimated_cost_unpriced": unpriced,
        "requests_sent": {store: dict(sorted(c.items())) for store, c in sorted(requests.items())},
        "bytes_read_by_store": dict(sorted(bytes_read.items())),
    }


def with_bucket_protection(stats: dict[str, Any]) -> None:
    """Add each S3 store's versioning and object lock, probed once by the recovery checks, to its
    learned ``store_capabilities`` (one probe serves both)."""
    for store, protection in (stats.get("immutability") or {}).items():
        if protection.get("versioning") is None and protection.get("object_lock") is None:
            continue
        learned = stats["store_capabilities"].setdefault(store, {})
        learned["versioning"] = protection.get("versioning")
        learned["object_lock"] = protection.get("object_lock")


def aggregate(
    outcomes: Iterable[ChunkOutcome],
    plan: dict[str, Any],
    run_id: str,
    repairs: list[RepairOutcome] | None = None,
    recovery: dict[str, Any] | None = None,
    repair_requests: dict[str, dict[str, int]] | None = None,
) -> Statistics:
    """The run's statistics from every chunk's outcome, the repairs and the recovery checks
    (:func:`include.backup_integrity.tasks.recovery.judge_recovery`); emitted as metrics too."""
    from include.backup_integrity.tasks.metrics import emit_statistics

    outcomes = complete_outcomes(outcomes, plan, run_id)  # a no-op when the caller put them back
    stats = statistics_from_outcomes(
        outcomes,
        plan["decided"],
        mode=plan["mode"],
        run_id=run_id,
        window_start=plan["window_start"],
        window_end=plan["window_end"],
        skipped_backup_ids=plan["skipped_backup_ids"],
        chunks=len(outcomes),
    )
    stats.update(plan.get("rotation") or {})  # type: ignore[typeddict-item]
    stats.update(repair_statistics(plan.get("repair", OFF), list(repairs or [])))  # type: ignore[typeddict-item]
    stats["backend_incidents"] = held_backends(outcomes, plan)
    stats.update(recovery or {})  # type: ignore[typeddict-item]
    with_bucket_protection(stats)
    stats.update(run_cost(outcomes, stats, plan, repair_requests))  # type: ignore[typeddict-item]
    log.info("run statistics: %s", stats)
    emit_statistics(stats)
    return stats
