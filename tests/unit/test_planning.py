"""How a run fans out: routing by type, bounded chunks per backend, key ranges and labels."""

from __future__ import annotations

from include.backup_integrity.config.settings import Settings, parse_settings
from include.backup_integrity.domain.planning import build_chunks, parts_for, routes

SCOPE = {"window_start": None, "window_end": None, "limit": None, "backup_ids": ["x"]}


def chunks_of(ranges, unrecorded=0, backend="r2"):
    return build_chunks(
        backend,
        ["FULL_DATABASE"],
        ranges,
        unrecorded,
        mode="rolling",
        scope=SCOPE,
        now="2026-03-01T11:00:00+00:00",
        rehash_through=None,
    )


def test_each_backend_gets_the_types_expected_on_it():
    assert routes(Settings()) == {
        "local": ["CONFIGURATION", "FULL_DATABASE", "TENANT_BACKUP"],
        "r2": ["CONFIGURATION", "FULL_DATABASE", "TENANT_BACKUP", "WAL_ARCHIVE"],
        "b2": ["CONFIGURATION", "FULL_DATABASE", "TENANT_BACKUP", "WAL_ARCHIVE"],
    }


def test_a_backend_no_type_expects_gets_no_chunk():
    settings = parse_settings({"expected_backends": {"FULL_DATABASE": ["b2"]}})

    assert routes(settings) == {"b2": ["FULL_DATABASE"]}


def test_chunks_per_backend_grow_with_the_catalog_up_to_the_cap():
    assert parts_for({"local": 120, "r2": 50, "b2": 0}, 50, 8, 1024) == {"local": 3, "r2": 1}
    assert parts_for({"local": 100_000, "r2": 100_000, "b2": 100_000}, 50, 8, 1024) == {
        "local": 8,
        "r2": 8,
        "b2": 8,
    }


def test_chunk_size_one_maps_one_chunk_per_backup_while_under_the_cap():
    assert parts_for({"r2": 3, "b2": 3}, 1, 8, 1024) == {"r2": 3, "b2": 3}


def test_all_chunks_fit_in_max_map_length():
    parts = parts_for({"local": 10_000, "r2": 10_000, "b2": 10_000}, 1, 8, 10)

    assert sum(parts.values()) <= 10
    assert all(p >= 1 for p in parts.values())


def test_key_ranges_become_half_open_chunks_and_the_last_is_open_ended():
    chunks = chunks_of([("a/1", "a/4", 4), ("a/5", "b/2", 4), ("b/3", "c/9", 3)], unrecorded=2)

    assert [(c["after_path"], c["through_path"], c["count"], c["unrecorded"]) for c in chunks] == [
        (None, "a/4", 6, True),
        ("a/4", "b/2", 4, False),
        ("b/2", None, 3, False),
    ]
    assert [c["label"] for c in chunks] == [
        "r2 1/3: 6 backups a/1 .. a/4",
        "r2 2/3: 4 backups a/5 .. b/2",
        "r2 3/3: 3 backups b/3 .. c/9",
    ]


def test_a_range_that_only_repeats_the_previous_last_path_is_merged_away():
    chunks = chunks_of([("a/1", "a/1", 2), ("a/1", "a/1", 2), ("a/2", "a/3", 2)])

    assert [(c["after_path"], c["through_path"]) for c in chunks] == [(None, "a/1"), ("a/1", None)]
    assert [c["parts"] for c in chunks] == [2, 2]


def test_rows_without_a_recorded_path_still_get_a_chunk():
    chunks = chunks_of([], unrecorded=3)

    assert [(c["after_path"], c["through_path"], c["unrecorded"], c["count"]) for c in chunks] == [
        (None, None, True, 3)
    ]


def test_a_long_path_is_shortened_in_the_label():
    long_path = "tenants/" + "x" * 200 + "/full.dump"

    (chunk,) = chunks_of([(long_path, long_path, 1)])

    assert chunk["label"].startswith("r2 1/1: 1 backup …")
    assert chunk["label"].endswith("/full.dump")
    assert len(chunk["label"]) < 100
