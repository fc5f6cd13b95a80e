"""The dashboard as a user sees it: the real API server with the plugin, a real login, headless Chromium.

Runs the DAG for real first (so the page shows real results, alerts and statistics),
then starts ``airflow api-server`` with the simple auth manager and one known user.
The screenshot goes to the artefacts folder (``artefacts/``, or ``$BI_ARTEFACTS_DIR``),
never into a tracked file: ``scripts/refresh_screenshots.sh`` copies it into ``docs/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from devtools.api_server import AirflowApiServer
from devtools.runs import REPO
from devtools.seed import corrupt_same_size, delete, seed_backup, truncate
from tests.support.catalog import alerts, query
from tests.support.connections import set_variable
from tests.support.ownership import insert_alert_row

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


# --------------------------------------------------------------------------- the console

CONSOLE_ROLES = {"viewer": "viewer", "op": "user"}  # User: the lowest role that may act


def reserialize_dags() -> None:
    """What a dag-processor does: the API server triggers only DAGs serialized in its database."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "reserialize"],
        check=True,
        env=dict(os.environ),
        capture_output=True,
        timeout=300,
    )


@pytest.fixture
def console(seeded, airflow_db):
    reserialize_dags()
    server = AirflowApiServer(env=dict(os.environ), roles=dict(CONSOLE_ROLES)).start()
    yield server
    server.stop()


def alert_of(stores, backup_id):
    (row,) = [r for r in alerts(stores) if r["backup_id"] == backup_id]
    return row


def alert_row(stores, alert_id):
    (row,) = query(
        stores,
        "SELECT status, acknowledged_at, acknowledged_by, details FROM backups_backupalert WHERE id = %s",
        [alert_id],
    )
    return row


def csrf_of(page_html: bytes) -> str:
    match = re.search(rb'<meta name="csrf-token" content="([0-9a-f]{64})">', page_html)
    assert match, "the page carries the user's CSRF token"
    return match.group(1).decode()


