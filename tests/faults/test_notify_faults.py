"""Notification channels down: a webhook that refuses or never answers, an SMTP server that is gone.

Alert rows are still written, the failure is logged and recorded on the row, verification
is not affected, and the next run delivers what is pending, once per target.
"""

from __future__ import annotations

import pytest

from devtools.seed import delete, seed_backup
from devtools.services import apprise_connection
from tests.support.catalog import alerts, query
from tests.support.connections import set_connection


@pytest.fixture
def notify_through_proxies(monkeypatch, airflow_env, webhook_proxy, smtp_proxy):
    set_connection(
        monkeypatch,
        "backup_notify",
        apprise_connection(
            f"json://127.0.0.1:{webhook_proxy.port}/hook",
            f"mailto://127.0.0.1:{smtp_proxy.port}?from=verifier@example.com"
            "&to=ops@example.com&secure=no&smtp=127.0.0.1",
        ),
    )
    return {"webhook": webhook_proxy, "smtp": smtp_proxy}


@pytest.mark.parametrize("webhook_fault", ["refuse", "stall"])
def test_channels_down_never_break_verification_and_the_next_run_delivers(
    webhook_fault, stores, notify_through_proxies, run_with_retries, webhook, smtp, capfd, caplog
):
    gone = seed_backup(stores)
    delete(stores, gone, "r2")
    notify_through_proxies["webhook"].set_mode(webhook_fault)
    notify_through_proxies["smtp"].set_mode("refuse")

    first = run_with_retries()

    assert first.state == "failed"
    failed = [t.task_id for t in first.dag_run.get_task_instances() if str(t.state) == "failed"]
    assert failed == ["check_outcome"], "a broken channel never breaks verification"
    (row,) = alerts(stores)
    assert row["details"]["kind"] == "missing"
    assert row["notification_channels"] == []
    error = row["details"]["notification_error"]
    assert "json://" in error
    assert "mailto://" in error
    (notice,) = query(stores, "SELECT attempts, sent_at, last_error FROM backup_integrity_notification")
    assert notice["attempts"] == 1
    assert notice["sent_at"] is None
    assert notice["last_error"] == error
    logged = capfd.readouterr()  # the task log; once Airflow's logging was set up, also caplog's
    assert "(will retry)" in logged.out + logged.err + caplog.text
    assert webhook.messages == []
    assert smtp.messages == []

    notify_through_proxies["webhook"].passthrough()
    notify_through_proxies["smtp"].passthrough()
    second = run_with_retries()

    assert second.state == "failed"
    (row,) = alerts(stores)
    assert sorted(c.split(":")[0] for c in row["notification_channels"]) == ["json", "mailto"]
    assert "notification_error" not in row["details"]
    assert [m["title"] for m in webhook.messages] == ["[CRITICAL] Backup integrity: missing on r2"]
    assert len(smtp.messages) == 1
    (notice,) = query(stores, "SELECT attempts, sent_at FROM backup_integrity_notification")
    assert notice["sent_at"] is not None
    assert notice["attempts"] == 2
