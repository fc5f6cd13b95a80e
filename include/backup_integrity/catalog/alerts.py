"""Alert lifecycle: open, deduplicate, resolve, summarise; and the notices each change owes.

:func:`plan_alert_changes` is pure: it takes the alerts that are open now and
the run's results and decides what changes. :func:`apply_alert_changes` writes
that plan inside the caller's transaction (under an advisory lock, so that
concurrent runs are serialised) and queues notices in the outbox; notices are
delivered only after commit by :mod:`include.backup_integrity.notify.delivery`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.backups import parse_timestamp, table
from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    CONTENT_EVIDENCE,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
    CheckResult,
)
from include.backup_integrity.domain.statistics import COUNTER_BY_KIND

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

ALERT_TYPE = "INTEGRITY_FAILURE"
OPEN_STATUSES = ("ACTIVE", "ACKNOWLEDGED")
SUMMARY = "summary"

SEVERITY_BY_KIND = {
    MISSING: "CRITICAL",
    SIZE_MISMATCH: "CRITICAL",
    CHECKSUM_MISMATCH: "CRITICAL",
    BACKEND_ERROR: "ERROR",
    INVALID_RECORD: "ERROR",
}
SEVERITY_RANK = {"INFO": 0, "WARNING": 1, "ERROR": 2, "CRITICAL": 3}

KIND_LABEL = {
    MISSING: "missing",
    SIZE_MISMATCH: "size mismatch",
    CHECKSUM_MISMATCH: "checksum mismatch",
    BACKEND_ERROR: "backend error",
    INVALID_RECORD: "invalid catalog record",
}

#: Affected backups listed in a grouped backend_error alert (the count is always exact).
MAX_LISTED = 50

AlertKey = tuple[str | None, str | None, str]


@dataclass
class OpenAlert:
    id: int
    backup_id: str | None
    severity: str
    status: str
    details: dict[str, Any]

    @property
    def key(self) -> AlertKey:
        return (self.backup_id, self.details.get("backend"), self.details.get("kind", ""))

    @property
    def last_seen(self) -> datetime | None:
        return parse_timestamp(self.details.get("last_seen"))


@dataclass
class NewAlert:
    key: AlertKey
    severity: str
    message: str
    details: dict[str, Any]


@dataclass
class Observed:
    alert_id: int
    checked_at: str
    severity: str
    message: str
    details: dict[str, Any]


@dataclass
class Resolution:
    alert_id: int
    resolved_at: str
    message: str
    details: dict[str, Any]


@dataclass
class SummaryChange:
    """The run's failures, for the summary: opened (when more than one) or updated (when open).

    What the summary counts is settled when applied, since it includes alerts still
    open from earlier runs.
    """

    existing_id: int | None
    existing_fingerprint: str | None
    existing_alert_ids: list[int]
    checked_at: str
    failure_keys: list[AlertKey]


@dataclass(frozen=True)
class CountedFailure:
    """One open alert a summary counts; ``checks`` is how many failed checks it stands for."""

    backup_id: str | None
    backend: str | None
    kind: str
    checks: int = 1


@dataclass
class AlertPlan:
    new: list[NewAlert] = field(default_factory=list)
    observed: list[Observed] = field(default_factory=list)
    resolved: list[Resolution] = field(default_factory=list)
    summary: SummaryChange | None = None


def highest_severity(severities: Iterable[str]) -> str:
    return max(severities, key=lambda s: SEVERITY_RANK.get(s, 0), default="ERROR")


def covers(alert_kind: str, result: CheckResult) -> bool:
    """Whether a check verified as good the property an alert of ``alert_kind`` said was broken.

    Only a pass verifies anything: an object that is back but now the wrong size
    is not "good", so its ``missing`` alert stays open beside the new one.
    """
    if result["kind"] != PASSED:
        return False
    if alert_kind == CHECKSUM_MISMATCH:
        # Only a content verification clears a content failure, never a size check.
        return result["evidence"] in CONTENT_EVIDENCE
    return alert_kind in (MISSING, SIZE_MISMATCH, INVALID_RECORD)


def store_answered(result: CheckResult) -> bool:
    """The store was asked and answered (a catalog-only decision does not count)."""
    if result["kind"] in (PASSED, SIZE_MISMATCH, CHECKSUM_MISMATCH):
        return True
    return result["kind"] == MISSING and bool(result["path"])


def failure_key(result: CheckResult) -> AlertKey:
    if result["kind"] == BACKEND_ERROR:
        return (None, result["backend"], BACKEND_ERROR)
    return (result["backup_id"], result["backend"], result["kind"])


def single_alert_content(result: CheckResult, run_id: str) -> tuple[str, dict[str, Any]]:
    where = result["backend"] or "no backend"
    message = f"Backup {result['backup_id']}: {KIND_LABEL[result['kind']]} on {where}. {result['message']}"
    details = {
        "kind": result["kind"],
        "backend": result["backend"],
        "backup_id": result["backup_id"],
        "path": result["path"],
        "expected": result["expected"],
        "actual": result["actual"],
        "run_id": run_id,
        "mode": result["mode"],
        "evidence": result["evidence"],
        "reason": result["message"],
    }
    return message, details


def backend_error_content(
    backend: str, results: list[CheckResult], run_id: str
) -> tuple[str, dict[str, Any]]:
    errors = Counter(r["message"] for r in results)
    first_error = errors.most_common(1)[0][0]
    message = (
        f"{backend} could not be checked for {len(results)} backup(s); nothing was concluded "
        f"about them. {first_error}"
    )
    details = {
        "kind": BACKEND_ERROR,
        "backend": backend,
        "backup_id": None,
        "path": None,
        "expected": None,
        "actual": {"affected_checks": len(results), "errors": dict(errors.most_common(5))},
        "run_id": run_id,
        "mode": results[0]["mode"],
        "affected_backup_ids": sorted({r["backup_id"] for r in results})[:MAX_LISTED],
        "affected_count": len({r["backup_id"] for r in results}),
        "reason": first_error,
    }
    return message, details


def summary_content(counted: list[CountedFailure], run_id: str) -> tuple[str, str, dict[str, Any]]:
    """Severity, message and details of a summary of the open failures it counts."""
    counts: Counter[str] = Counter()
    for failure in counted:
        counts[failure.kind] += failure.checks
    backups = {f.backup_id for f in counted if f.backup_id}
    total = sum(counts.values())
    parts = ", ".join(f"{counts[k]} {KIND_LABEL[k]}" for k in SEVERITY_BY_KIND if counts[k])
    message = f"{total} integrity failures open across {len(backups)} backup(s): {parts}."
    severity = highest_severity(SEVERITY_BY_KIND[f.kind] for f in counted)
    details = {
        "kind": SUMMARY,
        "backend": None,
        "backup_id": None,
        "path": None,
        "expected": None,
        "actual": None,
        "run_id": run_id,
        "counts": dict(counts),
        # The same counts under the names of the run's statistics.
        **{COUNTER_BY_KIND[kind]: counts.get(kind, 0) for kind in COUNTER_BY_KIND},
        "failed_checks": total,
        "failed_backups": len(backups),
        "fingerprint": fingerprint_of(counted),
    }
    return severity, message, details


def fingerprint_of(counted: Iterable[CountedFailure]) -> str:
    """Identifies the set of failures a summary counts (not how often they were seen)."""
    keys = sorted({(f.backup_id or "", f.backend or "", f.kind) for f in counted})
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()


def plan_alert_changes(open_alerts: list[OpenAlert], results: list[CheckResult], run_id: str) -> AlertPlan:
    """Decide every change to the alerts that this run's results call for."""
    plan = AlertPlan()
    open_by_key: dict[AlertKey, OpenAlert] = {}
    open_summaries: list[OpenAlert] = []
    for alert in sorted(open_alerts, key=lambda a: a.id):
        if alert.details.get("kind") == SUMMARY:
            open_summaries.append(alert)
        else:
            open_by_key.setdefault(alert.key, alert)

    failures = [r for r in results if r["kind"] != PASSED]
    grouped: dict[AlertKey, list[CheckResult]] = defaultdict(list)
    for result in failures:
        grouped[failure_key(result)].append(result)

    for key, group in grouped.items():
        checked_at = max(r["checked_at"] for r in group)
        kind = key[2]
        if kind == BACKEND_ERROR:
            message, details = backend_error_content(key[1] or "", group, run_id)
        else:
            message, details = single_alert_content(group[0], run_id)
        severity = SEVERITY_BY_KIND[kind]
        existing = open_by_key.get(key)
        if existing is None:
            details.update(first_seen=checked_at, last_seen=checked_at, occurrences=1)
            plan.new.append(NewAlert(key, severity, message, details))
        else:
            plan.observed.append(Observed(existing.id, checked_at, severity, message, details))

    latest_check: dict[tuple[str, str | None], CheckResult] = {}
    answered_by_backend: dict[str, str] = {}
    for result in results:
        pair = (result["backup_id"], result["backend"])
        if pair not in latest_check or result["checked_at"] > latest_check[pair]["checked_at"]:
            latest_check[pair] = result
        if result["backend"] and store_answered(result):
            previous = answered_by_backend.get(result["backend"], "")
            answered_by_backend[result["backend"]] = max(previous, result["checked_at"])

    for key, alert in open_by_key.items():
        if key in grouped:
            continue
        backup_id, backend, kind = key
        last_seen = alert.last_seen
        if kind == BACKEND_ERROR:
            answered_at = answered_by_backend.get(backend or "")
            if answered_at and _later(answered_at, last_seen):
                plan.resolved.append(
                    Resolution(
                        alert.id,
                        answered_at,
                        f"{backend} answered every check again (run {run_id}).",
                        {"resolution": "verified", "resolved_by_run_id": run_id},
                    )
                )
            continue
        if backend is None:
            # An unroutable record is fixed once the backup was checked on a backend again.
            result = (
                _first_routed_check(results, backup_id) if (backup_id, None) not in latest_check else None
            )
        else:
            result = latest_check.get((backup_id or "", backend))
        if result is not None and covers(kind, result) and _later(result["checked_at"], last_seen):
            plan.resolved.append(
                Resolution(
                    alert.id,
                    result["checked_at"],
                    f"Backup {backup_id} on {backend}: {result['message']} (run {run_id}).",
                    {
                        "resolution": "verified",
                        "resolved_by_run_id": run_id,
                        "resolved_by": {
                            "kind": result["kind"],
                            "evidence": result["evidence"],
                            "mode": result["mode"],
                        },
                    },
                )
            )

    existing_summary = open_summaries[0] if open_summaries else None
    if len(failures) > 1 or (failures and existing_summary is not None):
        plan.summary = SummaryChange(
            existing_id=existing_summary.id if existing_summary else None,
            existing_fingerprint=existing_summary.details.get("fingerprint") if existing_summary else None,
            existing_alert_ids=[int(i) for i in existing_summary.details.get("alert_ids", [])]
            if existing_summary
            else [],
            checked_at=max(r["checked_at"] for r in failures),
            failure_keys=list(grouped),
        )
    return plan


