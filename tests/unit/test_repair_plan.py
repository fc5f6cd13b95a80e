"""Repair planning, pure: which source for which bad copy, refusals, proof from an earlier try,
what a crashed repair task reports, and the statistics keys repair adds."""

from __future__ import annotations

from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_SERVER_SHA256,
    EVIDENCE_SIZE,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
)
from include.backup_integrity.domain.repair import (
    APPLY,
    FAILED,
    PLAN,
    REFUSED,
    REPAIRED,
    outcome_of,
    plan_repairs,
    planned_outcomes,
    proven_outcome,
    repair_statistics,
    unfinished_outcomes,
)
from include.backup_integrity.domain.statistics import run_failed
from tests.support.records import CONTENT, CONTENT_SHA256, OTHER_SHA256, check_result


def test_each_repairable_failure_gets_its_best_verified_source():
    results = [
        check_result("b-1", "local", PASSED, evidence=EVIDENCE_SIZE),
        check_result("b-1", "r2", MISSING),
        check_result("b-1", "b2", PASSED, evidence=EVIDENCE_SERVER_SHA256),
        check_result("b-2", "local", PASSED, evidence=EVIDENCE_CONTENT, mode="full"),
        check_result("b-2", "r2", PASSED, evidence=EVIDENCE_CONTENT, mode="full"),
        check_result("b-2", "b2", CHECKSUM_MISMATCH, mode="full"),
        check_result("b-3", "local", SIZE_MISMATCH),
        check_result("b-3", "r2", PASSED, evidence=EVIDENCE_CONTENT),
    ]

    tasks = {(t["backup_id"], t["backend"]): t for t in plan_repairs(results)}

    assert set(tasks) == {("b-1", "r2"), ("b-2", "b2"), ("b-3", "local")}
    # The store's own SHA-256 beats size only; both are re-read before use.
    assert [s["backend"] for s in tasks[("b-1", "r2")]["sources"]] == ["b2", "local"]
    assert "verifies its SHA-256 first" in tasks[("b-1", "r2")]["reason"]
    # Among copies read byte for byte, the local one (no transfer) first.
    assert [s["backend"] for s in tasks[("b-2", "b2")]["sources"]] == ["local", "r2"]
    assert "full SHA-256 read" in tasks[("b-2", "b2")]["reason"]
    assert tasks[("b-3", "local")]["expected_sha256"] == CONTENT_SHA256
    assert tasks[("b-3", "local")]["expected_size"] == len(CONTENT)


def test_no_passing_replica_or_no_recorded_location_means_no_source():
    results = [
        check_result("b-1", "local", CHECKSUM_MISMATCH),
        check_result("b-1", "r2", BACKEND_ERROR),
        check_result("b-1", "b2", INVALID_RECORD),
        check_result("b-2", "local", PASSED, evidence=EVIDENCE_CONTENT),
        check_result("b-2", "b2", MISSING, path=None),
    ]

    tasks = {(t["backup_id"], t["backend"]): t for t in plan_repairs(results)}

    assert set(tasks) == {("b-1", "local"), ("b-2", "b2")}, "errors and invalid records are not repaired"
    assert tasks[("b-1", "local")]["sources"] == []
    assert "unverified source" in tasks[("b-1", "local")]["reason"]
    assert tasks[("b-2", "b2")]["sources"] == []
    assert "no location" in tasks[("b-2", "b2")]["reason"]
    plan = planned_outcomes(tasks.values())
    assert {o["status"] for o in plan} == {REFUSED}
    assert all(o["source_backend"] is None for o in plan)


