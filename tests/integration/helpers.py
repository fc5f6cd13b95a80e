"""Reading what a run left behind: alert rows, backup metadata, the verifier's own tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devtools.seed import Stores


def query(stores: Stores, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    conn = stores.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params or [])
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def alerts(stores: Stores, status: str | None = None) -> list[dict[str, Any]]:
    rows = query(
        stores,
        "SELECT id, backup_id::text AS backup_id, alert_type, severity, message, details, "
        "notification_channels, status, resolved_at, created_at FROM backups_backupalert ORDER BY id",
    )
    return [r for r in rows if status is None or r["status"] == status]


def open_alerts_by_key(stores: Stores) -> dict[tuple[str | None, str | None, str], dict[str, Any]]:
    return {
        (r["backup_id"], r["details"].get("backend"), r["details"]["kind"]): r
        for r in alerts(stores)
        if r["status"] in ("ACTIVE", "ACKNOWLEDGED")
    }


def metadata(stores: Stores, backup_id: str) -> dict[str, Any]:
    return query(stores, "SELECT metadata FROM backups_backup WHERE id = %s", [backup_id])[0]["metadata"]


def last_check(stores: Stores, backup_id: str) -> dict[str, Any] | None:
    return metadata(stores, backup_id).get("last_integrity_check")


def results(stores: Stores, run_id: str) -> dict[tuple[str, str], str]:
    rows = query(
        stores,
        "SELECT backup_id::text AS backup_id, backend, kind FROM backup_integrity_result WHERE run_id = %s",
        [run_id],
    )
    return {(r["backup_id"], r["backend"]): r["kind"] for r in rows}


def titles(webhook_messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("title", "") for m in webhook_messages]
