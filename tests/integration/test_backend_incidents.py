"""Backend incidents end to end with ``dag.test()``: real PostgreSQL, two moto S3 servers, a real
folder, real webhook and SMTP receivers. An empty ``local_root`` (a volume not mounted) is one
incident, not forty alerts and forty copies written into the root filesystem."""

from __future__ import annotations

import os

from devtools.seed import delete, restore, seed_backup
from tests.support.catalog import alerts, last_check, open_alerts_by_key, query, results
from tests.support.connections import set_variable

BACKUPS = 40


def local_files(stores) -> list[str]:
    return [os.path.join(folder, name) for folder, _, names in os.walk(stores.local_root) for name in names]


def empty_local_root(stores, count: int = BACKUPS) -> list:
    """Backups recorded on every backend whose local copies are gone: the folder is empty."""
    backups = [seed_backup(stores) for _ in range(count)]
    for backup in backups:
        delete(stores, backup, "local")
    for folder, dirs, _ in os.walk(stores.local_root, topdown=False):
        for name in dirs:
            os.rmdir(os.path.join(folder, name))
    assert local_files(stores) == []
    return backups


def incidents(stores) -> list[dict]:
    return [a for a in alerts(stores) if a["details"].get("kind") == "backend_incident"]


def occurrences(stores, alert_id: int) -> int:
    rows = query(
        stores, "SELECT count(*) AS n FROM backup_integrity_alert_occurrence WHERE alert_id = %s", [alert_id]
    )
    return rows[0]["n"]


def test_an_empty_local_root_is_one_incident_until_the_folder_is_back(
    stores, run_dag, webhook, smtp, monkeypatch, airflow_env
):
    backups = empty_local_root(stores)
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})

    outcome = run_dag()

    assert outcome.state == "failed"
    stats = outcome.statistics
    assert stats["backend_incidents"] == ["local"]
    assert stats["missing_files"] == BACKUPS, "every check is recorded as usual"
    assert stats["checks_passed"] == 2 * BACKUPS
    assert stats["repaired"] == 0
    assert stats["repair_failed"] == BACKUPS
    assert {e["reason"] for e in stats["repair_plan"]} == {"backend incident"}
    assert local_files(stores) == [], "nothing is written into an unmounted volume"
    refused = query(
        stores,
        "SELECT status, reason, count(*) AS n FROM backup_integrity_repair WHERE run_id = %s "
        "GROUP BY status, reason",
        [outcome.run_id],
    )
    assert refused == [{"status": "refused", "reason": "backend incident", "n": BACKUPS}]

    checked = results(stores, outcome.run_id)
    assert (
        sum(1 for (_, backend), kind in checked.items() if backend == "local" and kind == "missing")
        == BACKUPS
    )
    check = last_check(stores, backups[0].id)
    assert check["status"] == "failed"
    assert [(e["backend"], e["kind"]) for e in check["errors"]] == [("local", "missing")]

    rows = alerts(stores)
    assert len(rows) == 1, [(r["backup_id"], r["details"]["kind"]) for r in rows]
    incident = rows[0]
    assert incident["backup_id"] is None
    assert incident["alert_type"] == "INTEGRITY_FAILURE"
    assert incident["severity"] == "CRITICAL"
    assert incident["status"] == "ACTIVE"
    details = incident["details"]
    assert details["kind"] == "backend_incident"
    assert details["backend"] == "local"
    assert details["affected_count"] == BACKUPS
    assert details["kinds"] == {"missing": BACKUPS}
    assert len(details["sample"]) == 20
    assert set(details["sample"]) <= {b.id for b in backups}
    assert details["occurrences"] == 1
    for cause in ("volume not mounted", "wrong bucket or endpoint", "mass deletion"):
        assert cause in incident["message"]
    assert len(webhook.messages) == 1, [m["title"] for m in webhook.messages]
    assert len(smtp.messages) == 1
    assert "backend incident on local" in webhook.messages[0]["title"]

    # Still empty an hour later: the same incident, seen again, notified no more.
    still = run_dag()
    assert still.state == "failed"
    assert still.statistics["backend_incidents"] == ["local"]
    [incident] = incidents(stores)
    assert incident["status"] == "ACTIVE"
    assert incident["details"]["occurrences"] == 2
    assert incident["details"]["last_seen"] > details["last_seen"]
    assert len(alerts(stores)) == 1
    assert len(webhook.messages) == 1
    assert local_files(stores) == []

    # The files are back, but a run over a few backup_ids cannot tell: the incident stays open.
    for backup in backups:
        restore(stores, backup, "local")
    few = run_dag({"backup_ids": [b.id for b in backups[:3]]})
    assert few.state == "success"
    assert few.statistics["backend_incidents"] == []
    [incident] = incidents(stores)
    assert incident["status"] == "ACTIVE"
    assert incident["details"]["occurrences"] == 2
    assert len(webhook.messages) == 1

    # A full run finds the folder back: the incident resolves, with one notice.
    back = run_dag()
    assert back.state == "success"
    assert back.statistics["backend_incidents"] == []
    [incident] = incidents(stores)
    assert incident["status"] == "RESOLVED"
    assert incident["resolved_at"] is not None
    assert incident["details"]["resolution"] == "verified"
    assert incident["details"]["resolved_by_run_id"] == back.run_id
    assert open_alerts_by_key(stores) == {}
    assert len(webhook.messages) == 2
    assert webhook.messages[1]["title"].startswith("[RESOLVED]")
    assert "backend incident on local" in webhook.messages[1]["title"]


