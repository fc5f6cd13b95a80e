"""Builders for the restore drill's tests: its Variable, its connections, its runs, what it left."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from devtools.runs import query, xcom

if TYPE_CHECKING:
    from devtools.seed import Stores
    from devtools.services import PostgresServer

DRILL_DAG_ID = "restore_drill"
PASSPHRASE = "correct horse battery staple"


def target_connection(postgres: PostgresServer, database: str = "postgres", host: str = "127.0.0.1") -> str:
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": host,
            "port": postgres.port,
            "login": postgres.user,
            "schema": database,
        }
    )


@dataclass
class DrillRun:
    """A finished ``restore_drill`` run: its state, run_id and what ``record_drills`` returned."""

    dag_run: Any

    @property
    def state(self) -> str:
        return str(self.dag_run.state)

    @property
    def run_id(self) -> str:
        return self.dag_run.run_id

    @property
    def statistics(self) -> dict[str, Any] | None:
        return xcom(self.dag_run, "record_drills")

    def outcomes(self) -> list[dict[str, Any]]:
        """What each mapped drill returned, by backup id."""
        found = []
        for ti in self.dag_run.get_task_instances():
            if ti.task_id == "drill" and ti.map_index >= 0:
                value = xcom(self.dag_run, "drill", ti.map_index)
                if value is not None:
                    found.append(value)
        return found

    def task_states(self) -> dict[str, str]:
        return {
            f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
            for ti in self.dag_run.get_task_instances()
        }

    def __repr__(self) -> str:
        return f"DrillRun({self.run_id}, {self.state}, {self.statistics}, {self.task_states()})"


def run_drill_dag(conf: dict[str, Any] | None = None, logical_date: datetime | None = None) -> DrillRun:
    """Run ``restore_drill`` once with ``dag.test()``.

    The default logical date is a day ahead, so the run's window (it ends at the last
    03:00 UTC before it) covers every backup seeded in the past.
    """
    from devtools.runs import load_dag

    logical_date = logical_date or datetime.now(UTC) + timedelta(days=1)
    return DrillRun(load_dag(DRILL_DAG_ID).test(logical_date=logical_date, run_conf=conf or {}))


def scratch_databases(postgres: PostgresServer) -> list[str]:
    import psycopg

    with psycopg.connect(postgres.dsn()) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'restore\\_drill\\_%'"
        ).fetchall()
    return sorted(row[0] for row in rows)


def drill_rows(stores: Stores, run_id: str | None = None) -> list[dict[str, Any]]:
    rows = query(
        stores,
        "SELECT run_id, backup_id::text AS backup_id, backup_type, format, status, stage, source_backend, "
        "message, details, window_end FROM backup_integrity_restore ORDER BY finished_at",
    )
    return [r for r in rows if run_id is None or r["run_id"] == run_id]


def last_restore_test(stores: Stores, backup_id: str) -> dict[str, Any] | None:
    rows = query(stores, "SELECT metadata FROM backups_backup WHERE id = %s", [backup_id])
    return rows[0]["metadata"].get("last_restore_test")


def drill_alerts(stores: Stores) -> list[dict[str, Any]]:
    from devtools.runs import alerts

    return [a for a in alerts(stores) if str(a["details"].get("kind", "")).startswith("restore_")]
