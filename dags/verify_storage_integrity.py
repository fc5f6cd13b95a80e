"""
### Verify storage integrity

Every hour, prove that each recent backup is present and intact in every place
it is stored (the local folder, Cloudflare R2 and Backblaze B2), and raise
deduplicated alerts the moment one is not.

1. `select_backups` validates the `backup_integrity` Variable, sizes the run's
   scope (COMPLETED backups of the window) in the catalog (`backup_catalog`) and
   splits each backend's keys into at most `max_chunks_per_backend` ranges.
2. `verify_chunk` is mapped over those ranges: existence and size from folder
   listings; content from the fingerprint recorded when the object's SHA-256
   was last proven, the store's own SHA-256, and reads: every object in `full`
   mode, this hour's slice of the weekly re-hash (and anything changed) in
   `rolling` mode (the default), none in `quick` mode. Problems become
   results, never task failures.
3. `repair_copies` repairs bad copies from a verified replica when the `repair`
   key or param says `apply` (`plan` only lists what it would copy). It has no
   retries; each copy's outcome is recorded as it is proven, so a cleared run
   does not copy it again.
4. `aggregate_results` returns the run's statistics and emits them as
   `backup_integrity.*` metrics. It runs even when `repair_copies` crashed, and
   then reports every bad copy as not repaired.
5. `raise_alerts` writes results, `metadata.last_integrity_check` and alert rows
   in one transaction, then notifies through `backup_notify` (Apprise).
6. `check_outcome` fails the run when any of its checks failed or could not run
   and was not repaired.

Trigger with params to check in `full` mode, over another lookback, exactly the
listed `backup_ids`, or to plan or apply repairs.

Every task has an `execution_timeout` (fixed here: a Variable cannot be read at
parse time): 30 minutes, and 2 hours for each `verify_chunk`, which stops asking
stores 5 minutes before its own and reports what it did not ask as
`backend_error` "not asked: task deadline".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, get_current_context, task

from include.backup_integrity.tasks.dag_support import Chunk, ChunkOutcome, Statistics, trigger_params

#: How long any task may run (docs/operations.md); a chunk's own is longer, for full-mode reads.
TASK_TIMEOUT = timedelta(minutes=30)
CHUNK_TIMEOUT = timedelta(hours=2)


def report_verifier_crash(context) -> None:
    """Tell someone the verifier itself broke; integrity failures are reported by raise_alerts."""
    from include.backup_integrity.tasks.crash import report_crash

    report_crash(context)


@dag(
    dag_id="verify_storage_integrity",
    dag_display_name="Verify storage integrity",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["backups", "integrity"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "execution_timeout": TASK_TIMEOUT},
    on_failure_callback=report_verifier_crash,
    params=trigger_params(),
)
def verify_storage_integrity():
    @task(task_display_name="Select backups and plan chunks")
    def select_backups(ti=None, data_interval_end=None, dag_run=None) -> list[Chunk]:
        """Return the chunks to map over; the rest of the plan goes to the XCom key "plan"."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from include.backup_integrity.tasks.dag_support import VARIABLE_KEY, ConfigError, params_of_run
        from include.backup_integrity.tasks.select import select_backups, window_end_of

        raw = Variable.get(VARIABLE_KEY, default=None)
        end = window_end_of(data_interval_end, getattr(dag_run, "run_after", None))
        try:
            plan = select_backups(raw, params_of_run(dag_run.conf), end, dag_run.run_id)
        except ConfigError as error:
            raise AirflowFailException(str(error)) from None  # retrying cannot fix configuration
        chunks = plan.pop("chunks")
        ti.xcom_push(key="plan", value=plan)
        ti.xcom_push(key="settings", value=plan["settings"])
        return chunks

    @task(
        task_display_name="Verify a chunk",
        map_index_template="{{ chunk_label }}",
        retries=1,
        multiple_outputs=False,
        execution_timeout=CHUNK_TIMEOUT,
    )
    def verify_chunk(chunk: Chunk, settings: dict, run_id=None, ti=None) -> ChunkOutcome:
        from include.backup_integrity.tasks.verify import verify_and_record

        get_current_context()["chunk_label"] = chunk["label"]
        return verify_and_record(chunk, settings, run_id, ti.task.execution_timeout)

    # none_failed: a window whose checks were all decided from the catalog maps no chunk at all.
    # No retries: a copy is recorded once proven, and a clear (not a retry) repeats the rest.
    @task(task_display_name="Repair bad copies", retries=0, trigger_rule=TriggerRule.NONE_FAILED)
    def repair_copies(chunk_results: list, plan: dict, run_id=None) -> dict:
        from include.backup_integrity.tasks.repair import repair_copies

        return repair_copies(list(chunk_results), plan, run_id)

    # all_done: statistics and alerts even when repair_copies crashed. The plan is pulled, not
    # passed, so that a failed select_backups makes this task skip instead of fail.
    @task(
        task_display_name="Aggregate statistics",
        trigger_rule=TriggerRule.ALL_DONE,
        multiple_outputs=False,
    )
    def aggregate_results(chunk_results: list, repairs: dict | None, run_id=None, ti=None) -> Statistics:
        """Return the statistics; the repairs it reports go to XCom "repairs"."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.backup_integrity.tasks.aggregate import (
            UpstreamIncomplete,
            aggregate,
            complete_outcomes,
            expand_repairs,
            repairs_to_report,
            require_every_chunk,
        )
        from include.backup_integrity.tasks.results import compact_repairs

        chunk_results = list(chunk_results)
        try:
            plan = require_every_chunk(chunk_results, ti.xcom_pull(task_ids="select_backups", key="plan"))
        except UpstreamIncomplete as incomplete:
            raise AirflowSkipException(str(incomplete)) from None  # the failed task fails the run
        from include.backup_integrity.tasks.recovery import judge_recovery, silent_stores

        chunk_results = complete_outcomes(chunk_results, plan, run_id)
        reported = repairs_to_report(chunk_results, plan, expand_repairs(repairs, plan, run_id))
        ti.xcom_push(key="repairs", value=compact_repairs(reported))
        used = {o["backend"] for o in chunk_results}
        recovery, judgement = judge_recovery(plan, run_id, used, silent_stores(chunk_results))
        ti.xcom_push(key="recovery", value=judgement or {})  # a None XCom is "not found"
        copies = (repairs or {}).get("requests_sent")  # what repair_copies sent, for the cost
        return aggregate(chunk_results, plan, run_id, reported, recovery, copies)

    @task(task_display_name="Record results and raise alerts", trigger_rule=TriggerRule.NONE_FAILED)
    def raise_alerts(
        chunk_results: list,
        plan: dict,
        statistics: dict,
        repairs: dict,
        recovery: dict | None,
        run_id=None,
        dag=None,
    ) -> dict:
        from include.backup_integrity.tasks.alert import raise_alerts

        return raise_alerts(chunk_results, plan, statistics, run_id, dag.dag_id, repairs, recovery)

    @task(task_display_name="Check the outcome", retries=0, trigger_rule=TriggerRule.NONE_FAILED)
    def check_outcome(statistics: dict) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.backup_integrity.tasks.outcome import IntegrityFailure, check_outcome

        try:
            check_outcome(statistics)
        except IntegrityFailure as failure:
            raise AirflowFailException(str(failure)) from None

    chunks = select_backups()
    plan = chunks["plan"]
    chunk_results = verify_chunk.partial(settings=chunks["settings"]).expand(chunk=chunks)
    repairs = repair_copies(chunk_results, plan)
    statistics = aggregate_results(chunk_results, repairs)
    alerts = raise_alerts(chunk_results, plan, statistics, statistics["repairs"], statistics["recovery"])
    alerts >> check_outcome(statistics)


verify_storage_integrity()
