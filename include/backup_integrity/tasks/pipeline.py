"""What each task of ``verify_storage_integrity`` does, kept out of the DAG file.

Each function is one task's body: it takes plain values (the Variable's raw
text, params, XCom values) and returns plain values, and opens connections
only when called, never at import.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog import backups as catalog
from include.backup_integrity.catalog.connection import connect_catalog, lock, transaction
from include.backup_integrity.catalog.results import record_results, record_run
from include.backup_integrity.catalog.schema import upgrade_schema
from include.backup_integrity.config.secrets import redact, register_package_secrets
from include.backup_integrity.config.settings import (
    BACKEND_CONN_IDS,
    ConfigError,
    Settings,
    parse_settings,
    require_connection,
    resolve_run_options,
)
from include.backup_integrity.domain.checks import make_result
from include.backup_integrity.domain.planning import build_chunks, parts_for, routes
from include.backup_integrity.domain.records import INVALID_RECORD, PASSED, CheckResult, unpack_ids
from include.backup_integrity.domain.statistics import run_failed, statistics_from_outcomes
from include.backup_integrity.domain.timestamps import utc_now_iso
from include.backup_integrity.stores.preflight import preflight

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import Chunk, ChunkOutcome, Statistics
    from include.backup_integrity.tasks.repair import RepairOutcome

log = logging.getLogger(__name__)

OUTCOME_TASK_ID = "check_outcome"


class IntegrityFailure(Exception):
    """The run found problems (already recorded and notified): the run must end failed."""


def settings_from_dict(data: dict[str, Any]) -> Settings:
    return replace(Settings(), **data)


def select_backups(raw_variable: str | None, params: dict[str, Any], window_end: datetime) -> dict[str, Any]:
    """Validate the configuration, size the run's scope in SQL and plan bounded chunks."""
    from include.backup_integrity.catalog import scope as scopes
    from include.backup_integrity.catalog.rotation import plan_rotation
    from include.backup_integrity.domain.rotation import RotationPlan

    register_package_secrets()
    settings = parse_settings(raw_variable)
    options = resolve_run_options(settings, params)
    now = max(window_end, datetime.now(UTC))
    route = routes(settings)
    conn = connect_catalog()
    try:
        upgrade_schema(conn)
        window_start: datetime | None = None
        window_end_out: datetime | None = None
        skipped: list[str] = []
        if options.backup_ids:
            found, skipped = catalog.select_by_ids(conn, settings, options.backup_ids)
            scope = scopes.ids_scope(r["id"] for r in found)
            if skipped:
                log.warning("backup_ids not checked (unknown or not COMPLETED): %s", ", ".join(skipped))
        else:
            window_start, window_end_out = catalog.window_for(window_end, options.lookback_days)
            scope = scopes.window_scope(window_start, window_end_out, options.max_backups)
        in_scope = (
            scopes.count_scope(conn, settings, scope)
            if (scope["backup_ids"] or not options.backup_ids)
            else 0
        )
        unroutable = scopes.unroutable_records(conn, settings, scope) if in_scope else []
        counts = scopes.routed_counts(conn, settings, scope, route) if in_scope else {}
        parts = parts_for(counts, settings.chunk_size, settings.max_chunks_per_backend, max_map_length())
        rotation = (
            plan_rotation(conn, settings, scope, route, now)
            if options.mode == "rolling" and in_scope
            else RotationPlan()
        )
        per_backend: list[list[Chunk]] = []
        for backend, types in route.items():
            if not parts.get(backend):
                continue
            ranges, unrecorded = scopes.key_ranges(conn, settings, scope, backend, types, parts[backend])
            per_backend.append(
                build_chunks(
                    backend,
                    types,
                    ranges,
                    unrecorded,
                    mode=options.mode,
                    scope=scope,
                    now=now.isoformat(),
                    rehash_through=rotation.cutoffs.get(backend),
                )
            )
        # Backends take turns in map-index order, so an executor running chunks side by
        # side asks different stores at once instead of queueing on one.
        chunks: list[Chunk] = [c for turn in zip_longest(*per_backend) for c in turn if c is not None]
        conn.commit()
    finally:
        conn.close()
    for backend in sorted({chunk["backend"] for chunk in chunks} - {"local"}):
        require_connection(BACKEND_CONN_IDS[backend], f"the {backend} bucket")
    preflight(settings, {chunk["backend"] for chunk in chunks})
    checked_at = utc_now_iso()
    decided = [
        make_result(
            record,
            None,
            INVALID_RECORD,
            f"backup_type {record['backup_type']!r} is not in expected_backends "
            f"(known types: {sorted(settings.expected_backends)})",
            mode=options.mode,
            checked_at=checked_at,
        )
        for record in unroutable
    ]
    decided = [redact_result(result) for result in decided]
    log.info(
        "%d backups in scope (%s), mode %s: %d chunk(s) over %s, %d unroutable",
        in_scope,
        f"ids {options.backup_ids}"
        if options.backup_ids
        else f"created in [{window_start}, {window_end_out})",
        options.mode,
        len(chunks),
        {b: f"{counts[b]} in {parts[b]} chunk(s)" for b in parts},
        len(decided),
    )
    if options.mode == "rolling":
        log.info("rotating re-hash this run: %s", rotation.statistics())
    return {
        "chunks": chunks,
        "decided": decided,
        "backup_count": in_scope,
        "skipped_backup_ids": skipped,
        "mode": options.mode,
        "window_start": window_start.isoformat() if window_start else None,
        "window_end": window_end_out.isoformat() if window_end_out else None,
        "settings": settings.to_dict(),
        "rotation": rotation.statistics() if options.mode == "rolling" else {},
        "repair": options.repair,
    }


