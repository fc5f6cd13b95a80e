"""A cheap first run: store checksums are learned under a budget, new and changed objects first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.backup_integrity.catalog.object_state import ObjectState
from include.backup_integrity.domain.planning import MIN_PROBES_PER_RUN, build_chunks, probe_budget
from include.backup_integrity.stores.base import FolderListing, Listed
from include.backup_integrity.tasks.verify import probes_allowed
from tests.support.records import backup_record

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_the_budget_learns_every_checksum_within_one_rotation_period():
    assert probe_budget(100_000, 7) == 596  # 100,000 / (7 x 24), rounded up
    assert probe_budget(1_000, 7) == MIN_PROBES_PER_RUN, "a small catalog is learned in one run"
    assert probe_budget(100_000, 0) is None, "no rotation: no spreading"


def test_chunks_share_their_stores_budget_by_their_objects():
    scope = {"window_start": None, "window_end": None, "limit": None, "backup_ids": []}
    chunks = build_chunks(
        "r2",
        ["FULL_DATABASE"],
        [("a", "f", 300), ("g", "z", 100)],
        0,
        mode="quick",
        scope=scope,
        now=NOW.isoformat(),
        rehash_through=None,
        probe_budget=200,
    )

    assert [c["probe_budget"] for c in chunks] == [150, 50]


def listed(key: str, version: str = "v1") -> Listed:
    return Listed(size=1, fingerprint=f"{key}:{version}")


def test_new_and_changed_objects_are_probed_before_the_backlog():
    old = (NOW - timedelta(days=10)).isoformat()
    fresh = (NOW - timedelta(minutes=30)).isoformat()
    records = [backup_record(id=f"old-{n}", r2_path=f"db/old-{n}", created_at=old) for n in range(5)]
    records.append(backup_record(id="new", r2_path="db/new", created_at=fresh))
    records.append(backup_record(id="changed", r2_path="db/changed", created_at=old))
    records.append(backup_record(id="proven", r2_path="db/proven", created_at=old))
    records.append(backup_record(id="gone", r2_path="db/gone", created_at=old))
    entries = {f"db/old-{n}": listed(f"db/old-{n}") for n in range(5)}
    entries.update(
        {
            "db/new": listed("db/new"),
            "db/changed": listed("db/changed", "v2"),
            "db/proven": listed("db/proven"),
        }
    )
    listing = FolderListing(entries, 1)
    listing_of = {r["paths"]["r2"]: listing for r in records}
    states = {
        "changed": ObjectState(fingerprint="db/changed:v1", probed_fingerprint="db/changed:v1"),
        "proven": ObjectState(fingerprint="db/proven:v1", sha256_fingerprint="db/proven:v1"),
        "old-0": ObjectState(fingerprint="db/old-0:v1", probed_fingerprint="db/old-0:v1"),
    }

    allowed = probes_allowed(records, "r2", listing_of, states, budget=4, now=NOW)

    # new and changed first; the backlog (never probed, in path order) takes the two left;
    # old-0 was probed at this version already, proven needs no probe, gone is asked anyway.
    assert allowed == {"new", "changed", "old-1", "old-2"}
    assert probes_allowed(records, "r2", listing_of, states, budget=1, now=NOW) == {"new", "changed"}
