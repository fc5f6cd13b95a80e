"""The watchdog DAG's contract: its id, a quarter-hourly schedule without catchup, one task."""

from __future__ import annotations

from devtools.runs import REPO


def test_verify_storage_integrity_watchdog_contract(airflow_db):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.encoders import coerce_to_core_timetable

    bag = DagBag(dag_folder=str(REPO / "dags" / "verify_storage_integrity_watchdog.py"))
    dag = bag.get_dag("verify_storage_integrity_watchdog")

    assert bag.import_errors == {}
    assert coerce_to_core_timetable(dag.timetable).summary == "*/15 * * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert "dead-man's switch" in dag.doc_md
    assert dag.task_ids == ["check_verifier_ran"]
