"""The policy every DAG file passes: it parses cleanly and cheaply, and says what it is.

As Airflow's own example-DAG test demands: no import error, at most one metadata
query while parsing and no connection resolved; stricter here, no Variable read
either. And as the project template's: tags, a ``doc_md`` and retries in
``default_args``; and every task named for the UI (``task_display_name``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.runs import REPO

DAG_FILES = sorted(str(p) for p in (REPO / "dags").glob("*.py"))


@pytest.fixture
def forbid_config_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing must resolve no connection and read no Variable."""
    from airflow.sdk import BaseHook, Variable

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"read at parse time: {args!r} {kwargs!r}")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(refuse))
    monkeypatch.setattr(Variable, "get", staticmethod(refuse))
    monkeypatch.setenv("AIRFLOW_VAR_BACKUP_INTEGRITY", "this is not JSON and must not be read")


def test_every_python_file_in_dags_is_a_dag_file(dag_bag):
    assert DAG_FILES, "dags/ holds no DAG file"
    assert {Path(dag.fileloc).name for dag in dag_bag.dags.values()} == {Path(f).name for f in DAG_FILES}
    assert dag_bag.import_errors == {}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[Path(f).name for f in DAG_FILES])
def test_dag_file_parses_without_errors_queries_or_config_reads(dag_file, airflow_db, forbid_config_reads):
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


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[Path(f).name for f in DAG_FILES])
def test_dag_file_follows_the_policy(dag_file, dag_bag):
    dags = [dag for dag in dag_bag.dags.values() if dag.fileloc == dag_file]
    assert len(dags) == 1, "one DAG per file"
    dag = dags[0]
    assert dag.tags, f"{dag.dag_id} has no tags"
    assert dag.doc_md, f"{dag.dag_id} has no doc_md"
    assert dag.doc_md.strip().startswith("###"), "doc_md is the file's Markdown docstring"
    assert isinstance(dag.default_args.get("retries"), int), f"{dag.dag_id} sets no retries in default_args"
    assert dag.default_args.get("retry_delay") is not None
    assert dag.catchup is False
    assert dag.start_date is not None
    assert Path(dag_file).stem == dag.dag_id, "the file is named after its DAG"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[Path(f).name for f in DAG_FILES])
def test_every_task_has_a_display_name_other_than_its_id(dag_file, dag_bag):
    """The id is terse; the grid and graph show the display name (defaulting to the id)."""
    (dag,) = [dag for dag in dag_bag.dags.values() if dag.fileloc == dag_file]
    names = {task.task_id: task.task_display_name for task in dag.tasks}
    unnamed = {task_id: name for task_id, name in names.items() if name in (None, "", task_id)}
    assert not unnamed, f"{dag.dag_id}: tasks without a display name of their own: {unnamed}"
