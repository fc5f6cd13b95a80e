"""Which alert rows are this package's, and which of them each of its DAGs may change.

The alert table is the application's: the application, and the task this package
replaces, write ``INTEGRITY_FAILURE`` rows there too, some of them with a
``details.kind`` like ours. So every row the package writes carries
``details.source`` and ``details.producer`` (the DAG id that wrote it), and a DAG
updates or resolves only rows with its own marker and of the kinds it owns.
"""

from __future__ import annotations

from typing import Any

#: ``details.source`` of every alert row this package writes.
SOURCE = "verify_storage_integrity"

VERIFIER_DAG_ID = "verify_storage_integrity"
WATCHDOG_DAG_ID = "verify_storage_integrity_watchdog"

#: The watchdog's only kind; the verifier never changes an alert of this kind.
STALLED_KIND = "verifier_stalled"


def markers(producer: str) -> dict[str, str]:
    """The ``details`` keys that say a row is the package's, written by ``producer``."""
    if not producer:
        raise ValueError("an alert row needs the DAG id that writes it as its producer")
    return {"source": SOURCE, "producer": producer}


def with_markers(details: dict[str, Any], producer: str) -> dict[str, Any]:
    """``details`` marked as written by ``producer`` (a copy; the marker wins over any same key)."""
    return {**details, **markers(producer)}


def produced_by(details: dict[str, Any] | None, producer: str) -> bool:
    """Whether a row's details carry the package's marker for ``producer``."""
    details = details or {}
    return details.get("source") == SOURCE and details.get("producer") == producer


def producer_of_kind(kind: str | None) -> str:
    """The DAG that owns alerts of ``kind``: the watchdog its stall alert, the verifier the rest."""
    return WATCHDOG_DAG_ID if kind == STALLED_KIND else VERIFIER_DAG_ID
