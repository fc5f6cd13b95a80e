"""Fixtures of the fault-injection suite: a :class:`~devtools.faultproxy.FaultProxy` in front of
each real service, connections that go through them, and DAG runs with retries on.

Timeouts come from the connections' ``extra.config_kwargs`` (seconds, not botocore's 60 s
defaults) so a stalled store costs the suite seconds; the retry mode stays the package's
default (adaptive, 6 attempts) unless a test says otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from devtools.faultproxy import FaultProxy
from devtools.runs import REPO, DagRunOutcome, load_dag

if TYPE_CHECKING:
    from collections.abc import Iterator

    from devtools.seed import Stores
    from devtools.services import MotoServer, PostgresServer, SmtpReceiver, WebhookReceiver

pytestmark = pytest.mark.faults


def _proxy(upstream_port: int, *, http: bool) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port, http=http).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def r2_proxy(r2_server: MotoServer) -> Iterator[FaultProxy]:
    yield from _proxy(r2_server.port, http=True)


@pytest.fixture
def b2_proxy(b2_server: MotoServer) -> Iterator[FaultProxy]:
    yield from _proxy(b2_server.port, http=True)


@pytest.fixture
def catalog_proxy(postgres: PostgresServer) -> Iterator[FaultProxy]:
    yield from _proxy(postgres.port, http=False)


@pytest.fixture
def webhook_proxy(webhook: WebhookReceiver) -> Iterator[FaultProxy]:
    yield from _proxy(webhook.port, http=True)


@pytest.fixture
def smtp_proxy(smtp: SmtpReceiver) -> Iterator[FaultProxy]:
    yield from _proxy(smtp.port, http=False)


def s3_connection(proxy: FaultProxy, **config_kwargs: Any) -> dict[str, Any]:
    """An aws connection to a store through its proxy, with timeouts of seconds."""
    return {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {
            "endpoint_url": proxy.url,
            "region_name": "us-east-1",
            "verify": False,
            "config_kwargs": {"connect_timeout": 1, "read_timeout": 2, **config_kwargs},
        },
    }


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any]) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def through_proxies(
    monkeypatch: pytest.MonkeyPatch,
    airflow_env: dict[str, Any],
    stores: Stores,
    postgres: PostgresServer,
    r2_proxy: FaultProxy,
    b2_proxy: FaultProxy,
    catalog_proxy: FaultProxy,
) -> dict[str, FaultProxy]:
    """Point backup_r2, backup_b2 and backup_catalog at their proxies (all passing for now)."""
    set_connection(monkeypatch, "backup_r2", s3_connection(r2_proxy))
    set_connection(monkeypatch, "backup_b2", s3_connection(b2_proxy))
    set_connection(
        monkeypatch,
        "backup_catalog",
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": catalog_proxy.port,
            "login": postgres.user,
            "schema": stores.dbname,  # type: ignore[attr-defined]
        },
    )
    return {"r2": r2_proxy, "b2": b2_proxy, "catalog": catalog_proxy}


@pytest.fixture
def run_with_retries(airflow_db: str, airflow_env: dict[str, Any]) -> Any:
    """Run the DAG with ``dag.test()``, giving the named tasks retries one second apart."""

    def run(
        conf: dict[str, Any] | None = None,
        *,
        retries: dict[str, int] | None = None,
        logical_date: datetime | None = None,
        run_after: datetime | None = None,
    ) -> DagRunOutcome:
        dag = load_dag()
        for task_id, count in (retries or {}).items():
            task = dag.get_task(task_id)
            task.retries = count
            task.retry_delay = timedelta(seconds=1)
        kwargs = {"run_after": run_after} if run_after else {}
        logical_date = logical_date or datetime.now(UTC) + timedelta(hours=1)
        return DagRunOutcome(dag.test(logical_date=logical_date, run_conf=conf or {}, **kwargs))

    return run


def start_dag_process(
    logical_date: datetime,
    *,
    run_after: datetime | None = None,
    conf: dict[str, Any] | None = None,
    retries: dict[str, int] | None = None,
    audit_opens: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Run the DAG in a child process (``devtools.rundag``) with this process's environment."""
    command = [
        sys.executable,
        "-m",
        "devtools.rundag",
        "--logical-date",
        logical_date.isoformat(),
        "--conf",
        json.dumps(conf or {}),
    ]
    if run_after:
        command += ["--run-after", run_after.isoformat()]
    for task_id, count in (retries or {}).items():
        command += ["--retries", f"{task_id}={count}"]
    if audit_opens:
        command += ["--audit-opens", audit_opens]
    return subprocess.Popen(
        command,
        cwd=str(REPO),
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[dict[str, Any], str]:
    """Wait for a DAG process; its JSON outcome and its whole output (the task logs)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"DAG process did not finish in {timeout}s:\n{out}\n{err}") from None
    lines = [line for line in out.splitlines() if line.startswith('{"run_id"')]
    assert lines, f"DAG process printed no outcome (exit {process.returncode}):\n{out[-3000:]}\n{err[-3000:]}"
    return json.loads(lines[-1]), out + err
