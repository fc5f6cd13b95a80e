"""What ``aggregate_results`` decides before it counts: a whole plan, and the repairs to report."""

from __future__ import annotations

import pytest

from include.backup_integrity.domain.records import EVIDENCE_CONTENT, MISSING, ChunkOutcome, pack_ids
from include.backup_integrity.domain.repair import FAILED, REPAIRED, outcome_of, plan_repairs
from include.backup_integrity.tasks.aggregate import (
    REPAIR_DID_NOT_FINISH,
    UpstreamIncomplete,
    repairs_to_report,
    require_every_chunk,
)
from tests.support.records import CHECKED_AT, check_result


def chunk_outcome(backend: str, failures=(), passed_ids=()) -> ChunkOutcome:
    return ChunkOutcome(
        backend=backend,
        label=f"{backend} 1/1",
        mode="full",
        checked_at=CHECKED_AT,
        failures=list(failures),
        passed={EVIDENCE_CONTENT: pack_ids(passed_ids)} if passed_ids else {},
        objects=len(failures) + len(passed_ids),
        objects_read=0,
        bytes_read=0,
        requests={},
    )


def a_plan(repair: str, chunk_count: int = 2) -> dict:
    return {"repair": repair, "decided": [], "chunk_count": chunk_count}


OUTCOMES = [
    chunk_outcome("r2", failures=[check_result("b-1", "r2", MISSING)]),
    chunk_outcome("local", failures=[check_result("b-2", "local", MISSING)], passed_ids=["b-1"]),
]


def test_a_plan_is_counted_only_when_every_planned_chunk_handed_in():
    plan = a_plan("apply", chunk_count=2)
    assert require_every_chunk(OUTCOMES, plan) is plan
    assert require_every_chunk([], a_plan("off", chunk_count=0))["chunk_count"] == 0
    with pytest.raises(UpstreamIncomplete, match="only 1 of 2 chunk"):
        require_every_chunk(OUTCOMES[:1], plan)
    with pytest.raises(UpstreamIncomplete, match="select_backups did not finish"):
        require_every_chunk([], None)


def test_the_repair_tasks_own_outcomes_are_reported_as_they_are():
    task = plan_repairs([check_result("b-1", "r2", MISSING)])[0]
    done = [outcome_of(task, REPAIRED)]
    assert repairs_to_report(OUTCOMES, a_plan("apply"), done) == done
    assert repairs_to_report(OUTCOMES, a_plan("apply"), []) == []
    assert repairs_to_report(OUTCOMES, a_plan("off"), None) == []


@pytest.mark.parametrize("mode", ["plan", "apply"])
def test_a_repair_task_that_crashed_leaves_every_bad_copy_reported_unrepaired(mode):
    reported = repairs_to_report(OUTCOMES, a_plan(mode), None)

    assert [(o["backup_id"], o["backend"], o["status"]) for o in reported] == [
        ("b-1", "r2", FAILED),
        ("b-2", "local", FAILED),
    ]
    assert all(o["error"] == REPAIR_DID_NOT_FINISH for o in reported)
