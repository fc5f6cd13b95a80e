"""Reading what a run left behind: its state and statistics, alert rows, results.

Shared by the tests and the demo.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devtools.seed import Stores

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "verify_storage_integrity"


def use_throwaway_airflow(home: str, **settings: str) -> None:
    """Point Airflow (not yet imported) at a SQLite metadata DB in ``home`` and this repo's folders.

    ``settings`` are further ``AIRFLOW__…`` variables. AWS_* variables of this machine
    (AWS_CA_BUNDLE among them) are dropped: they must not steer clients of the local S3 servers.
    """
    os.environ.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **settings,
    )
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]


def release_metadata_db() -> None:
    """Close every connection this process holds to Airflow's SQLite metadata DB.

    Call it before a child process writes the same file. Seen in this suite: after
    ``airflow tasks test`` children had written and exited, this process's pooled
    connections (SQLite in WAL mode) wrote as if the children's rows were not there
    (a reused XCom id, "UNIQUE constraint failed"; in the full suite, "database disk
    image is malformed"). With no connection of ours open across a child's life,
    the next one we open reads the file as the child left it.
    """
    settings = sys.modules.get("airflow.settings")
    if settings is None:  # Airflow not loaded here: nothing of ours is open
        return
    from sqlalchemy.orm import close_all_sessions

    close_all_sessions()
    if settings.Session is not None:
        settings.Session.remove()
    if settings.engine is not None:
        settings.engine.dispose()
    if getattr(settings, "async_engine", None) is not None:
        settings.async_engine.sync_engine.dispose()


def load_dag(dag_id: str = DAG_ID) -> Any:
    """Parse the DAG file afresh, as every Airflow worker process does, with retries off.

    ``dag.test()`` runs tasks in this process and merges a run's conf into the
    task objects' params, so reusing one parsed DAG would leak one run's params
    into the next. A retry under ``dag.test()`` waits out retry_delay; callers
    that need retries set them.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    loaded = bag.get_dag(dag_id)
    for task in loaded.tasks:
        task.retries = 0
    return loaded


class DagRunOutcome:
    """A finished run: its state, run_id and the statistics ``aggregate_results`` returned."""

    def __init__(self, dag_run: Any) -> None:
        self.dag_run = dag_run
        self.state = str(dag_run.state)
        self.run_id = dag_run.run_id
        self.statistics = xcom(dag_run, "aggregate_results")

    def __repr__(self) -> str:
        return f"DagRunOutcome({self.run_id}, {self.state}, {self.statistics})"


def xcom(dag_run: Any, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == "return_value",
            )
            .one_or_none()
        )
        if row is None:
            return None
        value = row.value
    return json.loads(value) if isinstance(value, str) else value


def query(stores: Stores, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    conn = stores.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params or [])
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def alerts(stores: Stores, status: str | None = None) -> list[dict[str, Any]]:
    rows = query(
        stores,
        "SELECT id, backup_id::text AS backup_id, alert_type, severity, message, details, "
        "notification_channels, status, resolved_at, created_at FROM backups_backupalert ORDER BY id",
    )
    return [r for r in rows if status is None or r["status"] == status]


#: What a run found for each copy: the results it recorded (the copies whose kind or evidence
#: changed) and, for the copies it checked unchanged (the object state names it as their last
#: check), the copy's newest result, which it confirmed. ``%s`` twice: the run id.
RUN_FINDINGS_SQL = (
    "SELECT backup_id::text AS backup_id, backend, kind, evidence, message FROM backup_integrity_result "
    "WHERE run_id = %s UNION ALL ("
    "SELECT DISTINCT ON (r.backup_id, r.backend) r.backup_id::text, r.backend, r.kind, r.evidence, r.message "
    "FROM backup_integrity_object o JOIN backup_integrity_result r "
    "ON r.backup_id = o.backup_id AND r.backend = o.backend "
    "WHERE o.last_run_id = %s AND NOT EXISTS (SELECT 1 FROM backup_integrity_result mine "
    "WHERE mine.run_id = o.last_run_id AND mine.backup_id = o.backup_id AND mine.backend = o.backend) "
    "ORDER BY r.backup_id, r.backend, r.checked_at DESC)"
)


def run_findings(stores: Stores, run_id: str) -> list[dict[str, Any]]:
    """Each copy's outcome as ``run_id`` found it (exact for the latest run that checked the copy)."""
    return query(stores, f"SELECT * FROM ({RUN_FINDINGS_SQL}) findings", [run_id, run_id])


def results(stores: Stores, run_id: str) -> dict[tuple[str, str], str]:
    """What the run found for each copy it checked: (backup_id, backend) -> kind."""
    return {(r["backup_id"], r["backend"]): r["kind"] for r in run_findings(stores, run_id)}