def max_map_length() -> int:
    """Airflow's limit on mapped task instances per task, which the chunk count must respect."""
    from airflow.sdk.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


def verify(chunk: Chunk, settings: dict[str, Any], run_id: str) -> ChunkOutcome:
    """Verify one chunk on its backend; every problem becomes a result, recorded as it is found."""
    from include.backup_integrity.catalog import object_state
    from include.backup_integrity.catalog.scope import chunk_records
    from include.backup_integrity.stores.base import build_backend
    from include.backup_integrity.stores.breaker import CircuitBreaker
    from include.backup_integrity.tasks.verify import verify_chunk

    register_package_secrets()
    parsed = settings_from_dict(settings)
    backend = CircuitBreaker(build_backend(chunk["backend"], parsed))
    conn = connect_catalog()
    try:
        records = chunk_records(conn, parsed, chunk)
        recorded = object_state.load_recorded(conn, chunk["backend"], [r["id"] for r in records])
        states = {backup_id: r.state for backup_id, r in recorded.items()}
        conn.commit()
        outcome, results, new_states = verify_chunk(chunk, backend, records, states)
        # Failures carry free text from stores and the catalog: it goes to XCom, alerts and the history.
        results = [redact_result(r) if r["kind"] != PASSED else r for r in results]
        outcome["failures"] = [redact_result(r) for r in outcome["failures"]]
        with transaction(conn) as cur:
            object_state.save_checks(cur, run_id, results, new_states, recorded)
    finally:
        conn.close()
    return outcome


def redact_result(result: CheckResult) -> CheckResult:
    """A result with any registered credential masked in its free text (it goes to XCom and alerts)."""
    actual = result["actual"]
    if actual:
        actual = {k: (redact(v) if isinstance(v, str) else v) for k, v in actual.items()}
    message = redact(result["message"]) or ""
    return {**result, "message": message, "path": redact(result["path"]), "actual": actual}


def repair(outcomes: Iterable[ChunkOutcome], plan: dict[str, Any]) -> list[RepairOutcome]:
    """Plan (``repair = "plan"``) or make (``"apply"``) the repairs the run's failures call for."""
    from include.backup_integrity.tasks import repair as repairing

    mode = plan.get("repair", repairing.OFF)
    if mode == repairing.OFF:
        return []
    outcomes = list(outcomes)
    failures = failures_of(outcomes, plan)
    tasks = repairing.plan_repairs(failures + sources_for_repair(outcomes, failures, plan))
    if mode == repairing.PLAN:
        repairs = repairing.planned_outcomes(tasks)
        log.info("repair plan (nothing copied): %d bad copies", len(repairs))
    else:
        repairs = repairing.execute_repairs(tasks, settings_from_dict(plan["settings"]))
        log.info(
            "repairs: %d repaired, %d not repaired",
            sum(1 for o in repairs if o["status"] == repairing.REPAIRED),
            sum(1 for o in repairs if o["status"] != repairing.REPAIRED),
        )
    for line in repairing.describe_plan(repairs):
        log.info("  %s", line)
    return repairs


def failures_of(outcomes: list[ChunkOutcome], plan: dict[str, Any]) -> list[CheckResult]:
    failures = list(plan["decided"])
    for outcome in outcomes:
        failures.extend(outcome["failures"])
    return failures


