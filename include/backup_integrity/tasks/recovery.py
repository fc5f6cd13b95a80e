"""The recovery checks of a window run: freshness, WAL continuity, the chain and the recovery window.

Run by ``aggregate_results`` once every chunk recorded its checks (so a WAL copy's
latest check is this run's). Returns the statistics they add and the judgement that
``raise_alerts`` turns into ``stale`` and ``wal_gap`` alerts. A run given
``backup_ids`` judges nothing; a backfill judges no freshness.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import connect_catalog
from include.backup_integrity.catalog.sessions import SessionTimeouts, naming_waits
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.freshness import judge_freshness
from include.backup_integrity.domain.timestamps import parse_timestamp
from include.backup_integrity.domain.wal import judge_continuity

if TYPE_CHECKING:
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
        "recovery_failures": 0,
    }


def judge_recovery(plan: dict[str, Any], run_id: str) -> tuple[dict[str, Any], RecoveryJudgement | None]:
    """(statistics, judgement) of the run's window; nothing judged for a run given ``backup_ids``."""
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
            conn.commit()
    finally:
        conn.close()
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
    stats["recovery_failures"] = len(stats["stale_types"] or []) + len(continuity.holes)
    log.info(
        "recovery: stale %s, %d WAL hole(s), %d WAL row(s) without a segment name, chain %s, window %s",
        stats["stale_types"],
        len(continuity.holes),
        continuity.unparsed,
        stats["wal_chain"],
        stats["recovery_window"],
    )
    return stats, judgement
