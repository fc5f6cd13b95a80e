"""``metadata.last_integrity_check``: one summary per backup from its results."""

from __future__ import annotations

from include.backup_integrity.catalog.backups import backup_check_summaries
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
)
from tests.support.records import CHECKED_AT, EARLIER, LATER, check_result

RUN_ID = "manual__2026-03-01"


def test_a_backup_that_passed_everywhere():
    results = [check_result("b-1", b, PASSED, checked_at=t) for b, t in (("local", EARLIER), ("r2", LATER))]

    assert backup_check_summaries(results, RUN_ID) == {
        "b-1": {"timestamp": LATER, "status": "passed", "mode": "quick", "errors": [], "run_id": RUN_ID}
    }


def test_a_backup_with_failures_lists_them_by_backend_then_kind():
    results = [
        check_result("b-1", "r2", MISSING, message="r2 has no object"),
        check_result("b-1", "local", PASSED),
        check_result("b-1", "b2", SIZE_MISMATCH, message="b2 size"),
        check_result("b-1", None, INVALID_RECORD, message="unknown type"),
        check_result("b-1", "b2", BACKEND_ERROR, message="b2 timeout"),
    ]

    summary = backup_check_summaries(results, RUN_ID)["b-1"]

    assert summary["status"] == "failed"
    assert summary["errors"] == [
        {"backend": None, "kind": INVALID_RECORD, "message": "unknown type"},
        {"backend": "b2", "kind": BACKEND_ERROR, "message": "b2 timeout"},
        {"backend": "b2", "kind": SIZE_MISMATCH, "message": "b2 size"},
        {"backend": "r2", "kind": MISSING, "message": "r2 has no object"},
    ]


def test_each_backup_gets_its_own_summary_with_its_latest_time():
    results = [
        check_result("b-1", "local", PASSED, checked_at=LATER),
        check_result("b-2", "local", MISSING, checked_at=EARLIER, mode="full"),
        check_result("b-1", "r2", MISSING, checked_at=CHECKED_AT),
        check_result("b-2", "r2", PASSED, checked_at=CHECKED_AT, mode="full"),
    ]

    summaries = backup_check_summaries(results, RUN_ID)

    assert set(summaries) == {"b-1", "b-2"}
    assert (summaries["b-1"]["timestamp"], summaries["b-1"]["status"]) == (LATER, "failed")
    assert (summaries["b-2"]["timestamp"], summaries["b-2"]["mode"]) == (CHECKED_AT, "full")
    assert [e["backend"] for e in summaries["b-2"]["errors"]] == ["local"]


def test_no_results_no_summaries():
    assert backup_check_summaries([], RUN_ID) == {}
