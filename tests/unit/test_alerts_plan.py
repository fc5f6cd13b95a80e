"""What a run does to the alerts: open, observe, resolve, summarise (the pure plan only)."""

from __future__ import annotations

import pytest

from include.backup_integrity.domain.alerts import (
    SUMMARY,
    CountedFailure,
    OpenAlert,
    covers,
    fingerprint_of,
    highest_severity,
    opened_notice,
    plan_alert_changes,
    repaired_notice,
    resolved_notice,
    store_answered,
    summary_content,
)
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_SERVER_SHA256,
    EVIDENCE_SIZE,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
)
from tests.support.records import CHECKED_AT, EARLIER, LATER, check_result

RUN_ID = "scheduled__2026-03-01T11:00:00+00:00"


def open_alert(alert_id, backup_id, backend, kind, *, last_seen=EARLIER, **details):
    return OpenAlert(
        id=alert_id,
        backup_id=backup_id,
        severity="CRITICAL",
        status="ACTIVE",
        details={"kind": kind, "backend": backend, "last_seen": last_seen, **details},
    )


def resolved_ids(plan):
    return [r.alert_id for r in plan.resolved]


# ----------------------------------------------------------------------------- opening and observing


def test_a_new_failure_opens_an_alert():
    plan = plan_alert_changes([], [check_result("b-1", "r2", MISSING)], RUN_ID)

    assert len(plan.new) == 1
    alert = plan.new[0]
    assert alert.key == ("b-1", "r2", MISSING)
    assert alert.severity == "CRITICAL"
    assert alert.message.startswith("Backup b-1: missing on r2. ")
    assert alert.details["first_seen"] == alert.details["last_seen"] == CHECKED_AT
    assert alert.details["occurrences"] == 1
    assert (alert.details["kind"], alert.details["backend"], alert.details["run_id"]) == (
        MISSING,
        "r2",
        RUN_ID,
    )
    assert (plan.observed, plan.resolved, plan.summary) == ([], [], None)


def test_a_failure_with_an_open_alert_is_observed_not_opened_again():
    existing = open_alert(7, "b-1", "r2", MISSING)

    plan = plan_alert_changes([existing], [check_result("b-1", "r2", MISSING, checked_at=LATER)], RUN_ID)

    assert plan.new == []
    assert [(o.alert_id, o.checked_at) for o in plan.observed] == [(7, LATER)]
    assert plan.resolved == []


def test_the_same_backup_failing_otherwise_opens_another_alert():
    existing = open_alert(7, "b-1", "r2", MISSING)

    plan = plan_alert_changes([existing], [check_result("b-1", "r2", SIZE_MISMATCH)], RUN_ID)

    assert [a.key for a in plan.new] == [("b-1", "r2", SIZE_MISMATCH)]
    assert plan.observed == []


def test_backend_errors_are_grouped_into_one_alert_per_backend():
    results = [
        check_result("b-3", "r2", BACKEND_ERROR, message="r2 could not be checked: timeout"),
        check_result("b-1", "r2", BACKEND_ERROR, message="r2 could not be checked: timeout"),
        check_result("b-2", "r2", BACKEND_ERROR, message="r2 could not be checked: 503"),
        check_result("b-1", "b2", BACKEND_ERROR, message="b2 could not be checked: 403"),
        check_result("b-1", "local", PASSED),
    ]

    plan = plan_alert_changes([], results, RUN_ID)

    by_key = {a.key: a for a in plan.new}
    assert set(by_key) == {(None, "r2", BACKEND_ERROR), (None, "b2", BACKEND_ERROR)}
    r2 = by_key[(None, "r2", BACKEND_ERROR)]
    assert r2.severity == "ERROR"
    assert r2.details["affected_backup_ids"] == ["b-1", "b-2", "b-3"]
    assert r2.details["affected_count"] == 3
    assert r2.details["reason"] == "r2 could not be checked: timeout"  # the most common error
    assert r2.message.startswith("r2 could not be checked for 3 backup(s)")


