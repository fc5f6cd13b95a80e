"""The dashboard's SQL on a real PostgreSQL catalog: states, pagination, coverage, the chart, alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devtools.bench_dashboard import seed_scale
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.dashboard.app import (
    coverage,
    failures_per_day,
    matrix,
    open_alerts,
    render_page,
    summary,
)
from include.backup_integrity.dashboard.queries import DashboardError
from include.backup_integrity.dashboard.view import iter_states

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
A, B, C = (
    "00000000-0000-0000-0000-00000000000a",
    "00000000-0000-0000-0000-00000000000b",
    "00000000-0000-0000-0000-00000000000c",
)


def add_backup(cur, backup_id, backup_type, created_at):
    cur.execute(
        "INSERT INTO backups_backup (id, backup_type, filename, size_bytes, checksum, local_path, r2_path, "
        "b2_path, status, created_at) VALUES (%s, %s, %s, 1, %s, 'p', 'p', 'p', 'COMPLETED', %s)",
        [backup_id, backup_type, f"{backup_type}.dump", "a" * 64, created_at],
    )


def add_result(cur, run_id, backup_id, backend, kind, checked_at, evidence=None):
    cur.execute(
        "INSERT INTO backup_integrity_result (run_id, backup_id, backend, kind, mode, evidence, path, "
        "message, expected, checked_at) VALUES (%s, %s, %s, %s, 'quick', %s, 'p', %s, '{}', %s)",
        [run_id, backup_id, backend, kind, evidence, f"{kind} on {backend}", checked_at],
    )


@pytest.fixture
def seeded(catalog):
    t1 = NOW - timedelta(hours=3)
    with catalog.cursor() as cur:
        add_backup(cur, A, "FULL_DATABASE", NOW - timedelta(hours=5))
        add_backup(cur, B, "WAL_ARCHIVE", NOW - timedelta(hours=6))
        add_backup(cur, C, "MYSTERY_DUMP", NOW - timedelta(hours=7))
        add_result(cur, "run1", A, "local", "passed", t1, "content_sha256")
        add_result(cur, "run1", A, "r2", "missing", t1)
        add_result(cur, "run1", A, "b2", "backend_error", t1)
        add_result(cur, "run1", B, "r2", "checksum_mismatch", t1)
        add_result(cur, "run1", B, "b2", "passed", t1, "server_sha256")
        add_result(cur, "run1", C, "", "invalid_record", t1)
        add_result(cur, "run0", B, "r2", "missing", NOW - timedelta(days=2))
        cur.execute(
            "INSERT INTO backup_integrity_repair (run_id, backup_id, backend, kind, status, source_backend, "
            "sha256, reason, repaired_at) VALUES ('run1', %s, 'r2', 'checksum_mismatch', 'repaired', 'b2', "
            "%s, 'copy from b2', %s)",
            [B, "a" * 64, t1 + timedelta(minutes=1)],
        )
        cur.execute(
            "INSERT INTO backup_integrity_run (run_id, dag_id, mode, statistics) VALUES "
            "('run1', 'verify_storage_integrity', 'quick', %s)",
            [json.dumps({"total_backups_checked": 3, "repaired": 1})],
        )
        cur.execute(
            "INSERT INTO backups_backupalert (backup_id, alert_type, severity, message, details, "
            "notification_channels, status, created_at) VALUES (%s, 'INTEGRITY_FAILURE', 'CRITICAL', "
            "'A missing on r2', %s, '[]', 'ACTIVE', %s), (NULL, 'INTEGRITY_FAILURE', 'ERROR', 'b2 down', %s, "
            "'[]', 'ACKNOWLEDGED', %s), "
            "(%s, 'INTEGRITY_FAILURE', 'CRITICAL', 'gone', %s, '[]', 'RESOLVED', %s)",
            [
                A,
                json.dumps(
                    {
                        "kind": "missing",
                        "backend": "r2",
                        "first_seen": (NOW - timedelta(days=2)).isoformat(),
                        "occurrences": 7,
                    }
                ),
                t1,
                json.dumps({"kind": "backend_error", "backend": "b2", "first_seen": t1.isoformat()}),
                t1,
                B,
                json.dumps({"kind": "missing", "backend": "r2", "occurrences": 1}),
                t1,
            ],
        )
    catalog.commit()
    return catalog


def test_each_cell_is_coloured_by_its_last_result(seeded):
    with seeded.cursor() as cur:
        model = summary(cur, Settings(), 1, 50, NOW)
    states = {(b, backend): state for b, backend, state in iter_states(model)}
    assert states == {
        (A, "local"): "passed",
        (A, "r2"): "missing",
        (A, "b2"): "could_not_check",
        (B, "local"): "not_expected",
        (B, "r2"): "repaired",
        (B, "b2"): "passed",
        (C, "local"): "invalid_record",
        (C, "r2"): "invalid_record",
        (C, "b2"): "invalid_record",
    }
    cell = model.matrix.rows[0].cells["local"]
    assert cell.last_full_read == (NOW - timedelta(hours=3)).isoformat()
    page = render_page(model)
    assert f'data-backup-id="{A}"' in page
    assert 'data-state="could_not_check"' in page
    assert "<script" not in page, "no script, nothing fetched from elsewhere"


def test_markup_in_the_catalog_renders_escaped(seeded):
    hostile = "<script>alert(1)</script>&amp"
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp"
    with seeded.cursor() as cur:
        cur.execute("UPDATE backups_backup SET filename = %s WHERE id = %s", [f"{hostile}.dump", A])
        cur.execute(
            "UPDATE backup_integrity_result SET message = %s WHERE backup_id = %s AND backend = 'r2'",
            [f"db/{hostile}.dump missing", A],
        )
        cur.execute(
            "UPDATE backups_backupalert SET message = %s WHERE backup_id = %s", [f"{hostile} gone", A]
        )
        page = render_page(summary(cur, Settings(), 1, 50, NOW))

    assert "<script" not in page
    assert f"<td>{escaped}.dump</td>" in page
    assert f"; db/{escaped}.dump missing" in page
    assert f"<td>{escaped} gone</td>" in page


def test_pages_are_newest_first_and_counted(seeded):
    with seeded.cursor() as cur:
        first = matrix(cur, Settings(), 1, 2)
        second = matrix(cur, Settings(), 2, 2)
        with pytest.raises(DashboardError, match="page must be >= 1"):
            matrix(cur, Settings(), 0, 2)
        with pytest.raises(DashboardError, match="page_size"):
            matrix(cur, Settings(), 1, 10_000)
        failing = matrix(cur, Settings(), 1, 50, only_failing=True)
    assert (first.total, first.pages) == (3, 2)
    assert [r.backup_id for r in first.rows] == [A, B]
    assert [r.backup_id for r in second.rows] == [C]
    assert [r.backup_id for r in failing.rows] == [A], "only A has an open alert of its own"
    assert failing.total == 1


def test_coverage_counts_copies_read_byte_for_byte(seeded):
    with seeded.cursor() as cur:
        result = {c.backend: c for c in coverage(cur, Settings(), NOW).backends}
    assert result["local"].expected_copies == 1  # only the FULL_DATABASE backup belongs there
    assert result["local"].ever_read == result["local"].read_last_day == 1
    assert result["r2"].expected_copies == 2
    assert result["r2"].ever_read == 1, "a repaired copy was read back in full"
    assert result["b2"].ever_read == 0
    assert result["b2"].never_read == 2


def test_coverage_includes_the_rotations_record_of_each_read(seeded):
    read_at = NOW - timedelta(days=3)
    with seeded.cursor() as cur:
        cur.execute(
            "INSERT INTO backup_integrity_object (backup_id, backend, last_kind, last_checked_at, "
            "last_run_id, last_read_at) VALUES (%s, 'b2', 'passed', %s, 'run1', %s)",
            [B, NOW, read_at],
        )
        result = {c.backend: c for c in coverage(cur, Settings(), NOW + timedelta(hours=1)).backends}

    assert result["b2"].ever_read == 1
    assert result["b2"].read_last_7_days == 1
    assert result["b2"].read_last_day == 0
    assert result["b2"].oldest_last_read == read_at.isoformat()


def test_failures_per_day_and_open_alerts(seeded):
    with seeded.cursor() as cur:
        days = failures_per_day(cur, NOW.date())
        alerts = open_alerts(cur, Settings(), NOW)
    assert len(days) == 30
    assert days[-1].day == "2026-11-30"
    # The history keeps transitions: B's r2 copy was missing from two days ago until the
    # checksum mismatch took over today, so it counts as missing on each of those days.
    assert days[-1].total == 5
    assert days[-1].by_kind == {
        "missing": 2,
        "backend_error": 1,
        "checksum_mismatch": 1,
        "invalid_record": 1,
    }
    assert days[-2].by_kind == days[-3].by_kind == {"missing": 1}
    assert sum(d.total for d in days) == 7

    assert alerts.total == 2, "resolved alerts are not open"
    first = alerts.alerts[0]
    assert (first.severity, first.kind, first.occurrences, first.age) == (
        "CRITICAL",
        "missing",
        7,
        "2.0 days",
    )
    assert alerts.alerts[1].status == "ACKNOWLEDGED"
    assert alerts.alerts[1].age == "3.0 h"


def test_a_failure_that_persists_unchanged_counts_each_day_until_its_copy_was_last_checked(catalog):
    """One result row (the transition) and the object's last check: every day between is a failing day."""
    began = NOW - timedelta(days=4)
    with catalog.cursor() as cur:
        add_backup(cur, A, "FULL_DATABASE", began)
        add_result(cur, "run-a", A, "r2", "missing", began)
        cur.execute(
            "INSERT INTO backup_integrity_object (backup_id, backend, last_kind, last_checked_at, "
            "last_run_id) VALUES (%s, 'r2', 'missing', %s, 'run-e')",
            [A, NOW - timedelta(days=1)],
        )
        days = failures_per_day(cur, NOW.date())
        cells = matrix(cur, Settings(), 1, 50)
    failing = [d.day for d in days if d.total]
    assert failing == [(NOW - timedelta(days=n)).date().isoformat() for n in (4, 3, 2, 1)]
    [row] = cells.rows
    assert row.cells["r2"].state == "missing"
    assert row.cells["r2"].checked_at == (NOW - timedelta(days=1)).isoformat(), (
        "the last check, not the first"
    )


def test_the_benchmark_seed_is_consistent_at_small_scale(catalog):
    seed_scale(catalog, backups=500, runs=2, now=NOW)
    with catalog.cursor() as cur:
        model = summary(cur, Settings(), 10, 50, NOW)
        cur.execute("SELECT count(*) FROM backup_integrity_result WHERE run_id = 'run_0'")
        checked_copies = cur.fetchone()[0]
    assert model.matrix.total == 500
    assert len(model.matrix.rows) == 50
    covered = sum(c.ever_read for c in model.coverage.backends)
    assert covered == checked_copies, "every copy read in the full run counts once"
    assert sum(c.expected_copies for c in model.coverage.backends) == checked_copies
