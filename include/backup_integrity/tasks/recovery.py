"""The recovery checks of a window run: freshness, WAL continuity, the recovery window, immutability.

Run by ``aggregate_results`` once every chunk recorded its checks (so a WAL copy's
latest check, and a copy's retention read, are this run's). Returns the statistics
they add and the judgement that ``raise_alerts`` turns into ``stale``, ``wal_gap``,
``not_immutable`` and ``retention_short`` alerts. A run given ``backup_ids`` judges
nothing; a backfill judges no freshness.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import connect_catalog
from include.backup_integrity.catalog.recovery import open_retention_alerts
from include.backup_integrity.catalog.sessions import SessionTimeouts, naming_waits
from include.backup_integrity.config.secrets import redact, register_package_secrets, register_store_secrets
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.freshness import judge_freshness
from include.backup_integrity.domain.immutability import UNVERIFIABLE, BucketProtection, not_immutable_reason
from include.backup_integrity.domain.timestamps import parse_timestamp
from include.backup_integrity.domain.wal import judge_continuity

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.recovery import RecoveryJudgement

log = logging.getLogger(__name__)

#: The chain's statistics when there is none.
NO_CHAIN = {"timeline": None, "from_segment": None, "to_segment": None, "from": None, "to": None}


def not_judged() -> dict[str, Any]:
    """The recovery statistics of a run that judged nothing (a run given ``backup_ids``)."""
    return {
        "stale_types": None,
        "wal_gaps": None,
        "wal_unparsed": None,
        "wal_chain": None,
        "recovery_window": None,
        "not_immutable": None,
        "retention_short": None,
        "recovery_failures": 0,
    }


def silent_stores(outcomes: Iterable[dict[str, Any]]) -> set[str]:
    """The stores that answered none of the run's checks: each of them a ``backend_error``."""
    answered: set[str] = set()
    failed: set[str] = set()
    for outcome in outcomes:
        if any(outcome["passed"].values()) or any(f["kind"] != "backend_error" for f in outcome["failures"]):
            answered.add(outcome["backend"])
        elif outcome["failures"]:
            failed.add(outcome["backend"])
    return failed - answered


