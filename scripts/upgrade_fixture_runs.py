"""The previous release's catalog after real runs, dumped: what users upgrade from.

Run by ``scripts/make_upgrade_fixture.sh`` inside a worktree of that release, so every
``devtools`` and ``include`` import below is the release's own code, not this one's.
It seeds backups (real bytes in a local folder and two moto S3 servers, some damaged),
runs the release's ``verify_storage_integrity`` with ``dag.test()`` twice (a rolling
run that finds the damage and notifies a webhook, then a full run that repairs one
copy), and writes a plain-SQL ``pg_dump`` of the catalog database.

Each backup's ``metadata.fixture`` says how its bytes are made (``content_seed``, see
:func:`fixture_content`) and which copies are damaged at the end, so the upgrade
test can put the same bytes back into fresh stores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta


def fixture_content(seed: int, size: int) -> bytes:
    """The bytes of a fixture backup: the upgrade test rebuilds them from ``content_seed`` and size."""
    return hashlib.shake_256(f"backup-integrity upgrade fixture {seed}".encode()).digest(size)


#: (backup type, damage left in the stores) per backup; ``repaired`` is damaged, then repaired.
BACKUPS = (
    ("FULL_DATABASE", {}),
    ("FULL_DATABASE", {}),
    ("TENANT_BACKUP", {}),
    ("CONFIGURATION", {}),
    ("WAL_ARCHIVE", {}),
    ("WAL_ARCHIVE", {}),
    ("FULL_DATABASE", {"b2": "missing"}),
    ("TENANT_BACKUP", {"local": "size_mismatch"}),
    ("CONFIGURATION", {"r2": "checksum_mismatch"}),
    ("WAL_ARCHIVE", {"b2": "missing"}),
    ("FULL_DATABASE", "repaired"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="where to write the plain-SQL dump")
    parser.add_argument("--release", required=True, help="the release's commit, for the dump's header")
    args = parser.parse_args()

    from devtools.runs import DagRunOutcome, alerts, load_dag, use_throwaway_airflow

    home = tempfile.mkdtemp(prefix="bi-upgrade-fixture-airflow-")
    use_throwaway_airflow(
        home,
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP="",
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

    from devtools.seed import (
        Stores,
        corrupt_same_size,
        create_buckets,
        create_catalog,
        delete,
        seed_backup,
        truncate,
    )
    from devtools.services import MotoServer, PostgresServer, WebhookReceiver

    postgres, r2, b2, webhook = PostgresServer(), MotoServer("r2"), MotoServer("b2"), WebhookReceiver()
    for service in (postgres, r2, b2, webhook):
        service.start()
    try:
        dsn = postgres.create_database("catalog")
        local_root = tempfile.mkdtemp(prefix="bi-upgrade-fixture-local-")
        stores = Stores(catalog_dsn=dsn, local_root=local_root, r2=r2.client(), b2=b2.client())
        create_catalog(stores)
        create_buckets(stores)
        os.environ.update(
            AIRFLOW_CONN_BACKUP_CATALOG=json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "port": postgres.port,
                    "login": postgres.user,
                    "schema": "catalog",
                }
            ),
            AIRFLOW_CONN_BACKUP_R2=json.dumps(r2.airflow_connection("backup_r2")),
            AIRFLOW_CONN_BACKUP_B2=json.dumps(b2.airflow_connection("backup_b2")),
            AIRFLOW_CONN_BACKUP_NOTIFY=json.dumps(
                {"conn_type": "apprise", "extra": {"config": [{"path": webhook.apprise_url}]}}
            ),
            AIRFLOW_VAR_BACKUP_INTEGRITY=json.dumps({"local_root": local_root}),
        )

        now = datetime.now(UTC)
        repaired = None
        for seed, (backup_type, damage) in enumerate(BACKUPS):
            size = 3000 + 517 * seed
            final_damage = {} if damage == "repaired" else damage
            backup = seed_backup(
                stores,
                backup_type=backup_type,
                content=fixture_content(seed, size),
                created_at=now - timedelta(hours=2 + seed),
                row_overrides={
                    "metadata": json.dumps({"fixture": {"content_seed": seed, "damage": final_damage}})
                },
            )
            if damage == "repaired":
                delete(stores, backup, "local")
                repaired = backup
            for backend, kind in final_damage.items():
                {"missing": delete, "size_mismatch": truncate, "checksum_mismatch": corrupt_same_size}[kind](
                    stores, backup, backend
                )

        logical_date = now + timedelta(hours=1)
        first = DagRunOutcome(load_dag().test(logical_date=logical_date))
        second = DagRunOutcome(
            load_dag().test(
                logical_date=logical_date + timedelta(hours=1),
                run_conf={"mode": "full", "repair": "apply", "backup_ids": [repaired.id]},
            )
        )
        third = DagRunOutcome(
            load_dag().test(
                logical_date=logical_date + timedelta(hours=2),
                run_conf={"mode": "quick", "backup_ids": [repaired.id]},
            )
        )
        statuses = [a["status"] for a in alerts(stores)]
        print(f"runs: {first!r}, {second!r}, {third!r}; alerts: {statuses}; notices: {len(webhook.messages)}")
        # Four damaged copies and the run summary stay open; the repaired copy's alert is resolved.
        if sorted(statuses) != ["ACTIVE"] * 5 + ["RESOLVED"]:
            raise SystemExit("the release's runs did not leave the expected alerts and notifications")

        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--no-privileges", "--format=plain", "--dbname", dsn],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        with open(args.out, "w") as handle:
            handle.write(
                f"-- The catalog database of release {args.release} after three runs of its DAG;\n"
                "-- made by scripts/make_upgrade_fixture.sh (do not edit by hand).\n"
            )
            handle.write(dump)
    finally:
        for service in (webhook, b2, r2, postgres):
            service.stop()


if __name__ == "__main__":
    main()