def test_a_backend_error_alert_still_failing_is_observed():
    existing = open_alert(4, None, "b2", BACKEND_ERROR)

    plan = plan_alert_changes(
        [existing], [check_result("b-9", "b2", BACKEND_ERROR, checked_at=LATER)], RUN_ID
    )

    assert plan.new == []
    assert [o.alert_id for o in plan.observed] == [4]
    assert plan.resolved == []


# ----------------------------------------------------------------------------- resolving


@pytest.mark.parametrize(
    ("evidence", "resolves"),
    [(EVIDENCE_SIZE, False), (EVIDENCE_SERVER_SHA256, True), (EVIDENCE_CONTENT, True)],
)
def test_a_checksum_mismatch_is_resolved_only_by_a_content_verification(evidence, resolves):
    existing = open_alert(3, "b-1", "local", CHECKSUM_MISMATCH)
    passed = check_result("b-1", "local", PASSED, evidence=evidence, mode="full", checked_at=LATER)

    plan = plan_alert_changes([existing], [passed], RUN_ID)

    assert resolved_ids(plan) == ([3] if resolves else [])


def test_a_later_pass_resolves_a_missing_alert():
    existing = open_alert(5, "b-1", "r2", MISSING)
    passed = check_result("b-1", "r2", PASSED, evidence=EVIDENCE_SIZE, checked_at=LATER)

    plan = plan_alert_changes([existing], [passed], RUN_ID)

    assert len(plan.resolved) == 1
    resolution = plan.resolved[0]
    assert (resolution.alert_id, resolution.resolved_at) == (5, LATER)
    assert resolution.details == {
        "resolution": "verified",
        "resolved_by_run_id": RUN_ID,
        "resolved_by": {"kind": PASSED, "evidence": EVIDENCE_SIZE, "mode": "quick"},
    }
    assert RUN_ID in resolution.message


@pytest.mark.parametrize("checked_at", [EARLIER, "2026-03-01T09:00:00+00:00"])
def test_a_pass_not_later_than_the_last_failure_resolves_nothing(checked_at):
    existing = open_alert(5, "b-1", "r2", MISSING, last_seen=EARLIER)

    plan = plan_alert_changes([existing], [check_result("b-1", "r2", PASSED, checked_at=checked_at)], RUN_ID)

    assert plan.resolved == []


def test_a_pass_on_another_backend_resolves_nothing():
    existing = open_alert(5, "b-1", "r2", MISSING)

    plan = plan_alert_changes([existing], [check_result("b-1", "b2", PASSED, checked_at=LATER)], RUN_ID)

    assert plan.resolved == []


def test_an_invalid_record_stays_open_until_the_backup_passes():
    existing = open_alert(6, "b-1", "local", INVALID_RECORD)

    plan = plan_alert_changes([existing], [check_result("b-1", "local", MISSING, checked_at=LATER)], RUN_ID)

    assert resolved_ids(plan) == [], "a fixed row whose file is missing is not verified good"
    assert [a.key for a in plan.new] == [("b-1", "local", MISSING)]

    plan = plan_alert_changes([existing], [check_result("b-1", "local", PASSED, checked_at=LATER)], RUN_ID)

    assert resolved_ids(plan) == [6]


def test_an_unknown_type_alert_is_resolved_once_the_backup_is_checked():
    existing = open_alert(8, "b-1", None, INVALID_RECORD)
    results = [check_result("b-1", b, PASSED, checked_at=LATER) for b in ("local", "r2", "b2")]

    plan = plan_alert_changes([existing], results, RUN_ID)

    assert resolved_ids(plan) == [8]


@pytest.mark.parametrize(
    ("answer", "resolves"),
    [
        (check_result("b-1", "r2", PASSED, checked_at=LATER), True),
        (check_result("b-1", "r2", MISSING, checked_at=LATER), True),
        (check_result("b-1", "r2", CHECKSUM_MISMATCH, checked_at=LATER), True),
        (check_result("b-1", "r2", PASSED, checked_at=EARLIER), False),
        (check_result("b-1", "r2", MISSING, checked_at=LATER, path=None), False),  # catalog-only
        (check_result("b-1", "r2", INVALID_RECORD, checked_at=LATER), False),
        (check_result("b-1", "b2", PASSED, checked_at=LATER), False),
    ],
)
def test_a_backend_error_alert_is_resolved_when_its_backend_answers(answer, resolves):
    existing = open_alert(2, None, "r2", BACKEND_ERROR)

    plan = plan_alert_changes([existing], [answer], RUN_ID)

    assert resolved_ids(plan) == ([2] if resolves else [])
    if resolves:
        assert plan.resolved[0].resolved_at == LATER


