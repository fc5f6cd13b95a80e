"""Fixtures: real services on loopback and a real Airflow to run the DAG with ``dag.test()``.

Airflow reads its configuration at import, so the environment is set here at
module level, before any test imports Airflow: a temporary AIRFLOW_HOME with a
SQLite metadata database, this repository's ``dags/`` and ``plugins/``.
Connections and the Variable are given per test as ``AIRFLOW_CONN_*`` /
``AIRFLOW_VAR_*`` environment variables, as a deployment would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from devtools.runs import DagRunOutcome, load_dag, use_throwaway_airflow  # noqa: E402

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="bi-airflow-home-")
use_throwaway_airflow(
    _AIRFLOW_HOME,
    AIRFLOW__CORE__EXECUTOR="LocalExecutor",
    AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP="",
)

from devtools.seed import Stores, create_buckets, create_catalog  # noqa: E402
from devtools.services import (  # noqa: E402
    MotoServer,
    PostgresServer,
    S3Server,
    SeaweedServer,
    SmtpReceiver,
    WebhookReceiver,
    apprise_connection,
)
from tests.support.connections import NO_FRESHNESS_LIMITS, set_catalog_connection, set_variable  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator


#: Markers by folder: what the tests of each folder need (``-m unit`` runs only what needs no service).
FOLDER_MARKERS = {
    "unit": ("unit",),
    "db": ("db",),
    "dags": ("dags",),
    "integration": ("integration",),
    "faults": ("faults", "integration"),
    "e2e": ("e2e", "integration"),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Store-facing tests (``@pytest.mark.s3_servers``) run with r2 on moto and on SeaweedFS."""
    if "r2_store" in metafunc.fixturenames and metafunc.definition.get_closest_marker("s3_servers"):
        metafunc.parametrize("r2_store", ["moto", "seaweedfs"], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_root = Path(__file__).parent
    for item in items:
        folder = Path(item.fspath).relative_to(tests_root).parts[0]
        for marker in FOLDER_MARKERS.get(folder, ()):
            item.add_marker(marker)


# ----------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def r2_server() -> Iterator[MotoServer]:
    server = MotoServer("r2").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def b2_server() -> Iterator[MotoServer]:
    server = MotoServer("b2").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_server() -> Iterator[SeaweedServer]:
    """A real SeaweedFS S3 gateway (``weed mini``), once per session; ``reset()`` empties it."""
    server = SeaweedServer("seaweedfs").start()
    yield server
    server.stop()


@pytest.fixture
def r2_store(request: pytest.FixtureRequest, r2_server: MotoServer) -> S3Server:
    """The S3 server behind ``backup_r2`` in this test: moto, or SeaweedFS (``s3_servers`` marker)."""
    if getattr(request, "param", "moto") == "seaweedfs":
        return request.getfixturevalue("seaweed_server")
    return r2_server


@pytest.fixture(scope="session")
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated Airflow metadata database (SQLite, in the temporary AIRFLOW_HOME)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        capture_output=True,
    )
    return _AIRFLOW_HOME


# ----------------------------------------------------------------------------- per test


def conn_env(conn: dict[str, Any]) -> str:
    return json.dumps(conn)


@pytest.fixture
def stores(
    postgres: PostgresServer,
    r2_store: S3Server,
    b2_server: MotoServer,
    tmp_path: Path,
) -> Stores:
    """A fresh catalog database, empty buckets on both S3 servers and an empty local root."""
    dbname = f"catalog_{uuid.uuid4().hex[:10]}"
    dsn = postgres.create_database(dbname)
    r2_store.reset()
    b2_server.reset()
    local_root = tmp_path / "backups"
    local_root.mkdir()
    result = Stores(catalog_dsn=dsn, local_root=str(local_root), r2=r2_store.client(), b2=b2_server.client())
    result.dbname = dbname  # type: ignore[attr-defined]
    create_catalog(result)
    create_buckets(result)
    return result


@pytest.fixture
def airflow_env(
    monkeypatch: pytest.MonkeyPatch,
    stores: Stores,
    postgres: PostgresServer,
    r2_store: S3Server,
    b2_server: MotoServer,
    webhook: WebhookReceiver,
    smtp: SmtpReceiver,
) -> dict[str, Any]:
    """Connections and the Variable for this test's stores, as environment variables."""
    webhook.clear()
    webhook.status = 200
    smtp.clear()
    set_catalog_connection(monkeypatch, postgres, stores.dbname)  # type: ignore[attr-defined]
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_R2", conn_env(r2_store.airflow_connection("backup_r2")))
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_B2", conn_env(b2_server.airflow_connection("backup_b2")))
    monkeypatch.setenv(
        "AIRFLOW_CONN_BACKUP_NOTIFY", conn_env(apprise_connection(webhook.apprise_url, smtp.apprise_url))
    )
    # Freshness is judged per deployment, not per synthetic catalog: the tests of it
    # (tests/integration/test_recovery_chain.py) set max_age_hours themselves.
    variable = {"local_root": stores.local_root, "max_age_hours": NO_FRESHNESS_LIMITS}
    set_variable(monkeypatch, variable)
    return variable


# ----------------------------------------------------------------------------- running the DAG


@pytest.fixture
def run_dag(airflow_db: str, airflow_env: dict[str, Any]) -> Any:
    """Run the DAG once with ``dag.test()``; returns the run's state and statistics."""

    def run(
        conf: dict[str, Any] | None = None,
        logical_date: datetime | None = None,
        again: DagRunOutcome | None = None,
    ) -> DagRunOutcome:
        """Run the DAG; with ``again``, run that same run (same run_id) once more, as a clear does."""
        kwargs: dict[str, Any] = {}
        if again is not None:
            logical_date = again.dag_run.logical_date
            kwargs["run_after"] = again.dag_run.run_after
            conf = again.dag_run.conf
        logical_date = logical_date or datetime.now(UTC) + timedelta(hours=1)
        dag_run = load_dag().test(logical_date=logical_date, run_conf=conf or {}, **kwargs)
        return DagRunOutcome(dag_run)

    return run
