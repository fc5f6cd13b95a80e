"""The restore drill DAG's contract: id, daily 03:00 UTC schedule, tasks, mapping, params."""

from __future__ import annotations

from datetime import timedelta


def test_restore_drill_contract(dag_bag):
    from airflow.sdk import CronDataIntervalTimetable
    from airflow.serialization.encoders import coerce_to_core_timetable

    from include.backup_integrity.config.drill_settings import DRILL_PARAM_DEFAULTS

    dag = dag_bag.get_dag("restore_drill")

    assert dag.fileloc.endswith("dags/restore_drill.py")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert coerce_to_core_timetable(dag.timetable).summary == "0 3 * * *"
    assert dag.catchup is False
    assert dag.start_date is not None
    assert "Restore drill" in dag.doc_md
    assert set(dag.tags) >= {"backups", "restore"}
    assert set(dag.task_ids) == {"choose_backups", "drill", "record_drills", "check_outcome"}
    assert dag.get_task("choose_backups").downstream_task_ids == {"drill", "record_drills"}
    assert dag.get_task("drill").downstream_task_ids == {"record_drills"}
    assert dag.get_task("record_drills").downstream_task_ids == {"check_outcome"}
    assert dag.get_task("check_outcome").downstream_task_ids == set()
    drill = dag.get_task("drill")
    assert drill.max_active_tis_per_dag == 1, "one drill at a time per deployment"
    assert drill.execution_timeout == timedelta(hours=12)
    assert {t.execution_timeout for t in dag.tasks if t.task_id != "drill"} == {timedelta(minutes=30)}
    assert drill.map_index_template
    assert dag.get_task("record_drills").trigger_rule == "all_done"
    assert all(task.retries >= 1 for task in dag.tasks if task.task_id != "check_outcome")
    assert dag.params.dump() == {"backup_ids": [], "per_type": None} == DRILL_PARAM_DEFAULTS
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema["title"], name
        assert param.description, name


def test_runs_cover_one_day_ending_at_03_utc(dag_bag):
    from airflow.sdk import timezone
    from airflow.serialization.encoders import coerce_to_core_timetable

    interval = coerce_to_core_timetable(
        dag_bag.get_dag("restore_drill").timetable
    ).infer_manual_data_interval(run_after=timezone.coerce_datetime(timezone.datetime(2026, 11, 30, 12, 17)))
    assert interval.end == timezone.datetime(2026, 11, 30, 3, 0)
    assert (interval.end - interval.start).days == 1
