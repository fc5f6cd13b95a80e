"""The run's statistics: what ``aggregate_results`` returns as its XCom value."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
    CheckResult,
    ChunkOutcome,
    Statistics,
    unpack_ids,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Per (backup, backend) counters of the contract, by failure kind.
COUNTER_BY_KIND = {
    MISSING: "missing_files",
    SIZE_MISMATCH: "storage_mismatches",
    CHECKSUM_MISMATCH: "checksum_mismatches",
    BACKEND_ERROR: "backend_errors",
    INVALID_RECORD: "invalid_records",
}


#: The statistics keys of the contract, in the README's order.
CONTRACT_STATISTICS = (
    "total_backups_checked",
    "verified_successfully",
    "integrity_failures",
    *COUNTER_BY_KIND.values(),
)


def compute_statistics(
    results: Iterable[CheckResult], backup_ids: Iterable[str], **context: Any
) -> Statistics:
    """Count backups and checks of fully spelled-out results; every backup in scope counts."""
    results = list(results)
    passed = [r for r in results if r["kind"] == PASSED]
    failures = [r for r in results if r["kind"] != PASSED]
    stats = _contract_counts(failures, {r["backup_id"] for r in passed} | set(backup_ids), len(passed))
    stats.update(context)  # type: ignore[typeddict-item]
    return stats


def _contract_counts(failures: list[CheckResult], other_backups: set[str], passes: int) -> Statistics:
    """The contract's counters: backups (all, fully verified, failing) and failures by kind."""
    failed_backups = {r["backup_id"] for r in failures}
    all_backups = other_backups | failed_backups
    counters = dict.fromkeys(COUNTER_BY_KIND.values(), 0)
    for result in failures:
        counters[COUNTER_BY_KIND[result["kind"]]] += 1
    return {
        "total_backups_checked": len(all_backups),
        "verified_successfully": len(all_backups - failed_backups),
        "integrity_failures": len(failed_backups),
        **counters,  # type: ignore[typeddict-item]
        "checks_total": passes + len(failures),
        "checks_passed": passes,
    }


def run_failed(stats: Statistics) -> bool:
    """A run fails when any of its own checks failed or could not run, and was not repaired,
    or when it raised a recovery alert (stale, wal_gap, not_immutable, retention_short)."""
    unrepaired = stats.get("checks_total", 0) - stats.get("checks_passed", 0) - stats.get("repaired", 0)
    return unrepaired > 0 or stats.get("recovery_failures", 0) > 0


def statistics_from_outcomes(
    outcomes: Iterable[ChunkOutcome], decided: Iterable[CheckResult], **context: Any
) -> Statistics:
    """The statistics of compact chunk outcomes (failures in full, passes as ids per evidence)."""
    passed_backups: set[str] = set()
    passes = objects_read = bytes_read = 0
    by_evidence: Counter[str] = Counter()
    requests: dict[str, Counter[str]] = {}
    capabilities: dict[str, dict[str, Any]] = {}
    failures = list(decided)
    for outcome in outcomes:
        failures.extend(outcome["failures"])
        for evidence, packed in outcome["passed"].items():
            ids = unpack_ids(packed)
            passed_backups.update(ids)
            passes += len(ids)
            by_evidence[evidence] += len(ids)
        objects_read += outcome["objects_read"]
        bytes_read += outcome["bytes_read"]
        requests.setdefault(outcome["backend"], Counter()).update(outcome["requests"])
        learned = outcome.get("capabilities")
        if learned and learned.get("checksum_probes", 0) >= capabilities.get(outcome["backend"], {}).get(
            "checksum_probes", -1
        ):
            capabilities[outcome["backend"]] = learned  # the chunk that recorded last knows most
    stats = _contract_counts(failures, passed_backups, passes)
    stats.update(
        passed_by_evidence=dict(sorted(by_evidence.items())),
        objects_read=objects_read,
        bytes_read=bytes_read,
        requests={backend: dict(sorted(c.items())) for backend, c in sorted(requests.items())},
        store_capabilities=dict(sorted(capabilities.items())),
    )
    stats.update(context)  # type: ignore[typeddict-item]
    return stats