def test_statistics_keys_per_mode_and_what_fails_a_run():
    task = plan_repairs([check_result("b-1", "r2", MISSING), check_result("b-1", "b2", PASSED)])[0]
    planned = planned_outcomes([task])
    assert repair_statistics("off", planned) == {}
    assert repair_statistics(PLAN, planned) == {
        "repair": PLAN,
        "repair_plan": [
            {
                "backup_id": "b-1",
                "backend": "r2",
                "kind": MISSING,
                "source_backend": "b2",
                "reason": task["reason"],
            }
        ],
        "repair_plan_total": 1,
    }
    done = [outcome_of(task, REPAIRED), outcome_of(task, FAILED), outcome_of(task, REFUSED)]
    stats = repair_statistics(APPLY, done)
    assert (stats["repaired"], stats["repair_failed"]) == (1, 2)

    assert not run_failed({"checks_total": 3, "checks_passed": 1, "repaired": 2})
    assert run_failed({"checks_total": 3, "checks_passed": 1, "repaired": 1})
    assert run_failed({"checks_total": 3, "checks_passed": 1})


def a_task(kind: str = MISSING):
    results = [
        check_result("b-1", "r2", kind),
        check_result("b-1", "local", PASSED, evidence=EVIDENCE_CONTENT, path="db/full.dump"),
        check_result("b-1", "b2", PASSED, evidence=EVIDENCE_SIZE, path="db/full.dump"),
    ]
    return plan_repairs(results)[0]


def recorded(**overrides):
    row = {
        "kind": MISSING,
        "status": REPAIRED,
        "source_backend": "b2",
        "sha256": CONTENT_SHA256,
        "reason": "copy from b2 (db/full.dump); local not used: gone",
        "error": None,
        "repaired_at": "2026-03-01T11:05:00.000000+00:00",
    }
    row.update(overrides)
    return row


def test_a_copy_proven_by_an_earlier_try_is_taken_from_its_record():
    outcome = proven_outcome(a_task(), recorded())

    assert outcome is not None
    assert outcome["status"] == REPAIRED
    assert (outcome["source_backend"], outcome["source_path"]) == ("b2", "db/full.dump")
    assert outcome["sha256"] == CONTENT_SHA256
    assert outcome["repaired_at"] == "2026-03-01T11:05:00.000000+00:00"
    assert outcome["reason"].startswith("copy from b2")
    assert outcome["path"] == "db/full.dump"


def test_only_a_repaired_record_of_the_same_kind_and_bytes_is_proof():
    task = a_task()
    assert proven_outcome(task, None) is None
    for status in (FAILED, REFUSED, "planned"):
        assert proven_outcome(task, recorded(status=status)) is None, status
    assert proven_outcome(task, recorded(kind=CHECKSUM_MISMATCH)) is None
    assert proven_outcome(task, recorded(sha256=OTHER_SHA256)) is None


def test_a_repair_task_that_did_not_finish_leaves_every_bad_copy_unrepaired():
    tasks = plan_repairs(
        [
            check_result("b-1", "r2", MISSING),
            check_result("b-1", "local", PASSED, evidence=EVIDENCE_CONTENT),
            check_result("b-2", "b2", CHECKSUM_MISMATCH, path=None),
        ]
    )

    outcomes = unfinished_outcomes(tasks, "the repair task did not finish")

    assert [(o["backup_id"], o["backend"], o["status"]) for o in outcomes] == [
        ("b-1", "r2", FAILED),
        ("b-2", "b2", FAILED),
    ]
    assert all(o["source_backend"] is None and o["error"] == o["reason"] for o in outcomes)
    stats = repair_statistics(APPLY, outcomes)
    assert (stats["repaired"], stats["repair_failed"]) == (0, 2)
    assert stats["repair_plan"][0]["reason"] == "the repair task did not finish"


def test_the_statistics_list_the_first_hundred_repairs_and_count_them_all():
    tasks = plan_repairs(
        [check_result(f"b-{i:04d}", "r2", MISSING) for i in range(250)]
        + [check_result(f"b-{i:04d}", "b2", PASSED) for i in range(250)]
    )
    stats = repair_statistics(PLAN, planned_outcomes(tasks))
    assert stats["repair_plan_total"] == 250
    assert [e["backup_id"] for e in stats["repair_plan"]] == [t["backup_id"] for t in tasks[:100]]
