"""The catalog PostgreSQL going away while a run writes: through a proxy that drops every
connection and refuses new ones for a while (a restart) at a chosen statement.

Whatever the moment, the task fails and retries (or recovers by itself), and afterwards
the catalog holds exactly one copy of each result, alert, occurrence and metadata update,
and each notice was delivered exactly once.
"""

from __future__ import annotations

from tests.support.faults import assert_written_exactly_once, seed_failures, tries


def test_catalog_down_while_results_are_written_the_task_retries_and_writes_once(
    stores, through_proxies, run_with_retries, webhook, smtp
):
    seeded = seed_failures(stores)
    catalog = through_proxies["catalog"]
    trigger = catalog.drop_on(b"COPY backup_integrity_result", down_for=1.5)

    # Each chunk records its own checks (their transitions, COPYed in); a retry records them once.
    outcome = run_with_retries(retries={"verify_chunk": 3, "raise_alerts": 3})

    assert trigger.fired.is_set()
    assert max(tries(outcome, "verify_chunk"), tries(outcome, "raise_alerts")) >= 2, (
        "the task writing when the catalog went away failed and was retried"
    )
    assert outcome.state == "failed"  # the two missing copies
    assert [t.task_id for t in outcome.dag_run.get_task_instances() if str(t.state) == "failed"] == [
        "check_outcome"
    ]
    assert_written_exactly_once(stores, outcome, seeded, webhook, smtp)


def test_a_commit_whose_answer_is_lost_is_not_written_twice(
    stores, through_proxies, run_with_retries, webhook, smtp
):
    """The alert transaction commits, but the task never hears it: its retry finds it all there."""
    seeded = seed_failures(stores)
    catalog = through_proxies["catalog"]
    trigger = catalog.drop_on(
        b"COMMIT", after=True, down_for=1.0, armed_by=b'INSERT INTO "backups_backupalert"'
    )

    outcome = run_with_retries(retries={"raise_alerts": 3})

    assert trigger.fired.is_set()
    assert tries(outcome, "raise_alerts") >= 2
    assert_written_exactly_once(stores, outcome, seeded, webhook, smtp)


def test_catalog_restarting_while_deliveries_are_recorded_sends_nothing_twice(
    stores, through_proxies, run_with_retries, webhook, smtp
):
    """A notice accepted by its targets is recorded once the catalog is back, not sent again."""
    seeded = seed_failures(stores)
    catalog = through_proxies["catalog"]
    trigger = catalog.drop_on(b"UPDATE backup_integrity_notification", down_for=2.0)

    outcome = run_with_retries(retries={"raise_alerts": 3})

    assert trigger.fired.is_set()
    assert tries(outcome, "raise_alerts") == 1, "the delivery was recorded on a new connection"
    assert_written_exactly_once(stores, outcome, seeded, webhook, smtp)
