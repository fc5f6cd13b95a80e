"""The three ways the DAG is used, on a real Airflow (LocalExecutor, PostgreSQL metadata DB):
the scheduler's hourly run, a run triggered through the REST API as the UI does, and a backfill
over past hours; then clearing runs, the watchdog, and stopping every process by pid."""

from __future__ import annotations

import json

import pytest

from devtools.deployment import AirflowDeployment, processes_in_group
from devtools.services import PostgresServer
from tests.e2e.scenario import (
    BACKFILL_ENDS,
    HOUR,
    MANUAL_IDS,
    VERIFIER,
    WATCHDOG,
    alerts_of,
    catalog_query,
    expected_in_window,
    normalise,
    notices_of,
    results_of,
)

EXPECTED_ON = ("local", "r2", "b2")  # FULL_DATABASE backups


def checked_backups(run, local_run) -> set[str]:
    return {role for (role, _backend) in results_of(local_run.env, run["run_id"])}


def test_the_scheduler_runs_the_latest_hour_with_a_one_hour_data_interval(local_run):
    run = local_run.run("scheduled")
    env = local_run.env

    assert run["run_type"] == "scheduled"
    assert run["data_interval_end"] - run["data_interval_start"] == HOUR
    assert run["data_interval_end"] == env.h, "catchup=False: the latest completed hour"
    assert run["data_interval_end"].minute == 0
    assert checked_backups(run, local_run) == expected_in_window(env, env.h) == {"A", "B", "C", "D"}
    results = results_of(env, run["run_id"])
    assert results[("D", "b2")][0] == "checksum_mismatch", "found without a full read"
    assert {kind for (kind, _) in results.values()} == {"passed", "checksum_mismatch"}
    assert run["state"] == "failed", "it found a corrupted backup"


def test_a_run_triggered_through_the_rest_api_checks_exactly_the_backup_ids_in_full_mode(local_run):
    run = local_run.run("manual")
    env = local_run.env

    assert run["run_id"] == local_run.started.manual
    assert run["run_type"] == "manual"
    assert run["conf"] == {"mode": "full", "backup_ids": [env.backups[r].id for r in MANUAL_IDS]}
    results = results_of(env, run["run_id"])
    assert set(results) == {(role, backend) for role in MANUAL_IDS for backend in EXPECTED_ON}, (
        "only the listed backups, though they are older than the lookback"
    )
    # Same size, different bytes, in a folder (no store checksum): only reading it shows it.
    assert results[("O2", "local")] == ("checksum_mismatch", "content_sha256")
    assert results[("O1", "local")] == ("passed", "content_sha256")
    assert all(kind == "passed" for check, (kind, _evidence) in results.items() if check != ("O2", "local"))
    [stats] = catalog_query(
        env, "SELECT statistics FROM backup_integrity_run WHERE run_id = %s", [run["run_id"]]
    )
    assert stats["statistics"]["mode"] == "full"
    assert stats["statistics"]["checksum_mismatches"] == 1
    assert run["state"] == "failed"
    [alert] = [a for a in alerts_of(env) if a["backup_id"] == env.backups["O2"].id]
    assert (alert["details"]["kind"], alert["details"]["backend"]) == ("checksum_mismatch", "local")


