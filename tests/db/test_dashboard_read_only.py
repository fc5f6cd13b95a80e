"""The dashboard only reads: a read-only session, a statement timeout, no DDL, a word before the first run.

The app is served by FastAPI's test client against a real catalog; Airflow's login is
tested in tests/integration/test_dashboard.py, so it is switched off here.
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from devtools.seed import seed_backup
from include.backup_integrity.catalog.schema import upgrade_schema
from include.backup_integrity.dashboard.queries import STATEMENT_TIMEOUT_SECONDS, start_read_only_session
from tests.support.catalog_schema import clear_ddl_log, ddl_log, install_ddl_log
from tests.support.connections import set_catalog_connection, set_variable

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

ENDPOINTS = ("/", "/api/summary", "/api/matrix", "/api/alerts", "/api/last-run", "/api/coverage")


@pytest.fixture
def client(stores, postgres, monkeypatch):
    from fastapi.testclient import TestClient

    from include.backup_integrity.dashboard.app import create_app

    set_catalog_connection(monkeypatch, postgres, stores.dbname)
    set_variable(monkeypatch, {"local_root": stores.local_root})
    app = create_app()
    app.dependency_overrides[app.router.dependencies[0].dependency] = lambda: None
    return TestClient(app)


@pytest.fixture
def db(stores):
    conn = psycopg.connect(stores.catalog_dsn)
    install_ddl_log(conn)
    yield conn
    conn.close()


def record_a_run(conn):
    conn.execute(
        "INSERT INTO backup_integrity_run (run_id, dag_id, mode, statistics) "
        "VALUES ('run-1', 'verify_storage_integrity', 'quick', %s)",
        [json.dumps({"total_backups_checked": 1})],
    )
    conn.commit()


def test_a_session_of_the_dashboard_is_read_only_and_its_statements_bounded(stores):
    conn = psycopg.connect(stores.catalog_dsn)
    try:
        start_read_only_session(conn)
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == (f"{STATEMENT_TIMEOUT_SECONDS}s",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE backup_integrity_scratch (x int)")
        conn.rollback()
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",), "every later transaction too"
    finally:
        conn.close()


def test_before_the_first_run_the_page_says_no_run_has_been_recorded_yet(stores, db, client):
    clear_ddl_log(db)
    page = client.get("/")
    assert page.status_code == 200
    assert "No run has been recorded yet." in page.text
    assert "schema at revision none, waiting for the verifier" in page.text

    upgrade_schema(db)  # the watchdog, say, migrated; no verifier run has finished yet
    clear_ddl_log(db)
    page = client.get("/")
    assert page.status_code == 200
    assert "No run has been recorded yet." in page.text
    assert client.get("/api/last-run").json() is None
    assert ddl_log(db) == []

    record_a_run(db)
    assert "No run has been recorded yet." not in client.get("/").text


def test_every_page_works_on_a_read_only_connection_and_runs_no_ddl(stores, db, client):
    upgrade_schema(db)
    seed_backup(stores)
    record_a_run(db)
    db.execute(f"ALTER DATABASE {stores.dbname} SET default_transaction_read_only = on")  # a replica's role
    db.commit()
    clear_ddl_log(db)
    try:
        for endpoint in ENDPOINTS:
            answer = client.get(endpoint)
            assert answer.status_code == 200, (endpoint, answer.text)
        assert "run-1" in client.get("/").text
    finally:
        db.execute(f"ALTER DATABASE {stores.dbname} RESET default_transaction_read_only")
        db.commit()
    assert ddl_log(db) == [], "a GET never runs DDL"


def test_a_locked_table_costs_a_page_the_statement_timeout_not_a_hung_worker(stores, db, client):
    upgrade_schema(db)
    record_a_run(db)
    holder = psycopg.connect(stores.catalog_dsn)
    try:
        holder.execute("LOCK TABLE backup_integrity_run IN ACCESS EXCLUSIVE MODE")  # as a migration does
        started = time.monotonic()
        answer = client.get("/api/last-run")
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert answer.status_code == 503
    assert answer.json() == {
        "detail": f"the catalog did not answer within {STATEMENT_TIMEOUT_SECONDS} s; try again"
    }
    assert STATEMENT_TIMEOUT_SECONDS <= waited < STATEMENT_TIMEOUT_SECONDS + 5
    assert client.get("/api/last-run").status_code == 200, "answered again once the lock is gone"
