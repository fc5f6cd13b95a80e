"""The dashboard's view model and page, from query rows and without a database."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

from include.backup_integrity.config.settings import DEFAULT_EXPECTED_BACKENDS
from include.backup_integrity.dashboard import view
from include.backup_integrity.dashboard.page import failures_chart, render_page, templates
from include.backup_integrity.dashboard.queries import (
    AlertRow,
    AlertRows,
    BackupRow,
    CoverageRows,
    FailureCount,
    MatrixRows,
    ResultRow,
    RunRow,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script> & co"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"


def summary_of(backup_id: str, filename: str, message: str, run_id: str = "run1") -> view.Summary:
    """A page whose backup, file, messages and run carry the given text, built as the app builds it."""
    checked = NOW - timedelta(hours=1)
    rows = MatrixRows(
        page=1,
        page_size=50,
        only_failing=False,
        total=1,
        backups=[BackupRow(backup_id, "FULL_DATABASE", filename, NOW - timedelta(hours=2), 1)],
        latest={
            (backup_id, "r2"): ResultRow("missing", None, checked, message, run_id),
            (backup_id, "local"): ResultRow("passed", "content_sha256", checked, "ok", run_id),
        },
        repaired={},
        full_reads={(backup_id, "local"): checked},
    )
    alert = AlertRow(
        1, backup_id, "CRITICAL", "ACTIVE", message, "missing", "r2", None, None, 2, checked, message
    )
    return view.Summary(
        generated_at=NOW.isoformat(),
        matrix=view.matrix_page(rows, DEFAULT_EXPECTED_BACKENDS),
        open_alerts=view.open_alerts(AlertRows(1, [alert]), NOW),
        last_run=view.last_run(
            RunRow(run_id, "verify_storage_integrity", "quick", None, None, {message: 1}, NOW)
        ),
        coverage=view.coverage(CoverageRows({"FULL_DATABASE": 1}, {}), DEFAULT_EXPECTED_BACKENDS),
        failures_per_day=view.failures_per_day([FailureCount(NOW.date(), "missing", 1)], NOW.date()),
    )


def test_a_backup_id_path_and_message_with_markup_render_escaped():
    page = render_page(summary_of(HOSTILE, f"db/{HOSTILE}.dump", f"db/{HOSTILE}.dump missing on r2"))

    assert "<script" not in page
    assert "&co" not in page.replace("&amp; co", "")
    assert f'data-backup-id="{ESCAPED}"' in page
    assert f"<td>db/{ESCAPED}.dump</td>" in page, "the file name"
    assert f"; db/{ESCAPED}.dump missing on r2" in page, "the message in the cell's tooltip"
    assert f"<td>db/{ESCAPED}.dump missing on r2<br><i>repair: db/{ESCAPED}" in page, "the alert"
    assert f"<tr><th>db/{ESCAPED}.dump missing on r2</th><td>1</td></tr>" in page, "a statistic's key"
    assert templates().autoescape is True


def test_the_page_loads_nothing_from_elsewhere_and_inlines_its_css():
    page = render_page(summary_of("00000000-0000-0000-0000-00000000000a", "a.dump", "gone"))

    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=|@import|url\(", page)
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    assert "td.cell{text-align:center" in page, "the stylesheet is in the page"


def test_the_json_carries_the_records_and_no_presentation():
    model = summary_of("00000000-0000-0000-0000-00000000000a", "a.dump", "gone")

    data = json.loads(json.dumps(view.as_json(model)))

    assert list(data) == [
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
    cell = data["matrix"]["rows"][0]["cells"]["r2"]
    assert cell == {
        "state": "missing",
        "label": "missing",
        "kind": "missing",
        "evidence": None,
        "checked_at": (NOW - timedelta(hours=1)).isoformat(),
        "message": "gone",
        "run_id": "run1",
        "repaired_at": None,
        "last_full_read": None,
    }
    assert data["matrix"]["rows"][0]["cells"]["local"]["last_full_read"] == cell["checked_at"]
    assert data["open_alerts"]["alerts"][0]["age"] == "1.0 h"
    assert data["failures_per_day"][-1] == {"day": "2026-11-30", "total": 1, "by_kind": {"missing": 1}}
    assert view.as_json([view.DayFailures("2026-11-30", 0, {})]) == [
        {"day": "2026-11-30", "total": 0, "by_kind": {}}
    ]


def test_a_repair_after_the_last_check_shows_the_copy_repaired_and_a_bad_record_marks_the_rest():
    checked = NOW - timedelta(hours=2)
    rows = MatrixRows(
        page=1,
        page_size=50,
        only_failing=False,
        total=2,
        backups=[
            BackupRow("a", "FULL_DATABASE", "a.dump", NOW, 1),
            BackupRow("b", "WAL_ARCHIVE", "b.wal", NOW, 1),
        ],
        latest={
            ("a", "r2"): ResultRow("checksum_mismatch", None, checked, "bad", "run1"),
            ("a", "b2"): ResultRow("backend_error", None, checked, "down", "run1"),
            ("b", ""): ResultRow("invalid_record", None, checked, "no path", "run1"),
        },
        repaired={("a", "r2"): checked + timedelta(minutes=1)},
        full_reads={},
    )

    page = view.matrix_page(rows, DEFAULT_EXPECTED_BACKENDS)

    states = {(row.backup_id, b): cell.state for row in page.rows for b, cell in row.cells.items()}
    assert states == {
        ("a", "local"): "not_checked",
        ("a", "r2"): "repaired",
        ("a", "b2"): "could_not_check",
        ("b", "local"): "invalid_record",
        ("b", "r2"): "not_checked",
        ("b", "b2"): "not_checked",
    }
    assert page.pages == 1
    tip = page.rows[0].cells["b2"].tip
    assert tip == f"could not check; last check {checked.isoformat()}; last full read never; down"


def test_the_chart_stacks_each_day_by_kind_with_the_tallest_day_filling_the_plot():
    today = date(2026, 11, 30)
    series = view.failures_per_day(
        [
            FailureCount(today, "backend_error", 1),
            FailureCount(today, "missing", 3),
            FailureCount(today - timedelta(days=1), "checksum_mismatch", 2),
        ],
        today,
    )

    chart = failures_chart(series)

    assert len(series) == 30
    assert (series[0].day, series[-1].day) == ("2026-11-01", "2026-11-30")
    assert chart.top == 4
    plot_height = chart.baseline - 10
    missing, backend_error, checksum = chart.bars[1], chart.bars[2], chart.bars[0]
    assert missing.title == "2026-11-30: 3 missing"
    assert missing.y + missing.height == chart.baseline, "missing copies at the bottom"
    assert backend_error.y + backend_error.height == missing.y
    assert backend_error.y == 10, "the tallest day reaches the top"
    assert checksum.height == plot_height / 2
    assert backend_error.colour == view.STATE_COLOURS["could_not_check"]
    assert [label.text for label in chart.labels] == [
        "11-01",
        "11-06",
        "11-11",
        "11-16",
        "11-21",
        "11-26",
        "11-30",
    ]
