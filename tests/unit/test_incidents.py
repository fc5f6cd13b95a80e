"""Backend incidents, the pure part: tallies, the rule, what a run does to open incidents and alerts."""

from __future__ import annotations

import pytest

from include.backup_integrity.config.settings import ConfigError, Settings, parse_settings
from include.backup_integrity.domain.alerts import OpenAlert, plan_alert_changes
from include.backup_integrity.domain.incidents import (
    BACKEND_INCIDENT,
    REPAIR_REFUSAL,
    SAMPLE_SIZE,
    BackendTally,
    IncidentRule,
    OpenIncident,
    assess_run,
    outside_incidents,
    tally_backends,
)
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
    ChunkOutcome,
    pack_ids,
)
from include.backup_integrity.domain.repair import REFUSED, plan_repairs
from include.backup_integrity.tasks.incidents import (
    held_backends,
    open_incidents_for_plan,
    refuse_repairs_on,
    rule_of,
)
from tests.support.records import CHECKED_AT, EARLIER, LATER, check_result

RUN_ID = "scheduled__2026-03-01T11:00:00+00:00"
RULE = IncidentRule(min_copies=20, ratio=0.5)


def chunk(backend, *, passed=(), failures=(), checked_at=CHECKED_AT) -> ChunkOutcome:
    return ChunkOutcome(
        backend=backend,
        label=f"{backend} 1/1",
        mode="quick",
        checked_at=checked_at,
        failures=list(failures),
        passed={"size": pack_ids(passed)} if passed else {},
        objects=len(passed) + len(failures),
        objects_read=0,
        bytes_read=0,
        requests={},
    )


def ids(prefix, count):
    return [f"{prefix}-{i:03d}" for i in range(count)]


def failing(backend, kind, backup_ids, *, checked_at=CHECKED_AT, path="db/full.dump"):
    return [check_result(b, backend, kind, checked_at=checked_at, path=path) for b in backup_ids]


def open_alert(alert_id, backup_id, backend, kind, *, last_seen=EARLIER, **details):
    return OpenAlert(
        id=alert_id,
        backup_id=backup_id,
        severity="CRITICAL",
        status="ACTIVE",
        details={"kind": kind, "backend": backend, "last_seen": last_seen, **details},
    )


def incident_alert(alert_id, backend, *, last_seen=EARLIER):
    return open_alert(alert_id, None, backend, BACKEND_INCIDENT, last_seen=last_seen)


def empty_local_run(count=40, *, checked_at=CHECKED_AT):
    """Every local copy missing, every r2 copy there: the unmounted volume."""
    backups = ids("b", count)
    outcomes = [
        chunk(
            "local", failures=failing("local", MISSING, backups, checked_at=checked_at), checked_at=checked_at
        ),
        chunk("r2", passed=backups, checked_at=checked_at),
    ]
    return backups, outcomes


# ----------------------------------------------------------------------------- tallies


def test_a_tally_counts_what_the_store_answered_and_nothing_the_catalog_decided():
    outcome = chunk(
        "local",
        passed=ids("p", 30),
        failures=[
            *failing("local", MISSING, ids("m", 25)),
            *failing("local", MISSING, ids("u", 2), path=None),  # not recorded in catalog
            *failing("local", BACKEND_ERROR, ["e-1"]),
            *failing("local", INVALID_RECORD, ["i-1"]),
            *failing("local", SIZE_MISMATCH, ["s-1"]),
            *failing("local", CHECKSUM_MISMATCH, ["c-1"]),
        ],
    )
    unroutable = check_result("x-1", None, INVALID_RECORD)

    tally = tally_backends([outcome], [unroutable])

    assert list(tally) == ["local"]
    local = tally["local"]
    assert local.answered == 30 + 25 + 1 + 1
    assert local.kinds == {MISSING: 25, SIZE_MISMATCH: 1}
    assert local.affected == 26
    assert len(local.sample) == SAMPLE_SIZE
    assert list(local.sample) == sorted([*ids("m", 25), "s-1"])[:SAMPLE_SIZE]
    assert local.checked_at == CHECKED_AT


