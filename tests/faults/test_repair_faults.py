"""The repair task crashing or killed: statistics and alerts still come, nothing is copied twice.

``repair_copies`` records each copy's outcome in its own transaction as soon as it
is proven. When the task itself fails (here: the catalog goes away as it records
the first copy), ``aggregate_results`` and ``raise_alerts`` still run and report
every bad copy as not repaired. When the process running it is killed and the run
is cleared, each bad copy is written once in all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.backup_integrity.tasks.aggregate import REPAIR_DID_NOT_FINISH
from tests.support.catalog import last_check, open_alerts_by_key, query
from tests.support.connections import set_variable
from tests.support.faults import assert_written_exactly_once, seed_failures
from tests.support.processes import start_dag_process

RECORD_REPAIR = b"INSERT INTO backup_integrity_repair"


def failed_tasks(outcome) -> set[str]:
    return {t.task_id for t in outcome.dag_run.get_task_instances() if str(t.state) == "failed"}


def repair_rows(stores, run_id: str) -> dict[str, int]:
    rows = query(
        stores,
        "SELECT status, count(*) AS n FROM backup_integrity_repair WHERE run_id = %s GROUP BY status",
        [run_id],
    )
    return {r["status"]: r["n"] for r in rows}


def puts(proxies, key: str) -> int:
    return sum(
        1
        for proxy in (proxies["r2"], proxies["b2"])
        for method, target, _ in list(proxy.log)
        if method == "PUT" and key in target
    )


def test_a_crashed_repair_task_still_yields_statistics_and_alerts_with_every_copy_unrepaired(
    stores, through_proxies, run_with_retries, webhook, smtp, monkeypatch, airflow_env
):
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})
    seeded = seed_failures(stores)
    trigger = through_proxies["catalog"].drop_on(RECORD_REPAIR, down_for=1.0)

    # aggregate_results reads the catalog too (the chunks' failures, the recovery checks): it and
    # raise_alerts are retried, as their default_args retry them, while the catalog is back.
    outcome = run_with_retries({"repair": "apply"}, retries={"aggregate_results": 3, "raise_alerts": 3})

    assert trigger.fired.is_set(), "the catalog went away while the first repair was recorded"
    assert outcome.state == "failed"
    assert failed_tasks(outcome) == {"repair_copies", "check_outcome"}, "aggregate and alerts ran"
    stats = outcome.statistics
    assert (stats["missing_files"], stats["repaired"], stats["repair_failed"]) == (2, 0, 2)
    assert {e["reason"] for e in stats["repair_plan"]} == {REPAIR_DID_NOT_FINISH}
    # The run is reported as a run without repairs would be: one alert per failure, each notified once.
    assert_written_exactly_once(stores, outcome, seeded, webhook, smtp)
    still_open = open_alerts_by_key(stores)
    for backup in (seeded["gone_r2"], seeded["gone_b2"]):
        backend = "r2" if backup is seeded["gone_r2"] else "b2"
        assert still_open[(backup.id, backend, "missing")]["details"]["repair_error"] == REPAIR_DID_NOT_FINISH
        assert last_check(stores, backup.id)["repairs"] == [
            {"backend": backend, "kind": "missing", "status": "failed", "source_backend": None}
        ]
    assert repair_rows(stores, outcome.run_id) == {"failed": 2}, "raise_alerts recorded what was not"
    assert not any(m["title"].startswith("[REPAIRED]") for m in webhook.messages)

    # The next run repairs what is still bad and resolves both alerts.
    later = run_with_retries({"repair": "apply"}, logical_date=datetime.now(UTC) + timedelta(hours=2))

    assert later.state == "success"
    assert open_alerts_by_key(stores) == {}


def test_a_repair_killed_mid_run_then_cleared_writes_each_bad_copy_once(
    stores, through_proxies, run_with_retries, webhook, monkeypatch, airflow_env
):
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})
    seeded = seed_failures(stores)
    catalog = through_proxies["catalog"]
    logical_date = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    run_after = datetime.now(UTC).replace(microsecond=0)
    held = catalog.hold_on(RECORD_REPAIR)  # the first copy is written and proven, not yet recorded

    child = start_dag_process(logical_date, run_after=run_after, conf={"repair": "apply"})
    try:
        assert held.fired.wait(180), child.output[-3000:]
    finally:
        child.kill()
    assert child.process.returncode == -9
    assert "task_id=aggregate_results" not in child.output, "killed while repairing"
    catalog.passthrough()
    bad_copies = {seeded["gone_r2"].paths["r2"], seeded["gone_b2"].paths["b2"]}
    assert sorted(puts(through_proxies, key) for key in bad_copies) == [0, 1], "one copy made"

    outcome = run_with_retries({"repair": "apply"}, logical_date=logical_date, run_after=run_after)

    assert outcome.run_id == f"manual__{run_after.isoformat()}", "the same run, cleared and run again"
    assert outcome.state == "success"
    assert {key: puts(through_proxies, key) for key in bad_copies} == dict.fromkeys(bad_copies, 1), (
        "the copy made before the kill was proven by the check again, not copied twice"
    )
    assert (outcome.statistics["missing_files"], outcome.statistics["repaired"]) == (1, 1)
    assert repair_rows(stores, outcome.run_id) == {"repaired": 1}
    assert [m["title"].split(":")[0] for m in webhook.messages] == ["[REPAIRED] Backup integrity"]
    assert open_alerts_by_key(stores) == {}
