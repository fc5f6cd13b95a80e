"""The recovery alerts: ``stale``, ``wal_gap``, ``not_immutable`` and ``retention_short``.

They answer what an integrity check alone cannot: is the backup job still running,
is the WAL chain whole, can the backups be deleted, are they retained long enough.
None is about one check of one copy, so each has its own key (a backup type, a hole,
a store, a copy) and its own rule for when it is resolved. A run's verdicts go in as
a :class:`RecoveryJudgement` (plain JSON, it travels between tasks); the changes to
the open alerts come out, and :func:`~include.backup_integrity.domain.alerts.plan_alert_changes`
folds them into the run's plan, summary included. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from include.backup_integrity.domain.timestamps import is_later, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable

STALE = "stale"
WAL_GAP = "wal_gap"
NOT_IMMUTABLE = "not_immutable"
RETENTION_SHORT = "retention_short"
RECOVERY_KINDS = (STALE, WAL_GAP, NOT_IMMUTABLE, RETENTION_SHORT)

RECOVERY_SEVERITY = {STALE: "CRITICAL", WAL_GAP: "CRITICAL", NOT_IMMUTABLE: "ERROR", RETENTION_SHORT: "ERROR"}
RECOVERY_LABEL = {
    STALE: "stale backup type",
    WAL_GAP: "WAL gap",
    NOT_IMMUTABLE: "store not immutable",
    RETENTION_SHORT: "retention too short",
}


def recovery_key(backup_id: str | None, details: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """What identifies a recovery alert: (backup id, subject, kind); the subject depends on the kind."""
    kind = str(details.get("kind", ""))
    if kind == STALE:
        return (None, str(details.get("backup_type")), kind)
    if kind == WAL_GAP:
        return (None, f"{details.get('timeline')}:{details.get('first_missing')}", kind)
    return (backup_id, details.get("backend"), kind)


class RecoveryJudgement(TypedDict, total=False):
    """What a run judged; a part is None (or absent) when the run did not judge it.

    ``as_of`` is the run's window end: a verdict resolves only alerts last seen before it,
    so a run over an older window never resolves what a newer one found.
    """

    as_of: str
    run_id: str
    freshness: list[dict[str, Any]] | None
    wal_holes: list[dict[str, Any]] | None
    immutability: list[dict[str, Any]] | None
    retention: list[dict[str, Any]] | None


@dataclass
class Finding:
    """A recovery alert to open, or to observe again when one with its key is open."""

    key: tuple[str | None, str | None, str]
    severity: str
    message: str
    details: dict[str, Any]
    seen_at: str


@dataclass
class Cleared:
    alert_id: int
    resolved_at: str
    message: str
    details: dict[str, Any]


@dataclass
class RecoveryChanges:
    findings: list[Finding] = field(default_factory=list)
    cleared: list[Cleared] = field(default_factory=list)


def stale_finding(verdict: dict[str, Any], run_id: str, as_of: str) -> Finding:
    backup_type = verdict["backup_type"]
    newest = verdict["newest_created_at"]
    seen = f"the newest COMPLETED one was created at {newest}" if newest else "there is none at all"
    failed = f"; {verdict['newer_failed']} newer one(s) FAILED" if verdict["newer_failed"] else ""
    message = (
        f"No {backup_type} backup in the last {verdict['max_age_hours']:g} hours before {as_of}: "
        f"{seen}{failed}. Is the backup job still running?"
    )
    details = {
        "kind": STALE,
        "backend": None,
        "backup_id": None,
        "backup_type": backup_type,
        "newest_created_at": newest,
        "max_age_hours": verdict["max_age_hours"],
        "newer_failed": verdict["newer_failed"],
        "run_id": run_id,
    }
    return Finding((None, backup_type, STALE), RECOVERY_SEVERITY[STALE], message, details, as_of)


def wal_gap_finding(hole: dict[str, Any], run_id: str, as_of: str) -> Finding:
    why = (
        "not in the catalog"
        if hole["reason"] == "not_in_catalog"
        else "in the catalog, but every copy failed its check"
    )
    span = (
        hole["first_missing"]
        if hole["missing_count"] == 1
        else f"{hole['first_missing']} to {hole['last_missing']}"
    )
    message = (
        f"WAL gap on timeline {hole['timeline']}: {hole['missing_count']} segment(s) {span} {why}. "
        "Point-in-time recovery cannot replay past it."
    )
    details = {
        "kind": WAL_GAP,
        "backend": None,
        "backup_id": None,
        "timeline": hole["timeline"],
        "first_missing": hole["first_missing"],
        "last_missing": hole["last_missing"],
        "missing_count": hole["missing_count"],
        "reason": hole["reason"],
        "run_id": run_id,
    }
    key = (None, f"{hole['timeline']}:{hole['first_missing']}", WAL_GAP)
    return Finding(key, RECOVERY_SEVERITY[WAL_GAP], message, details, as_of)


def not_immutable_finding(store: dict[str, Any], run_id: str, as_of: str) -> Finding:
    backend, reason = store["backend"], store["reason"]
    if reason == "unverifiable":
        why = (
            "its object-lock configuration cannot be read through the S3 API "
            f"({store.get('error') or 'no answer'}); prove the lock another way or remove it from "
            "require_object_lock"
        )
    else:
        why = "object lock is not enabled on its bucket: anyone with its keys can delete the backups"
    message = f"Store {backend} is required to be immutable, but {why}."
    details = {
        "kind": NOT_IMMUTABLE,
        "backend": backend,
        "backup_id": None,
        "reason": reason,
        "versioning": store.get("versioning"),
        "error": store.get("error"),
        "run_id": run_id,
    }
    return Finding((None, backend, NOT_IMMUTABLE), RECOVERY_SEVERITY[NOT_IMMUTABLE], message, details, as_of)


def retention_short_finding(read: dict[str, Any], run_id: str) -> Finding:
    backup_id, backend = read["backup_id"], read["backend"]
    until = read["retain_until"] or "no retention at all"
    message = (
        f"Backup {backup_id} on {backend} is retained until {until}, less than "
        f"{read['min_retention_days']:g} days after it was created ({read['created_at']}): it can be "
        "deleted before then."
    )
    details = {
        "kind": RETENTION_SHORT,
        "backend": backend,
        "backup_id": backup_id,
        "retain_until": read["retain_until"],
        "created_at": read["created_at"],
        "min_retention_days": read["min_retention_days"],
        "read_at": read["read_at"],
        "run_id": run_id,
    }
    key = (backup_id, backend, RETENTION_SHORT)
    return Finding(key, RECOVERY_SEVERITY[RETENTION_SHORT], message, details, read["read_at"])


def plan_recovery(
    open_alerts: Iterable[Any], judgement: RecoveryJudgement | None, run_id: str
) -> RecoveryChanges:
    """The findings to open or observe and the open alerts to resolve, for what the run judged.

    ``open_alerts`` are :class:`~include.backup_integrity.domain.alerts.OpenAlert` values;
    only those of the recovery kinds are looked at.
    """
    changes = RecoveryChanges()
    if not judgement:
        return changes
    as_of = judgement["as_of"]
    open_by_key: dict[tuple[str | None, str | None, str], Any] = {}
    for alert in sorted(open_alerts, key=lambda a: a.id):
        if alert.details.get("kind") in RECOVERY_KINDS:
            open_by_key.setdefault(recovery_key(alert.backup_id, alert.details), alert)

    def settle(key: tuple[str | None, str | None, str], message: str, resolution: str) -> None:
        alert = open_by_key.get(key)
        if alert is None or not is_later(as_of, parse_timestamp(alert.details.get("last_seen"))):
            return
        changes.cleared.append(
            Cleared(
                alert.id,
                as_of,
                f"{message} (run {run_id}).",
                {"resolution": resolution, "resolved_by_run_id": run_id},
            )
        )

    freshness = judgement.get("freshness")
    if freshness is not None:
        for verdict in freshness:
            if verdict["stale"]:
                changes.findings.append(stale_finding(verdict, run_id, as_of))
            else:
                settle(
                    (None, verdict["backup_type"], STALE),
                    f"A {verdict['backup_type']} backup was created at {verdict['newest_created_at']}",
                    "fresh",
                )
    holes = judgement.get("wal_holes")
    if holes is not None:
        found = set()
        for hole in holes:
            finding = wal_gap_finding(hole, run_id, as_of)
            found.add(finding.key)
            changes.findings.append(finding)
        for key, alert in open_by_key.items():
            if key[2] == WAL_GAP and key not in found:
                settle(
                    key,
                    f"WAL gap from {alert.details.get('first_missing')} on timeline "
                    f"{alert.details.get('timeline')} is filled or no longer in the window",
                    "filled_or_left_window",
                )
    stores = judgement.get("immutability")
    if stores is not None:
        for store in stores:
            if store["reason"] is not None:
                changes.findings.append(not_immutable_finding(store, run_id, as_of))
            else:
                settle(
                    (None, store["backend"], NOT_IMMUTABLE),
                    f"Object lock is enabled on {store['backend']}'s bucket",
                    "lock_enabled",
                )
    for read in judgement.get("retention") or []:
        if read["short"]:
            changes.findings.append(retention_short_finding(read, run_id))
            continue
        # Only a later retention read resolves it (an ordinary pass says nothing of retention).
        alert = open_by_key.get((read["backup_id"], read["backend"], RETENTION_SHORT))
        if alert is not None and is_later(read["read_at"], parse_timestamp(alert.details.get("last_seen"))):
            changes.cleared.append(
                Cleared(
                    alert.id,
                    read["read_at"],
                    f"Backup {read['backup_id']} on {read['backend']} is now retained until "
                    f"{read['retain_until']} (run {run_id}).",
                    {"resolution": "retention_long_enough", "resolved_by_run_id": run_id},
                )
            )
    return changes
