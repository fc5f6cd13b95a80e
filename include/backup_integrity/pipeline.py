"""What each task of ``verify_storage_integrity`` does, kept out of the DAG file.

Each function is one task's body: it takes plain values (the Variable's raw
text, params, XCom values) and returns plain values, and opens connections
only when called, never at import.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.backup_integrity import catalog
from include.backup_integrity.config import (
    BACKEND_CONN_IDS,
    ConfigError,
    Settings,
    parse_settings,
    require_connection,
    resolve_run_options,
)
from include.backup_integrity.db import connect_catalog, transaction
from include.backup_integrity.planning import plan_checks
from include.backup_integrity.preflight import preflight
from include.backup_integrity.secrets import redact, register_package_secrets
from include.backup_integrity.statistics import compute_statistics, run_failed

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.records import CheckResult, Chunk, Statistics

log = logging.getLogger(__name__)

OUTCOME_TASK_ID = "check_outcome"


class IntegrityFailure(Exception):
    """The run found problems (already recorded and notified): the run must end failed."""


def settings_from_dict(data: dict[str, Any]) -> Settings:
    return replace(Settings(), **data)


def select_backups(raw_variable: str | None, params: dict[str, Any], window_end: datetime) -> dict[str, Any]:
    """Validate the configuration, read the backups in scope and plan the checks."""
    register_package_secrets()
    settings = parse_settings(raw_variable)
    options = resolve_run_options(settings, params)
    conn = connect_catalog()
    try:
        catalog.ensure_schema(conn)
        window_start: datetime | None
        if options.backup_ids:
            records, skipped = catalog.select_by_ids(conn, settings, options.backup_ids)
            window_start = None
            window_end_out: datetime | None = None
            if skipped:
                log.warning("backup_ids not checked (unknown or not COMPLETED): %s", ", ".join(skipped))
        else:
            window_start, window_end_out = catalog.window_for(window_end, options.lookback_days)
            records = catalog.select_window(conn, settings, window_start, window_end_out, options.max_backups)
            skipped = []
        conn.commit()
    finally:
        conn.close()
    map_limit = max_map_length()
    chunks, decided = plan_checks(
        records,
        settings,
        options.mode,
        max_chunks=map_limit,
        now=max(window_end, datetime.now(UTC)),
    )
    for backend in sorted({chunk["backend"] for chunk in chunks} - {"local"}):
        require_connection(BACKEND_CONN_IDS[backend], f"the {backend} bucket")
    preflight(settings, {chunk["backend"] for chunk in chunks})
    if chunks and len(chunks[0]["backups"]) > settings.chunk_size:
        log.warning(
            "chunk_size %d would map more than max_map_length=%d task instances; "
            "using %d backups per chunk for this run",
            settings.chunk_size,
            map_limit,
            len(chunks[0]["backups"]),
        )
    log.info(
        "%d backups in scope (%s), mode %s: %d chunk(s) to verify, %d result(s) decided "
        "from the catalog alone",
        len(records),
        f"ids {options.backup_ids}"
        if options.backup_ids
        else f"created in [{window_start}, {window_end_out})",
        options.mode,
        len(chunks),
        len(decided),
    )
    return {
        "chunks": chunks,
        "decided": decided,
        "backup_ids": [r["id"] for r in records],
        "skipped_backup_ids": skipped,
        "mode": options.mode,
        "window_start": window_start.isoformat() if window_start else None,
        "window_end": window_end_out.isoformat() if window_end_out else None,
        "settings": settings.to_dict(),
    }


def max_map_length() -> int:
    """Airflow's limit on mapped task instances per task, which the chunk count must respect."""
    from airflow.sdk.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


def verify(chunk: Chunk, settings: dict[str, Any]) -> list[CheckResult]:
    """Verify one chunk on its backend; every problem becomes a result."""
    from include.backup_integrity.backends import build_backend
    from include.backup_integrity.breaker import CircuitBreaker
    from include.backup_integrity.verify import verify_chunk

    register_package_secrets()
    backend = CircuitBreaker(build_backend(chunk["backend"], settings_from_dict(settings)))
    return [redact_result(result) for result in verify_chunk(chunk, backend)]


