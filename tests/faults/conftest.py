"""Fixtures of the fault-injection suite: a :class:`~devtools.faultproxy.FaultProxy` in front of
each real service, connections that go through them, and DAG runs with retries on.

Timeouts come from the connections' ``extra.config_kwargs`` (seconds, not botocore's 60 s
defaults) so a stalled store costs the suite seconds; the retry mode stays the package's
default (adaptive, 6 attempts) unless a test says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from devtools.faultproxy import FaultProxy
from devtools.runs import DagRunOutcome, load_dag
from tests.support.connections import s3_connection, set_catalog_connection, set_connection

if TYPE_CHECKING:
    from collections.abc import Iterator

    from devtools.seed import Stores
    from devtools.services import MotoServer, PostgresServer, S3Server, SmtpReceiver, WebhookReceiver


def _proxy(upstream_port: int, *, http: bool) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port, http=http).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def r2_proxy(r2_store: S3Server) -> Iterator[FaultProxy]:
    yield from _proxy(r2_store.port, http=True)


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
    set_catalog_connection(monkeypatch, postgres, stores.dbname, port=catalog_proxy.port)  # type: ignore[attr-defined]
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
