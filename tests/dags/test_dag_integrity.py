"""DagBag hygiene, as Airflow's own example-DAG test demands, and the DAG's contract."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from devtools.runs import DAG_ID, REPO

DAG_FILES = sorted(str(p) for p in (REPO / "dags").glob("*.py"))


def core_timetable(dag):
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(dag.timetable)


@pytest.fixture
def forbid_config_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing must resolve no connection and read no Variable."""
    from airflow.sdk import BaseHook, Variable

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"read at parse time: {args!r} {kwargs!r}")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(refuse))
    monkeypatch.setattr(Variable, "get", staticmethod(refuse))
    monkeypatch.setenv("AIRFLOW_VAR_BACKUP_INTEGRITY", "this is not JSON and must not be read")


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[Path(f).name for f in DAG_FILES])
def test_dag_file_imports_without_errors_or_queries(dag_file, airflow_db, forbid_config_reads):
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(settings.engine, "before_cursor_execute", count)
    try:
        bag = DagBag(dag_folder=dag_file)
    finally:
        event.remove(settings.engine, "before_cursor_execute", count)

    assert bag.import_errors == {}
    assert bag.dags, f"{dag_file} defines no DAG"
    assert len(statements) <= 1, statements


def test_verify_storage_integrity_contract(airflow_db):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import CronDataIntervalTimetable

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(DAG_ID)

    assert dag.fileloc.endswith("dags/verify_storage_integrity.py")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert core_timetable(dag).summary == "0 * * * *"
    assert dag.catchup is False
    assert dag.start_date is not None
    assert dag.doc_md
    assert "Verify storage integrity" in dag.doc_md
    assert dag.on_failure_callback is not None
    assert {"select_backups", "verify_chunk", "aggregate_results", "raise_alerts", "check_outcome"} == set(
        dag.task_ids
    )
    assert dag.get_task("verify_chunk").map_index_template
    assert dag.get_task("check_outcome").downstream_task_ids == set(), "the outcome task is the leaf"
    from include.backup_integrity.config.settings import PARAM_DEFAULTS

    params = dag.params.dump()
    assert params == {
        "mode": "rolling",
        "lookback_days": None,
        "max_backups": None,
        "backup_ids": [],
        "repair": None,
    }
    assert params == PARAM_DEFAULTS


def test_hourly_runs_cover_one_real_hour(airflow_db):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import timezone

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(DAG_ID)
    interval = core_timetable(dag).infer_manual_data_interval(
        run_after=timezone.coerce_datetime(timezone.datetime(2026, 11, 30, 12, 17))
    )
    assert interval.end - interval.start == timedelta(hours=1)
    assert interval.end == timezone.datetime(2026, 11, 30, 12, 0)
