"""One end-to-end scenario, run on a real Airflow deployment, and what it left behind.

Backups are seeded relative to ``H``, the hour the scheduler's first run ends at,
with ``lookback_days = 1`` so that neighbouring hourly windows differ:

======  ===============  ==================================  ===========================
role    created at       fault                               seen by
======  ===============  ==================================  ===========================
G       H - 25h30        missing on r2                       backfill windows ending H-3, H-2
A       H - 5h30         none                                H-3, H-2, H-1, H
B       H - 2h30         none                                H-2, H-1, H
C       H - 1h30         none                                H-1, H
D       H - 0h30         same-size corruption on b2          H (the scheduled run)
O1      H - 72h          none                                only the manual run (backup_ids)
O2      H - 72h          same-size corruption on local       only the manual run, in full mode
======  ===============  ==================================  ===========================

Then it unpauses the DAG (the scheduler creates the run for the hour ending H),
triggers a run through the REST API as the UI does with
``{"mode": "full", "backup_ids": [O1, O2]}``, and creates a backfill over the
three hours ending H-3, H-2 and H-1 with ``airflow backfill create``; all five
runs execute at once. :func:`normalise` turns what they left (runs, results,
alerts, notices, metadata) into backup and run *roles*, so two deployments
(LocalExecutor, CeleryExecutor) can be compared.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from devtools.seed import Stores, corrupt_same_size, create_buckets, create_catalog, delete, seed_backup
from devtools.services import MotoServer, PostgresServer, SmtpReceiver, WebhookReceiver, apprise_connection
from include.backup_integrity.domain.statistics import CONTRACT_STATISTICS

if TYPE_CHECKING:
    from devtools.deployment import AirflowDeployment
    from devtools.seed import SeededBackup

VERIFIER = "verify_storage_integrity"
WATCHDOG = "verify_storage_integrity_watchdog"
HOUR = timedelta(hours=1)
CHUNK_SIZE = 2

CREATED = {
    "G": timedelta(hours=25, minutes=30),
    "A": timedelta(hours=5, minutes=30),
    "B": timedelta(hours=2, minutes=30),
    "C": timedelta(hours=1, minutes=30),
    "D": timedelta(minutes=30),
    "O1": timedelta(hours=72),
    "O2": timedelta(hours=72),
}
MANUAL_IDS = ("O1", "O2")
BACKFILL_ENDS = (3, 2, 1)  # hours before H


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def away_from_the_hour(margin: timedelta = timedelta(minutes=1)) -> datetime:
    """Now, after waiting out the last ``margin`` of an hour: the scheduled run must end at this H."""
    now = datetime.now(UTC)
    next_hour = floor_hour(now) + HOUR
    if next_hour - now < margin:
        time.sleep((next_hour - now).total_seconds() + 5)
    return datetime.now(UTC)


@dataclass
class Environment:
    """The real services a deployment verifies against, and what was seeded there."""

    stores: Stores
    webhook: WebhookReceiver
    smtp: SmtpReceiver
    h: datetime = field(default_factory=lambda: floor_hour(datetime.now(UTC)))
    backups: dict[str, SeededBackup] = field(default_factory=dict)

    def role_of(self, backup_id: str | None) -> str | None:
        for role, backup in self.backups.items():
            if backup.id == backup_id:
                return role
        return backup_id

    def connections(self, postgres: PostgresServer, r2: MotoServer, b2: MotoServer) -> dict[str, Any]:
        return {
            "backup_catalog": postgres.airflow_connection(self.stores.dbname),  # type: ignore[attr-defined]
            "backup_r2": r2.airflow_connection("backup_r2"),
            "backup_b2": b2.airflow_connection("backup_b2"),
            "backup_notify": apprise_connection(self.webhook.apprise_url, self.smtp.apprise_url),
        }

    def variable(self) -> dict[str, Any]:
        return {
            "local_root": self.stores.local_root,
            "r2_bucket": self.stores.r2_bucket,
            "b2_bucket": self.stores.b2_bucket,
            "lookback_days": 1,
            "chunk_size": CHUNK_SIZE,
            # Freshness is not what these scenarios test.
            "max_age_hours": {"FULL_DATABASE": None, "WAL_ARCHIVE": None},
        }


def prepare(
    postgres: PostgresServer, r2: MotoServer, b2: MotoServer, local_root: str, label: str
) -> Environment:
    """A fresh catalog database, fresh buckets and receivers (backups are seeded once Airflow is up)."""
    suffix = uuid.uuid4().hex[:8]
    dbname = f"catalog_e2e_{label}_{suffix}"
    dsn = postgres.create_database(dbname)
    stores = Stores(
        catalog_dsn=dsn,
        local_root=local_root,
        r2=r2.client(),
        b2=b2.client(),
        r2_bucket=f"e2e-{label}-{suffix}",
        b2_bucket=f"e2e-{label}-{suffix}",
    )
    stores.dbname = dbname  # type: ignore[attr-defined]
    create_catalog(stores)
    create_buckets(stores)
    return Environment(stores, WebhookReceiver().start(), SmtpReceiver().start())


def seed(env: Environment) -> None:
    """Seed the backups relative to H, the hour the scheduler's first run will end at."""
    env.h = floor_hour(away_from_the_hour())
    for role, age in CREATED.items():
        env.backups[role] = seed_backup(env.stores, backup_type="FULL_DATABASE", created_at=env.h - age)
    delete(env.stores, env.backups["G"], "r2")
    corrupt_same_size(env.stores, env.backups["D"], "b2")
    corrupt_same_size(env.stores, env.backups["O2"], "local")


