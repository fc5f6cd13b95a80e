"""The run's cost from its request counts and bytes read, and the 30-day projection (pure)."""

from __future__ import annotations

import pytest

from include.backup_integrity.config.recovery_settings import DEFAULT_PRICES
from include.backup_integrity.domain.cost import estimate_cost, projected_30_days
from include.backup_integrity.tasks.metrics import numeric_statistics


def test_r2_and_b2_requests_are_priced_by_class_and_bytes_as_egress():
    requests = {
        "r2": {"list": 1_000_000, "head": 2_000_000, "get": 1_000_000},
        "b2": {"list": 1000, "get": 10_000},
    }
    costs, unpriced = estimate_cost(requests, {"r2": 5 * 10**9, "b2": 2 * 10**9}, DEFAULT_PRICES)
    assert costs["r2"] == pytest.approx(4.50 + 2 * 0.36 + 0.36)  # egress is free on R2
    assert costs["b2"] == pytest.approx(0.004 + 0.004 + 2 * 0.01)
    assert costs["total"] == pytest.approx(costs["r2"] + costs["b2"])
    assert unpriced == []


def test_a_store_without_prices_counts_zero_and_is_named():
    costs, unpriced = estimate_cost(
        {"b2": {"get": 10}, "local": {"scandir": 3}}, {}, {**DEFAULT_PRICES, "b2": None}
    )
    assert costs == {"b2": 0.0, "local": 0.0, "total": 0.0}
    assert unpriced == ["b2"]


def test_an_unknown_request_kind_is_priced_as_a_write():
    costs, _ = estimate_cost({"r2": {"delete": 1_000_000}}, {}, DEFAULT_PRICES)
    assert costs["r2"] == pytest.approx(4.50)


def test_the_projection_uses_30_days_of_runs_or_the_last_run_times_720():
    assert projected_30_days([0.01, 0.02], history_days=3) == pytest.approx(0.02 * 720)
    assert projected_30_days([0.01] * 720, history_days=30) == pytest.approx(7.2)
    assert projected_30_days([], history_days=0) == 0


def test_each_store_cost_is_a_metric():
    values = numeric_statistics({"estimated_cost_usd": {"r2": 0.5, "total": 0.5}, "missing_files": 0})
    assert values == {"missing_files": 0, "estimated_cost_usd.r2": 0.5, "estimated_cost_usd.total": 0.5}
