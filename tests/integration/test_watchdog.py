"""The dead-man's switch through ``dag.test()``: verifier runs placed in the real metadata DB,
the watchdog DAG run at forced check times, alert rows and notices in the real catalog and receivers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devtools.runs import REPO, DagRunOutcome
from devtools.seed import delete, seed_backup
from tests.support.catalog import alerts, query
from tests.support.connections import set_variable

VERIFIER = "verify_storage_integrity"
WATCHDOG = "verify_storage_integrity_watchdog"
HOUR = timedelta(hours=1)


def load_watchdog():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{WATCHDOG}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(WATCHDOG)
    for task in dag.tasks:
        task.retries = 0
    return dag


def run_watchdog(checked_at: datetime) -> dict:
    """Run the watchdog whose check time (its data interval end) is ``checked_at``."""
    outcome = DagRunOutcome(load_watchdog().test(logical_date=checked_at))
    assert outcome.state == "success", outcome
    from devtools.runs import xcom

    return xcom(outcome.dag_run, "check_verifier_ran")


@pytest.fixture
def verifier_runs(airflow_db):
    """Place runs of the verifier in the metadata DB, as the scheduler would have left them."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    def clear() -> None:
        with create_session() as session:
            session.query(DagRun).filter(DagRun.dag_id == VERIFIER).delete()

    def add(interval_end: datetime, state: str) -> None:
        start = interval_end - HOUR
        with create_session() as session:
            session.add(
                DagRun(
                    dag_id=VERIFIER,
                    run_id=f"scheduled__{start.isoformat()}",
                    logical_date=start,
                    run_after=interval_end,
                    data_interval=(start, interval_end),
                    run_type=DagRunType.SCHEDULED,
                    state=state,
                    start_date=interval_end,
                )
            )

    clear()
    add.clear = clear  # type: ignore[attr-defined]
    yield add
    clear()


def stalled_alerts(stores):
    return [a for a in alerts(stores) if a["details"].get("kind") == "verifier_stalled"]


T0 = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


def test_no_run_at_all_opens_one_stall_alert_then_a_finished_run_resolves_it(
    stores, airflow_env, verifier_runs, webhook, smtp
):
    report = run_watchdog(T0)

    assert report["verdict"]["stalled"] is True
    assert report["alert"] == "opened"
    [alert] = stalled_alerts(stores)
    assert alert["alert_type"] == "INTEGRITY_FAILURE"
    assert alert["severity"] == "CRITICAL"
    assert alert["status"] == "ACTIVE"
    assert alert["backup_id"] is None
    assert alert["details"]["scheduled_for"] == "2031-03-01T10:00:00+00:00"
    assert alert["details"]["deadline"] == "2031-03-01T12:00:00+00:00"
    assert "was ever created" in alert["details"]["reason"]
    assert len(webhook.messages) == 1
    assert "stalled" in webhook.messages[0]["title"]
    assert len(smtp.messages) == 1
    assert alert["notification_channels"], "the alert records where its notice arrived"

    # Still silent a quarter hour later: the same alert is updated, nothing is sent again.
    report = run_watchdog(T0 + timedelta(minutes=15))
    assert report["alert"] == "updated"
    [alert] = stalled_alerts(stores)
    assert alert["status"] == "ACTIVE"
    assert alert["details"]["occurrences"] == 2
    assert alert["details"]["scheduled_for"] == "2031-03-01T10:00:00+00:00", "first missed deadline kept"
    assert len(webhook.messages) == 1

    # A run for the overdue hour finishes (failed: it found problems, it did not stall).
    verifier_runs(T0 - 2 * HOUR + HOUR, "failed")
    report = run_watchdog(T0 + timedelta(minutes=30))
    assert report["verdict"]["stalled"] is False
    assert report["alert"] == "resolved"
    [alert] = stalled_alerts(stores)
    assert alert["status"] == "RESOLVED"
    assert alert["resolved_at"] is not None
    assert len(webhook.messages) == 2
    assert "RESOLVED" in webhook.messages[1]["title"]

    # And nothing more while it keeps running.
    assert run_watchdog(T0 + timedelta(minutes=45))["alert"] == "none"
    assert len(webhook.messages) == 2
    assert len(stalled_alerts(stores)) == 1


