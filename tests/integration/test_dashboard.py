"""The dashboard as a user sees it: the real API server with the plugin, a real login, headless Chromium.

Runs the DAG for real first (so the page shows real results, alerts and statistics),
then starts ``airflow api-server`` with the simple auth manager and one known user.
The screenshot goes to the artefacts folder (``artefacts/``, or ``$BI_ARTEFACTS_DIR``),
never into a tracked file: ``scripts/refresh_screenshots.sh`` copies it into ``docs/``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from devtools.api_server import AirflowApiServer
from devtools.runs import REPO
from devtools.seed import corrupt_same_size, delete, seed_backup, truncate
from tests.support.connections import set_variable

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def artefacts_dir() -> Path:
    """Where tests leave what a person may want to look at: ignored by git, never under docs/."""
    return Path(os.environ.get("BI_ARTEFACTS_DIR") or REPO / "artefacts")


@pytest.fixture
def seeded(stores, run_dag, monkeypatch, airflow_env):
    """Healthy and broken backups, a checked run, then a repairing run: what an operator would see."""
    backups = {
        "healthy": seed_backup(stores),
        "healthy_wal": seed_backup(stores, backup_type="WAL_ARCHIVE"),
        "missing_r2": seed_backup(stores),
        "short_local": seed_backup(stores, backup_type="TENANT_BACKUP"),
        "corrupt_b2": seed_backup(stores, backup_type="CONFIGURATION"),
        "repaired_local": seed_backup(stores),
    }
    for _ in range(4):
        seed_backup(stores)
    delete(stores, backups["missing_r2"], "r2")
    truncate(stores, backups["short_local"], "local")
    corrupt_same_size(stores, backups["corrupt_b2"], "b2")
    run_dag()
    # A later full run repairs one deleted copy (the others stay broken: repair is off by default).
    delete(stores, backups["repaired_local"], "local")
    set_variable(monkeypatch, {**airflow_env, "repair": "apply"})
    run_dag({"mode": "full", "backup_ids": [backups["repaired_local"].id]})
    set_variable(monkeypatch, airflow_env)
    return backups


@pytest.fixture
def api_server(seeded, airflow_db):
    server = AirflowApiServer(env=dict(os.environ)).start()
    yield server
    server.stop()


def test_unauthenticated_requests_are_refused_and_docs_are_off(api_server):
    for path in (
        "/backup-integrity/",
        "/backup-integrity/api/summary",
        "/backup-integrity/api/matrix",
        "/backup-integrity/api/alerts",
        "/backup-integrity/api/last-run",
        "/backup-integrity/api/coverage",
        "/backup-integrity/api/failures-per-day",
        "/backup-integrity/api/restore-drills",
    ):
        status, body = api_server.get(path)
        assert status == 401, (path, status, body[:200])
        assert b"backup" not in body.lower(), "nothing of the page leaks"
        status, _ = api_server.get(path, token="not-a-token")
        assert status in (401, 403), (path, status)
    for path in (
        "/backup-integrity/docs",
        "/backup-integrity/redoc",
        "/backup-integrity/openapi.json",
        "/backup-integrity/api/",
        "/backup-integrity/api/no-such-thing",
    ):
        assert api_server.get(path)[0] == 401, f"{path}: nothing answered before authentication"
    for path in ("/backup-integrity/docs", "/backup-integrity/redoc", "/backup-integrity/openapi.json"):
        assert api_server.get(path, api_server.token())[0] == 404, f"{path}: docs are off"

    token = api_server.token()
    status, body = api_server.get("/backup-integrity/api/alerts", token)
    assert status == 200
    assert json.loads(body)["total"] >= 3

    # Every section as JSON, the page as HTML, and the matrix paginated.
    answers = {}
    for name in ("summary", "matrix", "last-run", "coverage", "failures-per-day", "restore-drills"):
        status, body = api_server.get(f"/backup-integrity/api/{name}?page=2&page_size=4", token)
        assert status == 200, (name, body[:200])
        answers[name] = json.loads(body)
    assert list(answers["summary"]) == [
        "generated_at",
        "matrix",
        "open_alerts",
        "last_run",
        "coverage",
        "failures_per_day",
        "restore_drills",
        "recovery_chain",
        "costs",
    ]
    assert answers["summary"]["matrix"] == answers["matrix"]
    assert answers["restore-drills"] == answers["summary"]["restore_drills"] == [], "no drill ran"
    assert (answers["matrix"]["total"], answers["matrix"]["pages"], answers["matrix"]["page"]) == (10, 3, 2)
    assert len(answers["matrix"]["rows"]) == 4
    assert answers["last-run"]["statistics"]["total_backups_checked"] == 1
    assert [c["backend"] for c in answers["coverage"]["backends"]] == ["local", "r2", "b2"]
    assert len(answers["failures-per-day"]) == 30
    status, body = api_server.get("/backup-integrity/?failing=1", token)
    assert status == 200
    assert b'<table id="matrix">' in body
    assert body.count(b"<tr data-backup-id=") == 3, "only the backups with an open alert of their own"
    status, body = api_server.get("/backup-integrity/api/", token)
    assert json.loads(body)["endpoints"][0] == "/backup-integrity/api/summary"

    # The navigation entry, as the UI reads it.
    status, body = api_server.get("/api/v2/plugins", token)
    assert status == 200
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "backup_integrity_dashboard")
    assert plugin["external_views"][0]["href"] == "/backup-integrity/"
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/backup-integrity"


def test_the_page_shows_the_seeded_failures_in_chromium(api_server, seeded):
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "Debian's chromium is needed (setup.sh)"
    states = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1500})
            page.goto(f"{api_server.url}/backup-integrity/")
            assert "Not authenticated" in page.content(), "no page without logging in"

            # As a user: log in with Airflow's form, then Browse -> Backup integrity.
            page.goto(f"{api_server.url}/auth/login?next={api_server.url}/")
            page.get_by_label("Username").fill(api_server.username)
            page.get_by_label("Password").fill(api_server.password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{api_server.url}/", timeout=60_000)
            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name="Backup integrity").click()
            page.wait_for_url(f"{api_server.url}/plugin/backup-integrity", timeout=60_000)
            frame = page.frame_locator("iframe").first
            frame.locator("#matrix").wait_for(timeout=60_000)

            for cell in frame.locator("#matrix td.cell").all():
                backup_id = cell.evaluate("el => el.parentElement.dataset.backupId")
                states[(backup_id, cell.get_attribute("data-backend"))] = cell.get_attribute("data-state")
            alerts_heading = frame.locator("h2", has_text="Open alerts").inner_text()
            chart = frame.locator("#failures-chart rect").count()
            last_run = frame.locator("#last-run").inner_text()
            screenshot = artefacts_dir() / "dashboard.png"
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()

    assert states[(seeded["missing_r2"].id, "r2")] == "missing"
    assert states[(seeded["short_local"].id, "local")] == "size_mismatch"
    assert states[(seeded["corrupt_b2"].id, "b2")] == "checksum_mismatch"
    assert states[(seeded["repaired_local"].id, "local")] == "repaired"
    assert states[(seeded["healthy"].id, "local")] == "passed"
    assert states[(seeded["healthy_wal"].id, "local")] == "not_expected"
    assert states[(seeded["missing_r2"].id, "local")] == "passed"
    assert "Open alerts (4)" in alerts_heading  # three failures and their summary
    assert chart >= 1, "today's failures are drawn"
    assert "total_backups_checked" in last_run
    assert screenshot.stat().st_size > 10_000