def judge_recovery(
    plan: dict[str, Any], run_id: str, used_backends: Iterable[str] = (), silent: Iterable[str] = ()
) -> tuple[dict[str, Any], RecoveryJudgement | None]:
    """(statistics, judgement) of the run's window; nothing judged for a run given ``backup_ids``.

    ``used_backends`` are the stores the run's chunks asked: each S3 one among them, and
    each store in ``require_object_lock``, has its bucket probed once.
    """
    from include.backup_integrity.catalog import recovery as catalog

    window_start, window_end = (
        parse_timestamp(plan.get("window_start")),
        parse_timestamp(plan.get("window_end")),
    )
    if window_start is None or window_end is None:
        return not_judged(), None
    settings = Settings.from_dict(plan["settings"])
    conn = connect_catalog(settings)
    try:
        with naming_waits(SessionTimeouts.of(settings), "judging freshness and WAL continuity"):
            limits = {t: h for t, h in settings.max_age_hours.items() if h is not None}
            newest = (
                [] if plan.get("backfill") else catalog.newest_of_types(conn, settings, limits, window_end)
            )
            rows = catalog.wal_rows(conn, settings, window_start, window_end)
            continuity = judge_continuity(rows, settings.wal_segment_bytes)
            base = None
            if settings.base_backup_type and continuity.chain is not None:
                base = catalog.oldest_verified_base(
                    conn,
                    settings,
                    settings.base_backup_type,
                    continuity.chain.from_time,
                    continuity.chain.to_time,
                )
            with conn.cursor() as cur:
                open_retention = open_retention_alerts(cur, settings.alerts_table)
            retention = [
                read
                for backend, days in sorted(settings.min_retention_days.items())
                for read in catalog.retention_reads(
                    conn, settings, backend, window_start, window_end, days, open_retention.get(backend, ())
                )
            ]
            conn.commit()
    finally:
        conn.close()
    protections = probe_buckets(
        settings, set(used_backends) | set(settings.require_object_lock), run_id, set(silent)
    )
    verdicts = [judge_freshness(n, limits[n.backup_type], window_end) for n in newest]
    chain = continuity.chain
    stats: dict[str, Any] = {
        "stale_types": None if plan.get("backfill") else sorted(v.backup_type for v in verdicts if v.stale),
        "wal_gaps": len(continuity.holes),
        "wal_unparsed": continuity.unparsed,
        "wal_chain": chain.as_statistics() if chain else dict(NO_CHAIN),
        "recovery_window": (
            {"from": base[1], "to": chain.to_time, "base_backup_id": base[0]} if base and chain else None
        ),
    }
    if chain is not None:
        last = parse_timestamp(chain.to_time)
        stats["recovery_point_age_seconds"] = max(0.0, (window_end - last).total_seconds()) if last else None
    judgement: RecoveryJudgement = {
        "as_of": window_end.isoformat(),
        "run_id": run_id,
        "freshness": None if plan.get("backfill") else [asdict(v) for v in verdicts],
        "wal_holes": [asdict(h) for h in continuity.holes],
    }
    required = [
        {**p.as_statistics(), "backend": p.backend, "reason": not_immutable_reason(p)}
        for p in protections
        if p.backend in settings.require_object_lock
    ]
    judgement["immutability"] = required
    judgement["retention"] = retention
    stats["not_immutable"] = sorted(p.backend for p in protections if not p.immutable)
    stats["immutability"] = {p.backend: p.as_statistics() for p in protections}
    stats["not_immutable_alerts"] = sum(1 for r in required if r["reason"] is not None)
    stats["retention_short"] = sum(1 for r in retention if r["short"])
    stats["bucket_probe_requests"] = {p.backend: p.requests for p in protections if p.requests}
    stats["recovery_failures"] = (
        len(stats["stale_types"] or [])
        + len(continuity.holes)
        + stats["not_immutable_alerts"]
        + stats["retention_short"]
    )
    log.info(
        "recovery: stale %s, %d WAL hole(s), %d WAL row(s) without a segment name, chain %s, window %s, "
        "not immutable %s, %d copies retained too briefly",
        stats["stale_types"],
        len(continuity.holes),
        continuity.unparsed,
        stats["wal_chain"],
        stats["recovery_window"],
        stats["not_immutable"],
        stats["retention_short"],
    )
    return stats, judgement


def probe_buckets(
    settings: Settings, backends: Iterable[str], run_id: str | None = None, silent: Iterable[str] = ()
) -> list[BucketProtection]:
    """Each S3 store's bucket protection, once; a required store that is not S3 cannot report it.

    A store is asked within the run's deadline for it, as the chunks were; one that answered
    none of this run's checks (``silent``) is not asked again (``unverifiable``, "not asked: …").
    """
    from include.backup_integrity.stores.factory import build_backend
    from include.backup_integrity.stores.s3 import S3Backend
    from include.backup_integrity.tasks.deadlines import store_deadline

    register_package_secrets()
    register_store_secrets(settings)
    found = []
    conn = connect_catalog(settings)
    try:
        for name in sorted(backends):
            try:
                store = build_backend(name, settings)
            except (KeyError, ValueError) as exc:
                found.append(BucketProtection(name, None, UNVERIFIABLE, error=f"unknown store: {exc}"))
                continue
            if not isinstance(store, S3Backend):
                if name not in settings.require_object_lock:
                    continue  # only S3 stores are reported unasked
                no_lock = "not an S3 store: no object lock"
                found.append(BucketProtection(name, None, UNVERIFIABLE, error=no_lock))
                continue
            if name in silent:
                why = "not asked: the store answered none of this run's checks"
                found.append(BucketProtection(name, None, UNVERIFIABLE, error=why))
                continue
            try:
                deadline = store_deadline(conn, settings, run_id, name)
                refused = deadline.refusal(deadline.watch(store.client))
                protection = (
                    BucketProtection(name, None, UNVERIFIABLE, error=refused)
                    if refused
                    else store.bucket_protection()
                )
            except Exception as exc:  # a connection that cannot be built: the store cannot say
                protection = BucketProtection(name, None, UNVERIFIABLE, error=f"{type(exc).__name__}: {exc}")
            # A store's error may quote a credential (an access key id in a 403): masked like every message.
            sent = store.requests.get("bucket_config", 0)
            found.append(replace(protection, requests=sent, error=redact(protection.error)))
    finally:
        conn.close()
    return found
