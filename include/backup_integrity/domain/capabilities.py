"""What an S3 store offers, learned from its answers rather than assumed from its name.

Three facts per store: whether a HEAD in checksum mode returns a whole-object SHA-256,
whether the store rejects the ``x-amz-checksum-mode`` header altogether (Backblaze B2 did,
``400 Unsupported header``), and whether its listings carry checksum fields. A store that
gave no SHA-256 for its first :data:`PROBES_BEFORE_GIVING_UP` probed objects is not asked in
checksum mode again until the next rotation period starts; a store that rejected the header
is never asked with it again. Pure values: the counts come from the chunks, the table from
``catalog/capabilities.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

#: Probed objects without a SHA-256 after which a store is no longer asked in checksum mode.
PROBES_BEFORE_GIVING_UP = 20
#: How often a store that gave no SHA-256 is asked again when the rotation is off (period 0).
DEFAULT_REPROBE_DAYS = 7


class CapabilityCounts(TypedDict):
    """What one chunk saw of its store (added up over the run's chunks and over runs)."""

    checksum_probes: int
    sha256_answers: int
    checksum_mode_rejected: int
    listed: int
    listed_with_checksum: int


def no_counts() -> CapabilityCounts:
    return CapabilityCounts(
        checksum_probes=0, sha256_answers=0, checksum_mode_rejected=0, listed=0, listed_with_checksum=0
    )


def add_counts(counts: Iterable[CapabilityCounts]) -> CapabilityCounts:
    total = no_counts()
    for one in counts:
        for key in total:
            total[key] += int(one.get(key, 0))  # type: ignore[literal-required]
    return total


@dataclass(frozen=True)
class StoreCapabilities:
    """One store's learned facts; None: not learned yet."""

    store: str
    checksum_probes: int = 0
    sha256_answers: int = 0
    rejects_checksum_mode: bool | None = None
    listing_checksums: bool | None = None
    period_started_at: datetime | None = None

    @property
    def head_sha256(self) -> bool | None:
        """Whether a HEAD in checksum mode returns a whole-object SHA-256 (None: not learned)."""
        if self.sha256_answers > 0:
            return True
        if self.rejects_checksum_mode or self.checksum_probes >= PROBES_BEFORE_GIVING_UP:
            return False
        return None

    def asks_checksum_mode(self) -> bool:
        """Whether this run's HEADs and GETs carry ``x-amz-checksum-mode: ENABLED``."""
        return not self.rejects_checksum_mode and self.head_sha256 is not False

    def for_run(self, now: datetime, rehash_period_days: int) -> StoreCapabilities:
        """The facts a run starts from: a store that gave no SHA-256 is asked again once per period.

        A store that rejected the header is not: that is not a question of its objects.
        """
        days = rehash_period_days or DEFAULT_REPROBE_DAYS
        started = self.period_started_at
        gave_none = self.head_sha256 is False and not self.rejects_checksum_mode
        if gave_none and (started is None or started <= now - timedelta(days=days)):
            return replace(self, checksum_probes=0, sha256_answers=0, period_started_at=now)
        return self

    def learned(self, counts: CapabilityCounts) -> StoreCapabilities:
        """These facts with what a run (or a chunk) saw added."""
        rejects = self.rejects_checksum_mode
        if counts["checksum_mode_rejected"]:
            rejects = True
        elif counts["checksum_probes"] and rejects is None:
            rejects = False
        listing = self.listing_checksums
        if counts["listed_with_checksum"]:
            listing = True
        elif counts["listed"] and listing is None:
            listing = False
        return replace(
            self,
            checksum_probes=self.checksum_probes + counts["checksum_probes"],
            sha256_answers=self.sha256_answers + counts["sha256_answers"],
            rejects_checksum_mode=rejects,
            listing_checksums=listing,
        )

    def statistics(self) -> dict[str, Any]:
        """The store's entry under the statistics key ``store_capabilities``."""
        return {
            "head_sha256": self.head_sha256,
            "rejects_checksum_mode": self.rejects_checksum_mode,
            "listing_checksums": self.listing_checksums,
            "checksum_probes": self.checksum_probes,
            "asks_checksum_mode": self.asks_checksum_mode(),
        }
