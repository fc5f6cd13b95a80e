"""The console's pages on a real catalog: a backup's page, an alert's, the alerts page's filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devtools.seed import seed_backup
from include.backup_integrity.catalog.alert_store import insert_alert
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.dashboard.actions import Permissions
from include.backup_integrity.dashboard.console_queries import (
    AlertFilters,
    read_alert,
    read_alerts_page,
    read_backup,
)
from include.backup_integrity.dashboard.page import render_console_page
from include.backup_integrity.dashboard.queries import DashboardError
from include.backup_integrity.domain.ownership import VERIFIER_DAG_ID
from tests.support.ownership import insert_alert_row

ALERTS = "backups_backupalert"
OP = Permissions(edit_alerts=True, trigger={"verify": True, "drill": True})
VIEWER = Permissions(edit_alerts=False, trigger={"verify": False, "drill": False})


@pytest.fixture
def catalog_rows(stores, catalog):
    backup = seed_backup(stores)
    with transaction(catalog) as cur:
        for i, backend in enumerate(("local", "r2", "b2", "r2")):
            cur.execute(
                "INSERT INTO backup_integrity_result (run_id, backup_id, backend, kind, mode, message, "
                "checked_at) VALUES (%s, %s, %s, %s, 'quick', 'm', now() - %s * interval '1 hour')",
                [f"run-{i}", backup.id, backend, "missing" if backend == "r2" else "passed", i],
            )
        ours = [
            insert_alert(
                cur,
                ALERTS,
                backup.id,
                severity,
                f"{kind} <script>",
                {"kind": kind, "backend": backend},
                producer=VERIFIER_DAG_ID,
            )
            for kind, backend, severity in (("missing", "r2", "CRITICAL"), ("size_mismatch", "b2", "ERROR"))
        ]
        cur.execute(f"UPDATE {ALERTS} SET created_at = now() - interval '10 days' WHERE id = %s", [ours[1]])
    foreign = insert_alert_row(catalog, {"kind": "missing", "backend": "r2"}, backup_id=backup.id)
    return backup, ours, foreign


def test_a_backups_page_shows_its_copies_checks_by_store_and_only_the_packages_alerts(catalog, catalog_rows):
    backup, ours, _foreign = catalog_rows
    settings = Settings()
    with catalog.cursor() as cur:
        page = read_backup(cur, settings, backup.id, page=1, page_size=3)
        only_r2 = read_backup(cur, settings, backup.id, store="r2")
        assert read_backup(cur, settings, "not-a-uuid") is None
    assert [c.backend for c in page.copies] == ["b2", "local", "r2"]
    assert (page.checks_total, page.checks_pages, len(page.checks)) == (4, 2, 3)
    assert [c.run_id for c in page.checks] == ["run-0", "run-1", "run-2"], "newest first"
    assert (only_r2.checks_total, {c.backend for c in only_r2.checks}) == (2, {"r2"})
    assert sorted(a.id for a in page.alerts) == sorted(ours), "another writer's row is not shown"
    html = render_console_page("backup", b=page, drill_available=True, perms=OP, csrf="t" * 64)
    assert "Re-verify (full read)" in html
    assert "Restore drill" in html
    assert "&lt;script&gt;" in html
    assert "missing <script>" not in html, "autoescaped"
    viewer = render_console_page("backup", b=page, drill_available=False, perms=VIEWER, csrf="t" * 64)
    assert "<button data-action" not in viewer


def test_an_alerts_page_and_the_alerts_filters(catalog, catalog_rows):
    _, ours, foreign = catalog_rows
    settings = Settings()
    now = datetime.now(UTC) + timedelta(minutes=1)
    with catalog.cursor() as cur:
        alert = read_alert(cur, settings, ours[0])
        assert read_alert(cur, settings, foreign) is None
        every = read_alerts_page(cur, settings, AlertFilters(), now)
        recent = read_alerts_page(cur, settings, AlertFilters(age="2d"), now)
        by_store = read_alerts_page(cur, settings, AlertFilters(store="b2", kind="size_mismatch"), now)
        by_severity = read_alerts_page(cur, settings, AlertFilters(sort="severity", order="asc"), now)
        for bad in (AlertFilters(status="OPEN"), AlertFilters(age="a week"), AlertFilters(sort="id")):
            with pytest.raises(DashboardError, match="must be"):
                read_alerts_page(cur, settings, bad, now)
    assert [a.id for a in every.alerts] == [ours[0], ours[1]], "newest first"
    assert every.total == 2
    assert [a.id for a in recent.alerts] == [ours[0]]
    assert [a.id for a in by_store.alerts] == [ours[1]]
    assert [a.severity for a in by_severity.alerts] == ["CRITICAL", "ERROR"]
    html = render_console_page("alert", alert=alert, perms=OP, csrf="t" * 64)
    assert "Acknowledge" in html
    assert "Add note" in html
    listing = render_console_page("alerts", result=every, perms=VIEWER, csrf="t" * 64)
    assert listing.count("<tr data-alert-id=") == 2