def stop_receivers(env: Environment) -> None:
    env.webhook.stop()
    env.smtp.stop()


# --------------------------------------------------------------------------- the three usage paths


@dataclass
class Started:
    """The run ids the scenario started, by role."""

    manual: str
    backfill_output: str


def start_all_paths(deployment: AirflowDeployment, env: Environment) -> Started:
    """Seed, then unpause (scheduled run), trigger through the REST API, and backfill three past hours."""
    deployment.wait_for_dag(VERIFIER)
    seed(env)
    # Unpausing creates the run the scheduler has in mind: make sure it is the one ending at H.
    deployment.wait_for_next_run(VERIFIER, env.h)
    deployment.unpause(VERIFIER)
    manual = deployment.trigger(
        VERIFIER, {"mode": "full", "backup_ids": [env.backups[r].id for r in MANUAL_IDS]}
    )
    first, last = (env.h - (end + 1) * HOUR for end in (max(BACKFILL_ENDS), min(BACKFILL_ENDS)))
    output = deployment.airflow(
        "backfill",
        "create",
        "--dag-id",
        VERIFIER,
        "--from-date",
        first.isoformat(),
        "--to-date",
        last.isoformat(),
    ).stdout
    return Started(manual, output)


def run_role(run: dict[str, Any], h: datetime) -> str:
    if run["run_type"] == "manual":
        return "manual"
    hours = round((h - run["data_interval_end"]).total_seconds() / 3600)
    if run["run_type"] == "scheduled":
        return "scheduled" if hours == 0 else f"scheduled-H-{hours}"
    return f"backfill-H-{hours}"


def wait_for_scenario(deployment: AirflowDeployment, env: Environment, started: Started) -> list[dict]:
    """Every run the scenario started, finished, each with its role."""
    deadline = time.monotonic() + 420
    while True:
        runs = deployment.runs(VERIFIER)
        roles = {run_role(r, env.h): r for r in runs}
        wanted = ["scheduled", "manual"] + [f"backfill-H-{e}" for e in BACKFILL_ENDS]
        if all(w in roles for w in wanted):
            return [{**roles[w], "role": w} for w in wanted]
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs missing: {sorted(set(wanted) - set(roles))}: {runs}")
        time.sleep(2)


def wait_finished(deployment: AirflowDeployment, runs: list[dict]) -> list[dict]:
    finished = deployment.wait_for_runs(VERIFIER, run_ids=[r["run_id"] for r in runs], timeout=480)
    by_id = {r["run_id"]: r for r in finished}
    return [{**by_id[r["run_id"]], "role": r["role"]} for r in runs]