def test_a_few_missing_while_an_incident_is_open_are_held_not_alerted(stores, run_dag, webhook):
    backups = empty_local_root(stores)
    assert run_dag().statistics["backend_incidents"] == ["local"]
    for backup in backups[3:]:
        restore(stores, backup, "local")

    few = run_dag({"backup_ids": [b.id for b in backups[:5]]})

    assert few.state == "failed"
    assert few.statistics["missing_files"] == 3
    assert few.statistics["backend_incidents"] == ["local"], "the open incident holds them"
    assert list(open_alerts_by_key(stores)) == [(None, "local", "backend_incident")]
    assert len(webhook.messages) == 1

    # A full run under the threshold resolves it, and the three still missing alert per copy.
    full = run_dag()
    assert full.statistics["backend_incidents"] == []
    assert sorted(open_alerts_by_key(stores), key=str) == sorted(
        [(b.id, "local", "missing") for b in backups[:3]] + [(None, None, "summary")], key=str
    )
    [incident] = incidents(stores)
    assert incident["status"] == "RESOLVED"


def test_per_copy_alerts_already_open_on_the_backend_are_left_untouched(stores, run_dag, webhook):
    backups = [seed_backup(stores) for _ in range(BACKUPS)]
    for backup in backups[:2]:
        delete(stores, backup, "local")
    first = run_dag()
    assert first.statistics["backend_incidents"] == []
    before = {key: row for key, row in open_alerts_by_key(stores).items() if key[1] == "local"}
    assert sorted(before) == sorted((b.id, "local", "missing") for b in backups[:2])
    notices = len(webhook.messages)

    for backup in backups[2:]:
        delete(stores, backup, "local")
    outcome = run_dag()

    assert outcome.state == "failed"
    assert outcome.statistics["backend_incidents"] == ["local"]
    after = open_alerts_by_key(stores)
    for key, row in before.items():
        assert after[key] == row, "neither updated, resolved nor notified again"
        assert occurrences(stores, row["id"]) == 1
    assert sum(1 for key in after if key[1] == "local" and key[0] is not None) == 2
    [incident] = incidents(stores)
    assert incident["details"]["affected_count"] == BACKUPS
    # The incident's notice, and the summary's "changed" notice: it now counts the incident.
    new_titles = [m["title"] for m in webhook.messages[notices:]]
    assert len(new_titles) == 2, new_titles
    assert any("backend incident on local" in t for t in new_titles)
    summary = after[(None, None, "summary")]
    assert summary["details"]["counts"]["backend_incident"] == 1
    assert summary["details"]["counts"]["missing"] == 2


def test_under_the_threshold_failures_alert_per_copy_as_before(stores, run_dag, webhook):
    backups = [seed_backup(stores) for _ in range(BACKUPS)]
    for backup in backups[:3]:
        delete(stores, backup, "local")

    outcome = run_dag()

    assert outcome.state == "failed"
    assert outcome.statistics["backend_incidents"] == []
    by_key = open_alerts_by_key(stores)
    assert sorted(by_key, key=str) == sorted(
        [(b.id, "local", "missing") for b in backups[:3]] + [(None, None, "summary")], key=str
    )
    assert "backend_incident" not in by_key[(None, None, "summary")]["details"]["counts"]
    assert len(webhook.messages) == 4


def test_a_wrong_bucket_is_an_incident_and_nothing_is_uploaded_into_it(
    stores, run_dag, webhook, monkeypatch, airflow_env
):
    """The b2 bucket named in the Variable exists but is empty (the wrong one): with a smaller
    incident_min_copies, eight backups are enough to tell, and none is copied into it."""
    backups = [seed_backup(stores) for _ in range(8)]
    stores.b2.create_bucket(Bucket="wrong-bucket")
    set_variable(
        monkeypatch,
        {**airflow_env, "b2_bucket": "wrong-bucket", "repair": "apply", "incident_min_copies": 5},
    )

    outcome = run_dag()

    assert outcome.state == "failed"
    assert outcome.statistics["backend_incidents"] == ["b2"]
    assert outcome.statistics["repair_failed"] == len(backups)
    assert stores.b2.list_objects_v2(Bucket="wrong-bucket").get("KeyCount", 0) == 0
    assert list(open_alerts_by_key(stores)) == [(None, "b2", "backend_incident")]
    [incident] = incidents(stores)
    assert incident["details"]["affected_count"] == len(backups)
    assert incident["details"]["kinds"] == {"missing": len(backups)}
    assert sorted(incident["details"]["sample"]) == sorted(b.id for b in backups)
    assert len(webhook.messages) == 1
