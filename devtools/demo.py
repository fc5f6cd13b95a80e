"""Run the verifier on the embedded default, then a restore drill, and print what they found.

Starts a throwaway PostgreSQL (catalog, and the restore target), a real SeaweedFS standing
in for R2 and a moto S3 server for B2, a local backup folder, a webhook and an SMTP
receiver; seeds sample backups including a few faults; runs ``verify_storage_integrity``
with ``dag.test()`` against a temporary Airflow home; prints the run's statistics, its
alerts and the notifications that arrived. Then ``restore_drill`` restores the real
backups among the samples (pg_dump dumps, a tar.gz, archived WAL, all openssl-encrypted),
among them a dump cut short and a file encrypted with another key: intact for the hourly
verifier, not restorable for the drill. Everything is removed at exit.

    PYTHONPATH=. .venv/bin/python -m devtools.demo [--mode full] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta

from devtools.drill_samples import OPENSSL_DECRYPT
from devtools.runs import DagRunOutcome, load_dag, use_throwaway_airflow


def prepare_airflow_home() -> str:
    home = tempfile.mkdtemp(prefix="bi-demo-airflow-")
    use_throwaway_airflow(home, AIRFLOW__LOGGING__LOGGING_LEVEL="CRITICAL")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return home


#: The passphrase the demo's backup job encrypts with (the drill gets it from ``backup_decrypt``).
DEMO_PASSPHRASE = "demo passphrase, kept in backup_decrypt"


def real_backups(postgres) -> dict[str, bytes]:
    """What a backup job would write: dumps of a database, a configuration tar.gz, archived WAL."""
    from devtools import drill_samples as samples

    samples.create_source_database(postgres, "shop")
    custom = samples.pg_dump(postgres, "shop", "custom")
    return {
        "custom": custom,
        "plain.gz": samples.gzipped(samples.pg_dump(postgres, "shop", "plain")),
        "config": samples.tar_gz(
            {"etc/shop.conf": b"currency = EUR\n", "etc/nginx/site.conf": b"listen 443;\n"}
        ),
        "wal": samples.archived_wal_segments(1)[0],
        "cut short": samples.cut_short(custom),
    }


def seed_samples(stores, backups: dict[str, bytes]) -> tuple[dict[str, str], list[str]]:
    """Healthy backups of every type, one of each fault; and the ids of the real backups to drill."""
    from devtools.drill_samples import encrypt, encrypt_for_another_key
    from devtools.seed import corrupt_same_size, delete, seed_backup, truncate

    now = datetime.now(UTC)
    labels: dict[str, str] = {}
    drilled: list[str] = []
    contents = ["custom", "plain.gz", "custom", "config", "wal"]
    for index, (backup_type, content) in enumerate(
        zip(
            ["FULL_DATABASE", "TENANT_BACKUP", "TENANT_BACKUP", "CONFIGURATION", "WAL_ARCHIVE"],
            contents,
            strict=True,
        )
    ):
        backup = seed_backup(
            stores,
            backup_type=backup_type,
            content=encrypt(backups[content], DEMO_PASSPHRASE),
            created_at=now - timedelta(hours=3 + index),
        )
        labels[backup.id] = f"healthy {backup_type}"
        drilled.append(backup.id)
    cut = seed_backup(
        stores,
        content=encrypt(backups["cut short"], DEMO_PASSPHRASE),
        created_at=now - timedelta(hours=8, minutes=30),
    )
    labels[cut.id] = "dump cut short when the disk filled"
    lost_key = seed_backup(
        stores,
        backup_type="TENANT_BACKUP",
        content=encrypt_for_another_key(backups["custom"], "a key nobody has any more", DEMO_PASSPHRASE),
        created_at=now - timedelta(hours=9),
    )
    labels[lost_key.id] = "encrypted with a key nobody has"
    drilled += [cut.id, lost_key.id]
    gone = seed_backup(stores, created_at=now - timedelta(hours=10))
    delete(stores, gone, "b2")
    labels[gone.id] = "deleted from b2"
    short = seed_backup(stores, backup_type="TENANT_BACKUP", created_at=now - timedelta(hours=11))
    truncate(stores, short, "local")
    labels[short.id] = "truncated on local"
    flipped = seed_backup(stores, backup_type="CONFIGURATION", created_at=now - timedelta(hours=12))
    corrupt_same_size(stores, flipped, "r2")
    labels[flipped.id] = "same-size corruption on r2"
    bad = seed_backup(stores, created_at=now - timedelta(hours=13), row_overrides={"checksum": "n/a"})
    labels[bad.id] = "catalog row with a bad checksum"
    wal = seed_backup(
        stores,
        backup_type="WAL_ARCHIVE",
        created_at=now - timedelta(hours=14),
        on=("r2", "b2"),
        record_paths=("r2",),
    )
    labels[wal.id] = "WAL whose b2 path was never recorded"
    old = seed_backup(stores, created_at=now - timedelta(days=45))
    delete(stores, old, "r2")
    labels[old.id] = "outside the 30-day window (not checked)"
    return labels, drilled


def print_report(outcome, stores, labels: dict[str, str], webhook, smtp) -> None:
    from devtools.runs import alerts, query

    print(f"\n=== run {outcome.run_id}: {outcome.state.upper()} ===")
    print("statistics (aggregate_results):")
    for key, value in outcome.statistics.items():
        if key in ("run_id", "repair_plan"):
            continue
        print(f"  {key:24} {value}")
    for entry in outcome.statistics.get("repair_plan", []):
        print(
            f"  repair {entry['backup_id'][:8]} {entry['kind']} on {entry['backend']}: "
            f"from {entry['source_backend'] or '-'} ({entry['reason']})"
        )
    print("\nresults per backup:")
    rows = query(
        stores,
        "SELECT backup_id::text AS b, backend, kind FROM backup_integrity_result "
        "WHERE run_id = %s ORDER BY backup_id, backend",
        [outcome.run_id],
    )
    per_backup: dict[str, list[str]] = {}
    for row in rows:
        per_backup.setdefault(row["b"], []).append(f"{row['backend'] or '-'}={row['kind']}")
    for backup_id, label in labels.items():
        print(f"  {backup_id[:8]}  {label:42} {' '.join(per_backup.get(backup_id, ['not checked']))}")
    print("\nalerts (backups_backupalert):")
    for row in alerts(stores):
        d = row["details"]
        print(
            f"  #{row['id']:<3} {row['status']:8} {row['severity']:8} {d['kind']:17} "
            f"{d.get('backend') or '-':5} occurrences={d.get('occurrences')} "
            f"channels={len(row['notification_channels'])}  {row['message'][:90]}"
        )
    print(f"\nnotifications received: {len(webhook.messages)} by webhook, {len(smtp.messages)} by email")
    for message in webhook.messages[-12:]:
        print(f"  {message.get('title')}")


def print_drill_report(dag_run, stores, labels: dict[str, str], webhook) -> None:
    from devtools.runs import alerts, query, xcom

    statistics = xcom(dag_run, "record_drills") or {}
    print(f"\n=== restore drill {dag_run.run_id}: {str(dag_run.state).upper()} ===")
    print("statistics (record_drills):")
    for key in ("backups_drilled", "restored_successfully", "restore_failures", "restore_errors"):
        print(f"  {key:24} {statistics.get(key)}")
    rows = query(
        stores,
        "SELECT backup_id::text AS b, status, stage, source_backend, message FROM backup_integrity_restore "
        "WHERE run_id = %s",
        [dag_run.run_id],
    )
    checks = {
        r["b"]: r["status"] or "-"
        for r in query(
            stores,
            "SELECT id::text AS b, metadata -> 'last_integrity_check' ->> 'status' AS status "
            "FROM backups_backup",
        )
    }
    print("\ndrills per backup (the hourly verifier's last word, then the drill's):")
    for row in sorted(rows, key=lambda r: list(labels).index(r["b"])):
        print(
            f"  {row['b'][:8]}  {labels[row['b']]:38} verifier={checks.get(row['b'], '-'):6} "
            f"drill={row['status']:6} at {row['stage']:10} {row['message'][:80]}"
        )
    intact_not_restorable = [r for r in rows if r["status"] == "failed" and checks.get(r["b"]) == "passed"]
    print(
        f"\nintact but not restorable: {len(intact_not_restorable)} backup(s) whose every copy matches "
        "its checksum, and that do not restore"
    )
    print("\nrestore alerts (backups_backupalert):")
    for row in alerts(stores):
        d = row["details"]
        if str(d.get("kind", "")).startswith("restore_"):
            print(f"  #{row['id']:<3} {row['status']:8} {row['severity']:8} {d['kind']:16} {d.get('stage')}")
    for message in webhook.messages:
        if "Restore drill" in str(message.get("title")):
            print(f"  notice: {message.get('title')}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["rolling", "quick", "full"], default="rolling")
    parser.add_argument("--runs", type=int, default=2, help="runs in a row (the 2nd shows dedup)")
    parser.add_argument(
        "--repair",
        choices=["off", "plan", "apply"],
        default="off",
        help="repair bad copies from a verified replica (plan: only list what would be copied)",
    )
    args = parser.parse_args()

    home = prepare_airflow_home()
    from devtools.seed import Stores, create_buckets, create_catalog
    from devtools.services import (
        MotoServer,
        PostgresServer,
        SeaweedServer,
        SmtpReceiver,
        WebhookReceiver,
        apprise_connection,
        store_connections,
    )

    services = []
    try:
        postgres = PostgresServer().start()
        services.append(postgres)
        # R2 is played by a real object store (SeaweedFS), B2 by moto.
        r2, b2 = SeaweedServer("r2").start(), MotoServer("b2").start()
        services += [r2, b2]
        webhook, smtp = WebhookReceiver().start(), SmtpReceiver().start()
        services += [webhook, smtp]
        local_root = tempfile.mkdtemp(prefix="bi-demo-backups-")
        stores = Stores(
            catalog_dsn=postgres.create_database("catalog"),
            local_root=local_root,
            r2=r2.client(),
            b2=b2.client(),
        )
        create_catalog(stores)
        create_buckets(stores)
        labels, drilled = seed_samples(stores, real_backups(postgres))
        variable = {
            "local_root": local_root,
            "chunk_size": 5,
            # The Variable sets the level: a trigger param may not raise repair to apply.
            "repair": args.repair,
            "restore_drill": {"decrypt_command": OPENSSL_DECRYPT},
        }
        os.environ.update(
            **store_connections(postgres, r2, b2, "catalog"),
            AIRFLOW_CONN_BACKUP_NOTIFY=json.dumps(apprise_connection(webhook.apprise_url, smtp.apprise_url)),
            # Drills restore into scratch databases of the same server, never into the catalog's database.
            AIRFLOW_CONN_BACKUP_RESTORE_TARGET=json.dumps(postgres.airflow_connection("postgres")),
            AIRFLOW_CONN_BACKUP_DECRYPT=json.dumps({"conn_type": "generic", "password": DEMO_PASSPHRASE}),
            AIRFLOW_VAR_BACKUP_INTEGRITY=json.dumps(variable),
        )
        print(
            f"seeded {len(labels)} backups into a local folder, R2 (SeaweedFS, {r2.endpoint_url}) and "
            f"B2 (moto, {b2.endpoint_url}); running verify_storage_integrity in {args.mode} mode ..."
        )
        for _ in range(args.runs):
            conf = {"mode": args.mode, "repair": args.repair}
            outcome = DagRunOutcome(load_dag().test(run_conf=conf))
            print_report(outcome, stores, labels, webhook, smtp)
        print(f"\nrunning restore_drill on the {len(drilled)} real backups among the samples ...")
        drill_run = load_dag("restore_drill").test(run_conf={"backup_ids": drilled})
        print_drill_report(drill_run, stores, labels, webhook)
        shutil.rmtree(local_root, ignore_errors=True)
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
