"""The run's statistics: what ``aggregate_results`` returns as its XCom value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.backup_integrity.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
    CheckResult,
    Statistics,
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


def compute_statistics(
    results: Iterable[CheckResult], backup_ids: Iterable[str], **context: Any
) -> Statistics:
    """Count backups and checks; every backup in scope counts, even one with no checks."""
    failed_backups: set[str] = set()
    all_backups = set(backup_ids)
    counters = dict.fromkeys(COUNTER_BY_KIND.values(), 0)
    checks_total = checks_passed = 0
    for result in results:
        all_backups.add(result["backup_id"])
        checks_total += 1
        if result["kind"] == PASSED:
            checks_passed += 1
            continue
        failed_backups.add(result["backup_id"])
        counters[COUNTER_BY_KIND[result["kind"]]] += 1
    stats: Statistics = {
        "total_backups_checked": len(all_backups),
        "verified_successfully": len(all_backups - failed_backups),
        "integrity_failures": len(failed_backups),
        **counters,  # type: ignore[typeddict-item]
        "checks_total": checks_total,
        "checks_passed": checks_passed,
    }
    stats.update(context)  # type: ignore[typeddict-item]
    return stats


def run_failed(stats: Statistics) -> bool:
    """A run fails when any of its own checks failed or could not run, and was not repaired."""
    unrepaired = stats.get("checks_total", 0) - stats.get("checks_passed", 0) - stats.get("repaired", 0)
    return unrepaired > 0
