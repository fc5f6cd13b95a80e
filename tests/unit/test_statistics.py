"""The run's statistics: backups are counted once, checks once per backend."""

from __future__ import annotations

import pytest

from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
    pack_ids,
)
from include.backup_integrity.domain.statistics import (
    compute_statistics,
    run_failed,
    statistics_from_outcomes,
)
from tests.support.records import check_result

COUNTERS = ("missing_files", "storage_mismatches", "checksum_mismatches", "backend_errors", "invalid_records")


def test_a_backup_failing_on_two_backends_is_one_failure_and_two_failed_checks():
    results = [
        check_result("b-1", "local", PASSED),
        check_result("b-1", "r2", MISSING),
        check_result("b-1", "b2", MISSING),
        check_result("b-2", "local", PASSED),
        check_result("b-2", "r2", PASSED),
        check_result("b-2", "b2", PASSED),
    ]

    stats = compute_statistics(results, ["b-1", "b-2"])

    assert stats == {
        "total_backups_checked": 2,
        "verified_successfully": 1,
        "integrity_failures": 1,
        "missing_files": 2,
        "storage_mismatches": 0,
        "checksum_mismatches": 0,
        "backend_errors": 0,
        "invalid_records": 0,
        "checks_total": 6,
        "checks_passed": 4,
    }


@pytest.mark.parametrize(
    ("kind", "counter"),
    [
        (MISSING, "missing_files"),
        (SIZE_MISMATCH, "storage_mismatches"),
        (CHECKSUM_MISMATCH, "checksum_mismatches"),
        (BACKEND_ERROR, "backend_errors"),
        (INVALID_RECORD, "invalid_records"),
    ],
)
def test_each_failure_kind_has_its_counter(kind, counter):
    stats = compute_statistics([check_result("b-1", "r2", kind), check_result("b-1", "b2", PASSED)], ["b-1"])

    assert {name: stats[name] for name in COUNTERS} == {name: int(name == counter) for name in COUNTERS}
    assert (stats["integrity_failures"], stats["verified_successfully"]) == (1, 0)


def test_different_failures_of_one_backup_count_in_their_own_counters():
    results = [
        check_result("b-1", "local", SIZE_MISMATCH),
        check_result("b-1", "r2", CHECKSUM_MISMATCH),
        check_result("b-1", "b2", BACKEND_ERROR),
    ]

    stats = compute_statistics(results, ["b-1"])

    assert stats["integrity_failures"] == 1
    assert (stats["storage_mismatches"], stats["checksum_mismatches"], stats["backend_errors"]) == (1, 1, 1)


def test_a_result_without_a_backend_counts_its_backup():
    stats = compute_statistics([check_result("b-7", None, INVALID_RECORD, path=None)], [])

    assert (stats["total_backups_checked"], stats["integrity_failures"], stats["invalid_records"]) == (
        1,
        1,
        1,
    )


def test_every_backup_in_scope_is_counted_even_without_a_result():
    stats = compute_statistics([check_result("b-1", "r2", PASSED)], ["b-1", "b-2"])

    assert stats["total_backups_checked"] == 2
    assert stats["checks_total"] == 1


def test_context_is_added_to_the_statistics():
    stats = compute_statistics([], [], mode="full", run_id="manual__1", window_start=None)

    assert (stats["mode"], stats["run_id"], stats["window_start"]) == ("full", "manual__1", None)
    assert stats["total_backups_checked"] == 0


@pytest.mark.parametrize(
    ("kinds", "failed"),
    [
        ([], False),
        ([PASSED, PASSED], False),
        ([PASSED, MISSING], True),
        ([BACKEND_ERROR], True),
        ([INVALID_RECORD, PASSED], True),
    ],
)
def test_a_run_fails_when_any_check_did_not_pass(kinds, failed):
    results = [check_result(f"b-{n}", "r2", kind) for n, kind in enumerate(kinds)]

    assert run_failed(compute_statistics(results, [])) is failed


def chunk_outcome(backend, passed, failures=()):
    return {
        "backend": backend,
        "label": backend,
        "mode": "quick",
        "checked_at": "2026-12-01T04:00:00.000000+00:00",
        "failures": list(failures),
        "passed": passed,
        "objects": 0,
        "objects_read": 0,
        "bytes_read": 0,
        "requests": {"list": 1},
    }


def test_chunk_passes_count_alike_packed_or_as_the_lists_of_earlier_versions():
    outcomes = [
        chunk_outcome("local", {"size": pack_ids(["b-1", "b-2"])}),
        chunk_outcome("r2", {"size": ["b-1"], "fingerprint": ["b-2"]}, [check_result("b-3", "r2", MISSING)]),
    ]

    stats = statistics_from_outcomes(outcomes, [])

    assert (stats["total_backups_checked"], stats["verified_successfully"], stats["integrity_failures"]) == (
        3,
        2,
        1,
    )
    assert (stats["checks_total"], stats["checks_passed"]) == (5, 4)
    assert stats["passed_by_evidence"] == {"fingerprint": 1, "size": 3}