def _first_routed_check(results: list[CheckResult], backup_id: str | None) -> CheckResult | None:
    routed = [r for r in results if r["backup_id"] == backup_id and r["backend"] is not None]
    return max(routed, key=lambda r: r["checked_at"]) if routed else None


def _later(checked_at: str, last_seen: datetime | None) -> bool:
    when = parse_timestamp(checked_at)
    return when is not None and (last_seen is None or when > last_seen)


# --------------------------------------------------------------------------- database


def load_open_alerts(cur: Any, alerts_table: str) -> list[OpenAlert]:
    cur.execute(
        sql.SQL(
            "SELECT id, backup_id::text, severity, status, details FROM {t} "
            "WHERE alert_type = %s AND status = ANY(%s) AND details ? 'kind' ORDER BY id"
        ).format(t=table(alerts_table)),
        [ALERT_TYPE, list(OPEN_STATUSES)],
    )
    return [OpenAlert(row[0], row[1], row[2], row[3], row[4] or {}) for row in cur.fetchall()]


def _insert_alert(
    cur: Any, alerts_table: str, backup_id: str | None, severity: str, message: str, details: dict
) -> int:
    cur.execute(
        sql.SQL(
            "INSERT INTO {t} (backup_id, alert_type, severity, message, details, "
            "notification_channels, status, acknowledged_at, acknowledged_by, resolved_at, created_at) "
            "VALUES (%s::uuid, %s, %s, %s, %s::jsonb, '[]'::jsonb, 'ACTIVE', NULL, NULL, NULL, now()) "
            "RETURNING id"
        ).format(t=table(alerts_table)),
        [backup_id, ALERT_TYPE, severity, message, json.dumps(details)],
    )
    return cur.fetchone()[0]


