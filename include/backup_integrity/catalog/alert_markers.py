"""The SQL side of alert ownership: which rows a DAG may change, and adopting an earlier release's rows.

See :mod:`include.backup_integrity.domain.ownership` for why rows carry a marker.
Every statement that updates or resolves an alert selects it through
:func:`owned_by`; :func:`adopt_earlier_alerts` is what revision ``0004_alert_markers``
runs, once, on the catalog it upgrades.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.domain.alerts import ALERT_TYPE
from include.backup_integrity.domain.ownership import (
    SOURCE,
    STALLED_KIND,
    VERIFIER_DAG_ID,
    WATCHDOG_DAG_ID,
    markers,
)

log = logging.getLogger(__name__)

#: The package's tables whose rows name an alert id: every alert an earlier release wrote
#: has an occurrence (each insert adds one), and most have a notice. (Repair rows name the
#: copy they repaired, not an alert.)
REFERENCING_TABLES = ("backup_integrity_alert_occurrence", "backup_integrity_notification")


def owned_by(producer: str) -> tuple[sql.Composable, list[Any]]:
    """A condition on an alert row's ``details``: marked as ``producer``'s, and of a kind it owns.

    The watchdog owns only ``verifier_stalled``; the verifier (and any later DAG) owns
    every kind of its rows but that one.
    """
    marker = json.dumps(markers(producer))
    if producer == WATCHDOG_DAG_ID:
        return sql.SQL("(details @> %s::jsonb AND details ->> 'kind' = %s)"), [marker, STALLED_KIND]
    return sql.SQL("(details @> %s::jsonb AND details ->> 'kind' <> %s)"), [marker, STALLED_KIND]


def adopt_earlier_alerts(cur: Any, alerts_table: str) -> int:
    """Mark the alert rows that earlier releases of this package wrote; returns how many.

    A row is the package's when one of its own tables names its id (an occurrence or a
    notice); it becomes the watchdog's when its kind is ``verifier_stalled``, the
    verifier's otherwise. A row with no such reference is the application's (or the
    replaced task's) and is left as it is, as is any row that already has a marker.
    Plain SQL text, so that it runs on a psycopg 3 or a psycopg2 cursor (a migration's).
    """
    name = quoted(alerts_table)
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
    if not cur.fetchone()[0]:
        log.warning("alert table %s does not exist: no earlier alert rows to adopt", alerts_table)
        return 0
    referenced = " OR ".join(
        f"EXISTS (SELECT 1 FROM {other} AS r WHERE r.alert_id = a.id)" for other in REFERENCING_TABLES
    )
    cur.execute(
        f"UPDATE {name} AS a SET details = a.details || jsonb_build_object('source', %s::text, "
        "'producer', CASE WHEN a.details ->> 'kind' = %s THEN %s::text ELSE %s::text END) "
        "WHERE a.alert_type = %s AND jsonb_typeof(a.details) = 'object' AND a.details ? 'kind' "
        f"AND NOT (a.details ? 'source' OR a.details ? 'producer') AND ({referenced})",
        [SOURCE, STALLED_KIND, WATCHDOG_DAG_ID, VERIFIER_DAG_ID, ALERT_TYPE],
    )
    adopted = max(cur.rowcount, 0)
    log.info("alert rows of earlier releases marked as the package's in %s: %d", alerts_table, adopted)
    return adopted


def quoted(name: str) -> str:
    """A possibly schema-qualified table name as a quoted SQL identifier (as :func:`table` quotes it)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))
