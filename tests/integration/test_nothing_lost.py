"""Nothing lost, nothing taken: through ``dag.test()`` against the real catalog, stores and receivers.

Notices wait for ``backup_notify`` (missing, or its secrets backend down) and go out
once when it is back, or expire after ``notice_max_age_hours``, recorded, never sent
late; alert rows of other writers are never changed; the verifier and the watchdog
each change only their own; a backup whose metadata is not a JSON object keeps it.
"""

from __future__ import annotations

import json
import os

import pytest

from devtools.seed import delete, seed_backup
from tests.support.catalog import alerts, metadata, query, results
from tests.support.connections import set_variable
from tests.support.ownership import SOURCE, VERIFIER, alert_row_text, insert_alert_row
from tests.support.secrets_outage import BACKEND_PATH, HELD_ENV, OUTAGE_ENV

NOTIFY_ENV = "AIRFLOW_CONN_BACKUP_NOTIFY"
OPENED = "[CRITICAL] Backup integrity: missing on r2"


def notices(stores):
    return query(
        stores,
        "SELECT id, event, attempts, sent_at, expired_at, last_error FROM backup_integrity_notification "
        "ORDER BY id",
    )


def logged(capfd, caplog) -> str:
    out = capfd.readouterr()  # the task log; once Airflow's logging was set up, also caplog's
    return out.out + out.err + caplog.text


@pytest.fixture
def catalog_conn(stores):
    """A connection of another writer of the catalog (the application's, a test's)."""
    conn = stores.connect()
    yield conn
    conn.close()


@pytest.fixture
def secrets_backend(monkeypatch, airflow_env):
    """``backup_notify`` held by a secrets backend (not the environment), its outage switchable."""
    from airflow.sdk.configuration import clear_secrets_backends_cache

    monkeypatch.setenv(HELD_ENV, os.environ[NOTIFY_ENV])
    monkeypatch.delenv(NOTIFY_ENV)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", BACKEND_PATH)
    monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", BACKEND_PATH)
    clear_secrets_backends_cache()

    def outage(down: bool) -> None:
        if down:
            monkeypatch.setenv(OUTAGE_ENV, "1")
        else:
            monkeypatch.delenv(OUTAGE_ENV, raising=False)

    yield outage
    monkeypatch.delenv("AIRFLOW__SECRETS__BACKEND")
    monkeypatch.delenv("AIRFLOW__WORKERS__SECRETS_BACKEND")
    clear_secrets_backends_cache()


@pytest.fixture(params=["connection missing", "secrets backend down"])
def notify_outage(request, monkeypatch, airflow_env):
    """Make ``backup_notify`` unresolvable (``outage(True)``) and bring it back (``outage(False)``)."""
    if request.param == "secrets backend down":
        return request.getfixturevalue("secrets_backend")
    defined = os.environ[NOTIFY_ENV]

    def outage(down: bool) -> None:
        if down:
            monkeypatch.delenv(NOTIFY_ENV, raising=False)
        else:
            monkeypatch.setenv(NOTIFY_ENV, defined)

    return outage


def test_while_backup_notify_cannot_be_resolved_notices_stay_queued_then_go_out_exactly_once(
    stores, notify_outage, run_dag, webhook, smtp, capfd, caplog
):
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    notify_outage(True)

    first = run_dag()

    assert first.state == "failed"
    failed = [t.task_id for t in first.dag_run.get_task_instances() if str(t.state) == "failed"]
    assert failed == ["check_outcome"], "an unresolvable notify connection never breaks verification"
    (alert,) = alerts(stores)
    assert alert["details"]["kind"] == "missing"
    assert alert["notification_channels"] == []
    (notice,) = notices(stores)
    assert (notice["sent_at"], notice["expired_at"], notice["attempts"]) == (None, None, 0), "still queued"
    assert "notification(s) stay queued until it is back" in logged(capfd, caplog)
    assert webhook.messages == []
    assert smtp.messages == []

    notify_outage(False)
    second = run_dag()

    assert second.state == "failed", "the copy is still missing"
    assert [m["title"] for m in webhook.messages] == [OPENED]
    assert len(smtp.messages) == 1
    (notice,) = notices(stores)
    assert notice["sent_at"] is not None
    assert notice["attempts"] == 1
    (alert,) = alerts(stores)
    assert sorted(c.split(":")[0] for c in alert["notification_channels"]) == ["json", "mailto"]

    run_dag()
    assert [m["title"] for m in webhook.messages] == [OPENED], "delivered exactly once"
    assert len(smtp.messages) == 1


