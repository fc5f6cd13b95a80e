"""The ``raise_alerts`` task: record the run, its failures, metadata and alerts; then notify.

Everything is written in one transaction (under the verifier's advisory lock),
and notices are delivered from the outbox only after it committed, so a retry
never writes twice and never sends what was not recorded. Each chunk already
recorded its own checks and left its failures in the catalog; passes travel as
ids only, and a pass is spelled out as a result only where an open alert may
need it. After the notices, history older than ``retention_days`` is pruned in
bounded batches (:mod:`~include.backup_integrity.catalog.retention`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog import backups as catalog
from include.backup_integrity.catalog.connection import connect_catalog, lock, transaction
from include.backup_integrity.catalog.results import record_run, record_transitions
from include.backup_integrity.catalog.sessions import SessionTimeouts, naming_waits
from include.backup_integrity.config.secrets import register_package_secrets
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.records import unpack_ids
from include.backup_integrity.domain.repair import APPLY
from include.backup_integrity.tasks.incidents import run_incidents
from include.backup_integrity.tasks.results import expand_repairs, failures_of, passed_result, with_failures

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.catalog.retention import PruneReport
    from include.backup_integrity.domain.records import CheckResult, ChunkOutcome, Statistics
    from include.backup_integrity.domain.recovery import RecoveryJudgement
    from include.backup_integrity.domain.repair import RepairOutcome

log = logging.getLogger(__name__)


def raise_alerts(
    outcomes: Iterable[ChunkOutcome],
    plan: dict[str, Any],
    statistics: Statistics,
    run_id: str,
    dag_id: str,
    repairs: list[RepairOutcome] | dict[str, Any] | None = None,
    recovery: RecoveryJudgement | None = None,
) -> dict[str, Any]:
    """Write failures, metadata and alerts in one transaction; then deliver notices.

    ``recovery`` is what the run's recovery checks judged (``stale``, ``wal_gap``, … alerts).
    """
    from include.backup_integrity.catalog import alert_store as alerts
    from include.backup_integrity.catalog.repairs import record_unrecorded
    from include.backup_integrity.notify import delivery as notify

    register_package_secrets()
    settings = Settings.from_dict(plan["settings"])
    outcomes = with_failures(outcomes, settings, run_id)
    failures = failures_of(outcomes, plan)
    repairs = list(expand_repairs(repairs, settings, run_id) or [])
    timeouts = SessionTimeouts.of(settings)
    conn = connect_catalog(settings)
    try:
        # select_backups created the verifier's tables at the start of this run.
        with naming_waits(timeouts, "recording the run") as step, transaction(conn) as cur:
            lock(cur)
            record_run(cur, run_id, dag_id, dict(statistics))
            step("recording the run's failures")
            # Each chunk recorded its own checks' transitions; those decided from the catalog are here.
            record_transitions(cur, run_id, plan["decided"])
            open_keys = {(a.backup_id, a.key[1]) for a in alerts.load_open_alerts(cur, settings.alerts_table)}
            passes = passes_for_alerts(outcomes, open_keys)
            applied = repairs if plan.get("repair") == APPLY else []
            timestamps, failed = metadata_summaries(outcomes, failures, run_id, applied)
            passed = {"status": "passed", "mode": plan["mode"], "errors": [], "run_id": run_id}
            step("writing metadata")
            updated = catalog.update_metadata_lazily(cur, settings, timestamps, failed, passed)
            # repair_copies recorded each copy it reached; the rest (it crashed) are added here.
            step("recording repairs")
            record_unrecorded(cur, run_id, repairs)
            step("writing alerts")
            changes = alerts.apply_alert_changes(
                cur,
                settings.alerts_table,
                failures + passes,
                run_id,
                applied,
                incidents=run_incidents(outcomes, plan),
                recovery=recovery,
            )
        log.info("metadata updated on %d backup(s); alerts: %s", updated, changes)
        with naming_waits(timeouts, "recording the delivery of notices"):
            delivery = notify.deliver_pending(
                conn,
                settings.alerts_table,
                notify.load_targets(),
                reconnect=lambda: connect_catalog(settings),
                max_age_hours=settings.notice_max_age_hours,
                digest_after=settings.notify_digest_after,
            )
        log.info("notifications: %s", delivery)
    finally:
        conn.close()
    pruned = prune_old_history(settings, timeouts, run_id)
    return {
        "alerts": changes,
        "notifications": delivery,
        "metadata_updated": updated,
        "pruned": pruned.pruned,
    }


def prune_old_history(settings: Settings, timeouts: SessionTimeouts, run_id: str) -> PruneReport:
    """Prune history older than ``retention_days`` on a connection of its own.

    Housekeeping after the run's findings are recorded and notified: a catalog that fails
    here loses nothing and fails nothing (a warning; the next run prunes what is left).
    """
    from include.backup_integrity.catalog.retention import PruneReport, prune_history

    try:
        conn = connect_catalog(settings)
        try:
            with naming_waits(timeouts, "pruning history older than retention_days"):
                pruned = prune_history(conn, settings.alerts_table, settings.retention_days, run_id)
        finally:
            conn.close()
    except Exception as exc:
        log.warning("history older than %d days not pruned in this run: %s", settings.retention_days, exc)
        return PruneReport(complete=False)
    log.info(
        "pruned %d row(s) older than %d days: %s%s",
        pruned.total,
        settings.retention_days,
        pruned.pruned,
        "" if pruned.complete else " (time budget spent; the next run goes on)",
    )
    return pruned


def passes_for_alerts(
    outcomes: list[ChunkOutcome], open_keys: set[tuple[str | None, str | None]]
) -> list[CheckResult]:
    """The passes an open alert can be resolved by, and one per backend that answered."""
    wanted_backups = {backup_id for backup_id, _ in open_keys if backup_id}
    passes: list[CheckResult] = []
    latest_by_backend: dict[str, tuple[ChunkOutcome, str, str]] = {}
    for outcome in outcomes:
        for evidence, packed in outcome["passed"].items():
            ids = unpack_ids(packed)
            if not ids:
                continue
            current = latest_by_backend.get(outcome["backend"])
            if current is None or outcome["checked_at"] > current[0]["checked_at"]:
                latest_by_backend[outcome["backend"]] = (outcome, ids[0], evidence)
            for backup_id in ids:
                if backup_id in wanted_backups:
                    passes.append(passed_result(backup_id, outcome, evidence))
    for outcome, backup_id, evidence in latest_by_backend.values():
        passes.append(passed_result(backup_id, outcome, evidence))
    return passes


def metadata_summaries(
    outcomes: list[ChunkOutcome],
    failures: list[CheckResult],
    run_id: str,
    repairs: list[RepairOutcome] | None = None,
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Each checked backup's check time, and the ``last_integrity_check`` of each failed one."""
    timestamps: dict[str, str] = {}
    for outcome in outcomes:
        for packed in outcome["passed"].values():
            for backup_id in unpack_ids(packed):
                if timestamps.get(backup_id, "") < outcome["checked_at"]:
                    timestamps[backup_id] = outcome["checked_at"]
    failed = catalog.backup_check_summaries(failures, run_id)
    for outcome in repairs or []:
        if outcome["backup_id"] in failed:
            failed[outcome["backup_id"]].setdefault("repairs", []).append(
                {k: outcome[k] for k in ("backend", "kind", "status", "source_backend")}  # type: ignore[literal-required]
            )
    for backup_id, summary in failed.items():
        timestamps[backup_id] = max(timestamps.get(backup_id, ""), summary["timestamp"])
    return timestamps, failed