def _add_occurrence(cur: Any, alert_id: int, run_id: str, checked_at: str) -> int:
    cur.execute(
        "INSERT INTO backup_integrity_alert_occurrence (alert_id, run_id, checked_at) "
        "VALUES (%s, %s, %s) ON CONFLICT (alert_id, run_id) DO UPDATE "
        "SET checked_at = GREATEST(backup_integrity_alert_occurrence.checked_at, EXCLUDED.checked_at)",
        [alert_id, run_id, checked_at],
    )
    cur.execute("SELECT count(*) FROM backup_integrity_alert_occurrence WHERE alert_id = %s", [alert_id])
    return cur.fetchone()[0]


def _observe(
    cur: Any,
    alerts_table: str,
    alert_id: int,
    run_id: str,
    checked_at: str,
    severity: str,
    message: str,
    details: dict[str, Any],
) -> bool:
    """Count this run's sighting; describe the failure anew when it is the latest. True if it was."""
    occurrences = _add_occurrence(cur, alert_id, run_id, checked_at)
    cur.execute(
        sql.SQL("SELECT details FROM {t} WHERE id = %s FOR UPDATE").format(t=table(alerts_table)),
        [alert_id],
    )
    current = cur.fetchone()[0] or {}
    merged = dict(current)
    merged["occurrences"] = occurrences
    newer = _later(checked_at, parse_timestamp(current.get("last_seen")))
    if newer:
        # The latest observation describes the failure; first_seen never moves.
        merged.update({k: v for k, v in details.items() if k not in ("first_seen", "occurrences")})
        merged["last_seen"] = checked_at
    cur.execute(
        sql.SQL(
            "UPDATE {t} SET details = %s::jsonb, message = CASE WHEN %s THEN %s ELSE message END, "
            "severity = CASE WHEN %s THEN %s ELSE severity END WHERE id = %s"
        ).format(t=table(alerts_table)),
        [json.dumps(merged), newer, message, newer, severity, alert_id],
    )
    return newer


