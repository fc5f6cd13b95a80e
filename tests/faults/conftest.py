"""Fixtures of the fault-injection suite: a :class:`~devtools.faultproxy.FaultProxy` in front of
each real service, connections that go through them, and DAG runs with retries on.

Timeouts come from the connections' ``extra.config_kwargs`` (seconds, not botocore's 60 s
defaults) so a stalled store costs the suite seconds; the retry mode stays the package's
default (adaptive, 6 attempts) unless a test says otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
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


class DagProcess:
    """The DAG running in a child process (``devtools.rundag``); its output is read as it comes."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            command,
            cwd=str(REPO),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 180) -> None:
        """Block until the process has printed ``text``."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or self.process.poll() is not None,
                timeout,
            )
        if not done or text not in self.output:
            self.kill()
            raise AssertionError(f"DAG process never printed {text!r}:\n{self.output[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean anything up."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(10)

    def finish(self, timeout: float = 300) -> dict[str, Any]:
        """Wait for the run to end; its ``{"run_id", "state"}``."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"DAG process did not finish in {timeout}s:\n{self.output[-4000:]}"
            ) from None
        self._reader.join(10)
        outcome = [line for line in self.lines if line.startswith('{"run_id"')]
        assert outcome, (
            f"DAG process printed no outcome (exit {self.process.returncode}):\n{self.output[-4000:]}"
        )
        return json.loads(outcome[-1])


def start_dag_process(
    logical_date: datetime,
    *,
    run_after: datetime | None = None,
    conf: dict[str, Any] | None = None,
    retries: dict[str, int] | None = None,
    audit_opens: str | None = None,
    env: dict[str, str] | None = None,
) -> DagProcess:
    """Run the DAG in a child process with this process's environment (plus ``env``)."""
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
    return DagProcess(command, {**os.environ, **(env or {})})
