"""The verifier DAG's contract: its id, schedule, tasks in order, trigger rules and params."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from devtools.runs import DAG_ID

TASKS_IN_ORDER = [
    "select_backups",
    "verify_chunk",
    "repair_copies",
    "aggregate_results",
    "raise_alerts",
    "check_outcome",
]


def core_timetable(dag):
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(dag.timetable)


@pytest.fixture(scope="module")
def dag(dag_bag):
    return dag_bag.get_dag(DAG_ID)


def test_verify_storage_integrity_contract(dag):
    from airflow.sdk import CronDataIntervalTimetable

    assert dag.fileloc.endswith("dags/verify_storage_integrity.py")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert core_timetable(dag).summary == "0 * * * *"
    assert dag.catchup is False
    assert dag.start_date is not None
    assert "Verify storage integrity" in dag.doc_md
    assert dag.on_failure_callback is not None
    assert sorted(dag.task_ids) == sorted(TASKS_IN_ORDER)
    assert dag.get_task("verify_chunk").map_index_template
    assert dag.get_task("check_outcome").downstream_task_ids == set(), "the outcome task is the leaf"


def test_the_tasks_run_in_order(dag):
    for earlier, later in pairwise(TASKS_IN_ORDER):
        assert later in dag.get_task(earlier).get_flat_relative_ids(upstream=False), (earlier, later)
    assert "repair_copies" not in dag.get_task("raise_alerts").upstream_task_ids, (
        "raise_alerts takes the repairs from aggregate_results, so a crashed repair cannot stop it"
    )
    assert "repair_copies" not in dag.get_task("check_outcome").upstream_task_ids


def test_a_crashed_repair_still_leads_to_statistics_and_alerts(dag):
    from airflow.sdk import TriggerRule

    repair = dag.get_task("repair_copies")
    assert repair.retries == 0, "a proven copy is recorded; the task is cleared, never retried"
    assert repair.trigger_rule == TriggerRule.NONE_FAILED
    assert dag.get_task("aggregate_results").trigger_rule == TriggerRule.ALL_DONE
    assert dag.get_task("raise_alerts").trigger_rule == TriggerRule.NONE_FAILED
    assert dag.get_task("check_outcome").trigger_rule == TriggerRule.NONE_FAILED
    assert dag.get_task("check_outcome").retries == 0


def test_every_task_has_a_display_name(dag):
    names = {task.task_id: task.task_display_name for task in dag.tasks}
    assert all(name and name != task_id for task_id, name in names.items()), names
    assert names["repair_copies"] == "Repair bad copies"


def test_params_come_from_the_one_declaration(dag):
    from include.backup_integrity.config.params import PARAM_DEFAULTS, TRIGGER_PARAMS

    params = dag.params.dump()
    assert params == {
        "mode": "rolling",
        "lookback_days": None,
        "max_backups": None,
        "backup_ids": [],
        "repair": None,
    }
    assert params == PARAM_DEFAULTS
    for name, declared in TRIGGER_PARAMS.items():
        param = dag.params.get_param(name)
        assert param.schema["title"] == declared.title
        assert param.description == declared.description


def test_hourly_runs_cover_one_real_hour(dag):
    from airflow.sdk import timezone

    interval = core_timetable(dag).infer_manual_data_interval(
        run_after=timezone.coerce_datetime(timezone.datetime(2026, 11, 30, 12, 17))
    )
    assert interval.end - interval.start == timedelta(hours=1)
    assert interval.end == timezone.datetime(2026, 11, 30, 12, 0)
