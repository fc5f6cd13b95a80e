"""How long a catalog session may wait, and what it says when it waited too long.

Every session the package opens on the catalog (the application's production
database) sets ``statement_timeout``, ``lock_timeout`` and
``idle_in_transaction_session_timeout`` from the Variable, so that a lock held by
the application, or a session that stopped talking, fails a task with a message
naming what it waited for instead of hanging it (and everything queued behind
it). Advisory locks are waited for under the statement timeout instead: another
run of the verifier may hold one for minutes. Migrations set their own, longer bounds
(:mod:`include.backup_integrity.catalog.schema`).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.connection import transaction

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from include.backup_integrity.config.settings import Settings

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"
IDLE_IN_TRANSACTION_TIMEOUT = "25P03"

_TUPLE_IN_RELATION = re.compile(r'tuple \([^)]*\) in relation "([^"]+)"')


class CatalogWaitTimeout(RuntimeError):
    """A catalog statement waited longer than its timeout; the message says for what."""


@dataclass(frozen=True)
class SessionTimeouts:
    """The Variable's bounds on one catalog session, in seconds."""

    statement_seconds: int = 900
    lock_seconds: int = 30

    @classmethod
    def of(cls, settings: Settings | None) -> SessionTimeouts:
        if settings is None:
            return cls()
        return cls(settings.db_statement_timeout_seconds, settings.db_lock_timeout_seconds)


def apply_session_timeouts(conn: Any, timeouts: SessionTimeouts) -> None:
    """Set the session's timeouts (committed, so they last as long as the connection)."""
    statement = f"{timeouts.statement_seconds}s"
    with transaction(conn) as cur:
        cur.execute(
            "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false), "
            "set_config('idle_in_transaction_session_timeout', %s, false)",
            [statement, f"{timeouts.lock_seconds}s", statement],
        )


def take_advisory_lock(cur: Any, key: int, holder: str) -> None:
    """``pg_advisory_xact_lock(key)``, waited for up to the statement timeout, not the lock timeout.

    ``holder`` names who may hold it, for the error when the wait runs out.
    """
    cur.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
    lock_timeout, statement_timeout = cur.fetchone()
    cur.execute("SELECT set_config('lock_timeout', '0', true)")
    try:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    except Exception as exc:
        if sqlstate_of(exc) == QUERY_CANCELED:
            raise CatalogWaitTimeout(
                f"waited {statement_timeout} (db_statement_timeout_seconds) for the advisory lock "
                f"{key:#x}, which {holder} holds"
            ) from exc
        raise
    cur.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, in either driver."""
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def describe_wait(exc: BaseException, doing: str, timeouts: SessionTimeouts) -> str | None:
    """What a timed-out statement waited for, in words; None when ``exc`` is not a timeout."""
    state = sqlstate_of(exc)
    if state == LOCK_NOT_AVAILABLE:
        context = getattr(getattr(exc, "diag", None), "context", None) or ""
        row = _TUPLE_IN_RELATION.search(context)
        lock = f"a row lock on {row.group(1)}" if row else "a table lock"
        return f"waited {timeouts.lock_seconds} s (db_lock_timeout_seconds) for {lock} while {doing}"
    if state == QUERY_CANCELED:
        return (
            f"a statement ran for {timeouts.statement_seconds} s (db_statement_timeout_seconds) "
            f"without finishing while {doing}"
        )
    if state == IDLE_IN_TRANSACTION_TIMEOUT:
        return (
            f"the catalog closed the session, idle in a transaction for {timeouts.statement_seconds} s "
            f"(db_statement_timeout_seconds), while {doing}"
        )
    return None


@contextmanager
def naming_waits(timeouts: SessionTimeouts, doing: str) -> Iterator[Callable[[str], None]]:
    """Turn a catalog timeout inside the block into :class:`CatalogWaitTimeout` naming the step.

    Yields a function to name the step now under way (``step("writing metadata")``).
    """
    current = [doing]

    def step(now_doing: str) -> None:
        current[0] = now_doing

    try:
        yield step
    except CatalogWaitTimeout:
        raise
    except Exception as exc:
        message = describe_wait(exc, current[0], timeouts)
        if message is None:
            raise
        raise CatalogWaitTimeout(message) from exc