def test_passes_of_several_chunks_of_one_backend_add_up():
    tally = tally_backends(
        [
            chunk("r2", passed=ids("a", 10), checked_at=EARLIER),
            chunk("r2", passed=ids("b", 15), failures=failing("r2", MISSING, ["m-1"])),
        ]
    )

    assert tally["r2"].answered == 26
    assert tally["r2"].checked_at == CHECKED_AT


@pytest.mark.parametrize(
    ("affected", "answered", "incident"),
    [
        (20, 40, True),  # exactly the minimum and exactly the ratio
        (19, 19, False),  # all of them, but too few
        (20, 41, False),  # enough, but under half
        (40, 40, True),
        (3, 40, False),
    ],
)
def test_the_rule_needs_both_enough_copies_and_the_ratio(affected, answered, incident):
    tally = BackendTally("local", answered=answered, kinds={MISSING: affected})

    assert RULE.is_incident(tally) is incident


def test_missing_locations_and_backend_errors_never_make_an_incident():
    outcome = chunk(
        "b2",
        failures=[
            *failing("b2", MISSING, ids("u", 30), path=None),
            *failing("b2", BACKEND_ERROR, ids("e", 30)),
            *failing("b2", MISSING, ids("m", 19)),
        ],
    )

    assert assess_run([outcome], [], RULE).found == []


def test_the_rule_comes_from_the_variable_and_is_validated():
    settings = parse_settings({"incident_min_copies": 5, "incident_ratio": 0.8})
    assert rule_of(settings) == IncidentRule(min_copies=5, ratio=0.8)
    defaults = parse_settings(None)
    assert (defaults.incident_min_copies, defaults.incident_ratio) == (20, 0.5)
    assert parse_settings({"incident_ratio": 1}).incident_ratio == 1.0


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("incident_min_copies", 0, r"key 'incident_min_copies': must be >= 1"),
        ("incident_min_copies", "20", r"key 'incident_min_copies': expected an integer"),
        ("incident_min_copies", True, r"key 'incident_min_copies': expected an integer"),
        ("incident_ratio", 0, r"key 'incident_ratio': expected a number > 0 and <= 1"),
        ("incident_ratio", 1.5, r"key 'incident_ratio': expected a number > 0 and <= 1"),
        ("incident_ratio", "half", r"key 'incident_ratio': expected a number > 0 and <= 1"),
        ("incident_ratio", None, r"key 'incident_ratio': expected a number > 0 and <= 1"),
    ],
)
def test_bad_incident_keys_fail_naming_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        parse_settings({key: value})


# ----------------------------------------------------------------------------- open incidents


def test_a_run_in_incident_opens_one_and_an_open_one_is_observed_not_doubled():
    _, outcomes = empty_local_run()
    run = assess_run(outcomes, [], RULE)

    first = run.decide([])
    assert [t.backend for t in first.opened] == ["local"]
    assert first.held == ["local"]

    again = run.decide([OpenIncident(7, "local", EARLIER), OpenIncident(9, "local", EARLIER)])
    assert again.opened == []
    assert [(i.alert_id, t.backend) for i, t in again.observed] == [(7, "local")]
    assert again.resolved == []
    assert again.counted == [("local", CHECKED_AT)]


def test_a_large_enough_run_under_the_threshold_resolves_the_incident():
    outcomes = [chunk("local", passed=ids("b", 37), failures=failing("local", MISSING, ids("m", 3)))]
    decision = assess_run(outcomes, [], RULE).decide([OpenIncident(7, "local", EARLIER)])

    assert [(i.alert_id, t.affected, t.answered) for i, t in decision.resolved] == [(7, 3, 40)]
    assert decision.held == [], "what still fails is handled per copy"


def test_a_small_run_never_resolves_and_holds_what_the_incident_stands_for():
    open_incident = OpenIncident(7, "local", EARLIER)
    passing = assess_run([chunk("local", passed=ids("b", 5))], [], RULE).decide([open_incident])
    assert passing.resolved == []
    assert passing.held == [], "nothing failed there: nothing to hold"

    failing_few = assess_run(
        [chunk("local", passed=ids("b", 2), failures=failing("local", MISSING, ids("m", 3)))], [], RULE
    ).decide([open_incident])
    assert failing_few.resolved == []
    assert failing_few.observed == []
    assert failing_few.held == ["local"]