def test_console_actions_answer_by_airflow_permissions_and_refuse_forgeries(console, seeded, stores):
    missing = alert_of(stores, seeded["missing_r2"].id)
    resolved = alert_of(stores, seeded["repaired_local"].id)
    assert resolved["status"] == "RESOLVED"
    with psycopg.connect(stores.catalog_dsn) as conn:
        foreign = insert_alert_row(conn, {"kind": "missing", "backend": "r2"})
    failed_backup = seed_backup(stores, status="FAILED")
    viewer, op = console.token("viewer"), console.token("op")
    before = alert_row(stores, missing["id"])
    acknowledge = f"/backup-integrity/api/alerts/{missing['id']}/acknowledge"

    # A Viewer may read, never act: 403, and nothing changes.
    assert console.get(f"/backup-integrity/alerts/{missing['id']}", viewer)[0] == 200
    for path, body in (
        (acknowledge, {"note": "forged"}),
        (f"/backup-integrity/api/alerts/{missing['id']}/notes", {"text": "forged"}),
        (f"/backup-integrity/api/backups/{seeded['missing_r2'].id}/verify", None),
    ):
        status, answer = console.post(path, body, token=viewer)
        assert status == 403, (path, answer)
    assert alert_row(stores, missing["id"]) == before

    # A browser's request (the session cookie) needs the CSRF token of its user; a script's does not.
    status, answer = console.post(acknowledge, cookie_token=op)
    assert (status, b"X-CSRF-Token" in answer) == (403, True)
    status, _ = console.post(acknowledge, cookie_token=op, headers={"X-CSRF-Token": "0" * 64})
    assert status == 403
    viewer_token = csrf_of(console.get_as_browser(f"/backup-integrity/alerts/{missing['id']}", viewer)[1])
    status, _ = console.post(acknowledge, cookie_token=op, headers={"X-CSRF-Token": viewer_token})
    assert status == 403, "another user's token is no use"
    assert alert_row(stores, missing["id"]) == before

    # Bad input, unknown and foreign rows, resolved alerts.
    notes = f"/backup-integrity/api/alerts/{missing['id']}/notes"
    assert console.post(notes, {"text": ""}, token=op)[0] == 422
    assert console.post(notes, {"text": "x" * 2001}, token=op)[0] == 422
    assert console.post(notes, {}, token=op)[0] == 422
    assert console.post("/backup-integrity/api/alerts/987654/acknowledge", token=op)[0] == 404
    assert console.post(f"/backup-integrity/api/alerts/{foreign}/acknowledge", token=op)[0] == 404
    assert console.get(f"/backup-integrity/alerts/{foreign}", op)[0] == 404
    assert console.post(f"/backup-integrity/api/alerts/{resolved['id']}/acknowledge", token=op)[0] == 409
    assert alert_row(stores, missing["id"]) == before
    assert console.post(f"/backup-integrity/api/backups/{uuid.uuid4()}/verify", token=op)[0] == 404
    assert console.post("/backup-integrity/api/backups/not-a-uuid/verify", token=op)[0] == 404
    assert console.post(f"/backup-integrity/api/backups/{failed_backup.id}/verify", token=op)[0] == 409

    # A script acknowledges with a Bearer token, twice: the second changes nothing.
    status, answer = console.post(acknowledge, {"note": "on it"}, token=op)
    assert (status, json.loads(answer)["changed"]) == (200, True)
    status, answer = console.post(acknowledge, token=op)
    assert (status, json.loads(answer)) == (200, {**json.loads(answer), "changed": False})
    row = alert_row(stores, missing["id"])
    assert (row["status"], row["acknowledged_by"]) == ("ACKNOWLEDGED", "op")
    assert [h["action"] for h in row["details"]["history"]] == ["acknowledge"]
    status, answer = console.post(f"/backup-integrity/api/alerts/{missing['id']}/unacknowledge", token=op)
    assert (status, json.loads(answer)["status"]) == (200, "ACTIVE")

    # The alerts page filters, sorts and paginates.
    status, page = console.get("/backup-integrity/alerts?status=RESOLVED", op)
    assert status == 200
    assert page.count(b"<tr data-alert-id=") == 1
    status, page = console.get("/backup-integrity/alerts?kind=missing&store=r2&age=1d&sort=severity", op)
    assert page.count(b"<tr data-alert-id=") == 1
    status, page = console.get("/backup-integrity/alerts?page_size=2&page=2&sort=kind&order=asc", op)
    assert b"page 2 of 3" in page
    assert console.get("/backup-integrity/alerts?status=OPENISH", op)[0] == 400

    # A backup's checks, all stores or one store's, paginated.
    backup_page = f"/backup-integrity/backups/{seeded['missing_r2'].id}"
    status, page = console.get(f"{backup_page}?page_size=2", op)
    assert (status, b"Checks (3)" in page, b"page 1 of 2" in page) == (200, True, True)
    status, page = console.get(f"{backup_page}?store=r2", op)
    assert b"Checks (1 on r2)" in page
    assert console.get(f"/backup-integrity/backups/{uuid.uuid4()}", op)[0] == 404


