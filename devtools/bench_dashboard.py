"""Benchmark: the dashboard's queries on a catalog with 100k backups (the issue's scale).

Run: ``PYTHONPATH=$PWD .venv/bin/python -m devtools.bench_dashboard [--backups 100000] [--runs 3]``.
Starts a throwaway PostgreSQL, fills the catalog and the verifier's tables in SQL
(``generate_series``: every backup checked on each of its backends in each run, one
run in full mode, about 1% failing, spread over 30 days), then times each section of
the page, the first and a deep page of the matrix, and the page's HTML, the console's
pages (alerts filtered and sorted, one alert, one backup), and prints the timings.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from include.backup_integrity.catalog.schema import read_shipped_sql, upgrade_schema
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.dashboard import console_queries
from include.backup_integrity.dashboard.app import (
    compute_coverage,
    coverage,
    failures_per_day,
    last_run,
    matrix,
    open_alerts,
    summary,
)
from include.backup_integrity.dashboard.page import render_page


def seed_scale(conn: Any, backups: int, runs: int, now: datetime, resolved_alerts: int = 0) -> None:
    """Fill the catalog and the verifier's tables in SQL; ``runs`` checks of every copy.

    ``resolved_alerts`` adds that many resolved alerts of the past year (the history a
    long-lived catalog accumulates), for the console's alerts and backup pages.
    """
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO backups_backup (id, backup_type, filename, size_bytes, checksum, local_path, "
            "r2_path, b2_path, status, created_at) "
            "SELECT md5(i::text)::uuid, CASE WHEN i %% 10 = 0 THEN 'WAL_ARCHIVE' ELSE 'FULL_DATABASE' END, "
            "'backup_' || i || '.dump.enc', 1048576, repeat('a', 64), 'db/' || i, 'db/' || i, 'db/' || i, "
            "'COMPLETED', %s - (i * interval '26 seconds') FROM generate_series(1, %s) i",
            [now, backups],
        )
        for run in range(runs):
            mode = "full" if run == 0 else "quick"
            evidence = "content_sha256" if mode == "full" else "server_sha256"
            cur.execute(
                "INSERT INTO backup_integrity_result (run_id, backup_id, backend, kind, mode, evidence, "
                "path, message, expected, actual, checked_at) "
                "SELECT %s, b.id, be.backend, "
                "CASE WHEN (hashtext(b.id::text || be.backend || %s) %% 100) = 0 THEN "
                "(ARRAY['missing','size_mismatch','checksum_mismatch','backend_error'])"
                "[1 + abs(hashtext(b.id::text)) %% 4] ELSE 'passed' END, %s, %s, b.local_path, 'm', "
                "'{}'::jsonb, NULL, %s - ((%s - %s) * interval '10 days') - (random() * interval '9 days') "
                "FROM backups_backup b CROSS JOIN (VALUES ('local'), ('r2'), ('b2')) be(backend) "
                "WHERE be.backend <> 'local' OR b.backup_type <> 'WAL_ARCHIVE'",
                [f"run_{run}", str(run), mode, evidence, now, runs - 1, run],
            )
        cur.execute(
            "INSERT INTO backups_backupalert (backup_id, alert_type, severity, message, details, "
            "notification_channels, status, created_at) "
            "SELECT backup_id, 'INTEGRITY_FAILURE', 'CRITICAL', message, jsonb_build_object('kind', kind, "
            "'backend', backend, 'first_seen', checked_at, 'last_seen', checked_at, 'occurrences', 1, "
            "'source', 'verify_storage_integrity', 'producer', 'verify_storage_integrity'), "
            "'[]'::jsonb, 'ACTIVE', checked_at FROM backup_integrity_result "
            "WHERE run_id = %s AND kind <> 'passed'",
            [f"run_{runs - 1}"],
        )
        cur.execute(
            "INSERT INTO backups_backupalert (backup_id, alert_type, severity, message, details, "
            "notification_channels, status, resolved_at, created_at) "
            "SELECT md5((1 + i %% %s)::text)::uuid, 'INTEGRITY_FAILURE', "
            "(ARRAY['CRITICAL','ERROR','WARNING'])[1 + i %% 3], 'old failure ' || i, "
            "jsonb_build_object('kind', (ARRAY['missing','size_mismatch','checksum_mismatch'])[1 + i %% 3], "
            "'backend', (ARRAY['local','r2','b2'])[1 + i %% 3], 'source', 'verify_storage_integrity', "
            "'producer', 'verify_storage_integrity', 'resolution', 'passed'), '[]'::jsonb, 'RESOLVED', "
            "%s - (i * interval '5 minutes'), %s - (i * interval '5 minutes') - interval '1 hour' "
            "FROM generate_series(1, %s) i",
            [backups, now, now, resolved_alerts],
        )
        cur.execute(
            "INSERT INTO backup_integrity_run (run_id, dag_id, mode, statistics) "
            "VALUES (%s, 'verify_storage_integrity', 'quick', %s::jsonb)",
            [f"run_{runs - 1}", f'{{"total_backups_checked": {backups}}}'],
        )
        cur.execute("ANALYZE")
    conn.commit()


def timed(fn: Any, repeat: int = 5) -> tuple[float, Any]:
    """Median wall time in milliseconds over ``repeat`` calls, and the last value."""
    times = []
    value = None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), value


def main() -> None:
    import psycopg

    from devtools.services import PostgresServer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backups", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resolved-alerts", type=int, default=100_000)
    args = parser.parse_args()
    server = PostgresServer().start()
    try:
        dsn = server.create_database("bench")
        conn = psycopg.connect(dsn)
        # The application's tables come first, as in production: the verifier's migrations index them.
        conn.execute(read_shipped_sql("catalog_tables.sql"))
        conn.commit()
        upgrade_schema(conn)
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed_scale(conn, args.backups, args.runs, now, args.resolved_alerts)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM backup_integrity_result")
            result_rows = cur.fetchone()[0]
        print(f"seeded {args.backups} backups, {result_rows} results in {time.perf_counter() - started:.1f}s")
        settings = Settings()
        deep_page = max(1, args.backups // 50 - 1)
        with conn.cursor() as cur:
            first_page = summary(cur, settings, 1, 50, now)
            cur.execute(
                "SELECT id, backup_id::text FROM backups_backupalert WHERE status = 'ACTIVE' "
                "ORDER BY id DESC LIMIT 1"
            )
            alert_id, failing_backup = cur.fetchone()
            cur.execute("SELECT count(*) FROM backups_backupalert")
            alert_rows = cur.fetchone()[0]
            filters = console_queries.AlertFilters
            active = filters(status="ACTIVE", sort="severity")
            deep_alerts = max(1, alert_rows // 50)
            sections = {
                "matrix page 1 (50 rows)": lambda: matrix(cur, settings, 1, 50),
                f"matrix page {deep_page} (50 rows)": lambda: matrix(cur, settings, deep_page, 50),
                "open alerts": lambda: open_alerts(cur, settings, now),
                "last run": lambda: last_run(cur),
                "matrix, only failing (page 1)": lambda: matrix(cur, settings, 1, 50, only_failing=True),
                "full-read coverage (computed)": lambda: compute_coverage(cur, settings, now),
                "full-read coverage (cached)": lambda: coverage(cur, settings, now),
                "failures per day (30)": lambda: failures_per_day(cur, now.date()),
                "whole page (coverage cached)": lambda: summary(cur, settings, 1, 50, now),
                "page HTML (templates only)": functools.partial(render_page, first_page),
                f"alerts page 1 of {alert_rows} (newest)": lambda: console_queries.read_alerts_page(
                    cur, settings, filters(), now
                ),
                f"alerts page {deep_alerts} (newest)": lambda: console_queries.read_alerts_page(
                    cur, settings, filters(), now, deep_alerts
                ),
                "alerts: ACTIVE by severity": lambda: console_queries.read_alerts_page(
                    cur, settings, active, now
                ),
                "alerts: missing on r2, 7 days": lambda: console_queries.read_alerts_page(
                    cur, settings, filters(kind="missing", store="r2", age="7d"), now
                ),
                "alerts: sorted by store": lambda: console_queries.read_alerts_page(
                    cur, settings, filters(sort="store", order="asc"), now
                ),
                "an alert's page": lambda: console_queries.read_alert(cur, settings, alert_id),
                "a backup's page": lambda: console_queries.read_backup(cur, settings, failing_backup),
            }
            for name, fn in sections.items():
                ms, _ = timed(fn)
                print(f"{name:32s} {ms:8.1f} ms (median of 5)")
        conn.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
