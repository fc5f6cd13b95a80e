"""What the upgrade to this release changes in a previous release's rows, for the upgrade tests.

Revision ``0004_alert_markers`` marks the alert rows that the package's own tables
refer to (every alert a previous release wrote), ``0005_notice_expiry`` gives each
notice an ``expired_at`` (NULL), ``0008_recovery_chain`` each object a ``retain_until`` and
``retention_read_at`` (NULL), ``0009_console_indexes`` each notice a ``digest_run_id`` (NULL).
Nothing else of a previous release's rows changes.
"""

from __future__ import annotations

import json
from typing import Any

SOURCE = "verify_storage_integrity"
VERIFIER = "verify_storage_integrity"
WATCHDOG = "verify_storage_integrity_watchdog"

#: Tables whose rows name an alert id (what makes an alert row the package's).
REFERENCING = ("backup_integrity_alert_occurrence", "backup_integrity_notification")


def referenced_alert_ids(snapshot: dict[str, list[str]]) -> set[int]:
    return {json.loads(row)["alert_id"] for name in REFERENCING for row in snapshot.get(name, [])}


def marked(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert row as revision 0004 leaves a previous release's row of the package."""
    producer = WATCHDOG if alert["details"].get("kind") == "verifier_stalled" else VERIFIER
    return {**alert, "details": {**alert["details"], "source": SOURCE, "producer": producer}}


def as_upgraded(snapshot: dict[str, list[str]], alerts_table: str = "backups_backupalert") -> dict[str, Any]:
    """``snapshot`` (of :func:`tests.support.catalog_schema.snapshot`) as the upgrade should leave it.

    Rows are compared as canonical JSON text (PostgreSQL's ``jsonb`` text and ours differ in
    key order), so both sides go through :func:`canonical`.
    """
    ours = referenced_alert_ids(snapshot)
    upgraded: dict[str, Any] = {}
    for name, rows in snapshot.items():
        parsed = [json.loads(row) for row in rows]
        if name == alerts_table:
            parsed = [marked(a) if a["id"] in ours and "source" not in a["details"] else a for a in parsed]
        elif name == "backup_integrity_notification":
            parsed = [{"expired_at": None, "digest_run_id": None, **n} for n in parsed]
        elif name == "backup_integrity_object":  # 0008_recovery_chain: no retention read yet
            parsed = [{"retain_until": None, "retention_read_at": None, **o} for o in parsed]
        upgraded[name] = sorted(canonical(row) for row in parsed)
    return upgraded


def canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def canonical_snapshot(snapshot: dict[str, list[str]]) -> dict[str, list[str]]:
    """``snapshot`` with every row as canonical JSON text, to compare with :func:`as_upgraded`."""
    return {name: sorted(canonical(json.loads(row)) for row in rows) for name, rows in snapshot.items()}


def insert_alert_row(
    conn: Any,
    details: dict[str, Any],
    *,
    backup_id: str | None = None,
    alert_type: str = "INTEGRITY_FAILURE",
    status: str = "ACTIVE",
    resolved_at: Any = None,
    alerts_table: str = "backups_backupalert",
    alert_id: int | None = None,
) -> int:
    """An alert row as another writer (the application, the replaced task) leaves it; commits."""
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {alerts_table} (id, backup_id, alert_type, severity, message, details, "
            "notification_channels, status, resolved_at, created_at) "
            f"VALUES ({'%s' if alert_id is not None else 'DEFAULT'}, %s, %s, 'CRITICAL', %s, %s::jsonb, "
            "'[]'::jsonb, %s, %s, now()) RETURNING id",
            [
                *([alert_id] if alert_id is not None else []),
                backup_id,
                alert_type,
                f"written by someone else: {details}",
                json.dumps(details),
                status,
                resolved_at,
            ],
        )
        alert_id = cur.fetchone()[0]
    conn.commit()
    return alert_id


def alert_row_text(conn: Any, alert_id: int, alerts_table: str = "backups_backupalert") -> str:
    """The whole row as PostgreSQL prints it: equal text means not one column changed."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT to_jsonb(a)::text FROM {alerts_table} AS a WHERE id = %s", [alert_id])
        (text,) = cur.fetchone()
    conn.commit()
    return text
