"""Test-side views of what a run left behind, on top of :mod:`devtools.runs`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devtools.runs import alerts, query, results

if TYPE_CHECKING:
    from devtools.seed import Stores

__all__ = ["alerts", "last_check", "metadata", "open_alerts_by_key", "query", "results"]


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
