"""The catalog connection and a driver-neutral transaction helper.

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

__all__ = ["connect_catalog", "sql", "transaction"]


def connect_catalog() -> Any:
    """A DB-API connection for the ``backup_catalog`` Airflow connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from include.backup_integrity.config import CATALOG_CONN_ID, require_connection

    require_connection(CATALOG_CONN_ID, "the backup catalog")
    return PostgresHook(postgres_conn_id=CATALOG_CONN_ID).get_conn()


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
