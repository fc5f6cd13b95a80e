"""The watchdog DAG's contract: its id, a quarter-hourly schedule without catchup, one task."""

from __future__ import annotations


def test_verify_storage_integrity_watchdog_contract(dag_bag):
    from airflow.serialization.encoders import coerce_to_core_timetable

    dag = dag_bag.get_dag("verify_storage_integrity_watchdog")

    assert coerce_to_core_timetable(dag.timetable).summary == "*/15 * * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert "dead-man's switch" in dag.doc_md
    assert dag.task_ids == ["check_verifier_ran"]
