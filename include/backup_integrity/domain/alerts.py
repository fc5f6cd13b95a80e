"""Alert planning: what a run's results do to the open alerts, and what each notice says.

:func:`plan_alert_changes` takes the alerts that are open now and the run's results
and decides what to open, observe, resolve and summarise; the content builders say
what an alert and its notice read. Everything here is pure: the alert store
(:mod:`include.backup_integrity.catalog.alert_store`) writes the plan.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain.checks import store_answered
from include.backup_integrity.domain.incidents import (
    BACKEND_INCIDENT,
    INCIDENT_SEVERITY,
    IncidentDecision,
    RunIncidents,
    incident_content,
    open_incidents_of,
    outside_incidents,
    resolution_message,
)
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
from include.backup_integrity.domain.recovery import (
    RECOVERY_KINDS,
    RECOVERY_LABEL,
    RECOVERY_SEVERITY,
    RecoveryChanges,
    recovery_key,
)
from include.backup_integrity.domain.statistics import COUNTER_BY_KIND
from include.backup_integrity.domain.timestamps import is_later, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

ALERT_TYPE = "INTEGRITY_FAILURE"
OPEN_STATUSES = ("ACTIVE", "ACKNOWLEDGED")
RESOLVED = "RESOLVED"
#: Every status of an alert row (the application's ``status`` column).
ALERT_STATUSES = (*OPEN_STATUSES, RESOLVED)
SUMMARY = "summary"

SEVERITY_BY_KIND = {
    MISSING: "CRITICAL",
    SIZE_MISMATCH: "CRITICAL",
    CHECKSUM_MISMATCH: "CRITICAL",
    BACKEND_ERROR: "ERROR",
    INVALID_RECORD: "ERROR",
    BACKEND_INCIDENT: INCIDENT_SEVERITY,
    **RECOVERY_SEVERITY,
}
SEVERITY_RANK = {"INFO": 0, "WARNING": 1, "ERROR": 2, "CRITICAL": 3}

KIND_LABEL = {
    MISSING: "missing",
    SIZE_MISMATCH: "size mismatch",
    CHECKSUM_MISMATCH: "checksum mismatch",
    BACKEND_ERROR: "backend error",
    INVALID_RECORD: "invalid catalog record",
    BACKEND_INCIDENT: "backend incident",
    **RECOVERY_LABEL,
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
        if self.details.get("kind") in RECOVERY_KINDS:
            return recovery_key(self.backup_id, self.details)
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


def plan_alert_changes(
    open_alerts: list[OpenAlert],
    results: list[CheckResult],
    run_id: str,
    incidents: RunIncidents | None = None,
    recovery: RecoveryChanges | None = None,
) -> AlertPlan:
    """Decide every change to the alerts that this run's results call for.

    With ``incidents`` (the run's tallies per backend), a backend in incident gets one
    alert instead of one per copy; see :mod:`include.backup_integrity.domain.incidents`.
    ``recovery`` (see :mod:`include.backup_integrity.domain.recovery`) adds the run's
    recovery findings, which count in the summary like failed checks.
    """
    plan = AlertPlan()
    counted_incidents: list[tuple[str, str]] = []
    # Taken before incidents hold back a backend's per-copy alerts: recovery alerts are never held.
    open_recovery: dict[AlertKey, OpenAlert] = {}
    for alert in sorted(open_alerts, key=lambda a: a.id):
        if alert.details.get("kind") in RECOVERY_KINDS:
            open_recovery.setdefault(alert.key, alert)
    if incidents is not None:
        decision = incidents.decide(open_incidents_of(open_alerts))
        open_alerts, results = outside_incidents(open_alerts, results, decision.held)
        plan_incidents(plan, decision, incidents, run_id)
        counted_incidents = decision.counted
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
        if key in grouped or key[2] in RECOVERY_KINDS:
            continue
        backup_id, backend, kind = key
        last_seen = alert.last_seen
        if kind == BACKEND_ERROR:
            answered_at = answered_by_backend.get(backend or "")
            if answered_at and is_later(answered_at, last_seen):
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
        if result is not None and covers(kind, result) and is_later(result["checked_at"], last_seen):
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

    recovery = recovery or RecoveryChanges()
    for finding in recovery.findings:
        existing = open_recovery.get(finding.key)
        if existing is None:
            details = {**finding.details, "first_seen": finding.seen_at, "last_seen": finding.seen_at}
            plan.new.append(
                NewAlert(finding.key, finding.severity, finding.message, {**details, "occurrences": 1})
            )
        else:
            plan.observed.append(
                Observed(existing.id, finding.seen_at, finding.severity, finding.message, finding.details)
            )
    plan.resolved.extend(
        Resolution(c.alert_id, c.resolved_at, c.message, c.details) for c in recovery.cleared
    )

    existing_summary = open_summaries[0] if open_summaries else None
    # An incident counts as one failure, and so does each recovery finding.
    failing = len(failures) + len(counted_incidents) + len(recovery.findings)
    if failing > 1 or (failing and existing_summary is not None):
        plan.summary = SummaryChange(
            existing_id=existing_summary.id if existing_summary else None,
            existing_fingerprint=existing_summary.details.get("fingerprint") if existing_summary else None,
            existing_alert_ids=[int(i) for i in existing_summary.details.get("alert_ids", [])]
            if existing_summary
            else [],
            checked_at=max(
                [r["checked_at"] for r in failures]
                + [at for _, at in counted_incidents]
                + [f.seen_at for f in recovery.findings]
            ),
            failure_keys=list(grouped)
            + [(None, b, BACKEND_INCIDENT) for b, _ in counted_incidents]
            + [f.key for f in recovery.findings],
        )
    return plan


def plan_incidents(plan: AlertPlan, decision: IncidentDecision, incidents: RunIncidents, run_id: str) -> None:
    """Add the run's backend incidents to the plan: opened, observed again, or resolved."""
    for tally in decision.opened:
        message, details = incident_content(tally, incidents.rule, run_id)
        details.update(first_seen=tally.checked_at, last_seen=tally.checked_at, occurrences=1)
        key = (None, tally.backend, BACKEND_INCIDENT)
        plan.new.append(NewAlert(key, INCIDENT_SEVERITY, message, details))
    for incident, tally in decision.observed:
        message, details = incident_content(tally, incidents.rule, run_id)
        plan.observed.append(
            Observed(incident.alert_id, tally.checked_at or "", INCIDENT_SEVERITY, message, details)
        )
    for incident, tally in decision.resolved:
        plan.resolved.append(
            Resolution(
                incident.alert_id,
                tally.checked_at or "",
                resolution_message(tally, run_id),
                {"resolution": "verified", "resolved_by_run_id": run_id},
            )
        )


def _first_routed_check(results: list[CheckResult], backup_id: str | None) -> CheckResult | None:
    routed = [r for r in results if r["backup_id"] == backup_id and r["backend"] is not None]
    return max(routed, key=lambda r: r["checked_at"]) if routed else None


# --------------------------------------------------------------------------- notices


def notice_body(message: str, details: dict[str, Any]) -> str:
    """An alert's message and the details an operator acts on, one per line."""
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


def opened_notice(alert: NewAlert) -> tuple[str, str]:
    """Title and body of the notice that a failure was found."""
    title = f"[{alert.severity}] Backup integrity: {KIND_LABEL[alert.key[2]]}"
    if alert.key[1]:
        title += f" on {alert.key[1]}"
    return title, notice_body(alert.message, alert.details)


def resolved_notice(resolution: Resolution, was: str, details: dict[str, Any]) -> tuple[str, str]:
    """Title and body of the notice that a check proved an alert's failure gone."""
    kind = details.get("kind")
    title = f"[RESOLVED] Backup integrity: {KIND_LABEL.get(kind, kind)}"
    if details.get("backend"):
        title += f" on {details.get('backend')}"
    return title, f"Resolved: {resolution.message}\n\nWas: {was}"


def repaired_notice(message: str, details: dict[str, Any], outcome: dict[str, Any]) -> tuple[str, str]:
    """Title and body of the one notice that says both what was found and how it was repaired."""
    label = KIND_LABEL.get(details.get("kind"), details.get("kind"))
    source = outcome["source_backend"]
    body = (
        f"Found: {message}\n"
        f"Repaired: copied {outcome['source_path']} from {source} to {details.get('backend')} "
        f"({outcome['path']}); the written copy was read back and its SHA-256 {outcome['sha256']} "
        f"matches the catalog ({outcome['repaired_at']}).\n\n" + notice_body(message, details)
    )
    title = f"[REPAIRED] Backup integrity: {label} on {details.get('backend')}, restored from {source}"
    return title, body
