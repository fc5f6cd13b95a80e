"""The verifier's failure callback: tell someone the verifier itself broke, not what it found."""

from __future__ import annotations

import logging
from typing import Any

from include.backup_integrity.config.secrets import register_package_secrets
from include.backup_integrity.tasks.outcome import OUTCOME_TASK_ID

log = logging.getLogger(__name__)


def report_crash(context: dict[str, Any]) -> None:
    """DAG failure callback: one notice naming the task that failed (integrity failures excepted)."""
    from include.backup_integrity.notify import delivery as notify

    register_package_secrets()
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", None)
    if task_id == OUTCOME_TASK_ID:
        return  # integrity failures: the alert task has already reported them
    run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", "?")
    dag = context.get("dag")
    title = "[ERROR] Backup integrity verifier crashed"
    body = (
        f"The verifier DAG {getattr(dag, 'dag_id', '?')} run {run_id} failed in task "
        f"{task_id or 'unknown'} ({context.get('reason', 'task_failure')}). Backups in this run "
        "may not have been verified; see the task log."
    )
    try:
        notify.send_direct(title, body, "failure")
    except Exception:
        log.exception("could not send the crash notification")