def _queue_notice(
    cur: Any, alert_id: int, event: str, run_id: str, title: str, body: str, notify_type: str
) -> None:
    cur.execute(
        "INSERT INTO backup_integrity_notification (alert_id, event, run_id, title, body, notify_type) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (alert_id, event) DO NOTHING",
        [alert_id, event, run_id, title, body, notify_type],
    )


def notice_body(message: str, details: dict[str, Any]) -> str:
    lines = [message, ""]
    for key in (
        "kind",
        "backend",
        "backup_id",
        "path",
        "expected",
        "actual",
        "run_id",
        "first_seen",
        "last_seen",
        "occurrences",
    ):
        if details.get(key) is not None:
            lines.append(
                f"{key}: {json.dumps(details[key]) if isinstance(details[key], dict) else details[key]}"
            )
    return "\n".join(lines)


def apply_alert_changes(
    cur: Any,
    alerts_table: str,
    results: list[CheckResult],
    run_id: str,
    repairs: Iterable[dict[str, Any]] = (),
) -> dict[str, int]:
    """Write the run's alert changes and queue their notices; the caller owns the transaction.

    ``repairs`` are the outcomes of this run's applied repairs: a repaired failure's
    alert is resolved as ``repaired`` with one notice saying what was found and what
    was repaired; one not repaired stays open with ``details.repair_error``.
    """
    from include.backup_integrity.tasks.repair import REPAIRED

    open_alerts = load_open_alerts(cur, alerts_table)
    plan = plan_alert_changes(open_alerts, results, run_id)
    alert_ids: dict[AlertKey, int] = {a.key: a.id for a in open_alerts if a.details.get("kind") != SUMMARY}
    repair_by_key: dict[AlertKey, dict[str, Any]] = {
        (r["backup_id"], r["backend"], r["kind"]): r for r in repairs
    }

    opened = repaired = 0
    for alert in plan.new:
        if _resolved_later(cur, alerts_table, alert.key, alert.details["last_seen"]):
            continue  # an older run's finding, already disproved by a later check
        outcome = repair_by_key.get(alert.key)
        if outcome is not None and outcome["status"] != REPAIRED:
            alert.details["repair_error"] = outcome["error"] or outcome["reason"]
        alert_id = _insert_alert(
            cur, alerts_table, alert.key[0], alert.severity, alert.message, alert.details
        )
        _add_occurrence(cur, alert_id, run_id, alert.details["last_seen"])
        alert_ids[alert.key] = alert_id
        if outcome is not None and outcome["status"] == REPAIRED:
            repaired += _resolve_repaired(cur, alerts_table, alert_id, outcome, run_id)
            continue
        opened += 1
        title = f"[{alert.severity}] Backup integrity: {KIND_LABEL[alert.key[2]]}"
        if alert.key[1]:
            title += f" on {alert.key[1]}"
        _queue_notice(
            cur, alert_id, "opened", run_id, title, notice_body(alert.message, alert.details), "failure"
        )

    for seen in plan.observed:
        _observe(
            cur,
            alerts_table,
            seen.alert_id,
            run_id,
            seen.checked_at,
            seen.severity,
            seen.message,
            seen.details,
        )
        outcome = repair_by_key.get(
            (seen.details.get("backup_id"), seen.details.get("backend"), seen.details["kind"])
        )
        if outcome is None:
            continue
        if outcome["status"] == REPAIRED:
            repaired += _resolve_repaired(cur, alerts_table, seen.alert_id, outcome, run_id)
        else:
            cur.execute(
                sql.SQL("UPDATE {t} SET details = details || %s::jsonb WHERE id = %s").format(
                    t=table(alerts_table)
                ),
                [json.dumps({"repair_error": outcome["error"] or outcome["reason"]}), seen.alert_id],
            )

    # Older alerts about the same copy (say, "missing" before it came back the wrong size)
    # are settled too: the copy has just been read back byte for byte.
    for outcome in repair_by_key.values():
        if outcome["status"] != REPAIRED:
            continue
        for alert in open_alerts:
            if (
                alert.backup_id == outcome["backup_id"]
                and alert.details.get("backend") == outcome["backend"]
                and alert.details.get("kind") in (MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH)
                and alert.key not in repair_by_key
            ):
                repaired += _resolve_repaired(cur, alerts_table, alert.id, outcome, run_id)

    for resolution in plan.resolved:
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET status = 'RESOLVED', resolved_at = %s, "
                "details = details || %s::jsonb WHERE id = %s AND status = ANY(%s) "
                "RETURNING message, details"
            ).format(t=table(alerts_table)),
            [
                resolution.resolved_at,
                json.dumps(resolution.details),
                resolution.alert_id,
                list(OPEN_STATUSES),
            ],
        )
        row = cur.fetchone()
        if row:
            _queue_notice(
                cur,
                resolution.alert_id,
                "resolved",
                run_id,
                f"[RESOLVED] Backup integrity: {KIND_LABEL.get(row[1].get('kind'), row[1].get('kind'))}"
                + (f" on {row[1].get('backend')}" if row[1].get("backend") else ""),
                f"Resolved: {resolution.message}\n\nWas: {row[0]}",
                "success",
            )

    summary_id = _apply_summary(cur, alerts_table, plan.summary, alert_ids, run_id)
    _resolve_finished_summaries(cur, alerts_table, keep_open=summary_id, run_id=run_id)
    return {
        "opened": opened,
        "updated": len(plan.observed),
        "resolved": len(plan.resolved),
        "repaired": repaired,
    }