def flatten(chunk_results: Iterable[list[CheckResult]], decided: list[CheckResult]) -> list[CheckResult]:
    results = list(decided)
    for part in chunk_results:
        results.extend(part or [])
    return [redact_result(result) for result in results]


def redact_result(result: CheckResult) -> CheckResult:
    """A result with any registered credential masked in its free text (it goes to XCom and alerts)."""
    actual = result["actual"]
    if actual:
        actual = {k: (redact(v) if isinstance(v, str) else v) for k, v in actual.items()}
    message = redact(result["message"]) or ""
    return {**result, "message": message, "path": redact(result["path"]), "actual": actual}


def aggregate(chunk_results: Iterable[list[CheckResult]], plan: dict[str, Any], run_id: str) -> Statistics:
    results = flatten(chunk_results, plan["decided"])
    stats = compute_statistics(
        results,
        plan["backup_ids"],
        mode=plan["mode"],
        run_id=run_id,
        window_start=plan["window_start"],
        window_end=plan["window_end"],
        skipped_backup_ids=plan["skipped_backup_ids"],
    )
    log.info("run statistics: %s", stats)
    return stats


def record_and_alert(
    chunk_results: Iterable[list[CheckResult]],
    plan: dict[str, Any],
    statistics: Statistics,
    run_id: str,
    dag_id: str,
) -> dict[str, Any]:
    """Write results, metadata and alerts in one transaction; then deliver notices."""
    from include.backup_integrity import alerts, notify

    register_package_secrets()
    settings = settings_from_dict(plan["settings"])
    results = flatten(chunk_results, plan["decided"])
    conn = connect_catalog()
    try:
        # select_backups created the verifier's tables at the start of this run.
        with transaction(conn) as cur:
            catalog.lock(cur)
            catalog.record_run(cur, run_id, dag_id, dict(statistics))
            catalog.record_results(cur, run_id, results)
            summaries = catalog.backup_check_summaries(results, run_id)
            updated = catalog.update_metadata(cur, settings, summaries)
            changes = alerts.apply_alert_changes(cur, settings.alerts_table, results, run_id)
        log.info("metadata updated on %d backup(s); alerts: %s", updated, changes)
        delivery = notify.deliver_pending(
            conn, settings.alerts_table, notify.load_targets(), reconnect=connect_catalog
        )
        log.info("notifications: %s", delivery)
    finally:
        conn.close()
    return {"alerts": changes, "notifications": delivery, "metadata_updated": updated}


def check_outcome(statistics: Statistics) -> None:
    """End the run failed when any of its own checks failed or could not run."""
    if run_failed(statistics):
        raise IntegrityFailure(
            f"{statistics['integrity_failures']} of {statistics['total_backups_checked']} backup(s) "
            f"failed verification: {statistics['missing_files']} missing, "
            f"{statistics['storage_mismatches']} size mismatches, "
            f"{statistics['checksum_mismatches']} checksum mismatches, "
            f"{statistics['backend_errors']} backend errors, "
            f"{statistics['invalid_records']} invalid records (alerts raised)"
        )
    log.info("all %d check(s) passed", statistics.get("checks_total", 0))


def report_crash(context: dict[str, Any]) -> None:
    """DAG failure callback: tell someone the verifier itself broke (not what it found)."""
    from include.backup_integrity import notify

    register_package_secrets()
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", None)
    if task_id == OUTCOME_TASK_ID:
        return  # integrity failures: the alert task has already reported them
    run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", "?")
    dag = context.get("dag")
    title = "[ERROR] Backup integrity verifier crashed"
    body = (
        f"The verifier DAG {getattr(dag, 'dag_id', '?')} run {run_id} failed in task "
        f"{task_id or 'unknown'} ({context.get('reason', 'task_failure')}). Backups in this run "
        "may not have been verified; see the task log."
    )
    try:
        notify.send_direct(title, body, "failure")
    except Exception:
        log.exception("could not send the crash notification")


def window_end_of(data_interval_end: datetime | None, run_after: datetime | None) -> datetime:
    """The end of the window a run verifies: its data interval, else its run_after."""
    end = data_interval_end or run_after
    if end is None:
        raise ConfigError("the run has neither a data interval nor a run_after date")
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return end