def test_a_backend_error_alert_stays_open_while_the_backend_still_errs():
    existing = open_alert(2, None, "r2", BACKEND_ERROR)
    results = [
        check_result("b-1", "r2", PASSED, checked_at=LATER),
        check_result("b-2", "r2", BACKEND_ERROR, checked_at=LATER),
    ]

    plan = plan_alert_changes([existing], results, RUN_ID)

    assert plan.resolved == []
    assert [o.alert_id for o in plan.observed] == [2]


# ----------------------------------------------------------------------------- the summary


def test_a_single_failure_has_no_summary():
    plan = plan_alert_changes([], [check_result("b-1", "r2", MISSING), check_result("b-2", "r2")], RUN_ID)

    assert plan.summary is None


def test_several_failures_ask_for_a_summary():
    results = [check_result("b-1", "r2", MISSING), check_result("b-2", "b2", BACKEND_ERROR, checked_at=LATER)]

    summary = plan_alert_changes([], results, RUN_ID).summary

    assert summary is not None
    assert (summary.existing_id, summary.existing_fingerprint, summary.checked_at) == (None, None, LATER)
    assert summary.failure_keys == [("b-1", "r2", MISSING), (None, "b2", BACKEND_ERROR)]


def summary_alert(alert_id, counted):
    return OpenAlert(
        alert_id, None, "CRITICAL", "ACTIVE", {"kind": SUMMARY, "fingerprint": fingerprint_of(counted)}
    )


def test_an_open_summary_is_updated_by_a_run_with_a_single_failure():
    counted = [CountedFailure("b-1", "r2", MISSING), CountedFailure("b-2", "r2", MISSING)]

    plan = plan_alert_changes([summary_alert(11, counted)], [check_result("b-1", "r2", MISSING)], RUN_ID)
    summary = plan.summary

    assert summary is not None
    assert (summary.existing_id, summary.existing_fingerprint) == (11, fingerprint_of(counted))
    assert summary.failure_keys == [("b-1", "r2", MISSING)]


def test_summary_content_counts_failed_checks_and_takes_the_highest_severity():
    counted = [
        CountedFailure("b-1", "r2", MISSING),
        CountedFailure(None, "b2", BACKEND_ERROR, checks=3),
        CountedFailure("b-2", "local", INVALID_RECORD),
    ]

    severity, message, details = summary_content(counted, RUN_ID)

    assert severity == "CRITICAL"
    assert details["kind"] == SUMMARY
    assert details["counts"] == {MISSING: 1, BACKEND_ERROR: 3, INVALID_RECORD: 1}
    assert (details["missing_files"], details["backend_errors"], details["invalid_records"]) == (1, 3, 1)
    assert (details["failed_checks"], details["failed_backups"]) == (5, 2)
    assert details["fingerprint"] == fingerprint_of(counted)
    assert "5 integrity failures" in message
    assert summary_content([CountedFailure(None, "b2", BACKEND_ERROR, checks=2)], RUN_ID)[0] == "ERROR"


def test_the_summary_is_neither_observed_nor_resolved_as_an_alert():
    plan = plan_alert_changes(
        [summary_alert(11, [])], [check_result("b-1", "r2", PASSED, checked_at=LATER)], RUN_ID
    )

    assert (plan.new, plan.observed, plan.resolved, plan.summary) == ([], [], [], None)


# ----------------------------------------------------------------------------- helpers


def test_the_fingerprint_is_the_set_of_failures():
    a, b = CountedFailure("b-1", "r2", MISSING), CountedFailure("b-2", None, INVALID_RECORD)

    assert fingerprint_of([a, b]) == fingerprint_of([b, a, a])
    assert fingerprint_of([a, b]) != fingerprint_of([a])
    assert fingerprint_of([a]) != fingerprint_of([CountedFailure("b-1", "r2", SIZE_MISMATCH)])
    assert fingerprint_of([CountedFailure(None, "b2", BACKEND_ERROR, checks=2)]) == fingerprint_of(
        [CountedFailure(None, "b2", BACKEND_ERROR, checks=5)]
    ), "how many checks an outage affects does not change which failures are open"


