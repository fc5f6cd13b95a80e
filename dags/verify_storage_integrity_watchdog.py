"""
### Verify storage integrity: watchdog

The dead-man's switch of `verify_storage_integrity`. Every quarter hour it asks
Airflow whether a run of the verifier has finished (success **or** failed: a
failed run found problems, it did not stall) for the latest hour whose deadline
has passed (scheduled time + `stall_after_hours` of the `backup_integrity`
Variable, default 2), or for a later hour.

- If none has, or none was created at all, it opens one alert in the catalog's
  alert table (`alert_type = 'INTEGRITY_FAILURE'`, `details.kind = "verifier_stalled"`,
  severity `CRITICAL`) and notifies through `backup_notify`; later checks update
  that alert and send nothing more.
- Once such a run has finished, it resolves the alert and sends a resolution notice.

It lives in the same Airflow as the verifier, so it catches a paused DAG, a
stuck queue, dead workers or runs that never end; a dead scheduler silences
both, which only an external heartbeat can catch.

It never waits on the verifier (its own advisory lock; every catalog wait bounded),
and its task may run 5 minutes at most (`execution_timeout`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, task


@dag(
    dag_id="verify_storage_integrity_watchdog",
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["backups", "integrity", "watchdog"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=5),
    },
)
def verify_storage_integrity_watchdog():
    @task(task_display_name="Check the verifier ran")
    def check_verifier_ran(ti=None, data_interval_end=None, dag_run=None, run_id=None) -> dict:
        """Open, update or resolve the verifier_stalled alert for this check time."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from include.backup_integrity.tasks.dag_support import VARIABLE_KEY, ConfigError, parse_settings
        from include.backup_integrity.tasks.select import window_end_of
        from include.backup_integrity.tasks.watchdog import VERIFIER_DAG_ID, assess, watch

        try:
            settings = parse_settings(Variable.get(VARIABLE_KEY, default=None))
        except ConfigError as error:
            raise AirflowFailException(str(error)) from None
        checked_at = window_end_of(data_interval_end, getattr(dag_run, "run_after", None))

        def count_runs(logical_dates, states):
            return ti.get_dr_count(VERIFIER_DAG_ID, logical_dates=logical_dates, states=states)

        verdict = assess(checked_at, settings.stall_after_hours, count_runs)
        return watch(settings, verdict, run_id)

    check_verifier_ran()


verify_storage_integrity_watchdog()
