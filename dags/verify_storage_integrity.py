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
3. `aggregate_results` repairs bad copies from a verified replica when the
   `repair` key or param says `apply` (`plan` only lists what it would copy),
   returns the run's statistics and emits them as `backup_integrity.*` metrics.
4. `raise_alerts` writes results, `metadata.last_integrity_check` and alert rows
   in one transaction, then notifies through `backup_notify` (Apprise).
5. `check_outcome` fails the run when any of its checks failed or could not run
   and was not repaired.

Trigger with params to check in `full` mode, over another lookback, or exactly
the listed `backup_ids`.

Every task has an `execution_timeout` (fixed here: a Variable cannot be read at
parse time): 30 minutes, and 2 hours for each `verify_chunk`, which stops asking
stores 5 minutes before its own and reports what it did not ask as
`backend_error` "not asked: task deadline".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, get_current_context, task

from include.backup_integrity.domain.records import Chunk, ChunkOutcome, Statistics

#: How long any task may run (docs/operations.md); a chunk's own is longer, for full-mode reads.
TASK_TIMEOUT = timedelta(minutes=30)
CHUNK_TIMEOUT = timedelta(hours=2)


def report_verifier_crash(context) -> None:
    """Tell someone the verifier itself broke; integrity failures are reported by raise_alerts."""
    from include.backup_integrity.tasks.pipeline import report_crash

    report_crash(context)


@dag(
    dag_id="verify_storage_integrity",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["backups", "integrity"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "execution_timeout": TASK_TIMEOUT},
    on_failure_callback=report_verifier_crash,
    params={
        "mode": Param(
            "rolling",
            enum=["rolling", "quick", "full"],
            description="rolling: quick checks of everything plus this hour's slice of the rotating "
            "full re-hash (and a re-read of anything changed); quick: existence, size, fingerprints "
            "and the store's own SHA-256, never a download; full: read every object and compare "
            "its SHA-256.",
        ),
        "lookback_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Days before the window end to verify; empty: the Variable's value.",
        ),
        "max_backups": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Check at most this many backups, newest first; empty: the Variable's value.",
        ),
        "backup_ids": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Check exactly these COMPLETED backups, whatever their age; empty: the window.",
        ),
        "repair": Param(
            None,
            type=["null", "string"],
            enum=[None, "off", "plan", "apply"],
            description="Repair bad copies from a replica verified good: off, plan (list only) or "
            "apply; empty: the Variable's value (default off).",
        ),
    },
)
def verify_storage_integrity():
    @task
    def select_backups(ti=None, data_interval_end=None, dag_run=None) -> list[Chunk]:
        """Return the chunks to map over; the rest of the plan goes to the XCom key "plan"."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from include.backup_integrity.config.settings import VARIABLE_KEY, ConfigError, params_of_run
        from include.backup_integrity.tasks.pipeline import select_backups, window_end_of

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
        map_index_template="{{ chunk_label }}",
        retries=1,
        multiple_outputs=False,
        execution_timeout=CHUNK_TIMEOUT,
    )
    def verify_chunk(chunk: Chunk, settings: dict, run_id=None, ti=None) -> ChunkOutcome:
        from include.backup_integrity.tasks.pipeline import verify

        get_current_context()["chunk_label"] = chunk["label"]
        return verify(chunk, settings, run_id, ti.task.execution_timeout)

    # none_failed: a window whose checks were all decided from the catalog maps no chunk at all.
    @task(trigger_rule=TriggerRule.NONE_FAILED, multiple_outputs=False)
    def aggregate_results(chunk_results: list, plan: dict, run_id=None, ti=None) -> Statistics:
        """Repair (per the run's repair mode), then return the statistics; repairs go to XCom "repairs"."""
        from include.backup_integrity.tasks.pipeline import aggregate, repair

        chunk_results = list(chunk_results)
        repairs = repair(chunk_results, plan)
        ti.xcom_push(key="repairs", value=repairs)
        return aggregate(chunk_results, plan, run_id, repairs)

    @task(trigger_rule=TriggerRule.NONE_FAILED, multiple_outputs=False)
    def raise_alerts(
        chunk_results: list, plan: dict, statistics: dict, repairs: list, run_id=None, dag=None
    ) -> dict:
        from include.backup_integrity.tasks.pipeline import record_and_alert

        return record_and_alert(chunk_results, plan, statistics, run_id, dag.dag_id, repairs)

    @task(retries=0, trigger_rule=TriggerRule.NONE_FAILED)
    def check_outcome(statistics: dict) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from include.backup_integrity.tasks.pipeline import IntegrityFailure, check_outcome

        try:
            check_outcome(statistics)
        except IntegrityFailure as failure:
            raise AirflowFailException(str(failure)) from None

    chunks = select_backups()
    plan = chunks["plan"]
    chunk_results = verify_chunk.partial(settings=chunks["settings"]).expand(chunk=chunks)
    statistics = aggregate_results(chunk_results, plan)
    alerts = raise_alerts(chunk_results, plan, statistics, statistics["repairs"])
    alerts >> check_outcome(statistics)


verify_storage_integrity()
