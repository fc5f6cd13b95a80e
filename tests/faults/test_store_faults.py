"""Store faults through a proxy in front of each real moto S3 server: throttling, stalls, cuts.

"passed" must mean the mode's promise held and "missing" that the store said so; everything
else a store does wrong is ``backend_error``, grouped per backend, and resolves nothing.
"""

from __future__ import annotations

from collections import Counter

import pytest

from devtools.seed import delete, seed_backup
from include.backup_integrity.stores.base import CONCURRENCY
from tests.support.catalog import alerts, open_alerts_by_key, query, results
from tests.support.connections import s3_connection, set_connection, set_variable

pytestmark = pytest.mark.s3_servers  # r2 on moto, then on SeaweedFS


def test_slow_down_three_times_in_a_row_to_each_request_still_verifies(
    stores, through_proxies, run_with_retries
):
    backups = [seed_backup(stores, backup_type="WAL_ARCHIVE")]
    r2 = through_proxies["r2"]
    r2.set_mode("http_error", status=503, code="SlowDown", times=3)

    outcome = run_with_retries({"mode": "full"})

    assert outcome.state == "success", outcome
    found = results(stores, outcome.run_id)
    for backup in backups:
        assert found[(backup.id, "r2")] == "passed"
    evidence = query(
        stores,
        "SELECT DISTINCT evidence FROM backup_integrity_result WHERE run_id = %s AND backend = 'r2'",
        [outcome.run_id],
    )
    assert [r["evidence"] for r in evidence] == ["content_sha256"], "the bytes were read and matched"
    per_request = Counter((method, target) for method, target, what in r2.log if what == "error")
    # Object downloads: a key after the bucket (not a listing, not the bucket probe's ?versioning).
    reads = [(m, t) for (m, t) in per_request if m == "GET" and t.split("?")[0].strip("/").count("/") >= 1]
    assert len(reads) == len(backups), "every download was refused before it was answered"
    assert all(per_request[key] == 3 for key in per_request), "three 503 SlowDown in a row, each"
    answered = {(m, t) for m, t, what in r2.log if what == "passed"}
    assert set(per_request) <= answered, "then botocore's retry got the answer"
    assert alerts(stores) == []


def test_a_stalled_store_is_a_bounded_grouped_backend_error_that_resolves_nothing(
    stores, through_proxies, run_with_retries, monkeypatch
):
    gone = seed_backup(stores)
    other = seed_backup(stores)
    delete(stores, gone, "b2")
    first = run_with_retries()
    assert (gone.id, "b2", "missing") in open_alerts_by_key(stores)

    b2 = through_proxies["b2"]
    set_connection(
        monkeypatch,
        "backup_b2",
        s3_connection(b2, read_timeout=1, retries={"mode": "standard", "max_attempts": 2}),
    )
    b2.set_mode("stall")
    before = b2.connections
    outage = run_with_retries()

    assert outage.state == "failed"
    stats = outage.statistics
    assert stats["backend_errors"] == 2
    assert stats["missing_files"] == 0, "a store that does not answer never makes a backup missing"
    found = results(stores, outage.run_id)
    assert found[(gone.id, "b2")] == found[(other.id, "b2")] == "backend_error"
    assert found[(gone.id, "r2")] == found[(other.id, "r2")] == "passed"
    messages = query(
        stores,
        "SELECT message FROM backup_integrity_result WHERE run_id = %s AND backend = 'b2'",
        [outage.run_id],
    )
    assert all("timeout" in m["message"].lower() for m in messages), messages
    # Bounded: two HeadBucket calls (the preflight's, then the chunk's, which fails the whole
    # chunk at once), each given up after the connection's 2 attempts (botocore opens one more
    # connection per call than attempts); no object was asked about one by one.
    assert b2.connections - before <= 2 * 3
    grouped = [r for r in alerts(stores) if r["details"]["kind"] == "backend_error"]
    assert len(grouped) == 1
    assert grouped[0]["details"]["backend"] == "b2"
    assert grouped[0]["details"]["affected_count"] == 2
    still = open_alerts_by_key(stores)[(gone.id, "b2", "missing")]
    assert still["status"] == "ACTIVE", "a check that could not run resolves nothing"
    assert still["details"]["occurrences"] == 1
    assert still["details"]["run_id"] == first.run_id


def test_a_throttled_store_slows_the_run_down_instead_of_failing_it(
    stores, through_proxies, run_with_retries, monkeypatch, airflow_env
):
    set_variable(monkeypatch, {**airflow_env, "expected_backends": {"FULL_DATABASE": ["r2"]}})
    backups = [seed_backup(stores, size=64, on=("r2",)) for _ in range(12)]
    r2 = through_proxies["r2"]
    r2.set_mode("throttle", rate=4, burst=2)

    outcome = run_with_retries()

    assert outcome.state == "success", outcome
    assert results(stores, outcome.run_id) == {(b.id, "r2"): "passed" for b in backups}
    assert r2.count("throttled") > 0, "the store really throttled"
    assert alerts(stores) == []


