"""Bounded waits against a real PostgreSQL: session timeouts, the advisory lock, named lock waits,
and the store deadlines shared through the catalog."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest

from devtools.seed import seed_backup
from include.backup_integrity.catalog.backups import update_metadata_lazily
from include.backup_integrity.catalog.connection import ADVISORY_LOCK_KEY, lock, transaction
from include.backup_integrity.catalog.deadlines import first_timeout_at, forget_run, record_timeout
from include.backup_integrity.catalog.sessions import (
    CatalogWaitTimeout,
    SessionTimeouts,
    apply_session_timeouts,
    naming_waits,
)
from include.backup_integrity.config.settings import Settings


def show(conn: psycopg.Connection, name: str) -> str:
    with conn.cursor() as cur:
        cur.execute(f"SHOW {name}")
        return cur.fetchone()[0]


@pytest.fixture
def bounded(stores, catalog) -> psycopg.Connection:
    """The test's catalog connection with short bounds: 3 s per statement, 1 s per lock."""
    apply_session_timeouts(catalog, SessionTimeouts(statement_seconds=3, lock_seconds=1))
    return catalog


@pytest.fixture
def holder(stores):
    """Another session of the catalog, rolled back and closed after the test."""
    conn = psycopg.connect(stores.catalog_dsn)
    yield conn
    conn.rollback()
    conn.close()


def test_a_session_keeps_its_timeouts(catalog):
    apply_session_timeouts(catalog, SessionTimeouts(statement_seconds=7, lock_seconds=2))
    catalog.rollback()  # committed already: a later rollback does not undo them
    assert show(catalog, "statement_timeout") == "7s"
    assert show(catalog, "lock_timeout") == "2s"
    assert show(catalog, "idle_in_transaction_session_timeout") == "7s"
    catalog.rollback()


def test_the_advisory_lock_is_waited_for_up_to_the_statement_timeout_not_the_lock_timeout(bounded, holder):
    with holder.cursor() as cur:  # another run of the verifier holds the lock
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])

    started = time.monotonic()
    with pytest.raises(CatalogWaitTimeout) as raised, transaction(bounded) as cur:
        lock(cur)
    waited = time.monotonic() - started

    assert 2.9 <= waited < 6, waited
    assert str(raised.value) == (
        "waited 3s (db_statement_timeout_seconds) for the advisory lock 0xb1c1a7e, "
        "which another run of the verifier holds"
    )
    holder.rollback()
    with transaction(bounded) as cur:
        lock(cur)
        assert show(bounded, "lock_timeout") == "1s", "other locks keep the lock timeout"


def test_a_row_lock_held_by_the_application_fails_the_write_naming_the_lock(stores, bounded, holder):
    backup = seed_backup(stores)
    with holder.cursor() as cur:  # the application is updating this backup and has not committed
        cur.execute("SELECT 1 FROM backups_backup WHERE id = %s FOR UPDATE", [backup.id])
    timeouts = SessionTimeouts(statement_seconds=3, lock_seconds=1)
    checked_at = datetime.now(UTC).isoformat(timespec="microseconds")

    def write_metadata() -> None:
        with naming_waits(timeouts, "recording the run") as step, transaction(bounded) as cur:
            step("writing metadata")
            update_metadata_lazily(cur, Settings(), {backup.id: checked_at}, {}, {"status": "passed"})

    started = time.monotonic()
    with pytest.raises(CatalogWaitTimeout) as raised:
        write_metadata()
    waited = time.monotonic() - started

    assert 0.9 <= waited < 2.5, waited
    assert str(raised.value) == (
        "waited 1 s (db_lock_timeout_seconds) for a row lock on backups_backup while writing metadata"
    )
    assert show(bounded, "transaction_isolation"), "the session is usable again after the rollback"


def test_a_session_idle_in_a_transaction_is_closed_and_the_error_says_so(stores):
    timeouts = SessionTimeouts(statement_seconds=1, lock_seconds=1)
    conn = psycopg.connect(stores.catalog_dsn)

    def pause_inside_a_transaction() -> None:
        with naming_waits(timeouts, "notifying"), transaction(conn) as cur:
            cur.execute("SELECT 1")
            time.sleep(1.6)  # as if a slow call were made inside the transaction
            cur.execute("SELECT 1")

    try:
        apply_session_timeouts(conn, timeouts)
        with pytest.raises(CatalogWaitTimeout, match=r"idle in a transaction for 1 s .* while notifying"):
            pause_inside_a_transaction()
    finally:
        conn.close()


def test_the_first_timeout_of_a_store_is_the_earliest_any_chunk_recorded(catalog):
    with transaction(catalog) as cur:
        assert first_timeout_at(cur, "run-1", "b2") is None
        assert record_timeout(cur, "run-1", "b2", 1_700_000_010.5) == 1_700_000_010.5
        assert record_timeout(cur, "run-1", "b2", 1_700_000_020.0) == 1_700_000_010.5
        assert record_timeout(cur, "run-1", "b2", 1_700_000_005.0) == 1_700_000_005.0
        assert record_timeout(cur, "run-2", "b2", 1_700_000_030.0) == 1_700_000_030.0
        assert first_timeout_at(cur, "run-1", "b2") == 1_700_000_005.0
        assert first_timeout_at(cur, "run-1", "r2") is None
        forget_run(cur, "run-1")  # the run was cleared: its clocks start afresh
        assert first_timeout_at(cur, "run-1", "b2") is None
        assert first_timeout_at(cur, "run-2", "b2") == 1_700_000_030.0
