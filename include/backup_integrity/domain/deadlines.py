"""When a store may no longer be asked: the chunk's own deadline and a silent store's.

Two budgets bound the time one run spends asking a store. A mapped chunk stops a
few minutes before Airflow would kill it (its ``execution_timeout``), so that what
it did not ask becomes results instead of a task missing from the aggregate. A
store that stops answering may cost the whole run only ``store_deadline_seconds``
from its first timeout, however many chunks ask it. Both are decided here from
plain numbers (seconds since the epoch, so that processes can share them).
"""

from __future__ import annotations

#: The message of a check a chunk did not ask because its own deadline came.
TASK_DEADLINE = "not asked: task deadline"

#: How long before its ``execution_timeout`` a chunk stops asking stores (at most).
CHUNK_DEADLINE_MARGIN_SECONDS = 300.0

#: The margin is at most this share of the timeout (a short timeout keeps most of its time).
CHUNK_DEADLINE_MARGIN_SHARE = 0.25


def silent_store(store_deadline_seconds: float) -> str:
    """The message of a check not asked because its store did not answer in time."""
    return f"not asked: the store did not answer for {store_deadline_seconds:g} s"


def chunk_margin(execution_timeout_seconds: float) -> float:
    """The time a chunk keeps, after it stops asking, to record what it found."""
    return min(CHUNK_DEADLINE_MARGIN_SECONDS, execution_timeout_seconds * CHUNK_DEADLINE_MARGIN_SHARE)


def chunk_deadline(started_at: float, execution_timeout_seconds: float | None) -> float | None:
    """When a chunk started at ``started_at`` stops asking (None: its task has no timeout)."""
    if execution_timeout_seconds is None:
        return None
    return started_at + execution_timeout_seconds - chunk_margin(execution_timeout_seconds)


def store_deadline(first_timeout_at: float | None, store_deadline_seconds: float) -> float | None:
    """When a store that first timed out at ``first_timeout_at`` is no longer asked in this run."""
    if first_timeout_at is None:
        return None
    return first_timeout_at + store_deadline_seconds


def refusal(
    now: float,
    needs_seconds: float,
    *,
    task_deadline: float | None,
    first_timeout_at: float | None,
    store_deadline_seconds: float,
) -> str | None:
    """Why a request that may take ``needs_seconds`` (one connect-and-read timeout) must not start.

    A request starts only when it would end, at worst, before both deadlines: so
    no request runs past either, and botocore's retries are cut to the time left.
    """
    silent_until = store_deadline(first_timeout_at, store_deadline_seconds)
    if silent_until is not None and now + needs_seconds > silent_until:
        return silent_store(store_deadline_seconds)
    if task_deadline is not None and now + needs_seconds > task_deadline:
        return TASK_DEADLINE
    return None
