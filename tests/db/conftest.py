"""Fixtures of the package's tests against a real catalog database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from include.backup_integrity.catalog.schema import upgrade_schema

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def catalog(stores: Any) -> Iterator[psycopg.Connection]:
    """A connection to the test's catalog, with the verifier's own tables at head."""
    conn = psycopg.connect(stores.catalog_dsn)
    upgrade_schema(conn)
    yield conn
    conn.close()
