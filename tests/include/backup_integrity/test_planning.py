"""Which checks a run makes: routing by backup type, catalog-only results, chunks and their labels."""

from __future__ import annotations

import pytest

from include.backup_integrity.config import Settings, parse_settings
from include.backup_integrity.planning import plan_checks
from include.backup_integrity.records import INVALID_RECORD, MISSING
from tests.include.backup_integrity.helpers import CHECKED_AT, backup_record


def backups(count, backup_type="FULL_DATABASE"):
    """``count`` rows, newest first, as the catalog returns them."""
    return [
        backup_record(
            id=f"b-{n}",
            backup_type=backup_type,
            filename=f"backup-{n}.dump",
            created_at=f"2026-03-{10 - n:02d}T08:30:00+00:00",
        )
        for n in range(count)
    ]


def plan(records, settings=None, mode="quick"):
    return plan_checks(records, settings or Settings(), mode, checked_at=CHECKED_AT)


@pytest.mark.parametrize(
    ("backup_type", "backends"),
    [
        ("WAL_ARCHIVE", ["r2", "b2"]),
        ("FULL_DATABASE", ["local", "r2", "b2"]),
        ("TENANT_BACKUP", ["local", "r2", "b2"]),
        ("CONFIGURATION", ["local", "r2", "b2"]),
    ],
)
def test_each_type_goes_to_its_expected_backends(backup_type, backends):
    chunks, decided = plan(backups(1, backup_type))

    assert decided == []
    assert [c["backend"] for c in chunks] == backends


def test_expected_backends_come_from_the_variable():
    settings = parse_settings({"expected_backends": {"FULL_DATABASE": ["b2"]}})

    chunks, _ = plan(backups(2), settings)

    assert [c["backend"] for c in chunks] == ["b2"]


def test_an_unknown_type_is_one_invalid_record_without_a_backend():
    chunks, decided = plan(backups(1, "SNAPSHOT"))

    assert chunks == []
    assert len(decided) == 1
    result = decided[0]
    assert (result["backup_id"], result["backend"], result["kind"]) == ("b-0", None, INVALID_RECORD)
    assert result["message"].startswith("backup_type 'SNAPSHOT' is not in expected_backends")
    assert "WAL_ARCHIVE" in result["message"]


def test_a_bad_row_is_decided_on_every_backend_and_never_sent_to_a_store():
    chunks, decided = plan([backup_record(checksum=None)])

    assert chunks == []
    assert [(r["backend"], r["kind"]) for r in decided] == [
        ("local", INVALID_RECORD),
        ("r2", INVALID_RECORD),
        ("b2", INVALID_RECORD),
    ]


def test_a_path_not_recorded_on_one_backend_leaves_the_others_to_check():
    chunks, decided = plan([backup_record(local_path=None)])

    assert [(r["backend"], r["kind"]) for r in decided] == [("local", MISSING)]
    assert [c["backend"] for c in chunks] == ["r2", "b2"]


def test_chunk_size_one_gives_one_chunk_per_backup_per_backend():
    records = backups(3)

    chunks, _ = plan(records, Settings(chunk_size=1))

    assert len(chunks) == 9
    assert [(c["backend"], [b["id"] for b in c["backups"]]) for c in chunks] == [
        (backend, [record["id"]]) for backend in ("local", "r2", "b2") for record in records
    ]
    assert chunks[0]["label"] == "local 1/3: backup-0.dump"


def test_chunks_are_filled_in_order_and_labelled_with_their_span():
    chunks, _ = plan(backups(5), Settings(chunk_size=2, expected_backends={"FULL_DATABASE": ["r2"]}))

    assert [[b["id"] for b in c["backups"]] for c in chunks] == [["b-0", "b-1"], ["b-2", "b-3"], ["b-4"]]
    assert [c["label"] for c in chunks] == [
        "r2 1/3: 2 backups 2026-03-09T08:30..2026-03-10T08:30",
        "r2 2/3: 2 backups 2026-03-07T08:30..2026-03-08T08:30",
        "r2 3/3: backup-4.dump",
    ]


def test_the_mode_and_time_reach_chunks_and_decided_results():
    chunks, decided = plan([*backups(1), backup_record(id="b-x", r2_path=None)], mode="full")

    assert {c["mode"] for c in chunks} == {"full"}
    assert [(r["backup_id"], r["mode"], r["checked_at"]) for r in decided] == [("b-x", "full", CHECKED_AT)]


def test_nothing_to_check_plans_nothing():
    assert plan([]) == ([], [])
