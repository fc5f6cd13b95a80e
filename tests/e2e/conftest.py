"""Fixtures of the end-to-end suite: one real Airflow deployment per executor, shared by its tests.

The LocalExecutor deployment runs the scenario once (module scope) and every
test of ``test_local_executor.py`` inspects what it left; its normalised outcome
is kept for the CeleryExecutor test to compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from devtools.deployment import AirflowDeployment
from devtools.services import MotoServer, PostgresServer
from tests.e2e.scenario import (
    VERIFIER,
    Environment,
    Started,
    normalise,
    prepare,
    start_all_paths,
    stop_receivers,
    wait_finished,
    wait_for_scenario,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass
class ScenarioRun:
    deployment: AirflowDeployment
    env: Environment
    started: Started
    runs: list[dict[str, Any]]
    snapshot: dict[str, Any]

    def run(self, role: str) -> dict[str, Any]:
        return next(r for r in self.runs if r["role"] == role)


@pytest.fixture(scope="session")
def snapshots() -> dict[str, Any]:
    """Normalised outcomes by executor, and the pids each deployment ran."""
    return {}


@pytest.fixture(scope="module")
def local_run(
    postgres: PostgresServer,
    r2_server: MotoServer,
    b2_server: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
    snapshots: dict[str, Any],
) -> Iterator[ScenarioRun]:
    """The scenario on scheduler + dag-processor + api-server + triggerer with LocalExecutor."""
    local_root = tmp_path_factory.mktemp("e2e-local-backups")
    metadata = PostgresServer().start()
    env = prepare(postgres, r2_server, b2_server, str(local_root), "local")
    deployment = AirflowDeployment(
        metadata,
        executor="LocalExecutor",
        connections=env.connections(postgres, r2_server, b2_server),
        variables={"backup_integrity": env.variable()},
    )
    try:
        deployment.start()
        started = start_all_paths(deployment, env)
        runs = wait_finished(deployment, wait_for_scenario(deployment, env, started))
        run = ScenarioRun(deployment, env, started, runs, normalise(env, runs))
        snapshots["LocalExecutor"] = run.snapshot
        yield run
    finally:
        deployment.stop()
        snapshots["LocalExecutor pids"] = deployment.pids
        metadata.stop()
        stop_receivers(env)
        deployment.cleanup()


__all__ = ["VERIFIER", "ScenarioRun"]
