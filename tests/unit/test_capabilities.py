"""Learning what a store offers: SHA-256 on HEAD, a rejected checksum-mode header, checksums in listings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.backup_integrity.domain.capabilities import (
    PROBES_BEFORE_GIVING_UP,
    CapabilityCounts,
    StoreCapabilities,
    add_counts,
    no_counts,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def counts(**seen: int) -> CapabilityCounts:
    return CapabilityCounts(**{**no_counts(), **seen})  # type: ignore[typeddict-item]


def test_nothing_is_assumed_before_the_store_answered():
    fresh = StoreCapabilities("wasabi")

    assert fresh.head_sha256 is None
    assert fresh.asks_checksum_mode()
    assert fresh.statistics() == {
        "head_sha256": None,
        "rejects_checksum_mode": None,
        "listing_checksums": None,
        "checksum_probes": 0,
        "asks_checksum_mode": True,
    }


def test_one_sha256_answer_proves_the_store_gives_them():
    learned = StoreCapabilities("r2").learned(counts(checksum_probes=3, sha256_answers=1, listed=5))

    assert learned.head_sha256 is True
    assert learned.rejects_checksum_mode is False
    assert learned.listing_checksums is False
    assert learned.asks_checksum_mode()


def test_twenty_probes_without_a_sha256_stop_checksum_mode_until_the_next_period():
    almost = StoreCapabilities("b2", period_started_at=NOW).learned(
        counts(checksum_probes=PROBES_BEFORE_GIVING_UP - 1)
    )
    assert almost.head_sha256 is None
    assert almost.asks_checksum_mode()

    given_up = almost.learned(counts(checksum_probes=1))
    assert given_up.head_sha256 is False
    assert not given_up.asks_checksum_mode()
    assert given_up.for_run(NOW + timedelta(days=6), rehash_period_days=7) == given_up

    next_period = given_up.for_run(NOW + timedelta(days=7), rehash_period_days=7)
    assert next_period.checksum_probes == 0
    assert next_period.period_started_at == NOW + timedelta(days=7)
    assert next_period.asks_checksum_mode(), "re-probed once per rotation period"


def test_a_store_that_rejects_the_header_is_never_asked_with_it_again():
    rejected = StoreCapabilities("b2", period_started_at=NOW).learned(counts(checksum_mode_rejected=1))

    assert rejected.rejects_checksum_mode is True
    assert rejected.head_sha256 is False
    assert not rejected.asks_checksum_mode()
    assert rejected.for_run(NOW + timedelta(days=30), rehash_period_days=7) == rejected
    assert rejected.learned(counts(checksum_probes=5)).rejects_checksum_mode is True


def test_checksums_in_one_listing_entry_say_the_listings_carry_them():
    learned = (
        StoreCapabilities("r2").learned(counts(listed=10)).learned(counts(listed=3, listed_with_checksum=1))
    )

    assert learned.listing_checksums is True
    assert add_counts([counts(listed=2), counts(listed=3, sha256_answers=1)]) == counts(
        listed=5, sha256_answers=1
    )