def test_a_download_cut_halfway_is_a_backend_error_not_a_mismatch_nor_a_pass(
    stores, through_proxies, run_with_retries
):
    backup = seed_backup(stores, size=256 * 1024)
    r2 = through_proxies["r2"]
    r2.set_mode("cut", fraction=0.5)

    outcome = run_with_retries({"mode": "full"})

    assert outcome.state == "failed"
    found = results(stores, outcome.run_id)
    assert found[(backup.id, "r2")] == "backend_error"
    assert found[(backup.id, "b2")] == found[(backup.id, "local")] == "passed"
    assert outcome.statistics["checksum_mismatches"] == 0
    assert r2.count("cut") >= 1, "the download really was cut"
    (row,) = query(
        stores,
        "SELECT message, evidence, actual FROM backup_integrity_result WHERE run_id = %s AND backend = 'r2'",
        [outcome.run_id],
    )
    assert "download" in row["message"], row
    assert row["evidence"] is None
    assert "sha256" not in (row["actual"] or {}), "no hash of half an object is ever reported"
    (alert,) = [a for a in alerts(stores) if a["details"]["kind"] == "backend_error"]
    assert alert["details"]["backend"] == "r2"
    assert not [a for a in alerts(stores) if a["details"]["kind"] == "checksum_mismatch"]


def test_a_store_that_stalls_on_every_object_stops_being_asked(
    stores, through_proxies, run_with_retries, monkeypatch, airflow_env
):
    """The bucket answers but every object request hangs: after as many failures in a row as are
    in flight at once, the rest of the chunk is not asked, so a chunk costs one request's bound."""
    set_variable(monkeypatch, {**airflow_env, "expected_backends": {"FULL_DATABASE": ["r2"]}})
    backups = [seed_backup(stores, size=16, on=("r2",)) for _ in range(24)]
    r2 = through_proxies["r2"]
    set_connection(
        monkeypatch,
        "backup_r2",
        s3_connection(r2, read_timeout=1, retries={"mode": "standard", "max_attempts": 1}),
    )
    r2.set_mode("stall", only_objects=True)

    outcome = run_with_retries()

    assert outcome.state == "failed"
    assert results(stores, outcome.run_id) == {(b.id, "r2"): "backend_error" for b in backups}
    messages = query(
        stores,
        "SELECT message FROM backup_integrity_result WHERE run_id = %s",
        [outcome.run_id],
    )
    asked = [m for m in messages if "not asked" not in m["message"]]
    # The requests in flight when the eighth failure in a row came, and no more: each of the
    # CONCURRENCY threads may start one more request before the count reaches the threshold.
    assert CONCURRENCY <= len(asked) <= 2 * CONCURRENCY - 1 < len(backups)
    assert r2.count("stalled") <= 2 * len(asked)  # botocore: one connection more than attempts
    (alert,) = [a for a in alerts(stores) if a["details"]["kind"] == "backend_error"]
    assert alert["details"]["affected_count"] == len(backups), "one grouped alert for the outage"


def test_a_store_that_rejects_the_checksum_mode_header_passes_its_checks(
    stores, through_proxies, run_with_retries
):
    """As Backblaze B2 answered in 2024-25: ``400 Unsupported header 'x-amz-checksum-mode'``.

    The verifier asks again without the header, learns that the store rejects it and does
    not send it again; no check is a ``backend_error`` because of it.
    """
    backups = [seed_backup(stores) for _ in range(3)]
    r2 = through_proxies["r2"]
    r2.set_mode("reject_checksum_mode")

    first = run_with_retries({"mode": "quick"})

    assert first.state == "success", first
    found = results(stores, first.run_id)
    assert all(found[(b.id, "r2")] == "passed" for b in backups)
    assert first.statistics["backend_errors"] == 0
    learned = first.statistics["store_capabilities"]["r2"]
    assert learned["rejects_checksum_mode"] is True
    assert learned["asks_checksum_mode"] is False
    assert first.statistics["store_capabilities"]["b2"]["rejects_checksum_mode"] is False
    assert any(what == "rejected_header" for _, _, what in r2.log), "the header was sent and refused"
    row = query(
        stores, "SELECT rejects_checksum_mode FROM backup_integrity_store_capability WHERE store = 'r2'"
    )
    assert row == [{"rejects_checksum_mode": True}]

    r2.log.clear()
    again = run_with_retries({"mode": "full"})

    assert again.state == "success", again
    found = results(stores, again.run_id)
    assert all(found[(b.id, "r2")] == "passed" for b in backups)
    assert not any(what == "rejected_header" for _, _, what in r2.log), "never sent again"
    evidence = query(
        stores,
        "SELECT DISTINCT evidence FROM backup_integrity_result WHERE run_id = %s AND backend = 'r2'",
        [again.run_id],
    )
    assert [r["evidence"] for r in evidence] == ["content_sha256"]
