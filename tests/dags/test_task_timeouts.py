"""Every task of every DAG has an ``execution_timeout``: no task can hold a run (or a worker) forever."""

from __future__ import annotations

from datetime import timedelta

#: What docs/operations.md promises, task by task; the verifier's other tasks get its default.
DOCUMENTED = {
    ("verify_storage_integrity", "verify_chunk"): timedelta(hours=2),
    ("verify_storage_integrity_watchdog", "check_verifier_ran"): timedelta(minutes=5),
}
VERIFIER_DEFAULT = timedelta(minutes=30)


def test_every_task_has_its_documented_execution_timeout(dag_bag):
    assert not dag_bag.import_errors, dag_bag.import_errors
    assert dag_bag.dags
    for dag in dag_bag.dags.values():
        for task in dag.tasks:
            where = (dag.dag_id, task.task_id, task.execution_timeout)
            assert task.execution_timeout is not None, where
            expected = DOCUMENTED.get((dag.dag_id, task.task_id))
            if expected is None and dag.dag_id == "verify_storage_integrity":
                expected = VERIFIER_DEFAULT
            if expected is not None:
                assert task.execution_timeout == expected, where


def test_a_chunk_has_time_left_after_it_stops_asking():
    from include.backup_integrity.domain.deadlines import chunk_margin

    chunk = DOCUMENTED[("verify_storage_integrity", "verify_chunk")].total_seconds()
    assert chunk_margin(chunk) == 300, "five minutes to record what it found"
