"""An operator's actions on a real catalog: one short statement each, on the package's rows only."""

from __future__ import annotations

import threading

import psycopg
import pytest

from devtools.seed import seed_backup
from include.backup_integrity.catalog.alert_actions import (
    ACKNOWLEDGE,
    MAX_NOTE_CHARS,
    NOTE,
    UNACKNOWLEDGE,
    AlertLocked,
    AlertNotFound,
    AlertResolved,
    act_on_alert,
)
from include.backup_integrity.catalog.alert_store import insert_alert
from include.backup_integrity.catalog.connection import transaction
from include.backup_integrity.domain.ownership import VERIFIER_DAG_ID
from tests.support.ownership import alert_row_text, insert_alert_row

ALERTS = "backups_backupalert"


def our_alert(conn, backup_id, status="ACTIVE"):
    with transaction(conn) as cur:
        alert_id = insert_alert(
            cur,
            ALERTS,
            backup_id,
            "CRITICAL",
            "missing",
            {"kind": "missing", "backend": "r2"},
            producer=VERIFIER_DAG_ID,
        )
        if status != "ACTIVE":
            cur.execute(f"UPDATE {ALERTS} SET status = %s WHERE id = %s", [status, alert_id])
    return alert_id


def row(conn, alert_id):
    with transaction(conn) as cur:
        cur.execute(
            f"SELECT status, acknowledged_at, acknowledged_by, details FROM {ALERTS} WHERE id = %s",
            [alert_id],
        )
        return cur.fetchone()


def test_acknowledge_with_a_note_then_unacknowledge_each_recorded_in_history(stores, catalog):
    alert_id = our_alert(catalog, seed_backup(stores).id)

    outcome = act_on_alert(catalog, ALERTS, alert_id, ACKNOWLEDGE, "op", note="looking at it")
    assert (outcome.status, outcome.changed) == ("ACKNOWLEDGED", True)
    status, acked_at, acked_by, details = row(catalog, alert_id)
    assert (status, acked_by) == ("ACKNOWLEDGED", "op")
    assert acked_at is not None
    assert [(n["by"], n["text"]) for n in details["notes"]] == [("op", "looking at it")]
    assert [(h["action"], h["by"]) for h in details["history"]] == [("acknowledge", "op")]
    assert details["kind"] == "missing", "the rest is kept"
    assert details["source"] == VERIFIER_DAG_ID

    again = act_on_alert(catalog, ALERTS, alert_id, ACKNOWLEDGE, "someone-else", note="ignored")
    assert (again.status, again.changed) == ("ACKNOWLEDGED", False)
    assert row(catalog, alert_id) == (status, acked_at, acked_by, details), "changes nothing"

    assert act_on_alert(catalog, ALERTS, alert_id, UNACKNOWLEDGE, "op").changed
    status, acked_at, acked_by, details = row(catalog, alert_id)
    assert (status, acked_at, acked_by) == ("ACTIVE", None, None)
    assert [h["action"] for h in details["history"]] == ["acknowledge", "unacknowledge"]
    assert not act_on_alert(catalog, ALERTS, alert_id, UNACKNOWLEDGE, "op").changed

    act_on_alert(catalog, ALERTS, alert_id, NOTE, "op", note="copy restored from b2")
    details = row(catalog, alert_id)[3]
    assert [n["text"] for n in details["notes"]] == ["looking at it", "copy restored from b2"]
    assert [h["action"] for h in details["history"]][-1] == "note"


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_NOTE_CHARS + 1), None])
def test_a_note_outside_1_to_2000_characters_is_refused(stores, catalog, text):
    alert_id = our_alert(catalog, seed_backup(stores).id)
    before = row(catalog, alert_id)
    with pytest.raises(ValueError, match="note"):
        act_on_alert(catalog, ALERTS, alert_id, NOTE, "op", note=text)
    assert row(catalog, alert_id) == before
    act_on_alert(catalog, ALERTS, alert_id, NOTE, "op", note="x" * MAX_NOTE_CHARS)