def test_the_console_in_chromium_acknowledge_note_unacknowledge_reverify(console, seeded, stores):
    from playwright.sync_api import sync_playwright

    missing = alert_of(stores, seeded["missing_r2"].id)
    backup_id = seeded["missing_r2"].id
    shots = artefacts_dir()
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            op = logged_in(browser, console, "op")
            op.goto(f"{console.url}/backup-integrity/")
            op.locator(f'#open-alerts tr[data-alert-id="{missing["id"]}"] a').first.click()
            op.wait_for_url(f"{console.url}/backup-integrity/alerts/{missing['id']}")
            op.locator(f"#ack-note-{missing['id']}").fill("copy on r2 deleted by the cleanup job <b>x</b>")
            op.get_by_role("button", name="Acknowledge").click()
            op.locator("#alert-status", has_text="ACKNOWLEDGED").wait_for(timeout=30_000)
            assert "copy on r2 deleted by the cleanup job <b>x</b>" in op.locator("#notes").inner_text()
            assert "acknowledge by op" in op.locator("#history").inner_text()
            assert op.locator("#acknowledged").inner_text().startswith("op at ")
            op.screenshot(path=str(shots / "console-alert.png"), full_page=True)
            row = alert_row(stores, missing["id"])
            assert (row["status"], row["acknowledged_by"]) == ("ACKNOWLEDGED", "op")
            assert row["details"]["notes"][0]["text"] == "copy on r2 deleted by the cleanup job <b>x</b>"

            op.get_by_role("button", name="Unacknowledge").click()
            op.locator("#alert-status", has_text="ACTIVE").wait_for(timeout=30_000)
            history = op.locator("#history li").all_inner_texts()
            assert [entry.split(" by ")[0] for entry in history] == ["acknowledge", "unacknowledge"]
            assert alert_row(stores, missing["id"])["acknowledged_by"] is None

            # A browser POST without the CSRF header is refused.
            status = op.evaluate(
                "url => fetch(url, {method: 'POST', credentials: 'same-origin'}).then(r => r.status)",
                f"{console.url}/backup-integrity/api/alerts/{missing['id']}/acknowledge",
            )
            assert status == 403
            assert alert_row(stores, missing["id"])["status"] == "ACTIVE"

            op.goto(f"{console.url}/backup-integrity/backups/{backup_id}")
            assert op.locator('#copies tr[data-backend="r2"]').inner_text().split("\t")[1] == "missing"
            op.screenshot(path=str(shots / "console-backup.png"), full_page=True)
            op.get_by_role("button", name="Re-verify (full read)").click()
            op.locator("#triggered-run").wait_for(timeout=60_000)
            run_id = op.locator("#action-result").get_attribute("data-run-id")
            assert op.locator("#triggered-run").get_attribute("href") == (
                f"{console.url}/dags/verify_storage_integrity/runs/{quote(run_id, safe='')}"
            )

            op.goto(f"{console.url}/backup-integrity/")
            op.screenshot(path=str(shots / "console-overview.png"), full_page=True)
            op.goto(f"{console.url}/backup-integrity/alerts")
            op.screenshot(path=str(shots / "console-alerts.png"), full_page=True)

            viewer = logged_in(browser, console, "viewer")
            for path in (
                f"/backup-integrity/alerts/{missing['id']}",
                f"/backup-integrity/backups/{backup_id}",
            ):
                viewer.goto(f"{console.url}{path}")
                viewer.locator("h1").wait_for()
                assert viewer.locator("button[data-action]").count() == 0, f"{path}: no buttons for a Viewer"
            before = alert_row(stores, missing["id"])
            forged = viewer.evaluate(
                """url => fetch(url, {method: 'POST', credentials: 'same-origin', headers: {
                    'Content-Type': 'application/json',
                    'X-CSRF-Token': document.querySelector('meta[name="csrf-token"]').content},
                    body: JSON.stringify({note: 'forged'})}).then(r => r.status)""",
                f"{console.url}/backup-integrity/api/alerts/{missing['id']}/acknowledge",
            )
            assert forged == 403, "a Viewer's own valid token does not make it an Op"
            assert alert_row(stores, missing["id"]) == before
        finally:
            browser.close()

    status, body = console.get(
        f"/api/v2/dags/verify_storage_integrity/dagRuns/{quote(run_id)}", console.token()
    )
    assert status == 200, body[:300]
    run = json.loads(body)
    assert run["conf"] == {"mode": "full", "backup_ids": [backup_id]}
    assert run["triggering_user_name"] == "op"
    assert run["run_type"] == "manual"
    for name in ("console-overview.png", "console-backup.png", "console-alerts.png", "console-alert.png"):
        assert (shots / name).stat().st_size > 10_000


def logged_in(browser, server, username):
    """A new browser page, logged in to Airflow as ``username`` with its real login form."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{server.url}/auth/login?next={server.url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(server.passwords[username])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/", timeout=60_000)
    return page
