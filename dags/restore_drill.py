"""
### Restore drill

Every day at 03:00 UTC, prove that backups *restore*, not only that their copies
match the checksum the backup job recorded: a dump cut short, a file encrypted with
a lost key or a tar whose writer crashed passes every integrity check.

1. `choose_backups` validates the `restore_drill` key of the `backup_integrity`
   Variable (absent: nothing to do) and picks, per backup type with a drill format,
   `per_type` COMPLETED backups of the lookback window with a copy that last passed
   its integrity check: the newest never drilled first, then the one drilled longest ago.
2. `drill` is mapped over them, one at a time per deployment: fetch a copy that is
   the catalog's bytes, decrypt (`decrypt_command`, passphrase from `backup_decrypt`),
   decompress gzip, then restore a `pg_dump` into a scratch `restore_drill_…` database
   on `backup_restore_target` and run the checks (dropped afterwards), read a `tar`
   to its end, or check a `wal` segment's long page header.
3. `record_drills` keeps the run in `backup_integrity_restore_run` and each
   drill in `backup_integrity_restore`, merges
   `metadata.last_restore_test`, opens or resolves the `restore_failed`,
   `restore_error` and `restore_overdue` alerts, notifies through `backup_notify`
   and returns the statistics.
4. `check_outcome` fails the run when any drill failed or could not run.

Trigger with `backup_ids` to drill exactly those backups. Every task may run 30
minutes (`execution_timeout`), `drill` 12 hours: its own limit is the Variable's
`timeout_minutes` per backup.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, get_current_context, task

from include.backup_integrity.tasks.dag_support import (
    DRILL_TASK_TIMEOUT,
    DrillItem,
    DrillOutcome,
    DrillStatistics,
    drill_trigger_params,
)

#: Every task but ``drill`` (whose own limit is ``restore_drill.timeout_minutes``, under a backstop).
TASK_TIMEOUT = timedelta(minutes=30)


def report_drill_crash(context) -> None:
    """Tell someone the drill DAG itself broke; what the drills found is reported by record_drills."""
    from include.backup_integrity.tasks.crash import report_crash

    report_crash(context)


@dag(
    dag_id="restore_drill",
    dag_display_name="Restore drill",
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["backups", "integrity", "restore"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "execution_timeout": TASK_TIMEOUT},
    on_failure_callback=report_drill_crash,
    params=drill_trigger_params(),
)
def restore_drill():
    @task(task_display_name="Choose backups")
    def choose_backups(ti=None, data_interval_end=None, dag_run=None) -> list[DrillItem]:
        """Return the backups to map over; the rest of the plan goes to the XCom key "plan"."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from include.backup_integrity.tasks.dag_support import VARIABLE_KEY, ConfigError, drill_params_of_run
        from include.backup_integrity.tasks.drill import choose_backups
        from include.backup_integrity.tasks.select import window_end_of

        raw = Variable.get(VARIABLE_KEY, default=None)
        end = window_end_of(data_interval_end, getattr(dag_run, "run_after", None))
        try:
            plan = choose_backups(raw, drill_params_of_run(dag_run.conf), end)
        except ConfigError as error:
            raise AirflowFailException(str(error)) from None  # retrying cannot fix configuration
        ti.xcom_push(key="plan", value=plan)
        return plan["items"]

    # One drill at a time per deployment: a restore may need the disk and the target to itself.
    @task(
        task_display_name="Drill",
        map_index_template="{{ drill_label }}",
        max_active_tis_per_dag=1,
        retries=1,
        execution_timeout=DRILL_TASK_TIMEOUT,
        multiple_outputs=False,
    )
    def drill(item: DrillItem, plan: dict, run_id=None) -> DrillOutcome:
        from include.backup_integrity.tasks.drill import drill

        get_current_context()["drill_label"] = item["label"]
        return drill(item, plan["settings"], plan["catalog_identity"], run_id)

    # all_done: a drill task that crashed is recorded as an error, the others as they ended.
    @task(task_display_name="Record drills", trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
    def record_drills(outcomes: list, plan: dict, run_id=None) -> DrillStatistics:
        from include.backup_integrity.tasks.drill import record_drills

        return record_drills(list(outcomes), plan, run_id)

    @task(task_display_name="Check outcome", retries=0, trigger_rule=TriggerRule.NONE_FAILED)
    def check_outcome(statistics: dict) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.backup_integrity.tasks.drill import DrillsFailed, check_outcome

        try:
            check_outcome(statistics)
        except DrillsFailed as failure:
            raise AirflowFailException(str(failure)) from None

    items = choose_backups()
    plan = items["plan"]
    outcomes = drill.partial(plan=plan).expand(item=items)
    check_outcome(record_drills(outcomes, plan))


restore_drill()