@pytest.mark.parametrize(
    ("alert_kind", "kind", "evidence", "expected"),
    [
        (MISSING, PASSED, EVIDENCE_SIZE, True),
        (MISSING, SIZE_MISMATCH, None, False),
        (MISSING, CHECKSUM_MISMATCH, EVIDENCE_CONTENT, False),
        (MISSING, MISSING, None, False),
        (MISSING, BACKEND_ERROR, None, False),
        (SIZE_MISMATCH, PASSED, EVIDENCE_SIZE, True),
        (SIZE_MISMATCH, CHECKSUM_MISMATCH, EVIDENCE_CONTENT, False),
        (SIZE_MISMATCH, MISSING, None, False),
        (CHECKSUM_MISMATCH, PASSED, EVIDENCE_SIZE, False),
        (CHECKSUM_MISMATCH, PASSED, EVIDENCE_CONTENT, True),
        (CHECKSUM_MISMATCH, PASSED, EVIDENCE_SERVER_SHA256, True),
        (CHECKSUM_MISMATCH, SIZE_MISMATCH, None, False),
        (INVALID_RECORD, MISSING, None, False),
        (INVALID_RECORD, PASSED, EVIDENCE_SIZE, True),
        (INVALID_RECORD, INVALID_RECORD, None, False),
        (INVALID_RECORD, BACKEND_ERROR, None, False),
        (BACKEND_ERROR, PASSED, EVIDENCE_CONTENT, False),
    ],
)
def test_what_a_check_proves_about_an_alert(alert_kind, kind, evidence, expected):
    assert covers(alert_kind, check_result("b-1", "r2", kind, evidence=evidence)) is expected


@pytest.mark.parametrize(
    ("kind", "path", "answered"),
    [
        (PASSED, "x", True),
        (SIZE_MISMATCH, "x", True),
        (CHECKSUM_MISMATCH, "x", True),
        (MISSING, "x", True),
        (MISSING, None, False),
        (BACKEND_ERROR, "x", False),
        (INVALID_RECORD, "x", False),
    ],
)
def test_store_answered(kind, path, answered):
    assert store_answered(check_result("b-1", "r2", kind, path=path)) is answered


@pytest.mark.parametrize(
    ("severities", "highest"),
    [
        (["ERROR", "CRITICAL", "INFO"], "CRITICAL"),
        (["WARNING", "ERROR"], "ERROR"),
        ([], "ERROR"),
        (["INFO"], "INFO"),
    ],
)
def test_highest_severity(severities, highest):
    assert highest_severity(severities) == highest


def test_each_notice_says_what_changed_and_where():
    plan = plan_alert_changes([], [check_result("b-1", "r2", MISSING)], RUN_ID)
    title, body = opened_notice(plan.new[0])
    assert title == "[CRITICAL] Backup integrity: missing on r2"
    assert body.startswith(plan.new[0].message)
    assert "backup_id: b-1" in body

    resolved = plan_alert_changes(
        [open_alert(7, "b-1", "r2", MISSING)], [check_result("b-1", "r2", PASSED, checked_at=LATER)], RUN_ID
    ).resolved[0]
    title, body = resolved_notice(resolved, "Backup b-1: missing on r2.", {"kind": MISSING, "backend": "r2"})
    assert title == "[RESOLVED] Backup integrity: missing on r2"
    assert body == f"Resolved: {resolved.message}\n\nWas: Backup b-1: missing on r2."

    outcome = {
        "source_backend": "local",
        "source_path": "db/full.dump",
        "path": "db/full.dump",
        "sha256": "ab" * 32,
        "repaired_at": LATER,
    }
    title, body = repaired_notice("Backup b-1: missing on r2.", {"kind": MISSING, "backend": "r2"}, outcome)
    assert title == "[REPAIRED] Backup integrity: missing on r2, restored from local"
    assert body.startswith("Found: Backup b-1: missing on r2.\n")
    assert "Repaired: copied db/full.dump from local to r2" in body