def _resolve_repaired(
    cur: Any, alerts_table: str, alert_id: int, outcome: dict[str, Any], run_id: str
) -> int:
    """Resolve an alert whose copy was repaired; queue the one notice that says both what and how."""
    repair = {
        "source_backend": outcome["source_backend"],
        "sha256": outcome["sha256"],
        "repaired_at": outcome["repaired_at"],
    }
    cur.execute(
        sql.SQL(
            "UPDATE {t} SET status = 'RESOLVED', resolved_at = %s, "
            "details = (details - 'repair_error') || %s::jsonb WHERE id = %s AND status = ANY(%s) "
            "RETURNING message, details"
        ).format(t=table(alerts_table)),
        [
            outcome["repaired_at"],
            json.dumps({"resolution": "repaired", "resolved_by_run_id": run_id, "repair": repair}),
            alert_id,
            list(OPEN_STATUSES),
        ],
    )
    row = cur.fetchone()
    if row is None:
        return 0
    message, details = row
    label = KIND_LABEL.get(details.get("kind"), details.get("kind"))
    source = outcome["source_backend"]
    body = (
        f"Found: {message}\n"
        f"Repaired: copied {outcome['source_path']} from {source} to {details.get('backend')} "
        f"({outcome['path']}); the written copy was read back and its SHA-256 {outcome['sha256']} "
        f"matches the catalog ({outcome['repaired_at']}).\n\n" + notice_body(message, details)
    )
    _queue_notice(
        cur,
        alert_id,
        "repaired",
        run_id,
        f"[REPAIRED] Backup integrity: {label} on {details.get('backend')}, restored from {source}",
        body,
        "warning",
    )
    return 1


