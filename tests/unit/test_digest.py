"""The digest's text: counts in the title, at most 50 lines, "and N more", the link when known."""

from __future__ import annotations

from include.backup_integrity.catalog.outbox import DigestItem
from include.backup_integrity.notify.digest import MAX_DIGEST_LINES, digest_message


def item(i: int, event: str = "opened", kind: str = "missing", severity: str = "CRITICAL") -> DigestItem:
    return DigestItem(i, 100 + i, event, severity, kind, "r2", f"backup-{i}", f"message {i}  spaced", [])


def test_the_title_counts_changes_kinds_and_severities_and_lines_stop_at_50():
    items = [item(i) for i in range(40)]
    items += [item(i, kind="size_mismatch", severity="ERROR") for i in range(40, 55)]
    items += [item(i, event="resolved") for i in range(55, 60)]

    title, body, notify_type = digest_message("run-7", items, "http://airflow:8080/backup-integrity/alerts")

    assert title == (
        "[CRITICAL] Backup integrity: 60 changes (55 opened, 5 resolved); "
        "by kind: 45 missing, 15 size_mismatch; by severity: 45 CRITICAL, 15 ERROR"
    )
    lines = body.splitlines()
    assert lines[0] == "Run run-7 changed 60 alerts:"
    assert lines[1] == "- opened missing on r2, backup backup-0: message 0 spaced"
    assert len([line for line in lines if line.startswith("- ")]) == MAX_DIGEST_LINES
    assert lines[-2] == "and 10 more"
    assert lines[-1] == "All alerts: http://airflow:8080/backup-integrity/alerts"
    assert notify_type == "failure"


def test_only_resolutions_make_a_resolved_digest_without_a_link_when_base_url_is_unset():
    title, body, notify_type = digest_message("run-8", [item(i, event="resolved") for i in range(6)], None)

    assert title.startswith("[RESOLVED] Backup integrity: 6 changes (6 resolved)")
    assert "All alerts" not in body
    assert "more" not in body
    assert notify_type == "success"


def test_a_long_message_is_cut_short():
    long = DigestItem(1, 1, "changed:run-9", "ERROR", "summary", None, None, "x" * 500, [])
    _, body, _ = digest_message("run-9", [long], None)
    line = body.splitlines()[1]
    assert line.startswith("- changed summary on -, backup -: ")
    assert line.endswith("\u2026")
    assert len(line) < 160
