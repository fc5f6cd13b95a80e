"""The same scenario on CeleryExecutor: a Redis broker (Debian's redis-server), the PostgreSQL
metadata DB as result backend, two Celery workers as separate processes. The package runs
unchanged: mapped checks land on both workers, and results, alerts and metadata equal LocalExecutor's."""

from __future__ import annotations

import pytest

from devtools.deployment import AirflowDeployment, RedisServer, processes_in_group
from devtools.services import PostgresServer
from tests.e2e.scenario import (
    VERIFIER,
    normalise,
    prepare,
    start_all_paths,
    stop_receivers,
    wait_finished,
    wait_for_scenario,
)


@pytest.fixture
def local_snapshot(snapshots, request):
    """LocalExecutor's outcome: from its module when it ran first, else run it now."""
    if "LocalExecutor" not in snapshots:
        request.getfixturevalue("local_run")
    return snapshots["LocalExecutor"]


def test_the_scenario_on_two_celery_workers_equals_local_executor(
    postgres, r2_server, b2_server, tmp_path, local_snapshot, snapshots
):
    for pid in snapshots.get("LocalExecutor pids", []):
        assert processes_in_group(pid) == [], "the LocalExecutor deployment is gone"

    redis = RedisServer().start()
    metadata = PostgresServer().start()
    env = prepare(postgres, r2_server, b2_server, str(tmp_path), "celery")
    deployment = AirflowDeployment(
        metadata,
        executor="CeleryExecutor",
        redis=redis,
        celery_workers=2,
        connections=env.connections(postgres, r2_server, b2_server),
        variables={"backup_integrity": env.variable()},
    )
    try:
        with deployment:
            started = start_all_paths(deployment, env)
            runs = wait_finished(deployment, wait_for_scenario(deployment, env, started))
            instances = deployment.query(
                "SELECT task_id, map_index, hostname, queue, state, run_id FROM task_instance "
                "WHERE dag_id = %s",
                [VERIFIER],
            )
            pids = deployment.pids
        snapshot = normalise(env, runs)
    finally:
        deployment.stop()
        redis.stop()
        metadata.stop()
        stop_receivers(env)
        deployment.cleanup()

    assert len(pids) == 6, "api-server, scheduler, dag-processor, triggerer and two workers"
    for pid in [*pids, redis.process.pid]:
        assert processes_in_group(pid) == [], f"process group {pid} outlived the test"

    mapped = [ti for ti in instances if ti["task_id"] == "verify_chunk"]
    assert {ti["hostname"] for ti in mapped} == {"worker1", "worker2"}, "mapped checks ran on both workers"
    assert {ti["hostname"] for ti in instances} <= {"worker1", "worker2"}, "every task ran on a worker"
    assert {ti["state"] for ti in mapped} == {"success"}
    assert {ti["queue"] for ti in instances} == {"default"}

    assert snapshot == local_snapshot, "results, alerts, notices and metadata equal LocalExecutor's"
