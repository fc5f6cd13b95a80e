"""Freshness, WAL continuity and the recovery window in the hourly verifier, end to end.

Real PostgreSQL, moto/SeaweedFS buckets and ``dag.test()``; every assertion is about
alert rows, the run's statistics and its state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devtools.seed import seed_backup
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
    summary = open_of_kind(stores, "summary")
    assert len(summary) == 1
    assert {g["id"] for g in gaps} <= set(summary[0]["details"]["alert_ids"])

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
