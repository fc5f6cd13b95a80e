"""Freshness, WAL continuity and the recovery window in the hourly verifier, end to end.

Real PostgreSQL, moto/SeaweedFS buckets and ``dag.test()``; every assertion is about
alert rows, the run's statistics and its state.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devtools.seed import seed_backup
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.dashboard.app import render_page, summary
from tests.support.catalog import alerts, query
from tests.support.connections import set_variable
from tests.support.runs import window_end_for


def open_of_kind(stores, kind):
    return [a for a in alerts(stores) if a["status"] == "ACTIVE" and a["details"].get("kind") == kind]


def occurrences(stores, alert_id):
    return query(
        stores, "SELECT count(*) AS n FROM backup_integrity_alert_occurrence WHERE alert_id = %s", [alert_id]
    )[0]["n"]


def seed_wal(stores, name, created_at, *, copies=("r2", "b2")):
    """A COMPLETED WAL row named like the archiver names it; ``copies=()`` leaves both copies missing."""
    return seed_backup(
        stores,
        backup_type="WAL_ARCHIVE",
        created_at=created_at,
        size=256,
        on=copies,
        record_paths=("r2", "b2"),
        row_overrides={"filename": f"{name}.gz.enc"},
    )


def test_wal_holes_across_a_log_boundary_and_a_timeline_change_open_observe_and_resolve(
    stores, run_dag, airflow_env, monkeypatch
):
    set_variable(monkeypatch, {**airflow_env, "base_backup_type": "FULL_DATABASE"})
    now = datetime.now(UTC)
    at = [now - timedelta(minutes=90 - 5 * i) for i in range(10)]
    seed_wal(stores, "000000010000000A000000FD", at[0])
    seed_wal(stores, "000000010000000A000000FE", at[1])
    # ...0A000000FF is not archived: a hole across the FF -> next-log boundary.
    seed_wal(stores, "000000010000000B00000000", at[2], copies=())  # every copy fails: absent
    seed_wal(stores, "000000010000000B00000001", at[3])
    full = seed_backup(stores, backup_type="FULL_DATABASE", created_at=at[4])
    seed_wal(stores, "000000010000000B00000002", at[5])
    # A promotion: timeline 2 carries on from the switch segment; that is no hole.
    seed_wal(stores, "000000020000000B00000002", at[6])
    seed_wal(stores, "000000020000000B00000003", at[7])
    seed_backup(
        stores, backup_type="WAL_ARCHIVE", created_at=at[8], row_overrides={"filename": "00000002.history"}
    )

    first = run_dag()

    assert first.state == "failed"
    stats = first.statistics
    assert stats["wal_gaps"] == 2
    assert stats["wal_unparsed"] == 1
    assert stats["wal_chain"]["timeline"] == "00000002"
    assert stats["wal_chain"]["from_segment"] == "000000010000000B00000001"
    assert stats["wal_chain"]["to_segment"] == "000000020000000B00000003"
    assert datetime.fromisoformat(stats["wal_chain"]["to"]) == at[7].replace(microsecond=at[7].microsecond)
    assert stats["recovery_window"]["base_backup_id"] == full.id
    assert datetime.fromisoformat(stats["recovery_window"]["from"]) == full.created_at
    assert stats["recovery_window"]["to"] == stats["wal_chain"]["to"]
    window_end = datetime.fromisoformat(stats["window_end"])
    assert stats["recovery_point_age_seconds"] == (window_end - at[7]).total_seconds()
    gaps = sorted(open_of_kind(stores, "wal_gap"), key=lambda a: a["details"]["first_missing"])
    assert [
        (
            g["backup_id"],
            g["severity"],
            g["details"]["timeline"],
            g["details"]["first_missing"],
            g["details"]["last_missing"],
            g["details"]["missing_count"],
            g["details"]["reason"],
        )
        for g in gaps
    ] == [
        (
            None,
            "CRITICAL",
            "00000001",
            "000000010000000A000000FF",
            "000000010000000A000000FF",
            1,
            "not_in_catalog",
        ),
        (
            None,
            "CRITICAL",
            "00000001",
            "000000010000000B00000000",
            "000000010000000B00000000",
            1,
            "no_verified_copy",
        ),
    ]
    summaries = open_of_kind(stores, "summary")
    assert len(summaries) == 1
    assert {g["id"] for g in gaps} <= set(summaries[0]["details"]["alert_ids"])

    # The missing segment arrives: its hole resolves; the one whose copies fail stays, seen again.
    seed_wal(stores, "000000010000000A000000FF", at[1] + timedelta(minutes=1))
    second = run_dag(logical_date=window_end_for(datetime.now(UTC)) + timedelta(hours=2))

    assert second.state == "failed"
    assert second.statistics["wal_gaps"] == 1
    filled, failing = gaps
    rows = {a["id"]: a for a in alerts(stores)}
    assert rows[filled["id"]]["status"] == "RESOLVED"
    assert rows[failing["id"]]["status"] == "ACTIVE"
    assert occurrences(stores, failing["id"]) == 2
    assert [g["id"] for g in open_of_kind(stores, "wal_gap")] == [failing["id"]]

    # The dashboard claims the recovery window (base_backup_type is set) and shows the cost.
    with psycopg.connect(stores.catalog_dsn) as conn, conn.cursor() as cur:
        page = render_page(summary(cur, Settings(), 1, 50, datetime.now(UTC)))
    assert f"(base backup {full.id}). WAL archived without a hole from" in page
    assert "000000010000000B00000001 to 000000020000000B00000003" in page
    assert '<tr data-store="r2"><td>r2</td>' in page


def test_a_stale_full_backup_opens_one_alert_that_a_backfill_leaves_alone_and_a_fresh_one_resolves(
    stores, run_dag, airflow_env, monkeypatch
):
    set_variable(monkeypatch, {**airflow_env, "max_age_hours": {"FULL_DATABASE": 26, "WAL_ARCHIVE": None}})
    now = datetime.now(UTC)
    old = seed_backup(stores, backup_type="FULL_DATABASE", created_at=now - timedelta(hours=30))
    seed_backup(stores, backup_type="FULL_DATABASE", created_at=now - timedelta(hours=5), status="FAILED")
    hour = window_end_for(now)

    first = run_dag(logical_date=hour + timedelta(hours=1))

    assert first.state == "failed", "a stale type fails the run even when every check passed"
    assert first.statistics["integrity_failures"] == 0
    assert first.statistics["stale_types"] == ["FULL_DATABASE"]
    [stale] = open_of_kind(stores, "stale")
    assert stale["backup_id"] is None
    assert stale["severity"] == "CRITICAL"
    assert stale["details"]["backup_type"] == "FULL_DATABASE"
    assert datetime.fromisoformat(stale["details"]["newest_created_at"]) == old.created_at
    assert stale["details"]["max_age_hours"] == 26
    assert stale["details"]["newer_failed"] == 1

    again = run_dag(logical_date=hour + timedelta(hours=2))
    assert again.state == "failed"
    assert [a["id"] for a in open_of_kind(stores, "stale")] == [stale["id"]], "deduplicated while open"
    assert occurrences(stores, stale["id"]) == 2

    # A backfill (its window ended more than two hours before it started) judges no freshness.
    seed_backup(stores, backup_type="FULL_DATABASE", created_at=now - timedelta(hours=1))
    backfill = run_dag(logical_date=hour - timedelta(hours=4))
    assert backfill.state == "success"
    assert backfill.statistics["stale_types"] is None
    assert occurrences(stores, stale["id"]) == 2
    assert open_of_kind(stores, "stale")

    fresh = run_dag(logical_date=hour + timedelta(hours=3))
    assert fresh.state == "success"
    assert fresh.statistics["stale_types"] == []
    assert open_of_kind(stores, "stale") == []
    [resolved] = [a for a in alerts(stores) if a["id"] == stale["id"]]
    assert resolved["status"] == "RESOLVED"
    assert resolved["details"]["resolution"] == "fresh"


def test_a_run_given_backup_ids_judges_no_freshness(stores, run_dag, airflow_env, monkeypatch):
    set_variable(monkeypatch, {**airflow_env, "max_age_hours": {"FULL_DATABASE": 26, "WAL_ARCHIVE": None}})
    old = seed_backup(stores, backup_type="FULL_DATABASE", created_at=datetime.now(UTC) - timedelta(hours=40))

    outcome = run_dag({"backup_ids": [old.id]})

    assert outcome.state == "success"
    assert outcome.statistics["stale_types"] is None
    assert outcome.statistics["wal_chain"] is None
    assert open_of_kind(stores, "stale") == []


# ----------------------------------------------------------------------------- immutability


def locked_bucket(stores, name):
    """A moto bucket on the b2 server created with object lock (versioning comes with it)."""
    stores.b2.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return dataclasses.replace(stores, b2_bucket=name)


def test_a_required_store_without_object_lock_opens_one_alert_resolved_once_the_lock_is_enabled(
    stores, run_dag, airflow_env, monkeypatch
):
    stores.b2.create_bucket(Bucket="late-lock")
    stores.b2.put_bucket_versioning(Bucket="late-lock", VersioningConfiguration={"Status": "Enabled"})
    set_variable(monkeypatch, {**airflow_env, "b2_bucket": "late-lock", "require_object_lock": ["b2"]})
    hour = window_end_for(datetime.now(UTC))

    first = run_dag(logical_date=hour + timedelta(hours=1))

    assert first.state == "failed"
    assert "b2" in first.statistics["not_immutable"]
    assert first.statistics["immutability"]["b2"]["versioning"] == "Enabled"
    [alert] = open_of_kind(stores, "not_immutable")
    assert (alert["backup_id"], alert["severity"]) == (None, "ERROR")
    assert alert["details"]["backend"] == "b2"
    assert alert["details"]["reason"] == "lock_disabled"

    again = run_dag(logical_date=hour + timedelta(hours=2))
    assert again.state == "failed"
    assert [a["id"] for a in open_of_kind(stores, "not_immutable")] == [alert["id"]]
    assert occurrences(stores, alert["id"]) == 2

    stores.b2.put_object_lock_configuration(
        Bucket="late-lock", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )
    locked = run_dag(logical_date=hour + timedelta(hours=3))
    assert locked.state == "success"
    assert "b2" not in locked.statistics["not_immutable"]
    assert open_of_kind(stores, "not_immutable") == []
    assert (
        next(a for a in alerts(stores) if a["id"] == alert["id"])["details"]["resolution"] == "lock_enabled"
    )


def test_a_store_not_listed_is_reported_never_alerted(stores, run_dag):
    seed_backup(stores)

    outcome = run_dag()

    assert outcome.state == "success"
    assert "b2" in outcome.statistics["not_immutable"], "the default moto bucket has no object lock"
    assert outcome.statistics["immutability"]["b2"]["object_lock"] == "disabled"
    assert open_of_kind(stores, "not_immutable") == []


def test_copies_retained_too_briefly_stay_alerted_until_a_later_retention_read_finds_them_long_enough(
    stores, run_dag, airflow_env, monkeypatch
):
    locked = locked_bucket(stores, "locked-b2")
    set_variable(
        monkeypatch,
        {
            **airflow_env,
            "b2_bucket": "locked-b2",
            "require_object_lock": ["b2"],
            "min_retention_days": {"b2": 30},
            "expected_backends": {"FULL_DATABASE": ["b2"]},
        },
    )
    now = datetime.now(UTC)
    long_kept = seed_backup(locked, on=("b2",))
    briefly_kept = seed_backup(locked, on=("b2",))
    never_kept = seed_backup(locked, on=("b2",))
    for backup, days in ((long_kept, 60), (briefly_kept, 5)):
        stores.b2.put_object_retention(
            Bucket="locked-b2",
            Key=backup.paths["b2"],
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": backup.created_at + timedelta(days=days)},
        )
    hour = window_end_for(now)

    first = run_dag({"mode": "full"}, logical_date=hour + timedelta(hours=1))

    assert first.state == "failed"
    assert first.statistics["integrity_failures"] == 0
    assert first.statistics["retention_short"] == 2
    assert "b2" not in first.statistics["not_immutable"]
    assert open_of_kind(stores, "not_immutable") == []
    short = {a["backup_id"]: a for a in open_of_kind(stores, "retention_short")}
    assert set(short) == {briefly_kept.id, never_kept.id}
    brief = short[briefly_kept.id]
    assert brief["severity"] == "ERROR"
    assert brief["details"]["backend"] == "b2"
    assert datetime.fromisoformat(brief["details"]["retain_until"]) == briefly_kept.created_at + timedelta(
        days=5
    )
    assert short[never_kept.id]["details"]["retain_until"] is None

    # Retention extended; an ordinary pass (quick mode reads nothing) does not resolve the alert.
    stores.b2.put_object_retention(
        Bucket="locked-b2",
        Key=briefly_kept.paths["b2"],
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": now + timedelta(days=90)},
    )
    quick = run_dag({"mode": "quick"}, logical_date=hour + timedelta(hours=2))
    assert quick.statistics["checks_passed"] == 3
    assert {a["backup_id"] for a in open_of_kind(stores, "retention_short")} == {
        briefly_kept.id,
        never_kept.id,
    }
    assert occurrences(stores, brief["id"]) == 2

    reread = run_dag({"mode": "full"}, logical_date=hour + timedelta(hours=3))
    assert reread.statistics["retention_short"] == 1
    assert {a["backup_id"] for a in open_of_kind(stores, "retention_short")} == {never_kept.id}
    resolved = next(a for a in alerts(stores) if a["id"] == brief["id"])
    assert resolved["status"] == "RESOLVED"
    assert resolved["details"]["resolution"] == "retention_long_enough"


# ----------------------------------------------------------------------------- cost


def test_the_runs_cost_is_its_own_request_counts_at_the_issues_prices(stores, run_dag):
    for backup_type in ("FULL_DATABASE", "TENANT_BACKUP", "WAL_ARCHIVE"):
        seed_backup(stores, backup_type=backup_type)

    outcome = run_dag({"mode": "full"})

    stats = outcome.statistics
    assert outcome.state == "success"
    counted = stats["requests_sent"]  # what was sent, the bucket probe's reads included
    for store, n in stats["bucket_probe_requests"].items():
        assert counted[store]["bucket_config"] == n
    for store in ("r2", "b2"):  # no fault: each request asked was sent once
        assert {k: counted[store][k] for k in stats["requests"][store]} == stats["requests"][store]
    assert counted["b2"]["get"] == 3, "full mode read every copy on b2"
    # R2: Class A $4.50 per million (listings), Class B $0.36 per million (HEAD, GET, bucket
    # configuration reads), free egress. B2: list $0.004 per 1,000, HEAD/GET $0.004 per 10,000,
    # download $0.01 per GB.
    r2 = counted["r2"]
    expected_r2 = (
        r2.get("list", 0) * 4.50 + (r2.get("head", 0) + r2.get("get", 0) + r2.get("bucket_config", 0)) * 0.36
    ) / 1e6
    b2 = counted["b2"]
    expected_b2 = (
        b2.get("list", 0) * 0.004 / 1000
        + (b2.get("head", 0) + b2.get("get", 0) + b2.get("bucket_config", 0)) * 0.004 / 10000
        + stats["bytes_read_by_store"]["b2"] / 1e9 * 0.01
    )
    cost = stats["estimated_cost_usd"]
    assert cost["r2"] == pytest.approx(expected_r2)
    assert cost["b2"] == pytest.approx(expected_b2)
    assert cost["local"] == 0
    assert cost["total"] == pytest.approx(expected_r2 + expected_b2)
    assert cost["r2"] > 0
    assert stats["estimated_cost_unpriced"] == []


def test_a_store_whose_prices_are_removed_is_unpriced(stores, run_dag, airflow_env, monkeypatch):
    set_variable(monkeypatch, {**airflow_env, "prices": {"b2": None}})
    seed_backup(stores)

    outcome = run_dag()

    assert outcome.statistics["estimated_cost_usd"]["b2"] == 0
    assert outcome.statistics["estimated_cost_unpriced"] == ["b2"]
    assert outcome.statistics["estimated_cost_usd"]["r2"] > 0
