"""Results and metadata written to a real PostgreSQL catalog, without Airflow."""

from __future__ import annotations

import json

from devtools.seed import seed_backup
from include.backup_integrity.catalog.backups import update_metadata_lazily
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.catalog.results import record_results
from include.backup_integrity.config.settings import parse_settings
from include.backup_integrity.domain.records import MISSING, PASSED
from tests.support.records import check_result

EARLIER, NOW, LATER = (
    "2026-11-30T10:00:00.000000+00:00",
    "2026-11-30T11:00:00.000000+00:00",
    "2026-11-30T12:00:00.000000+00:00",
)
PASSED_CHECK = {"status": "passed", "mode": "quick", "errors": [], "run_id": "run-now"}


def metadata_of(conn, backup_id):
    with transaction(conn) as cur:
        cur.execute("SELECT metadata FROM backups_backup WHERE id = %s", [backup_id])
        return cur.fetchone()[0]


def with_check(stores, timestamp):
    check = {"timestamp": timestamp, "status": "passed", "run_id": "run-before"}
    return seed_backup(
        stores, row_overrides={"metadata": json.dumps({"tenant": "acme", "last_integrity_check": check})}
    )


def test_a_retried_chunk_upserts_its_results_instead_of_failing_on_the_first_attempts_rows(stores, catalog):
    backup = seed_backup(stores)
    with transaction(catalog) as cur:
        record_results(cur, "run-1", [check_result(backup.id, "r2", PASSED, checked_at=EARLIER)])
    with transaction(catalog) as cur:
        record_results(
            cur,
            "run-1",
            [check_result(backup.id, "r2", MISSING, checked_at=NOW), check_result(backup.id, "b2", PASSED)],
        )

    with transaction(catalog) as cur:
        cur.execute(
            "SELECT backend, kind FROM backup_integrity_result WHERE run_id = 'run-1' ORDER BY backend"
        )
        assert cur.fetchall() == [("b2", PASSED), ("r2", MISSING)]


def test_metadata_merge_keeps_a_later_check_in_any_format_and_replaces_an_earlier_one(stores, catalog):
    backups = {
        "none": seed_backup(stores, row_overrides={"metadata": json.dumps({"tenant": "acme"})}),
        "earlier": with_check(stores, EARLIER),
        "later": with_check(stores, LATER),
        "earlier, other format": with_check(stores, "2026-11-30T06:00:00-04:00"),  # 10:00 UTC
        "later, other format": with_check(stores, "2026-11-30T12:00:00Z"),
        "unreadable": with_check(stores, "yesterday"),
        "failed": with_check(stores, EARLIER),
    }
    failed = {
        "timestamp": NOW,
        "status": "failed",
        "mode": "quick",
        "errors": [{"backend": "r2"}],
        "run_id": "run-now",
    }
    timestamps = {backup.id: NOW for backup in backups.values()}

    with transaction(catalog) as cur:
        updated = update_metadata_lazily(
            cur, parse_settings({}), timestamps, {backups["failed"].id: failed}, PASSED_CHECK
        )

    checks = {name: metadata_of(catalog, backup.id) for name, backup in backups.items()}
    assert updated == 5
    assert all(m["tenant"] == "acme" for m in checks.values()), "other keys are never lost"
    for name in ("none", "earlier", "earlier, other format", "unreadable"):
        assert checks[name]["last_integrity_check"] == {"timestamp": NOW, **PASSED_CHECK}, name
    assert checks["later"]["last_integrity_check"]["timestamp"] == LATER
    assert checks["later, other format"]["last_integrity_check"]["timestamp"] == "2026-11-30T12:00:00Z"
    assert checks["failed"]["last_integrity_check"] == failed