def sources_for_repair(
    outcomes: list[ChunkOutcome], failures: list[CheckResult], plan: dict[str, Any]
) -> list[CheckResult]:
    """The passing copies of the backups that have a repairable failure, with their locations.

    Passes travel as ids; where each copy lives comes from the catalog (few rows: only
    backups with a failure).
    """
    from include.backup_integrity.domain.checks import path_for
    from include.backup_integrity.tasks.repair import REPAIRABLE_KINDS

    wanted = {f["backup_id"] for f in failures if f["kind"] in REPAIRABLE_KINDS and f["backend"]}
    if not wanted:
        return []
    conn = connect_catalog()
    try:
        records, _ = catalog.select_by_ids(conn, settings_from_dict(plan["settings"]), sorted(wanted))
        conn.commit()
    finally:
        conn.close()
    by_id = {record["id"]: record for record in records}
    sources = []
    for outcome in outcomes:
        for evidence, packed in outcome["passed"].items():
            for backup_id in unpack_ids(packed):
                record = by_id.get(backup_id)
                if record is None:
                    continue
                source = passed_result(backup_id, outcome, evidence)
                source["path"] = path_for(record, outcome["backend"])
                sources.append(source)
    return sources


def aggregate(
    outcomes: Iterable[ChunkOutcome],
    plan: dict[str, Any],
    run_id: str,
    repairs: list[RepairOutcome] | None = None,
) -> Statistics:
    from include.backup_integrity.tasks.metrics import emit_statistics
    from include.backup_integrity.tasks.repair import repair_statistics

    outcomes = list(outcomes)
    stats = statistics_from_outcomes(
        outcomes,
        plan["decided"],
        mode=plan["mode"],
        run_id=run_id,
        window_start=plan["window_start"],
        window_end=plan["window_end"],
        skipped_backup_ids=plan["skipped_backup_ids"],
        chunks=len(outcomes),
    )
    stats.update(plan.get("rotation") or {})  # type: ignore[typeddict-item]
    stats.update(repair_statistics(plan.get("repair", "off"), list(repairs or [])))  # type: ignore[typeddict-item]
    log.info("run statistics: %s", stats)
    emit_statistics(stats)
    return stats


def record_and_alert(
    outcomes: Iterable[ChunkOutcome],
    plan: dict[str, Any],
    statistics: Statistics,
    run_id: str,
    dag_id: str,
    repairs: list[RepairOutcome] | None = None,
) -> dict[str, Any]:
    """Write failures, metadata and alerts in one transaction; then deliver notices.

    Each chunk already recorded its own checks; passes travel as ids only, and a
    pass is spelled out as a result only where an open alert may need it.
    """
    from include.backup_integrity.catalog import alert_store as alerts
    from include.backup_integrity.notify import delivery as notify
    from include.backup_integrity.tasks.repair import APPLY, record_repairs

    register_package_secrets()
    settings = settings_from_dict(plan["settings"])
    outcomes = list(outcomes)
    failures = failures_of(outcomes, plan)
    conn = connect_catalog()
    try:
        # select_backups created the verifier's tables at the start of this run.
        with transaction(conn) as cur:
            lock(cur)
            record_run(cur, run_id, dag_id, dict(statistics))
            record_results(cur, run_id, failures)
            open_keys = {(a.backup_id, a.key[1]) for a in alerts.load_open_alerts(cur, settings.alerts_table)}
            passes = passes_for_alerts(outcomes, open_keys)
            applied = (repairs or []) if plan.get("repair") == APPLY else []
            timestamps, failed = metadata_summaries(outcomes, failures, run_id, applied)
            passed = {"status": "passed", "mode": plan["mode"], "errors": [], "run_id": run_id}
            updated = catalog.update_metadata_lazily(cur, settings, timestamps, failed, passed)
            record_repairs(cur, run_id, repairs or [])
            changes = alerts.apply_alert_changes(
                cur, settings.alerts_table, failures + passes, run_id, applied
            )
        log.info("metadata updated on %d backup(s); alerts: %s", updated, changes)
        delivery = notify.deliver_pending(
            conn, settings.alerts_table, notify.load_targets(), reconnect=connect_catalog
        )
        log.info("notifications: %s", delivery)
    finally:
        conn.close()
    return {"alerts": changes, "notifications": delivery, "metadata_updated": updated}


def passed_result(backup_id: str, outcome: ChunkOutcome, evidence: str) -> CheckResult:
    """A pass spelled out from a chunk's compact outcome."""
    return CheckResult(
        backup_id=backup_id,
        backend=outcome["backend"],
        kind=PASSED,
        message=f"passed ({evidence or 'size'} evidence)",
        path=None,
        expected={},
        actual=None,
        mode=outcome["mode"],
        evidence=evidence or None,
        checked_at=outcome["checked_at"],
    )


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
            + (
                f"; {statistics['repaired']} repaired, {statistics['repair_failed']} not repaired"
                if "repaired" in statistics
                else ""
            )
        )
    log.info("all %d check(s) passed", statistics.get("checks_total", 0))


def report_crash(context: dict[str, Any]) -> None:
    """DAG failure callback: tell someone the verifier itself broke (not what it found)."""
    from include.backup_integrity.notify import delivery as notify

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
