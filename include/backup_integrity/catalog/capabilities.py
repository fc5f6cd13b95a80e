"""The learned store capabilities, one row per store (``backup_integrity_store_capability``).

A chunk reads its store's row before it starts and adds what it saw after, in the
transaction that records its checks; counts add up in SQL, so chunks running side
by side never lose each other's answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain.capabilities import StoreCapabilities

if TYPE_CHECKING:
    from datetime import datetime

    from include.backup_integrity.domain.capabilities import CapabilityCounts

_COLUMNS = (
    "store, checksum_probes, sha256_answers, rejects_checksum_mode, listing_checksums, period_started_at"
)


def load_capabilities(conn: Any, store: str) -> StoreCapabilities:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM backup_integrity_store_capability WHERE store = %s", [store])
        row = cur.fetchone()
    return StoreCapabilities(*row) if row else StoreCapabilities(store)


def start_period(cur: Any, capabilities: StoreCapabilities, previous: StoreCapabilities) -> None:
    """Forget a store's "no SHA-256" answer at the start of a new period (once, whoever comes first)."""
    cur.execute(
        "UPDATE backup_integrity_store_capability SET checksum_probes = 0, sha256_answers = 0, "
        "period_started_at = %s, updated_at = now() WHERE store = %s AND period_started_at = %s",
        [capabilities.period_started_at, capabilities.store, previous.period_started_at],
    )


def add_capabilities(cur: Any, store: str, counts: CapabilityCounts, now: datetime) -> StoreCapabilities:
    """Add a chunk's answers to the store's row; returns the row as it now stands."""
    learned = StoreCapabilities(store).learned(counts)
    cur.execute(
        "INSERT INTO backup_integrity_store_capability AS c (store, checksum_probes, sha256_answers, "
        "rejects_checksum_mode, listing_checksums, period_started_at) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (store) DO UPDATE SET "
        "checksum_probes = c.checksum_probes + EXCLUDED.checksum_probes, "
        "sha256_answers = c.sha256_answers + EXCLUDED.sha256_answers, "
        "rejects_checksum_mode = CASE WHEN EXCLUDED.rejects_checksum_mode THEN true "
        "ELSE COALESCE(c.rejects_checksum_mode, EXCLUDED.rejects_checksum_mode) END, "
        "listing_checksums = CASE WHEN EXCLUDED.listing_checksums THEN true "
        "ELSE COALESCE(c.listing_checksums, EXCLUDED.listing_checksums) END, "
        f"updated_at = now() RETURNING {_COLUMNS}",
        [
            store,
            learned.checksum_probes,
            learned.sha256_answers,
            learned.rejects_checksum_mode,
            learned.listing_checksums,
            now,
        ],
    )
    return StoreCapabilities(*cur.fetchone())
