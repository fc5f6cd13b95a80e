"""Run the verifier once on the embedded default and print what it found.

Starts a throwaway PostgreSQL (catalog), a real SeaweedFS standing in for R2 and a moto S3
server for B2, a local backup folder, a webhook and an SMTP receiver; seeds sample
backups including a few faults; runs ``verify_storage_integrity`` with
``dag.test()`` against a temporary Airflow home; prints the run's statistics,
its alerts and the notifications that arrived. Everything is removed at exit.

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

from devtools.runs import DagRunOutcome, load_dag, use_throwaway_airflow


def prepare_airflow_home() -> str:
    home = tempfile.mkdtemp(prefix="bi-demo-airflow-")
    use_throwaway_airflow(home, AIRFLOW__LOGGING__LOGGING_LEVEL="CRITICAL")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return home


def seed_samples(stores) -> dict[str, str]:
    """Healthy backups of every type, and one of each fault."""
    from devtools.seed import corrupt_same_size, delete, seed_backup, truncate

    now = datetime.now(UTC)
    labels: dict[str, str] = {}
    for index, backup_type in enumerate(
        ["FULL_DATABASE", "TENANT_BACKUP", "TENANT_BACKUP", "CONFIGURATION", "WAL_ARCHIVE", "WAL_ARCHIVE"]
    ):
        backup = seed_backup(
            stores, backup_type=backup_type, size=64 * 1024, created_at=now - timedelta(hours=3 + index)
        )
        labels[backup.id] = f"healthy {backup_type}"
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
    return labels


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
        labels = seed_samples(stores)
        os.environ.update(
            **store_connections(postgres, r2, b2, "catalog"),
            AIRFLOW_CONN_BACKUP_NOTIFY=json.dumps(apprise_connection(webhook.apprise_url, smtp.apprise_url)),
            AIRFLOW_VAR_BACKUP_INTEGRITY=json.dumps({"local_root": local_root, "chunk_size": 5}),
        )
        print(
            f"seeded {len(labels)} backups into a local folder, R2 (SeaweedFS, {r2.endpoint_url}) and "
            f"B2 (moto, {b2.endpoint_url}); running verify_storage_integrity in {args.mode} mode ..."
        )
        for _ in range(args.runs):
            conf = {"mode": args.mode, "repair": args.repair}
            outcome = DagRunOutcome(load_dag().test(run_conf=conf))
            print_report(outcome, stores, labels, webhook, smtp)
        shutil.rmtree(local_root, ignore_errors=True)
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
