"""The ``select_backups`` task: validate the configuration, size the scope, plan bounded chunks.

The run's scope is counted and cut into key ranges in SQL, so the plan stays a
few small chunk descriptors whatever the size of the catalog; records the
verifier cannot route (a ``backup_type`` without expected backends) are decided
here, without a store.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog import backups as catalog
from include.backup_integrity.catalog.connection import connect_catalog
from include.backup_integrity.catalog.incidents import load_open_incidents
from include.backup_integrity.catalog.schema import upgrade_schema
from include.backup_integrity.catalog.sessions import SessionTimeouts, naming_waits
from include.backup_integrity.config.params import resolve_run_options
from include.backup_integrity.config.secrets import register_package_secrets, register_store_secrets
from include.backup_integrity.config.settings import (
    ConfigError,
    parse_settings,
    require_connection,
)
from include.backup_integrity.domain.checks import make_result
from include.backup_integrity.domain.freshness import is_backfill
from include.backup_integrity.domain.planning import build_chunks, parts_for, probe_budget, routes
from include.backup_integrity.domain.records import INVALID_RECORD
from include.backup_integrity.domain.timestamps import utc_now_iso
from include.backup_integrity.stores.preflight import field_of, preflight
from include.backup_integrity.tasks.incidents import open_incidents_for_plan
from include.backup_integrity.tasks.results import redact_result

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.records import Chunk
    from include.backup_integrity.domain.stores import StoreSpec

log = logging.getLogger(__name__)


def select_backups(
    raw_variable: str | None, params: dict[str, Any], window_end: datetime, run_id: str | None = None
) -> dict[str, Any]:
    """Validate the configuration, size the run's scope in SQL and plan bounded chunks.

    Returns the plan; its ``chunks`` are what ``verify_chunk`` maps over. With the
    ``run_id``, a store that times out in the bucket checks starts the run's clock for it.
    """
    from include.backup_integrity.catalog import scope as scopes
    from include.backup_integrity.catalog.rotation import RotationPlan, plan_rotation
    from include.backup_integrity.tasks.deadlines import preflight_deadlines

    register_package_secrets()
    settings = parse_settings(raw_variable)
    register_store_secrets(settings)
    options = resolve_run_options(settings, params)
    now = max(window_end, datetime.now(UTC))
    route = routes(settings)
    conn = connect_catalog(settings)
    try:
        with naming_waits(SessionTimeouts.of(settings), "planning the run's chunks"):
            upgrade_schema(conn, settings.alerts_table)
            require_path_columns(conn, settings)
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
                        probe_budget=None
                        if options.mode == "full" or settings.store(backend).is_local
                        else probe_budget(counts[backend], settings.rehash_period_days),
                    )
                )
            # Backends take turns in map-index order, so an executor running chunks side by
            # side asks different stores at once instead of queueing on one.
            chunks: list[Chunk] = [c for turn in zip_longest(*per_backend) for c in turn if c is not None]
            with conn.cursor() as cur:
                open_incidents = open_incidents_for_plan(load_open_incidents(cur, settings.alerts_table))
            conn.commit()
            used = {chunk["backend"] for chunk in chunks}
            deadlines = preflight_deadlines(conn, settings, run_id, used)
    finally:
        conn.close()
    for backend in sorted(used):
        spec = settings.store(backend)
        if not spec.is_local:
            require_store_connection(settings, spec)
    preflight(settings, used, deadlines)
    checked_at = utc_now_iso()
    decided = [
        redact_result(
            make_result(
                record,
                None,
                INVALID_RECORD,
                f"backup_type {record['backup_type']!r} is not in expected_backends "
                f"(known types: {sorted(settings.expected_backends)})",
                mode=options.mode,
                checked_at=checked_at,
            )
        )
        for record in unroutable
    ]
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
        "chunk_count": len(chunks),
        "decided": decided,
        "backup_count": in_scope,
        "skipped_backup_ids": skipped,
        "mode": options.mode,
        "window_start": window_start.isoformat() if window_start else None,
        "window_end": window_end_out.isoformat() if window_end_out else None,
        # A window that ended more than two hours before the run started: no freshness verdict.
        "backfill": window_end_out is not None and is_backfill(window_end_out, datetime.now(UTC)),
        "settings": settings.to_dict(),
        "rotation": rotation.statistics() if options.mode == "rolling" else {},
        "repair": options.repair,
        "open_incidents": open_incidents,
    }


def require_path_columns(conn: Any, settings: Settings) -> None:
    """Every configured store's ``path_column`` must be a column of the backups table."""
    missing = catalog.missing_path_columns(conn, settings)
    if not missing:
        return
    problems = [
        f"{field_of(settings, settings.store(name), 'path_column')}: the catalog table "
        f"{settings.backups_table!r} has no column {column!r}"
        for name, column in missing
    ]
    raise ConfigError("; ".join(problems))


def require_store_connection(settings: Settings, spec: StoreSpec) -> None:
    """The Airflow connection of an S3 store the run uses; the error names the store and the field."""
    if settings.stores is None:
        require_connection(spec.conn_id or "", f"the {spec.name} bucket")
        return
    try:
        require_connection(spec.conn_id or "", f"the {spec.name} store")
    except ConfigError as exc:
        raise ConfigError(f"{field_of(settings, spec, 'conn_id')}: {exc}") from None


def max_map_length() -> int:
    """Airflow's limit on mapped task instances per task, which the chunk count must respect."""
    from airflow.sdk.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


def window_end_of(data_interval_end: datetime | None, run_after: datetime | None) -> datetime:
    """The end of the window a run verifies: its data interval, else its run_after."""
    end = data_interval_end or run_after
    if end is None:
        raise ConfigError("the run has neither a data interval nor a run_after date")
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return end