def test_a_run_older_than_the_incident_last_sighting_does_not_resolve_it():
    outcomes = [chunk("local", passed=ids("b", 40))]
    decision = assess_run(outcomes, [], RULE).decide([OpenIncident(7, "local", LATER)])

    assert decision.resolved == []


def test_a_backend_not_checked_in_the_run_keeps_its_incident():
    decision = assess_run([chunk("r2", passed=ids("b", 40))], [], RULE).decide(
        [OpenIncident(7, "b2", EARLIER)]
    )

    assert decision.resolved == []
    assert decision.held == []


def test_outside_incidents_hides_the_incident_failures_and_the_copies_with_open_alerts():
    open_alerts = [
        open_alert(1, "old-1", "local", MISSING),
        open_alert(2, "old-2", "local", CHECKSUM_MISMATCH),
        open_alert(3, "old-3", "r2", MISSING),
        open_alert(4, None, "local", BACKEND_ERROR),
    ]
    results = [
        *failing("local", MISSING, ["new-1"]),
        *failing("local", SIZE_MISMATCH, ["new-2"]),
        *failing("local", CHECKSUM_MISMATCH, ["new-3"]),
        check_result("old-2", "local", PASSED),
        *failing("r2", MISSING, ["new-4"]),
    ]

    alerts, kept = outside_incidents(open_alerts, results, ["local"])

    assert [a.id for a in alerts] == [3, 4]
    assert [(r["backup_id"], r["backend"], r["kind"]) for r in kept] == [
        ("new-3", "local", CHECKSUM_MISMATCH),
        ("new-4", "r2", MISSING),
    ]
    assert outside_incidents(open_alerts, results, []) == (open_alerts, results)


# ----------------------------------------------------------------------------- the alert plan


def test_an_incident_is_one_critical_alert_instead_of_one_per_copy():
    backups, outcomes = empty_local_run()
    results = [r for o in outcomes for r in o["failures"]]

    plan = plan_alert_changes([], results, RUN_ID, assess_run(outcomes, [], RULE))

    assert len(plan.new) == 1
    alert = plan.new[0]
    assert alert.key == (None, "local", BACKEND_INCIDENT)
    assert alert.severity == "CRITICAL"
    details = alert.details
    assert details["kind"] == BACKEND_INCIDENT
    assert details["backend"] == "local"
    assert details["backup_id"] is None
    assert details["affected_count"] == 40
    assert details["kinds"] == {MISSING: 40}
    assert details["sample"] == sorted(backups)[:SAMPLE_SIZE]
    assert details["first_seen"] == details["last_seen"] == CHECKED_AT
    assert details["occurrences"] == 1
    for cause in ("volume not mounted", "wrong bucket or endpoint", "mass deletion"):
        assert cause in alert.message
    assert plan.summary is None, "one incident alone needs no summary"


def test_without_incidents_the_plan_is_per_copy_as_before():
    _, outcomes = empty_local_run()
    results = [r for o in outcomes for r in o["failures"]]

    plan = plan_alert_changes([], results, RUN_ID)

    assert len(plan.new) == 40
    assert plan.summary is not None


def test_under_the_threshold_failures_alert_per_copy():
    backups = ids("b", 40)
    outcomes = [
        chunk("local", passed=backups[3:], failures=failing("local", MISSING, backups[:3])),
    ]
    results = outcomes[0]["failures"]

    plan = plan_alert_changes([], results, RUN_ID, assess_run(outcomes, [], RULE))

    assert sorted(a.key for a in plan.new) == [(b, "local", MISSING) for b in backups[:3]]
    assert plan.summary is not None


def test_open_per_copy_alerts_on_the_backend_are_left_untouched():
    backups, outcomes = empty_local_run()
    open_alerts = [
        open_alert(1, backups[0], "local", MISSING),  # seen failing again: not observed
        open_alert(2, "gone-1", "local", SIZE_MISMATCH),  # now passes: not resolved
        open_alert(3, backups[1], "r2", MISSING),  # r2 passed it: resolved as usual
    ]
    results = [r for o in outcomes for r in o["failures"]]
    results += [check_result("gone-1", "local", PASSED), check_result(backups[1], "r2", PASSED)]

    plan = plan_alert_changes(open_alerts, results, RUN_ID, assess_run(outcomes, [], RULE))

    assert [a.key for a in plan.new] == [(None, "local", BACKEND_INCIDENT)]
    assert plan.observed == []
    assert [r.alert_id for r in plan.resolved] == [3]


