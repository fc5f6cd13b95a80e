"""The backend incidents open in the alert table (the few rows a run needs before its alert transaction)."""

from __future__ import annotations

from typing import Any

from include.backup_integrity.catalog.alert_markers import owned_by
from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.domain.alerts import ALERT_TYPE, OPEN_STATUSES
from include.backup_integrity.domain.incidents import BACKEND_INCIDENT, OpenIncident
from include.backup_integrity.domain.ownership import VERIFIER_DAG_ID


def load_open_incidents(cur: Any, alerts_table: str) -> list[OpenIncident]:
    """The verifier's own open incidents (rows marked as its; never another writer's)."""
    owned, owned_params = owned_by(VERIFIER_DAG_ID)
    cur.execute(
        sql.SQL(
            "SELECT id, details ->> 'backend', details ->> 'last_seen' FROM {t} "
            "WHERE alert_type = %s AND status = ANY(%s) AND details ->> 'kind' = %s AND {owned} ORDER BY id"
        ).format(t=table(alerts_table), owned=owned),
        [ALERT_TYPE, list(OPEN_STATUSES), BACKEND_INCIDENT, *owned_params],
    )
    return [OpenIncident(row[0], row[1], row[2]) for row in cur.fetchall() if row[1]]