def test_a_notice_older_than_notice_max_age_hours_is_expired_and_recorded_never_sent(
    stores, airflow_env, run_dag, webhook, smtp, monkeypatch, catalog_conn, capfd, caplog
):
    set_variable(monkeypatch, {**airflow_env, "notice_max_age_hours": 1})
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    defined = os.environ[NOTIFY_ENV]
    monkeypatch.delenv(NOTIFY_ENV)
    run_dag()
    (queued,) = notices(stores)
    assert queued["sent_at"] is None
    # The connection stays away longer than notice_max_age_hours.
    with catalog_conn.cursor() as cur:
        cur.execute("UPDATE backup_integrity_notification SET created_at = now() - interval '61 minutes'")
    catalog_conn.commit()
    monkeypatch.setenv(NOTIFY_ENV, defined)

    run_dag()

    (notice,) = notices(stores)
    assert notice["sent_at"] is None, "never sent late"
    assert notice["expired_at"] is not None
    assert notice["last_error"] == "expired: not delivered within notice_max_age_hours (1 h)"
    (alert,) = alerts(stores)
    assert alert["status"] == "ACTIVE"
    assert alert["details"]["notification_error"] == (
        "notice 'opened' expired: not delivered within notice_max_age_hours (1 h)"
    )
    assert "expired: not delivered within notice_max_age_hours" in logged(capfd, caplog)
    assert webhook.messages == []
    assert smtp.messages == []

    run_dag()
    assert webhook.messages == [], "an expired notice stays expired"
    assert len(notices(stores)) == 1


def test_alert_rows_of_other_writers_are_untouched_by_a_run_that_verifies_their_copy(
    stores, airflow_env, run_dag, catalog_conn
):
    backup = seed_backup(stores)
    other = seed_backup(stores)
    delete(stores, other, "b2")
    # The task this package replaces left an INTEGRITY_FAILURE row about the same copy; the
    # application one of its own type; and a summary of its own.
    replaced_task = insert_alert_row(
        catalog_conn, {"kind": "missing", "backend": "r2", "backup_id": backup.id}, backup_id=backup.id
    )
    application = insert_alert_row(
        catalog_conn, {"kind": "missing", "backend": "r2"}, backup_id=backup.id, alert_type="STORAGE_LOW"
    )
    summary = insert_alert_row(catalog_conn, {"kind": "summary", "alert_ids": [replaced_task]})
    foreign = {i: alert_row_text(catalog_conn, i) for i in (replaced_task, application, summary)}

    outcome = run_dag({"mode": "full", "backup_ids": [backup.id, other.id]})

    assert results(stores, outcome.run_id)[(backup.id, "r2")] == "passed"
    assert {i: alert_row_text(catalog_conn, i) for i in foreign} == foreign, "not one column changed"
    ours = [a for a in alerts(stores) if a["id"] not in foreign]
    assert [(a["backup_id"], a["details"]["kind"]) for a in ours] == [(other.id, "missing")]
    assert all((a["details"]["source"], a["details"]["producer"]) == (SOURCE, VERIFIER) for a in ours)


def test_array_or_scalar_metadata_is_left_unchanged_and_its_checks_and_alerts_still_recorded(
    stores, airflow_env, run_dag, capfd, caplog
):
    shapes = {"array": [1, "two"], "string": "hand-written note", "number": 42, "null": None}
    backups = {
        shape: seed_backup(stores, row_overrides={"metadata": json.dumps(value)})
        for shape, value in shapes.items()
    }
    delete(stores, backups["array"], "r2")

    outcome = run_dag({"mode": "full", "backup_ids": [b.id for b in backups.values()]})

    assert outcome.state == "failed"
    checked = results(stores, outcome.run_id)
    assert checked[(backups["array"].id, "r2")] == "missing"
    for shape in ("array", "string", "number"):
        assert metadata(stores, backups[shape].id) == shapes[shape], f"{shape} metadata left unchanged"
        assert checked[(backups[shape].id, "local")] == "passed"
    assert metadata(stores, backups["null"].id)["last_integrity_check"]["status"] == "passed", (
        "a null metadata becomes an object, as it always did"
    )
    (alert,) = [a for a in alerts(stores) if a["details"]["kind"] == "missing"]
    assert alert["backup_id"] == backups["array"].id
    text = logged(capfd, caplog)
    for shape in ("array", "string", "number"):
        warning = f"backup {backups[shape].id}: metadata is a JSON {shape}, not an object; left unchanged"
        assert warning in text

    again = run_dag({"mode": "full", "backup_ids": [backups["array"].id]})
    assert again.state == "failed"
    assert metadata(stores, backups["array"].id) == shapes["array"], "no element appended on a later run"