# --------------------------------------------------------------------------- what it left behind


def catalog_query(env: Environment, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    from devtools.runs import query

    return query(env.stores, sql, params)


def results_of(env: Environment, run_id: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """What the run found per copy (the history keeps transitions; see ``devtools.runs.run_findings``)."""
    from devtools.runs import run_findings

    rows = run_findings(env.stores, run_id)
    return {(env.role_of(r["backup_id"]), r["backend"]): (r["kind"], r["evidence"]) for r in rows}


def expected_in_window(env: Environment, end: datetime, lookback: timedelta = timedelta(days=1)) -> set[str]:
    """The backups that existed in the window a run ending at ``end`` verifies."""
    return {role for role, b in env.backups.items() if end - lookback <= b.created_at < end}


def alerts_of(env: Environment) -> list[dict[str, Any]]:
    from devtools.runs import alerts

    return alerts(env.stores)


def notices_of(env: Environment) -> list[dict[str, Any]]:
    return catalog_query(
        env,
        "SELECT id, alert_id, event, run_id, title, sent_at, delivered_to "
        "FROM backup_integrity_notification ORDER BY id",
    )


#: What a run found, as opposed to what finding it cost (requests, reads, the rotation's slice).
COMPARED_STATISTICS = (
    *CONTRACT_STATISTICS,
    "checks_total",
    "checks_passed",
    "mode",
    "chunks",
)


def results_found(env: Environment) -> dict[str, Any]:
    """Every (copy, kind) the history holds, and each copy's kind at its last check."""
    history = catalog_query(
        env, "SELECT DISTINCT backup_id::text AS backup_id, backend, kind FROM backup_integrity_result"
    )
    latest = catalog_query(
        env, "SELECT backup_id::text AS backup_id, backend, last_kind FROM backup_integrity_object"
    )
    return {
        "history": sorted(((env.role_of(r["backup_id"]), r["backend"]), r["kind"]) for r in history),
        "latest": sorted(((env.role_of(r["backup_id"]), r["backend"]), r["last_kind"]) for r in latest),
    }


def normalise(env: Environment, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the scenario produced, with backups and runs named by role (comparable across deployments)."""
    role_by_run = {r["run_id"]: r["role"] for r in runs}
    alert_rows = alerts_of(env)
    alert_key = {
        a["id"]: (env.role_of(a["backup_id"]), a["details"].get("backend"), a["details"]["kind"])
        for a in alert_rows
    }
    metadata = {
        role: catalog_query(env, "SELECT metadata FROM backups_backup WHERE id = %s", [b.id])[0]["metadata"]
        for role, b in env.backups.items()
    }
    return {
        "runs": {r["role"]: r["state"] for r in runs},
        # Kinds, not evidence: which objects the rolling re-hash reads depends on backup ids and
        # on what earlier runs read, so a cleared run may pass on a fingerprint what it first read.
        # The history keeps transitions, so which run recorded one depends on the order the runs
        # ran in (a cleared run, another executor): what was found is compared, not by whom.
        "results": results_found(env),
        "statistics": {
            role_by_run[row["run_id"]]: {
                k: v for k, v in row["statistics"].items() if k in COMPARED_STATISTICS
            }
            for row in catalog_query(env, "SELECT run_id, statistics FROM backup_integrity_run")
            if row["run_id"] in role_by_run
        },
        "alerts": sorted(
            (
                *alert_key[a["id"]],
                a["severity"],
                a["status"],
                a["details"].get("occurrences"),
                role_by_run.get(a["details"].get("run_id"), "?").split("-")[0],
            )
            for a in alert_rows
        ),
        "notices": sorted(
            (*alert_key[n["alert_id"]], n["event"], n["sent_at"] is not None) for n in notices_of(env)
        ),
        "webhook_messages": len(env.webhook.messages),
        "metadata": {
            role: (m.get("last_integrity_check") or {}).get("status")
            + "/"
            + (m.get("last_integrity_check") or {}).get("mode", "")
            if m.get("last_integrity_check")
            else None
            for role, m in metadata.items()
        },
    }
