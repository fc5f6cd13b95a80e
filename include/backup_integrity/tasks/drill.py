"""What each task of ``restore_drill`` does, kept out of the DAG file.

``choose_backups`` validates the Variable and picks the backups; ``drill`` drills one
(:mod:`.drill_stages`); ``record_drills`` writes the run, the history,
``last_restore_test`` and the ``restore_*`` alerts in one transaction, notifies after
commit and returns the statistics; ``check_outcome`` fails the run when a drill did not
pass. Each function takes plain values and opens connections only when called.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog import backups as catalog
from include.backup_integrity.catalog import drills as drill_store
from include.backup_integrity.catalog.connection import connect_catalog, lock, transaction
from include.backup_integrity.catalog.schema import upgrade_schema
from include.backup_integrity.config.drill_settings import (
    DECRYPT_CONN_ID,
    DRILL_KEY,
    RESTORE_TARGET_CONN_ID,
    drill_settings_of,
    resolve_drill_options,
)
from include.backup_integrity.config.secrets import (
    mask,
    redact,
    register_connection,
    register_package_secrets,
)
from include.backup_integrity.config.settings import VARIABLE_KEY, Settings, parse_settings
from include.backup_integrity.domain.drill_alerts import judge_overdue, plan_drill_alerts
from include.backup_integrity.domain.drills import (
    ERROR,
    NO_FORMAT,
    PG_DUMP,
    DrillItem,
    DrillOutcome,
    DrillStatistics,
    choose,
    drill_label,
    drill_statistics,
    drills_failed,
)
from include.backup_integrity.tasks.drill_target import (
    defined_restore_target,
    drop_leftovers_of_the_deployment,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import BackupRecord

log = logging.getLogger(__name__)


class DrillsFailed(Exception):
    """A drill failed or could not run (already recorded and notified): the run must end failed."""


def choose_backups(raw_variable: str | None, params: dict[str, Any], window_end: datetime) -> dict[str, Any]:
    """The backups this run drills, and what the later tasks need (the plan)."""
    register_package_secrets()
    register_connection(RESTORE_TARGET_CONN_ID)
    settings = parse_settings(raw_variable)
    drill = drill_settings_of(settings.restore_drill)
    window_start, window_end = catalog.window_for(window_end, settings.lookback_days)
    plan: dict[str, Any] = {
        "items": [],
        "configured": drill is not None,
        "settings": settings.to_dict(),
        "catalog_identity": None,
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "skipped_backup_ids": [],
    }
    if drill is None:
        log.info(
            "restore drills are not configured (no %r key in the Variable %r): nothing to do",
            DRILL_KEY,
            VARIABLE_KEY,
        )
        return plan
    options = resolve_drill_options(drill, params)
    conn = connect_catalog(settings)
    try:
        upgrade_schema(conn, settings.alerts_table)  # 0002 and 0010 create the drill history
        plan["catalog_identity"] = list(drill_store.server_identity(conn))
        skipped: list[str] = []
        if options.backup_ids:
            records, skipped = catalog.select_by_ids(conn, settings, options.backup_ids)
            without_format = [r for r in records if drill.format_of(r["backup_type"]) == NO_FORMAT]
            skipped += [r["id"] for r in without_format]
            records = [r for r in records if r not in without_format]
        else:
            candidates = drill_store.load_candidates(
                conn, settings, drill.drilled_types(), window_start, window_end
            )
            chosen = [c.backup_id for c in choose(candidates, options.per_type)]
            found, _ = catalog.select_by_ids(conn, settings, chosen)
            by_id = {r["id"]: r for r in found}
            records = [by_id[i] for i in chosen if i in by_id]
        copies = drill_store.copies_of(conn, records)
    finally:
        conn.close()
    items = [drill_item(r, drill.format_of(r["backup_type"]), copies.get(r["id"], [])) for r in records]
    # Each drill drops them too; this covers a run with no pg_dump backup to drill.
    plan["leftovers_dropped"] = drop_leftovers_of_the_deployment(timedelta(minutes=drill.timeout_minutes))
    pg_dumps = [item["label"] for item in items if item["format"] == PG_DUMP]
    if pg_dumps and defined_restore_target() is None:
        # Not the run's failure: the other drills run, and each pg_dump drill ends error, alerted.
        log.warning(
            "Airflow connection %r (the server pg_dump backups are restored into) is not defined: "
            "%d pg_dump drill(s) will end error at stage restore (%s)",
            RESTORE_TARGET_CONN_ID,
            len(pg_dumps),
            ", ".join(pg_dumps),
        )
    if skipped:
        log.warning("backup_ids not drilled (unknown, not COMPLETED, or format none): %s", ", ".join(skipped))
    log.info(
        "%d backup(s) to drill (%s): %s",
        len(items),
        f"ids {options.backup_ids}" if options.backup_ids else f"created in [{window_start}, {window_end})",
        ", ".join(item["label"] for item in items) or "none",
    )
    plan["items"] = items
    plan["skipped_backup_ids"] = skipped
    return plan


def drill_item(record: BackupRecord, backup_format: str, copies: list[Any]) -> DrillItem:
    return DrillItem(
        backup_id=record["id"],
        backup_type=record["backup_type"],
        format=backup_format,
        label=drill_label(record["backup_type"], record["id"]),
        filename=record["filename"],
        size_bytes=record["size_bytes"],
        checksum=record["checksum"],
        created_at=record["created_at"],
        copies=copies,
    )


def drill(
    item: DrillItem, plan_settings: dict[str, Any], catalog_identity: list[str] | None, run_id: str
) -> DrillOutcome:
    """Drill one backup; the outcome's free text has every registered secret masked."""
    from include.backup_integrity.tasks.drill_stages import DrillContext, run_drill

    register_package_secrets()
    register_connection(RESTORE_TARGET_CONN_ID)
    settings = Settings.from_dict(plan_settings)
    drill_settings = drill_settings_of(settings.restore_drill)
    assert drill_settings is not None, "choose_backups drills only when restore_drill is configured"
    context = DrillContext(
        settings=settings,
        drill=drill_settings,
        run_id=run_id,
        catalog_identity=(catalog_identity[0], catalog_identity[1]) if catalog_identity else None,
        passphrase=decrypt_passphrase(),
    )
    outcome = run_drill(item, context)
    outcome["message"] = redact(outcome["message"]) or ""
    return outcome


