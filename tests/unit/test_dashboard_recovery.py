"""The dashboard's WAL chain line (a recovery claim only with a base backup type) and its cost table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.backup_integrity.dashboard.queries import ChainRow, CostRows
from include.backup_integrity.dashboard.view import recovery_chain, store_costs

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CHAIN = {
    "timeline": "00000002",
    "from_segment": "000000010000000A000000FE",
    "to_segment": "000000020000000B00000003",
    "from": "2026-03-01T08:00:00+00:00",
    "to": "2026-03-01T11:35:00+00:00",
}


def test_without_a_base_backup_type_only_the_wal_coverage_is_shown():
    shown = recovery_chain(ChainRow(CHAIN, None, NOW), NOW)
    assert shown.line.startswith("WAL archived without a hole from 2026-03-01T08:00 to 2026-03-01T11:35")
    assert shown.line.endswith("last segment 25 minutes ago")
    assert "Recoverable" not in shown.line


def test_with_a_recovery_window_the_claim_names_its_base_backup():
    window = {"from": "2026-03-01T09:00:00+00:00", "to": CHAIN["to"], "base_backup_id": "b-1"}
    shown = recovery_chain(ChainRow(CHAIN, window, NOW), NOW)
    assert shown.line.startswith(
        "Recoverable to any point from 2026-03-01T09:00 to 2026-03-01T11:35 (base backup b-1)"
    )


def test_no_chain_no_line():
    empty = dict.fromkeys(CHAIN)
    assert recovery_chain(ChainRow(empty, None, NOW), NOW) is None
    assert recovery_chain(None, NOW) is None


def test_costs_project_the_last_run_times_720_until_there_are_30_days_of_runs():
    young = CostRows({"r2": 0.001, "total": 0.001}, {"r2": 0.05, "total": 0.05}, NOW - timedelta(days=2))
    [r2, total] = store_costs(young, NOW)
    assert (r2.store, r2.last_run_usd, r2.projected_30_days_usd) == ("r2", 0.001, pytest.approx(0.72))
    assert total.store == "total"
    old = CostRows({"r2": 0.001}, {"r2": 0.5}, NOW - timedelta(days=40))
    assert store_costs(old, NOW)[0].projected_30_days_usd == 0.5