def test_a_run_still_in_incident_observes_it_without_opening_another():
    _, outcomes = empty_local_run(checked_at=LATER)
    results = [r for o in outcomes for r in o["failures"]]

    plan = plan_alert_changes([incident_alert(5, "local")], results, RUN_ID, assess_run(outcomes, [], RULE))

    assert plan.new == []
    assert [(o.alert_id, o.checked_at, o.severity) for o in plan.observed] == [(5, LATER, "CRITICAL")]
    assert plan.observed[0].details["affected_count"] == 40
    assert plan.resolved == []


def test_the_incident_resolves_and_what_still_fails_alerts_per_copy():
    backups = ids("b", 40)
    outcomes = [
        chunk("local", passed=backups[2:], failures=failing("local", MISSING, backups[:2], checked_at=LATER))
    ]
    results = outcomes[0]["failures"]

    plan = plan_alert_changes([incident_alert(5, "local")], results, RUN_ID, assess_run(outcomes, [], RULE))

    assert [r.alert_id for r in plan.resolved] == [5]
    assert "under the incident threshold" in plan.resolved[0].message
    assert sorted(a.key for a in plan.new) == [(b, "local", MISSING) for b in backups[:2]]


def test_the_summary_counts_an_incident_as_one_failure():
    backups, outcomes = empty_local_run()
    outcomes.append(chunk("b2", passed=backups[1:], failures=failing("b2", MISSING, backups[:1])))
    results = [r for o in outcomes for r in o["failures"]]

    plan = plan_alert_changes([], results, RUN_ID, assess_run(outcomes, [], RULE))

    assert plan.summary is not None
    assert sorted(plan.summary.failure_keys, key=str) == sorted(
        [(backups[0], "b2", MISSING), (None, "local", BACKEND_INCIDENT)], key=str
    )


# ----------------------------------------------------------------------------- repairs


def test_every_repair_on_a_backend_in_incident_is_refused():
    results = [
        *failing("local", MISSING, ["b-1", "b-2"]),
        *failing("r2", MISSING, ["b-3"]),
        check_result("b-1", "r2", PASSED, evidence="content_sha256"),
        check_result("b-2", "b2", PASSED, evidence="content_sha256"),
        check_result("b-3", "local", PASSED, evidence="content_sha256"),
    ]
    tasks = plan_repairs(results)

    kept, refused = refuse_repairs_on(tasks, ["local"])

    assert [(t["backup_id"], t["backend"]) for t in kept] == [("b-3", "r2")]
    assert [(o["backup_id"], o["status"], o["reason"], o["source_backend"]) for o in refused] == [
        ("b-1", REFUSED, REPAIR_REFUSAL, None),
        ("b-2", REFUSED, REPAIR_REFUSAL, None),
    ]
    assert refused[0]["error"].startswith("backend incident on local")
    assert refuse_repairs_on(tasks, []) == (tasks, [])


def test_the_tasks_hold_what_the_plan_says_is_open_and_the_run_does_not_disprove():
    settings = Settings(incident_min_copies=5).to_dict()
    few_missing = [chunk("local", passed=ids("b", 2), failures=failing("local", MISSING, ids("m", 2)))]
    open_then = open_incidents_for_plan([OpenIncident(7, "local", EARLIER)])
    plan = {"decided": [], "settings": settings, "open_incidents": open_then}

    assert held_backends(few_missing, plan) == ["local"]
    assert held_backends(few_missing, {**plan, "open_incidents": []}) == []
    assert held_backends(few_missing, {"decided": [], "settings": settings}) == [], "a plan of before"
    many_missing = [chunk("r2", failures=failing("r2", MISSING, ids("m", 5)))]
    assert held_backends(many_missing, {**plan, "open_incidents": []}) == ["r2"]