def test_resolved_unknown_and_foreign_alerts_are_refused_and_unchanged(stores, catalog):
    backup = seed_backup(stores)
    resolved = our_alert(catalog, backup.id, status="RESOLVED")
    foreign = insert_alert_row(catalog, {"kind": "missing", "backend": "r2"}, backup_id=backup.id)
    foreign_before = alert_row_text(catalog, foreign)
    resolved_before = row(catalog, resolved)
    for action in (ACKNOWLEDGE, UNACKNOWLEDGE, NOTE):
        with pytest.raises(AlertResolved):
            act_on_alert(catalog, ALERTS, resolved, action, "op", note="n" if action == NOTE else None)
        with pytest.raises(AlertNotFound):
            act_on_alert(catalog, ALERTS, foreign, action, "op", note="n" if action == NOTE else None)
        with pytest.raises(AlertNotFound):
            act_on_alert(catalog, ALERTS, 987654321, action, "op", note="n" if action == NOTE else None)
    assert row(catalog, resolved) == resolved_before
    assert alert_row_text(catalog, foreign) == foreign_before


def test_an_action_on_a_row_the_verifier_holds_fails_fast_and_changes_nothing(stores, catalog):
    alert_id = our_alert(catalog, seed_backup(stores).id)
    holder = psycopg.connect(stores.catalog_dsn)
    try:
        holder.execute(f"SELECT 1 FROM {ALERTS} WHERE id = %s FOR UPDATE", [alert_id])
        with pytest.raises(AlertLocked, match="try again"):
            act_on_alert(catalog, ALERTS, alert_id, ACKNOWLEDGE, "op")
    finally:
        holder.rollback()
        holder.close()
    assert row(catalog, alert_id)[0] == "ACTIVE"
    assert act_on_alert(catalog, ALERTS, alert_id, ACKNOWLEDGE, "op").changed, "works once released"


def test_concurrent_notes_are_all_kept(stores, catalog):
    """JSON operators in the UPDATE itself: no note is lost to a read-modify-write race."""
    alert_id = our_alert(catalog, seed_backup(stores).id)

    def annotate(n):
        conn = psycopg.connect(stores.catalog_dsn)
        try:
            for i in range(5):
                act_on_alert(conn, ALERTS, alert_id, NOTE, f"user{n}", note=f"{n}-{i}")
        finally:
            conn.close()

    threads = [threading.Thread(target=annotate, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    details = row(catalog, alert_id)[3]
    expected = sorted(f"{n}-{i}" for n in range(4) for i in range(5))
    assert sorted(n["text"] for n in details["notes"]) == expected
    assert len(details["history"]) == 20


def test_the_verifier_keeps_an_acknowledged_alert_open_unnotified_and_resolves_it(stores, catalog):
    from include.backup_integrity.catalog.alert_store import apply_alert_changes
    from tests.support.records import check_result

    backup = seed_backup(stores)
    times = ("2026-11-30T10:00:00+00:00", "2026-11-30T11:00:00+00:00", "2026-11-30T12:00:00+00:00")

    def run(kind, run_id, at):
        with transaction(catalog) as cur:
            apply_alert_changes(cur, ALERTS, [check_result(backup.id, "r2", kind, checked_at=at)], run_id)

    def notices():
        with transaction(catalog) as cur:
            cur.execute("SELECT event FROM backup_integrity_notification ORDER BY id")
            return [row[0] for row in cur.fetchall()]

    run("missing", "run-1", times[0])
    with transaction(catalog) as cur:
        cur.execute(f"SELECT id FROM {ALERTS}")
        (alert_id,) = cur.fetchone()
    act_on_alert(catalog, ALERTS, alert_id, ACKNOWLEDGE, "op", note="known")

    run("missing", "run-2", times[1])
    status, _, acked_by, details = row(catalog, alert_id)
    assert (status, acked_by, details["occurrences"]) == ("ACKNOWLEDGED", "op", 2), "still open, counted"
    assert notices() == ["opened"], "not notified again while the failure persists"
    assert [n["text"] for n in details["notes"]] == ["known"], "the verifier's update keeps notes"

    run("passed", "run-3", times[2])
    assert row(catalog, alert_id)[0] == "RESOLVED"
    assert notices() == ["opened", "resolved"]