def decrypt_passphrase() -> str | None:
    """The password of ``backup_decrypt``, registered with the secrets masker (None without it)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        passphrase = BaseHook.get_connection(DECRYPT_CONN_ID).password
    except AirflowNotFoundException:
        return None
    if passphrase:
        mask(passphrase)
    return passphrase or None


def missing_outcomes(items: Iterable[DrillItem], outcomes: Iterable[DrillOutcome]) -> list[DrillOutcome]:
    """An ``error`` for every chosen backup whose drill task ended without an outcome (it crashed)."""
    done = {o["backup_id"] for o in outcomes}
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    return [
        DrillOutcome(
            backup_id=item["backup_id"],
            backup_type=item["backup_type"],
            format=item["format"],
            status=ERROR,
            stage="fetch",
            source_backend=None,
            message="the drill task ended without an outcome (it crashed or was killed); see its log",
            started_at=now,
            finished_at=now,
            duration_seconds=0.0,
            bytes_fetched=None,
            details={},
        )
        for item in items
        if item["backup_id"] not in done
    ]


def record_drills(outcomes: Iterable[DrillOutcome], plan: dict[str, Any], run_id: str) -> DrillStatistics:
    """Write the run, its drills, metadata and alerts in one transaction; notify; return the statistics."""
    from include.backup_integrity.notify import delivery as notify
    from include.backup_integrity.tasks.metrics import emit_statistics

    register_package_secrets()
    window_start = datetime.fromisoformat(plan["window_start"])
    window_end = datetime.fromisoformat(plan["window_end"])
    common = {
        "run_id": run_id,
        "window_start": plan["window_start"],
        "window_end": plan["window_end"],
        "skipped_backup_ids": plan["skipped_backup_ids"],
    }
    if not plan["configured"]:
        return drill_statistics([], configured=False, **common)
    outcomes = [o for o in outcomes if o is not None]
    outcomes += missing_outcomes(plan["items"], outcomes)
    settings = Settings.from_dict(plan["settings"])
    drill = drill_settings_of(settings.restore_drill)
    assert drill is not None
    conn = connect_catalog(settings)
    try:
        with transaction(conn) as cur:
            lock(cur)
            # The run is kept first: the first run recorded starts restore_overdue's clock.
            drill_store.record_drill_run(cur, run_id, window_end)
            drill_store.record_drills(cur, run_id, window_end, outcomes)
            updated = drill_store.update_restore_metadata(cur, settings, outcomes, run_id)
            types = drill.drilled_types()
            in_window, last_passed, first = drill_store.overdue_inputs(
                cur, settings, types, window_start, window_end
            )
            verdicts = [
                judge_overdue(
                    backup_type,
                    backups_in_window=in_window.get(backup_type, 0),
                    last_passed_at=last_passed.get(backup_type),
                    first_drill_at=first,
                    as_of=window_end,
                    max_age_days=drill.max_age_days,
                )
                for backup_type in types
            ]
            open_alerts = drill_store.load_open_drill_alerts(cur, settings.alerts_table)
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            changes = drill_store.apply_drill_alerts(
                cur,
                settings.alerts_table,
                plan_drill_alerts(open_alerts, outcomes, verdicts, run_id, now),
                run_id,
            )
            statistics = drill_statistics(
                outcomes, overdue_types=[v.backup_type for v in verdicts if v.overdue], **common
            )
            drill_store.record_drill_run(cur, run_id, window_end, dict(statistics))
        log.info("last_restore_test updated on %d backup(s); alerts: %s", updated, changes)
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
    log.info("drill statistics: %s", statistics)
    emit_statistics(dict(statistics))
    return statistics


def check_outcome(statistics: DrillStatistics) -> None:
    """End the run failed when any drill failed or could not run."""
    if drills_failed(statistics):
        raise DrillsFailed(
            f"{statistics['restore_failures']} of {statistics['backups_drilled']} restore drill(s) failed "
            f"and {statistics['restore_errors']} could not run (alerts raised)"
        )
    if not statistics.get("configured", True):
        log.info("restore drills are not configured: nothing was drilled")
        return
    log.info("all %d restore drill(s) passed", statistics.get("backups_drilled", 0))
