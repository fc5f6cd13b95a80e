"""The catalog connection, a driver-neutral transaction helper, bulk writes and the verifier's lock.

The postgres provider hands out psycopg 3 connections when psycopg 3 is
installed (as pinned here) and psycopg2 ones otherwise; the two disagree on
what ``with conn:`` means (commit vs. close), so the package never relies on it.
"""

from __future__ import annotations

from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - psycopg2-only installations
    from psycopg2 import sql  # type: ignore[no-redef]

if TYPE_CHECKING:
    from collections.abc import Iterator

    from include.backup_integrity.config.settings import Settings

__all__ = ["ADVISORY_LOCK_KEY", "connect_catalog", "lock", "sql", "transaction"]

#: Serialises schema creation and alert bookkeeping across concurrent runs.
ADVISORY_LOCK_KEY = 0x0B1C_1A7E


def connect_catalog(settings: Settings | None = None) -> Any:
    """A DB-API connection for the ``backup_catalog`` Airflow connection, its waits bounded.

    The session's timeouts come from ``settings`` (the Variable's defaults when None).
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from include.backup_integrity.catalog.sessions import SessionTimeouts, apply_session_timeouts
    from include.backup_integrity.config.settings import CATALOG_CONN_ID, require_connection

    require_connection(CATALOG_CONN_ID, "the backup catalog")
    conn = PostgresHook(postgres_conn_id=CATALOG_CONN_ID).get_conn()
    try:
        apply_session_timeouts(conn, SessionTimeouts.of(settings))
    except BaseException:
        conn.close()
        raise
    return conn


def lock(cur: Any) -> None:
    """Take the verifier's lock until the transaction ends: serialises concurrent runs' writes.

    Waited for up to the statement timeout (another run may hold it for minutes).
    """
    from include.backup_integrity.catalog.sessions import take_advisory_lock

    take_advisory_lock(cur, ADVISORY_LOCK_KEY, "another run of the verifier")


@contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """One transaction: a cursor, committed on success and rolled back on any error."""
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        with suppress(Exception):  # a lost connection cannot roll back; the server already has
            conn.rollback()
        raise


def bulk_upsert(
    cur: Any,
    table: str,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    conflict: str,
    update: str,
) -> None:
    """INSERT … ON CONFLICT DO UPDATE of many rows, through COPY into a staging table.

    COPY moves a chunk's hundred thousand rows in about a second, where one
    statement per row takes far longer; ``update`` is the ``SET … [WHERE …]`` part.
    Names are the package's own constants, never user input.
    """
    if not rows:
        return
    names = ", ".join(columns)
    upsert = f"ON CONFLICT ({conflict}) DO UPDATE SET {update}"
    if not hasattr(cur, "copy"):  # psycopg2: no COPY of Python rows
        placeholders = ", ".join(["%s"] * len(columns))
        cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders}) {upsert}", rows)
        return
    stage = f"stage_{table}"
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DROP")
    cur.execute(f"TRUNCATE {stage}")
    copy_rows(cur, stage, columns, rows)
    cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {upsert}")


def copy_rows(cur: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY rows straight into ``table``: a duplicate key fails the transaction."""
    if not hasattr(cur, "copy"):  # psycopg2: no COPY of Python rows
        placeholders = ", ".join(["%s"] * len(columns))
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
        return
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def is_unique_violation(exc: BaseException) -> bool:
    """Whether the database refused a row for a duplicate key (SQLSTATE 23505), in either driver."""
    return (getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)) == "23505"
