"""A secrets backend that holds ``backup_notify`` and can be made unreachable, as a vault in an outage.

Configured with ``AIRFLOW__SECRETS__BACKEND``; while ``TEST_SECRETS_OUTAGE`` is set in the
environment every lookup of a connection it holds raises, as a backend whose server is
down does. Other connection ids it does not hold (the environment provides them).
"""

from __future__ import annotations

import os

from airflow.sdk.bases.secrets_backend import BaseSecretsBackend

BACKEND_PATH = "tests.support.secrets_outage.OutageSecretsBackend"
OUTAGE_ENV = "TEST_SECRETS_OUTAGE"
#: The connection's JSON, as the backend holds it.
HELD_ENV = "TEST_SECRETS_BACKUP_NOTIFY"


class SecretsBackendUnreachable(ConnectionError):
    """What a vault client raises when its server does not answer."""


class OutageSecretsBackend(BaseSecretsBackend):
    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        if conn_id != "backup_notify":
            return None
        if os.environ.get(OUTAGE_ENV):
            raise SecretsBackendUnreachable("secrets backend at vault.internal:8200 did not answer")
        return os.environ.get(HELD_ENV)

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        return None
