"""The run's cost counts what was sent: botocore's retries and the copies a repair made.

A store bills every attempt it receives; the proxy in front of r2 answers each distinct
request with ``503 SlowDown`` twice before passing it, so every request reaches it three times.
"""

from __future__ import annotations

import pytest

from devtools.seed import delete, seed_backup
from tests.support.catalog import query
from tests.support.connections import set_variable

#: The issue's R2 prices, per million: Class A (listings, writes), Class B (HEAD, GET, reads).
R2_CLASS_A, R2_CLASS_B = 4.50, 0.36


def test_retries_and_a_repairs_copy_are_in_the_runs_cost(
    stores, through_proxies, run_with_retries, monkeypatch, airflow_env
):
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})
    through_proxies["r2"].set_mode("http_error", status=503, code="SlowDown", times=2)

    outcome = run_with_retries({"mode": "full"})

    stats = outcome.statistics
    assert stats["repaired"] == 1, stats
    asked, sent = stats["requests"]["r2"], stats["requests_sent"]["r2"]
    for kind, n in asked.items():
        assert sent[kind] >= 3 * n, f"{kind}: each request asked was sent three times"
    assert sent["put"] == 3, "the repair's one upload, sent three times"
    log = list(through_proxies["r2"].log)
    assert sum(1 for method, target, _ in log if method == "PUT" and gone.paths["r2"] in target) == 3
    class_a = sent.get("list", 0) + sent["put"] + sent.get("copy", 0)
    class_b = sent.get("head", 0) + sent.get("get", 0) + sent.get("bucket_config", 0)
    expected = (class_a * R2_CLASS_A + class_b * R2_CLASS_B) / 1e6
    assert stats["estimated_cost_usd"]["r2"] == pytest.approx(expected)
    rows = query(stores, "SELECT status FROM backup_integrity_repair WHERE run_id = %s", [outcome.run_id])
    assert [r["status"] for r in rows] == ["repaired"]