def test_a_backfill_verifies_each_past_window_on_its_own_without_duplicate_alerts(local_run):
    env = local_run.env
    backfill = [local_run.run(f"backfill-H-{e}") for e in BACKFILL_ENDS]

    assert len({r["backfill_id"] for r in backfill}) == 1
    assert backfill[0]["backfill_id"] is not None
    for run, hours in zip(backfill, BACKFILL_ENDS, strict=True):
        end = env.h - hours * HOUR
        assert run["data_interval_end"] == end
        assert run["data_interval_end"] - run["data_interval_start"] == HOUR
        assert checked_backups(run, local_run) == expected_in_window(env, end), run["role"]
    assert [checked_backups(r, local_run) for r in backfill] == [{"G", "A"}, {"G", "A", "B"}, {"A", "B", "C"}]
    # Run states match what each found: G (missing on r2) is only in the two older windows.
    assert [r["state"] for r in backfill] == ["failed", "failed", "success"]

    g = env.backups["G"].id
    g_alerts = [a for a in alerts_of(env) if a["backup_id"] == g]
    assert len(g_alerts) == 1, "two runs saw it, concurrently: one alert"
    [alert] = g_alerts
    assert (alert["details"]["kind"], alert["details"]["backend"], alert["status"]) == (
        "missing",
        "r2",
        "ACTIVE",
    )
    assert alert["details"]["occurrences"] == 2
    notices = [n for n in notices_of(env) if n["alert_id"] == alert["id"]]
    assert [n["event"] for n in notices] == ["opened"]
    assert sum(g in json.dumps(m) for m in env.webhook.messages) == 1
    assert sum(g in str(m) for m in env.smtp.messages) == 1

    keys = [(a["backup_id"], a["details"].get("backend"), a["details"]["kind"]) for a in alerts_of(env)]
    assert len(keys) == len(set(keys)) == 3, "G missing, D and O2 corrupted: one alert each, no summary"


def test_clearing_any_run_gives_the_same_rows_and_no_second_notification(local_run):
    deployment, env = local_run.deployment, local_run.env
    cleared = [local_run.run(role) for role in ("scheduled", "manual", "backfill-H-2")]
    before = normalise(env, local_run.runs)
    alerts_before = {a["id"]: a["details"]["occurrences"] for a in alerts_of(env)}

    for run in cleared:
        deployment.clear_run(VERIFIER, run["run_id"])
    deployment.wait_for_runs(VERIFIER, run_ids=[r["run_id"] for r in cleared], timeout=300)
    again = {r["run_id"]: r for r in deployment.runs(VERIFIER)}
    assert all(again[r["run_id"]]["clear_number"] == r["clear_number"] + 1 for r in cleared)

    runs_after = [{**r, "state": again[r["run_id"]]["state"]} for r in local_run.runs]
    assert normalise(env, runs_after) == before
    # The history keeps transitions: runs replayed in another order may record a change of
    # evidence (a copy read in full where a fingerprint passed it before), never a check twice.
    twice = catalog_query(
        env,
        "SELECT run_id, backup_id, backend FROM backup_integrity_result "
        "GROUP BY run_id, backup_id, backend HAVING count(*) > 1",
    )
    assert twice == []
    assert {a["id"]: a["details"]["occurrences"] for a in alerts_of(env)} == alerts_before


def test_the_watchdog_on_the_real_scheduler_sees_that_the_verifier_ran(local_run):
    deployment, env = local_run.deployment, local_run.env
    deployment.wait_for_dag(WATCHDOG)
    deployment.unpause(WATCHDOG)
    run_id = deployment.trigger(WATCHDOG)
    [run] = deployment.wait_for_runs(WATCHDOG, run_ids=[run_id], timeout=180)

    assert run["state"] == "success"
    [xcom] = deployment.query(
        "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'check_verifier_ran' "
        "AND key = 'return_value'",
        [WATCHDOG, run_id],
    )
    report = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])
    assert report["verdict"]["stalled"] is False
    assert report["verdict"]["finished_runs"] >= 1
    assert report["alert"] == "none"
    assert not [a for a in alerts_of(env) if a["details"]["kind"] == "verifier_stalled"]


def fail_while_running(deployment: AirflowDeployment, alive: dict[int, list[int]]) -> None:
    with deployment:
        alive.update({pid: processes_in_group(pid) for pid in deployment.pids})
        raise RuntimeError("a step failed")


def test_every_process_is_stopped_by_its_pid_even_when_a_step_fails():
    metadata = PostgresServer().start()
    deployment = AirflowDeployment(metadata, components=("dag-processor", "triggerer"))
    alive: dict[int, list[int]] = {}
    try:
        with pytest.raises(RuntimeError, match="a step failed"):
            fail_while_running(deployment, alive)
        assert len(alive) == 2
        assert all(pid in group for pid, group in alive.items()), "each component leads its process group"
        assert all(processes_in_group(pid) == [] for pid in deployment.pids)
        assert all(c.process.poll() is not None for c in deployment.components)
    finally:
        deployment.stop()
        metadata.stop()
        deployment.cleanup()
