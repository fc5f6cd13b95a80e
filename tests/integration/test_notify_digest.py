"""One digest instead of a flood: a run that queues many notices sends each channel one message."""

from __future__ import annotations

from devtools.seed import delete, restore, seed_backup
from tests.support.catalog import alerts, query
from tests.support.connections import set_variable


def notices(stores):
    return query(
        stores,
        "SELECT id, event, run_id, sent_at, delivered_to, digest_run_id FROM backup_integrity_notification "
        "ORDER BY id",
    )


def test_a_run_opening_12_alerts_sends_one_digest_per_channel_and_the_next_run_none(
    stores, run_dag, webhook, smtp
):
    broken = [seed_backup(stores) for _ in range(12)]
    seed_backup(stores)
    for backup in broken:
        delete(stores, backup, "r2")

    first = run_dag()

    rows = alerts(stores)
    assert len(rows) == 13, "12 missing copies and their summary"
    assert len(webhook.messages) == 1, [m["title"] for m in webhook.messages]
    assert len(smtp.messages) == 1
    (digest,) = webhook.messages
    assert digest["title"].startswith("[CRITICAL] Backup integrity: 13 changes (13 opened)")
    assert "12 missing" in digest["title"]
    assert "1 summary" in digest["title"]
    lines = digest["message"].splitlines()
    assert lines[0] == f"Run {first.dag_run.run_id} changed 13 alerts:"
    for backup in broken:
        assert sum(f"opened missing on r2, backup {backup.id}:" in line for line in lines) == 1
    assert "and" not in lines[-1], "13 lines fit (at most 50)"
    queued = notices(stores)
    assert len(queued) == 13
    assert all(n["sent_at"] is not None for n in queued), "each notice recorded as delivered"
    assert {n["digest_run_id"] for n in queued} == {first.dag_run.run_id}
    assert all(len(n["delivered_to"]) == 2 for n in queued)
    assert all(len(r["notification_channels"]) == 2 for r in rows)

    run_dag()

    assert len(webhook.messages) == 1, "the same failures again: nothing new to say"
    assert len(smtp.messages) == 1


def test_a_channel_that_refused_the_digest_gets_the_same_digest_next_time(stores, run_dag, webhook, smtp):
    broken = [seed_backup(stores) for _ in range(6)]
    for backup in broken:
        delete(stores, backup, "b2")
    webhook.status = 503

    first = run_dag()

    assert len(smtp.messages) == 1, "the mail channel took the digest"
    assert all(n["sent_at"] is None for n in notices(stores)), "not yet delivered everywhere"
    assert all("json://" in r["details"]["notification_error"] for r in alerts(stores))

    webhook.status = 200
    run_dag()

    assert len(webhook.messages) == 1
    assert len(smtp.messages) == 1, "the mail channel is not sent it twice"
    assert webhook.messages[0]["title"] == smtp.messages[0]["Subject"]
    assert webhook.messages[0]["message"].splitlines()[0] == f"Run {first.dag_run.run_id} changed 7 alerts:"
    assert all(n["sent_at"] is not None for n in notices(stores))
    assert all("notification_error" not in r["details"] for r in alerts(stores))


def test_at_or_under_the_threshold_each_notice_goes_out_on_its_own(
    stores, run_dag, webhook, smtp, monkeypatch, airflow_env
):
    set_variable(monkeypatch, {**airflow_env, "notify_digest_after": 7})
    broken = [seed_backup(stores) for _ in range(6)]
    for backup in broken:
        delete(stores, backup, "b2")

    run_dag()

    assert len(webhook.messages) == 7, "six alerts and their summary: at the threshold, no digest"
    assert all(n["digest_run_id"] is None for n in notices(stores))

    webhook.clear()
    set_variable(monkeypatch, airflow_env)
    for backup in broken:
        restore(stores, backup, "b2")
    run_dag()

    (digest,) = webhook.messages
    assert digest["title"].startswith("[RESOLVED] Backup integrity: 7 changes (7 resolved)")
    assert digest["type"] == "success"