def _resolved_later(cur: Any, alerts_table: str, key: AlertKey, checked_at: str) -> bool:
    """Whether an alert for this failure was resolved by a check later than ``checked_at``."""
    backup_id, backend, kind = key
    cur.execute(
        sql.SQL(
            "SELECT 1 FROM {t} WHERE alert_type = %s AND status = 'RESOLVED' "
            "AND backup_id IS NOT DISTINCT FROM %s::uuid "
            "AND (details ->> 'backend') IS NOT DISTINCT FROM %s AND details ->> 'kind' = %s "
            "AND resolved_at > %s LIMIT 1"
        ).format(t=table(alerts_table)),
        [ALERT_TYPE, backup_id, backend, kind, checked_at],
    )
    return cur.fetchone() is not None


def _counted_failures(cur: Any, alerts_table: str, alert_ids: Iterable[int]) -> dict[int, CountedFailure]:
    """The open alerts among ``alert_ids``, as a summary counts them."""
    cur.execute(
        sql.SQL(
            "SELECT id, backup_id::text, details FROM {t} WHERE id = ANY(%s) AND status = ANY(%s)"
        ).format(t=table(alerts_table)),
        [sorted(alert_ids), list(OPEN_STATUSES)],
    )
    counted = {}
    for alert_id, backup_id, details in cur.fetchall():
        checks = int(details.get("affected_count") or 1) if details.get("kind") == BACKEND_ERROR else 1
        counted[alert_id] = CountedFailure(backup_id, details.get("backend"), details["kind"], checks)
    return counted


