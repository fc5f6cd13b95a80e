"""An operator's actions on the package's alert rows: acknowledge, unacknowledge, annotate.

Each action is one short ``UPDATE`` built from JSON operators (never read, change in
Python, write back), so it cannot undo a change the verifier made in between; the
row is locked with ``lock_timeout`` bounded by :data:`LOCK_TIMEOUT_MS`, so an action
that meets a running verifier fails fast (:class:`AlertLocked`) instead of waiting.
Only rows the package wrote (``details.source``) are touched: any other row is
answered as unknown. Every action is appended to ``details.history``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.catalog.identifiers import table
from include.backup_integrity.catalog.outbox import OWN_ROW

#: How long an action waits for the row (the verifier holds it while it records a run).
LOCK_TIMEOUT_MS = 2000
#: SQLSTATE of a lock not obtained within ``lock_timeout``.
LOCK_NOT_AVAILABLE = "55P03"
MAX_NOTE_CHARS = 2000

ACKNOWLEDGE = "acknowledge"
UNACKNOWLEDGE = "unacknowledge"
NOTE = "note"
ACTIONS = (ACKNOWLEDGE, UNACKNOWLEDGE, NOTE)


class AlertNotFound(LookupError):
    """No alert with that id, or one the package did not write."""


class AlertResolved(ValueError):
    """A resolved alert takes no action."""


class AlertLocked(RuntimeError):
    """The row stayed locked (by a running verifier) for longer than the lock timeout."""


@dataclass(frozen=True)
class ActionOutcome:
    alert_id: int
    action: str
    status: str
    changed: bool


def check_note(text: Any) -> str:
    """A note's text as stored: 1 to :data:`MAX_NOTE_CHARS` characters, not only blanks."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a note needs a non-empty text")
    if len(text) > MAX_NOTE_CHARS:
        raise ValueError(f"a note holds at most {MAX_NOTE_CHARS} characters, got {len(text)}")
    return text


def _appended(key: str, entry: sql.Composable, details: sql.Composable) -> sql.Composable:
    """``details`` with ``entry`` appended to its array ``key`` (created when missing)."""
    return sql.SQL(
        "jsonb_set({details}, {path}, "
        "COALESCE({details} -> {key}, '[]'::jsonb) || jsonb_build_array({entry}))"
    ).format(details=details, path=sql.Literal("{" + key + "}"), key=sql.Literal(key), entry=entry)


def _history(action: str) -> sql.Composable:
    return sql.SQL("jsonb_build_object('action', {a}::text, 'by', %(by)s::text, 'at', now())").format(
        a=sql.Literal(action)
    )


NOTE_ENTRY = sql.SQL("jsonb_build_object('by', %(by)s::text, 'at', now(), 'text', %(note)s::text)")


def _statement(alerts_table: str, action: str, with_note: bool) -> sql.Composable:
    """One statement: lock the row (ours only), change it when the action applies, say what happened."""
    details: sql.Composable = sql.SQL("a.details")
    if action == ACKNOWLEDGE:
        applies = sql.SQL("target.status = 'ACTIVE'")
        sets = sql.SQL("status = 'ACKNOWLEDGED', acknowledged_at = now(), acknowledged_by = %(by)s, ")
    elif action == UNACKNOWLEDGE:
        applies = sql.SQL("target.status = 'ACKNOWLEDGED'")
        sets = sql.SQL("status = 'ACTIVE', acknowledged_at = NULL, acknowledged_by = NULL, ")
    else:
        applies = sql.SQL("target.status <> 'RESOLVED'")
        sets = sql.SQL("")
    if with_note:
        details = _appended("notes", NOTE_ENTRY, details)
    details = _appended("history", _history(action), details)
    return sql.SQL(
        "WITH target AS (SELECT id, status FROM {t} WHERE id = %(id)s AND details @> %(own)s::jsonb "
        "FOR UPDATE), changed AS (UPDATE {t} AS a SET {sets}details = {details} FROM target "
        "WHERE a.id = target.id AND {applies} RETURNING a.status) "
        "SELECT target.status, (SELECT status FROM changed) FROM target"
    ).format(t=table(alerts_table), sets=sets, details=details, applies=applies)


def act_on_alert(
    conn: Any, alerts_table: str, alert_id: int, action: str, user: str, note: str | None = None
) -> ActionOutcome:
    """Apply ``action`` as ``user`` in its own short transaction on ``conn``; commit it."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {list(ACTIONS)}")
    if action == NOTE or note is not None:
        note = check_note(note)
    params = {"id": alert_id, "own": OWN_ROW, "by": user, "note": note}
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_MS)}ms'")
            cur.execute(_statement(alerts_table, action, note is not None), params)
            row = cur.fetchone()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id} written by the backup-integrity package")
        before, after = row
        if before == "RESOLVED":
            raise AlertResolved(f"alert {alert_id} is resolved; it takes no {action}")
        conn.commit()
    except Exception as error:
        conn.rollback()
        if (getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)) == LOCK_NOT_AVAILABLE:
            raise AlertLocked(
                f"alert {alert_id} is being written by a verifier run; try again in a moment"
            ) from None
        raise
    return ActionOutcome(alert_id, action, after or before, changed=after is not None)
