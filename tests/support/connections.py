"""Connections for tests, given as ``AIRFLOW_CONN_*`` environment variables as a deployment would."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.settings import CATALOG_CONN_ID

if TYPE_CHECKING:
    import pytest

    from devtools.faultproxy import FaultProxy
    from devtools.services import PostgresServer


def s3_connection(
    endpoint: FaultProxy | str, *, login: str = "testing", password: str = "testing", **config_kwargs: Any
) -> dict[str, Any]:
    """An aws connection to a store (a URL, or a fault proxy in front of one), with timeouts of seconds."""
    return {
        "conn_type": "aws",
        "login": login,
        "password": password,
        "extra": {
            "endpoint_url": endpoint if isinstance(endpoint, str) else endpoint.url,
            "region_name": "us-east-1",
            "verify": False,
            "config_kwargs": {"connect_timeout": 1, "read_timeout": 2, **config_kwargs},
        },
    }


def set_catalog_connection(
    monkeypatch: pytest.MonkeyPatch, postgres: PostgresServer, dbname: str, *, port: int | None = None
) -> None:
    """Point ``backup_catalog`` at a database of the test server (``port``: e.g. a proxy in front of it)."""
    set_connection(monkeypatch, CATALOG_CONN_ID, postgres.airflow_connection(dbname, port=port))


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


#: ``max_age_hours`` that judges no backup type's freshness (the defaults judge two).
NO_FRESHNESS_LIMITS = {"FULL_DATABASE": None, "WAL_ARCHIVE": None}


def set_variable(monkeypatch: pytest.MonkeyPatch, value: dict[str, Any] | str) -> None:
    """Give the ``backup_integrity`` Variable (a dict is JSON-encoded; a string is given as it is)."""
    monkeypatch.setenv("AIRFLOW_VAR_BACKUP_INTEGRITY", value if isinstance(value, str) else json.dumps(value))
