"""Freshness verdicts, the recovery alerts' plan and their place in the run's summary (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.backup_integrity.config.settings import ConfigError, Settings, parse_settings
from include.backup_integrity.domain.alerts import SUMMARY, OpenAlert, plan_alert_changes
from include.backup_integrity.domain.freshness import NewestOfType, is_backfill, judge_freshness
from include.backup_integrity.domain.immutability import (
    LOCK_DISABLED,
    LOCK_ENABLED,
    UNVERIFIABLE,
    BucketProtection,
    not_immutable_reason,
)
from include.backup_integrity.domain.records import MISSING
from include.backup_integrity.domain.recovery import (
    NOT_IMMUTABLE,
    RETENTION_SHORT,
    STALE,
    WAL_GAP,
    plan_recovery,
)
from include.backup_integrity.domain.statistics import run_failed
from tests.support.records import check_result

END = datetime(2026, 3, 1, 12, tzinfo=UTC)
RUN = "scheduled__2026-03-01T11:00:00+00:00"


def verdict(backup_type="FULL_DATABASE", age_hours=None, limit=26, newer_failed=0):
    created = END - timedelta(hours=age_hours) if age_hours is not None else None
    return judge_freshness(NewestOfType(backup_type, created, newer_failed), limit, END)


def hole(first="000000010000000A000000FF", last="000000010000000B00000000", reason="not_in_catalog"):
    return {
        "timeline": "00000001",
        "first_missing": first,
        "last_missing": last,
        "missing_count": 2,
        "reason": reason,
    }


def judgement(freshness=(), holes=(), as_of=END):
    return {
        "as_of": as_of.isoformat(),
        "run_id": RUN,
        "freshness": [vars(v) for v in freshness] if freshness is not None else None,
        "wal_holes": list(holes) if holes is not None else None,
    }


def open_alert(alert_id, kind, last_seen, **details):
    return OpenAlert(alert_id, None, "CRITICAL", "ACTIVE", {"kind": kind, "last_seen": last_seen, **details})


def test_freshness_is_judged_against_the_window_end():
    assert not verdict(age_hours=25).stale
    assert verdict(age_hours=27).stale
    none = verdict(age_hours=None, newer_failed=3)
    assert none.stale
    assert none.newest_created_at is None
    assert none.newer_failed == 3


def test_a_window_that_ended_more_than_two_hours_before_the_run_is_a_backfill():
    assert not is_backfill(END, END + timedelta(hours=2))
    assert is_backfill(END, END + timedelta(hours=2, seconds=1))


def test_a_stale_type_opens_one_alert_with_the_issue_details():
    changes = plan_recovery([], judgement([verdict(age_hours=30, newer_failed=2)]), RUN)
    [finding] = changes.findings
    assert finding.key == (None, "FULL_DATABASE", STALE)
    assert finding.severity == "CRITICAL"
    assert finding.details["kind"] == STALE
    assert finding.details["backup_id"] is None
    assert finding.details["newest_created_at"] == (END - timedelta(hours=30)).isoformat()
    assert finding.details["max_age_hours"] == 26
    assert finding.details["newer_failed"] == 2


def test_an_open_stale_alert_is_observed_again_and_resolved_by_a_fresh_verdict():
    earlier = (END - timedelta(hours=1)).isoformat()
    alert = open_alert(7, STALE, earlier, backup_type="FULL_DATABASE")
    plan = plan_alert_changes(
        [alert], [], RUN, recovery=plan_recovery([alert], judgement([verdict(age_hours=30)]), RUN)
    )
    assert [o.alert_id for o in plan.observed] == [7]
    assert plan.new == []
    fresh = plan_recovery([alert], judgement([verdict(age_hours=1)]), RUN)
    assert [c.alert_id for c in fresh.cleared] == [7]
    # An older window (a concurrent run) does not resolve what a newer one saw.
    older = plan_recovery([alert], judgement([verdict(age_hours=1)], as_of=END - timedelta(hours=2)), RUN)
    assert older.cleared == []
    # Not judged (a backfill): nothing changes.
    assert plan_recovery([alert], judgement(None), RUN).cleared == []


def test_wal_gaps_deduplicate_on_timeline_and_first_missing_and_resolve_when_gone():
    earlier = (END - timedelta(hours=1)).isoformat()
    gap = open_alert(3, WAL_GAP, earlier, timeline="00000001", first_missing="000000010000000A000000FF")
    same = plan_recovery([gap], judgement(holes=[hole()]), RUN)
    plan = plan_alert_changes([gap], [], RUN, recovery=same)
    assert [o.alert_id for o in plan.observed] == [3]
    assert plan.new == []
    # Filled partly: the old hole is resolved, what remains opens as a new one.
    partly = plan_recovery([gap], judgement(holes=[hole(first="000000010000000B00000000")]), RUN)
    assert [c.alert_id for c in partly.cleared] == [3]
    assert partly.findings[0].details["first_missing"] == "000000010000000B00000000"
    assert plan_recovery([gap], judgement(holes=None), RUN).cleared == []


def test_recovery_findings_count_in_the_summary():
    recovery = plan_recovery([], judgement([verdict(age_hours=30)], holes=[hole()]), RUN)
    plan = plan_alert_changes([], [check_result("b-1", "r2", MISSING)], RUN, recovery=recovery)
    assert len(plan.new) == 3
    assert plan.summary is not None
    assert (None, "FULL_DATABASE", STALE) in plan.summary.failure_keys
    assert (None, "00000001:000000010000000A000000FF", WAL_GAP) in plan.summary.failure_keys
    # The general planner never resolves a recovery alert by a pass.
    summary = OpenAlert(9, None, "CRITICAL", "ACTIVE", {"kind": SUMMARY})
    gap = open_alert(3, WAL_GAP, END.isoformat(), timeline="00000001", first_missing="X")
    assert plan_alert_changes([gap, summary], [], RUN).resolved == []


def test_a_recovery_failure_fails_the_run():
    assert run_failed({"checks_total": 2, "checks_passed": 2, "recovery_failures": 1})
    assert not run_failed({"checks_total": 2, "checks_passed": 2, "recovery_failures": 0})


def test_map_keys_merge_over_their_defaults_and_null_removes():
    settings = parse_settings({"max_age_hours": {"WAL_ARCHIVE": None, "CONFIGURATION": 48}})
    assert settings.max_age_hours == {"FULL_DATABASE": 26, "WAL_ARCHIVE": None, "CONFIGURATION": 48}
    assert Settings.from_dict(settings.to_dict()) == settings
    assert parse_settings(None).max_age_hours == {"FULL_DATABASE": 26, "WAL_ARCHIVE": 2}
    prices = parse_settings({"prices": {"b2": None, "r2": {"list_per_million": 5}}}).prices
    assert prices["b2"] is None
    assert prices["r2"] == {
        "list_per_million": 5.0,
        "head_per_million": 0.0,
        "get_per_million": 0.0,
        "put_per_million": 0.0,
        "egress_per_gb": 0.0,
    }
    assert parse_settings(None).prices["r2"]["list_per_million"] == 4.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"max_age_hours": {"FULL_DATABASE": 0}}, "'max_age_hours': type 'FULL_DATABASE' must map"),
        ({"max_age_hours": []}, "'max_age_hours': expected an object"),
        ({"base_backup_type": 3}, "'base_backup_type': expected null or a backup_type"),
        ({"require_object_lock": ["s3"]}, "'require_object_lock': unknown store(s) ['s3']"),
        ({"min_retention_days": {"b2": -1}}, "'min_retention_days': store 'b2' must map"),
        ({"prices": {"r2": {"egress": 1}}}, "unknown price(s) ['egress']"),
        ({"prices": {"r2": {"list_per_million": True}}}, "r2.list_per_million must be a number"),
    ],
)
def test_bad_recovery_keys_are_refused_by_name(value, message):
    with pytest.raises(ConfigError) as error:
        parse_settings(value)
    assert message in str(error.value)


# ----------------------------------------------------------------------------- immutability


def test_a_lock_not_in_force_is_disabled_or_unverifiable():
    assert not_immutable_reason(BucketProtection("b2", "Enabled", LOCK_ENABLED)) is None
    assert not_immutable_reason(BucketProtection("b2", "Disabled", LOCK_DISABLED)) == "lock_disabled"
    assert (
        not_immutable_reason(BucketProtection("r2", None, UNVERIFIABLE, error="NotImplemented"))
        == "unverifiable"
    )


def store(backend="b2", reason="lock_disabled"):
    return {"backend": backend, "reason": reason, "versioning": "Enabled", "error": None}


def test_a_required_store_without_a_lock_opens_not_immutable_and_resolves_when_enabled():
    [finding] = plan_recovery([], {**judgement(None, None), "immutability": [store()]}, RUN).findings
    assert finding.key == (None, "b2", NOT_IMMUTABLE)
    assert finding.severity == "ERROR"
    assert (finding.details["backend"], finding.details["reason"]) == ("b2", "lock_disabled")
    alert = OpenAlert(
        4,
        None,
        "ERROR",
        "ACTIVE",
        {"kind": NOT_IMMUTABLE, "backend": "b2", "last_seen": "2026-03-01T10:00:00+00:00"},
    )
    enabled = plan_recovery([alert], {**judgement(None, None), "immutability": [store(reason=None)]}, RUN)
    assert [c.alert_id for c in enabled.cleared] == [4]


def read(short, read_at="2026-03-01T11:30:00+00:00", retain_until=None):
    return {
        "backup_id": "b-1",
        "backend": "b2",
        "created_at": "2026-03-01T09:00:00+00:00",
        "retain_until": retain_until,
        "read_at": read_at,
        "min_retention_days": 30,
        "short": short,
    }


def test_retention_short_resolves_only_by_a_later_retention_read():
    [finding] = plan_recovery([], {**judgement(None, None), "retention": [read(True)]}, RUN).findings
    assert finding.key == ("b-1", "b2", RETENTION_SHORT)
    assert finding.details["retain_until"] is None
    assert finding.seen_at == "2026-03-01T11:30:00+00:00"
    alert = OpenAlert(
        5,
        "b-1",
        "ERROR",
        "ACTIVE",
        {"kind": RETENTION_SHORT, "backend": "b2", "last_seen": "2026-03-01T11:30:00+00:00"},
    )
    same_read = plan_recovery([alert], {**judgement(None, None), "retention": [read(False)]}, RUN)
    assert same_read.cleared == [], "a read no later than the alert's last sighting does not resolve it"
    later = read(False, read_at="2026-03-01T12:30:00+00:00", retain_until="2026-06-01T00:00:00+00:00")
    assert [
        c.alert_id
        for c in plan_recovery([alert], {**judgement(None, None), "retention": [later]}, RUN).cleared
    ] == [5]
    # An ordinary pass of the copy says nothing about retention.
    passed = check_result("b-1", "b2", "passed", checked_at="2026-03-01T13:00:00+00:00")
    assert plan_alert_changes([alert], [passed], RUN).resolved == []
