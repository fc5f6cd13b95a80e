"""WAL segment names, holes and the newest unbroken chain (pure)."""

from __future__ import annotations

import pytest

from include.backup_integrity.domain.wal import (
    NO_VERIFIED_COPY,
    NOT_IN_CATALOG,
    Segment,
    WalHole,
    WalRow,
    judge_continuity,
    parse_segment,
    segments_per_log,
)

MIB16 = 16 * 1024 * 1024


def rows(*names, absent=(), timeline="00000001"):
    """WAL rows for segment suffixes (log + segment, 16 hex) created a minute apart, in order."""
    out = []
    for i, name in enumerate(names):
        full = name if len(name) == 24 else timeline + name
        out.append(WalRow(f"id-{i}", f"wal/{full}.gz", f"2026-03-01T10:{i:02d}:00+00:00", full in absent))
    return out


def test_segments_per_log_follow_the_segment_size():
    assert segments_per_log(MIB16) == 256
    assert segments_per_log(64 * 1024 * 1024) == 64
    assert segments_per_log(1024**3) == 4


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("000000010000000A000000FE", Segment("00000001", 0x0A * 256 + 0xFE)),
        ("wal/000000010000000a000000fe.gz.enc", Segment("00000001", 0x0A * 256 + 0xFE)),
        ("db1-000000020000000B00000001.lz4", Segment("00000002", 0x0B * 256 + 1)),
        ("000000010000000A000000FE.partial", None),
        ("000000010000000A000000FE.partial.gz.enc", None),
        ("000000010000000A000000FE.00000028.backup", None),
        ("00000002.history", None),
        ("0000000100000000A000000FE", None),  # 25 hex characters: not exactly 24
        ("x000000010000000A000000FE0.gz", None),  # adjacent to more hex
        ("000000010000000A00000100", None),  # segment part beyond the log's last (FF) for 16 MiB
        ("dump.sql.gz", None),
    ],
)
def test_a_segment_name_is_the_first_run_of_exactly_24_hex_characters(filename, expected):
    assert parse_segment(filename, MIB16) == expected


def test_names_round_trip_across_the_ff_boundary():
    last = Segment("00000001", 0x0A * 256 + 0xFF)
    assert last.name(256) == "000000010000000A000000FF"
    assert Segment("00000001", last.number + 1).name(256) == "000000010000000B00000000"
    # With 1 GiB segments a log holds four: ...0A00000003 is followed by ...0B00000000.
    assert parse_segment("000000010000000A00000003", 1024**3) == Segment("00000001", 0x0A * 4 + 3)
    assert Segment("00000001", 0x0A * 4 + 4).name(4) == "000000010000000B00000000"


def test_segments_across_the_ff_boundary_without_a_hole_make_one_chain():
    judged = judge_continuity(rows("0000000A000000FE", "0000000A000000FF", "0000000B00000000"), MIB16)
    assert judged.holes == []
    assert judged.chain is not None
    assert judged.chain.as_statistics() == {
        "timeline": "00000001",
        "from_segment": "000000010000000A000000FE",
        "to_segment": "000000010000000B00000000",
        "from": "2026-03-01T10:00:00+00:00",
        "to": "2026-03-01T10:02:00+00:00",
    }


def test_a_hole_across_the_boundary_names_its_first_and_last_missing_segment():
    judged = judge_continuity(rows("0000000A000000FE", "0000000B00000001"), MIB16)
    assert judged.holes == [
        WalHole("00000001", "000000010000000A000000FF", "000000010000000B00000000", 2, NOT_IN_CATALOG)
    ]
    assert judged.chain.from_segment == "000000010000000B00000001"
    assert judged.chain.to_segment == "000000010000000B00000001"


def test_a_segment_whose_copies_all_failed_is_a_hole_of_its_own_reason():
    names = ("0000000A000000FD", "0000000A000000FE", "0000000B00000000")
    judged = judge_continuity(rows(*names, absent={"000000010000000A000000FE"}), MIB16)
    assert judged.holes == [
        WalHole("00000001", "000000010000000A000000FE", "000000010000000A000000FE", 1, NO_VERIFIED_COPY),
        WalHole("00000001", "000000010000000A000000FF", "000000010000000A000000FF", 1, NOT_IN_CATALOG),
    ]
    assert judged.chain.from_segment == "000000010000000B00000000"


def test_one_good_row_of_a_segment_is_enough():
    good = rows("0000000A000000FE", "0000000A000000FF")
    again = WalRow("id-x", "000000010000000A000000FF.gz", "2026-03-01T10:05:00+00:00", absent=True)
    assert judge_continuity([*good, again], MIB16).holes == []


def test_a_timeline_change_is_not_a_hole_and_the_chain_continues_across_it():
    old = rows("0000000A000000FE", "0000000A000000FF")
    new = [
        WalRow("n1", "000000020000000A000000FF.partial", "2026-03-01T10:03:00+00:00"),
        WalRow("n2", "000000020000000A000000FF", "2026-03-01T10:04:00+00:00"),
        WalRow("n3", "000000020000000B00000000", "2026-03-01T10:05:00+00:00"),
        WalRow("h", "00000002.history", "2026-03-01T10:03:00+00:00"),
    ]
    judged = judge_continuity([*old, *new], MIB16)
    assert judged.holes == []
    assert judged.unparsed == 2  # the .partial and the .history file
    assert judged.chain.timeline == "00000002"
    assert judged.chain.from_segment == "000000010000000A000000FE"
    assert judged.chain.to_segment == "000000020000000B00000000"
    assert judged.chain.to_time == "2026-03-01T10:05:00+00:00"


def test_the_chain_does_not_cross_a_switch_when_the_old_timeline_stops_short():
    old = rows("0000000A000000F0")
    new = [WalRow("n", "000000020000000A000000FF", "2026-03-01T10:04:00+00:00")]
    judged = judge_continuity([*old, *new], MIB16)
    assert judged.chain.from_segment == "000000020000000A000000FF"


def test_no_segments_no_chain():
    judged = judge_continuity([WalRow("x", "notes.txt", "2026-03-01T10:00:00+00:00")], MIB16)
    assert (judged.holes, judged.chain, judged.unparsed) == ([], None, 1)
