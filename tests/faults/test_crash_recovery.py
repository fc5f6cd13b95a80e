"""SIGKILL of the process running the tasks, mid-run, then the run cleared and run again.

The DAG runs in a child process (``devtools.rundag``: ``dag.test()`` runs every task in
that process, so it is the task process). It is killed at a chosen moment, held there by
a proxy: while a chunk is being verified, while the alert transaction is open, or after
it committed and before any notice went out. Re-running the same run (``dag.test()``
clears its task instances first, as ``airflow tasks clear`` does) completes with one
copy of every row and each notice sent once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.connections import s3_connection, set_connection
from tests.support.faults import assert_written_exactly_once, seed_failures
from tests.support.processes import start_dag_process


@pytest.mark.parametrize("moment", ["verifying", "alert transaction open", "before notifying"])
def test_a_task_process_killed_mid_run_then_cleared_reruns_without_duplicates(
    moment, stores, through_proxies, run_with_retries, monkeypatch, webhook, smtp
):
    seeded = seed_failures(stores)
    catalog, r2 = through_proxies["catalog"], through_proxies["r2"]
    logical_date = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    run_after = datetime.now(UTC).replace(microsecond=0)
    if moment == "verifying":
        set_connection(monkeypatch, "backup_r2", s3_connection(r2, retries={"max_attempts": 1}))
        trigger = None
    elif moment == "alert transaction open":
        trigger = catalog.hold_on(b'INSERT INTO "backups_backupalert"')
    else:
        trigger = catalog.hold_on(b"FROM backup_integrity_notification WHERE sent_at IS NULL")

    child = start_dag_process(logical_date, run_after=run_after)
    try:
        if trigger is None:
            child.wait_for("[DAG TEST] starting task_id=verify_chunk")
            r2.set_mode("stall")  # the r2 chunk hangs on its store
            child.wait_for("[DAG TEST] starting task_id=verify_chunk map_index=1")
        else:
            assert trigger.fired.wait(180), child.output[-3000:]
    finally:
        child.kill()
    assert child.process.returncode == -9
    if trigger is None:
        assert "task_id=raise_alerts" not in child.output, "killed while verifying"
    r2.passthrough()
    catalog.passthrough()  # the held statement reaches the server after its client died: rolled back
    killed_webhooks = len(webhook.messages)
    assert killed_webhooks == 0, "nothing was sent before the kill"

    outcome = run_with_retries(logical_date=logical_date, run_after=run_after)

    assert outcome.run_id == f"manual__{run_after.isoformat()}", "the same run, cleared and run again"
    failed = [t.task_id for t in outcome.dag_run.get_task_instances() if str(t.state) == "failed"]
    assert failed == ["check_outcome"], failed
    assert_written_exactly_once(stores, outcome, seeded, webhook, smtp)