def _apply_summary(
    cur: Any, alerts_table: str, change: SummaryChange | None, alert_ids: dict[AlertKey, int], run_id: str
) -> int | None:
    """Open the summary, or update the open one to count this run's failures and those still open."""
    if change is None:
        return None
    wanted = {alert_ids[k] for k in change.failure_keys if k in alert_ids} | set(change.existing_alert_ids)
    counted = _counted_failures(cur, alerts_table, wanted)
    if not counted:
        return change.existing_id
    severity, message, details = summary_content(list(counted.values()), run_id)
    details["alert_ids"] = sorted(counted)
    checked_at = change.checked_at
    if change.existing_id is None:
        if len(counted) < 2 and sum(f.checks for f in counted.values()) < 2:
            return None
        details.update(first_seen=checked_at, last_seen=checked_at, occurrences=1)
        summary_id = _insert_alert(cur, alerts_table, None, severity, message, details)
        _add_occurrence(cur, summary_id, run_id, checked_at)
        _queue_notice(
            cur,
            summary_id,
            "opened",
            run_id,
            f"[{severity}] Backup integrity: {details['failed_checks']} failures",
            notice_body(message, details),
            "failure",
        )
        return summary_id
    latest = _observe(cur, alerts_table, change.existing_id, run_id, checked_at, severity, message, details)
    if not latest:
        # Concurrent runs (a backfill) commit in any order: a run whose checks are older than the
        # summary's last_seen still adds its open failures, so what it counts never depends on order.
        counted = {
            k: v for k, v in details.items() if k not in ("run_id", "first_seen", "last_seen", "occurrences")
        }
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET details = details || %s::jsonb, message = %s, severity = %s WHERE id = %s"
            ).format(t=table(alerts_table)),
            [json.dumps(counted), message, severity, change.existing_id],
        )
    if details["fingerprint"] != change.existing_fingerprint:
        _queue_notice(
            cur,
            change.existing_id,
            f"changed:{run_id}",
            run_id,
            f"[{severity}] Backup integrity: failures changed, {details['failed_checks']} open now",
            notice_body(message, details),
            "failure",
        )
    return change.existing_id


def _resolve_finished_summaries(cur: Any, alerts_table: str, keep_open: int | None, run_id: str) -> None:
    """Resolve every open summary none of whose counted alerts is still open (and extras)."""
    t = table(alerts_table)
    cur.execute(
        sql.SQL(
            "SELECT id, details FROM {t} WHERE alert_type = %s AND status = ANY(%s) "
            "AND details ->> 'kind' = 'summary' ORDER BY id DESC"
        ).format(t=t),
        [ALERT_TYPE, list(OPEN_STATUSES)],
    )
    summaries = cur.fetchall()
    newest = keep_open if keep_open is not None else (summaries[0][0] if summaries else None)
    for summary_id, details in summaries:
        counted = [int(i) for i in (details or {}).get("alert_ids", [])]
        still_open = len(_counted_failures(cur, alerts_table, counted))
        if summary_id == newest and still_open:
            continue
        reason = "all counted alerts resolved" if not still_open else "superseded by a newer summary"
        cur.execute(
            sql.SQL(
                "UPDATE {t} SET status = 'RESOLVED', resolved_at = now(), "
                "details = details || %s::jsonb WHERE id = %s"
            ).format(t=t),
            [json.dumps({"resolution": reason}), summary_id],
        )
        if not still_open:
            _queue_notice(
                cur,
                summary_id,
                "resolved",
                run_id,
                "[RESOLVED] Backup integrity: every failure of the summary is resolved",
                f"Resolved: all {len(counted)} alert(s) counted by summary alert {summary_id} are resolved.",
                "success",
            )


# The alert store's writes under public names, for the alerts of the other DAGs (the restore drill's).
insert_alert = _insert_alert
add_occurrence = _add_occurrence
observe_alert = _observe
queue_notice = _queue_notice