def test_a_run_stuck_past_its_deadline_is_a_stall(stores, airflow_env, verifier_runs, webhook):
    verifier_runs(T0 - 2 * HOUR, "running")
    verifier_runs(T0 - HOUR, "queued")

    report = run_watchdog(T0 + timedelta(minutes=15))

    assert report["alert"] == "opened"
    [alert] = stalled_alerts(stores)
    assert "none has finished within 2 h" in alert["details"]["reason"]
    assert alert["details"]["actual"] == {"finished_runs": 0, "created_runs": 2}


def test_a_run_that_finished_in_time_raises_nothing(stores, airflow_env, verifier_runs, webhook):
    verifier_runs(T0 - 2 * HOUR, "success")
    assert run_watchdog(T0 + timedelta(minutes=15))["alert"] == "none"
    assert stalled_alerts(stores) == []
    assert webhook.messages == []


def test_stall_after_hours_comes_from_the_variable(stores, airflow_env, verifier_runs, webhook, monkeypatch):
    verifier_runs(T0 - 3 * HOUR, "success")  # finished, but for the hour before the overdue one
    assert run_watchdog(T0)["alert"] == "opened"
    [alert] = stalled_alerts(stores)
    assert alert["details"]["stall_after_hours"] == 2

    set_variable(monkeypatch, {**airflow_env, "stall_after_hours": 3})
    report = run_watchdog(T0 + timedelta(minutes=15))
    assert report["verdict"]["stalled"] is False
    assert report["alert"] == "resolved"


def test_the_verifier_neither_counts_nor_resolves_the_stall_alert(
    stores, airflow_env, verifier_runs, run_dag
):
    run_watchdog(T0)
    [stall] = stalled_alerts(stores)
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    delete(stores, gone, "b2")

    outcome = run_dag()

    assert outcome.state == "failed"
    [stall] = stalled_alerts(stores)
    assert stall["status"] == "ACTIVE", "only the watchdog judges whether the verifier stalled"
    [summary] = [a for a in alerts(stores) if a["details"].get("kind") == "summary"]
    assert stall["id"] not in summary["details"]["alert_ids"]
    assert summary["details"]["failed_checks"] == 2
    assert query(stores, "SELECT count(*) AS n FROM backup_integrity_run")[0]["n"] == 1


def test_the_watchdog_changes_only_its_own_stall_alert(stores, airflow_env, verifier_runs, webhook):
    from tests.support.ownership import SOURCE, alert_row_text, insert_alert_row

    conn = stores.connect()
    try:
        # The verifier's open alert, a stall alert of the task this package replaced (no marker),
        # and a verifier_stalled row under the verifier's marker: none of them is the watchdog's.
        verifiers = insert_alert_row(
            conn, {"kind": "missing", "backend": "r2", "source": SOURCE, "producer": VERIFIER}
        )
        replaced = insert_alert_row(conn, {"kind": "verifier_stalled"})
        misfiled = insert_alert_row(
            conn, {"kind": "verifier_stalled", "source": SOURCE, "producer": VERIFIER}
        )
        others = {i: alert_row_text(conn, i) for i in (verifiers, replaced, misfiled)}

        assert run_watchdog(T0)["alert"] == "opened", "its own alert, not one of theirs updated"
        [own] = [a for a in stalled_alerts(stores) if a["id"] not in others]
        assert (own["details"]["source"], own["details"]["producer"]) == (SOURCE, WATCHDOG)
        assert run_watchdog(T0 + timedelta(minutes=15))["alert"] == "updated"

        verifier_runs(T0 - HOUR, "success")
        assert run_watchdog(T0 + timedelta(minutes=30))["alert"] == "resolved"

        [own] = [a for a in stalled_alerts(stores) if a["id"] not in others]
        assert own["status"] == "RESOLVED"
        assert own["details"]["occurrences"] == 2
        assert {i: alert_row_text(conn, i) for i in others} == others, "not one column of theirs changed"
    finally:
        conn.close()
