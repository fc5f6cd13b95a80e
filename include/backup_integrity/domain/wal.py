"""WAL continuity: segment names, the holes between archived segments, and the newest unbroken chain.

Point-in-time recovery replays every WAL segment from a base backup to the target
time: one lost segment breaks the chain for everything after it. A segment name is
24 hexadecimal characters (timeline, then the segment number as a "log" and a
segment within it); a log holds ``2**32 // wal_segment_bytes`` segments, so with
16 MiB segments ``…0A000000FF`` is followed by ``…0B00000000``. Pure: catalog rows
go in as :class:`WalRow`, holes and the chain come out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

#: A segment name: exactly 24 hex characters, not part of a longer hex run.
_SEGMENT = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{24}(?![0-9A-Fa-f])")
#: Archive files that carry a segment-like name but are not segments.
NOT_SEGMENT_SUFFIXES = frozenset({"history", "backup", "partial"})

#: Why a hole is one: no catalog row at all, or rows whose every expected copy failed.
NOT_IN_CATALOG = "not_in_catalog"
NO_VERIFIED_COPY = "no_verified_copy"


@dataclass(frozen=True, order=True)
class Segment:
    """A WAL segment: its timeline and its number counted across logs."""

    timeline: str
    number: int

    def name(self, segments_per_log: int) -> str:
        log, within = divmod(self.number, segments_per_log)
        return f"{self.timeline}{log:08X}{within:08X}"


def segments_per_log(wal_segment_bytes: int) -> int:
    """How many segments make one "log" (the middle 8 hex characters of a name)."""
    return 2**32 // wal_segment_bytes


def parse_segment(filename: str, wal_segment_bytes: int) -> Segment | None:
    """The segment a WAL file holds, or None (no segment name, a history/backup/partial file).

    The name is the first run of exactly 24 hex characters of the file's base name; a
    segment part beyond the log's last segment (``…FF`` for 16 MiB) is not a segment.
    """
    base = filename.rsplit("/", 1)[-1]
    match = _SEGMENT.search(base)
    if match is None:
        return None
    suffixes = base[match.end() :].lower().split(".")
    if NOT_SEGMENT_SUFFIXES.intersection(suffixes):
        return None
    name = match.group(0).upper()
    per_log = segments_per_log(wal_segment_bytes)
    log, within = int(name[8:16], 16), int(name[16:24], 16)
    if within >= per_log:
        return None
    return Segment(name[:8], log * per_log + within)


@dataclass(frozen=True)
class WalRow:
    """One COMPLETED ``WAL_ARCHIVE`` row of the window, as continuity needs it.

    ``absent`` is set when every expected copy failed its latest check with
    ``missing``, ``size_mismatch`` or ``checksum_mismatch`` (an unknown is not absent).
    """

    backup_id: str
    filename: str
    created_at: str
    absent: bool = False


@dataclass(frozen=True)
class WalHole:
    timeline: str
    first_missing: str
    last_missing: str
    missing_count: int
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.timeline, self.first_missing)


@dataclass(frozen=True)
class WalChain:
    """The newest run of segments without a hole (it may cross timeline switches)."""

    timeline: str
    from_segment: str
    to_segment: str
    from_time: str
    to_time: str

    def as_statistics(self) -> dict[str, str]:
        return {
            "timeline": self.timeline,
            "from_segment": self.from_segment,
            "to_segment": self.to_segment,
            "from": self.from_time,
            "to": self.to_time,
        }


@dataclass(frozen=True)
class WalContinuity:
    holes: list[WalHole]
    chain: WalChain | None
    unparsed: int


def judge_continuity(rows: Iterable[WalRow], wal_segment_bytes: int) -> WalContinuity:
    """The holes of each timeline between its first and last segment in the window, and the chain."""
    per_log = segments_per_log(wal_segment_bytes)
    present: dict[Segment, list[str]] = {}
    failed: dict[Segment, list[str]] = {}
    unparsed = 0
    for row in rows:
        segment = parse_segment(row.filename, wal_segment_bytes)
        if segment is None:
            unparsed += 1
            continue
        (failed if row.absent else present).setdefault(segment, []).append(row.created_at)
    for segment in present:
        failed.pop(segment, None)  # one good row is enough
    timelines = sorted({s.timeline for s in present} | {s.timeline for s in failed})
    holes: list[WalHole] = []
    for timeline in timelines:
        known = sorted(s.number for s in (*present, *failed) if s.timeline == timeline)
        missing: list[tuple[int, str]] = []
        previous: int | None = None
        for number in known:
            if previous is not None:
                missing.extend((n, NOT_IN_CATALOG) for n in range(previous + 1, number))
            if Segment(timeline, number) in failed:
                missing.append((number, NO_VERIFIED_COPY))
            previous = number
        holes.extend(_holes_of(timeline, missing, per_log))
    chain = _newest_chain(present, _known_by_timeline(present, failed), per_log)
    return WalContinuity(holes, chain, unparsed)


def _holes_of(timeline: str, missing: list[tuple[int, str]], per_log: int) -> list[WalHole]:
    """Consecutive missing numbers of one reason, as holes."""
    holes: list[WalHole] = []
    start = 0
    for i in range(1, len(missing) + 1):
        ends = (
            i == len(missing) or missing[i][0] != missing[i - 1][0] + 1 or missing[i][1] != missing[i - 1][1]
        )
        if not ends:
            continue
        first, last = missing[start][0], missing[i - 1][0]
        holes.append(
            WalHole(
                timeline,
                Segment(timeline, first).name(per_log),
                Segment(timeline, last).name(per_log),
                last - first + 1,
                missing[start][1],
            )
        )
        start = i
    return holes


def _known_by_timeline(present: dict[Segment, list[str]], failed: dict[Segment, list[str]]) -> dict[str, int]:
    """The first segment number the window knows of on each timeline (present or failed)."""
    first: dict[str, int] = {}
    for segment in (*present, *failed):
        first[segment.timeline] = min(first.get(segment.timeline, segment.number), segment.number)
    return first


def _newest_chain(
    present: dict[Segment, list[str]], first_known: dict[str, int], per_log: int
) -> WalChain | None:
    """From the newest timeline's last segment back to the first hole.

    A timeline switch is not a hole: when the newer timeline's run reaches back to its first
    segment and the older timeline's segments reach the one before it (or the switch segment
    itself, archived on both), the chain continues into the older timeline's unbroken tail.
    """
    if not present:
        return None
    by_timeline: dict[str, list[int]] = {}
    for segment in present:
        by_timeline.setdefault(segment.timeline, []).append(segment.number)
    timelines = sorted(by_timeline, reverse=True)
    newest = timelines[0]
    to_number = max(by_timeline[newest])
    from_timeline, from_number = newest, _tail_start(by_timeline[newest])
    for older in timelines[1:]:
        if from_number != first_known[from_timeline]:
            break  # a hole inside this timeline: the chain began after it
        reaching = [n for n in by_timeline[older] if n <= from_number]
        if not reaching or max(reaching) < from_number - 1:
            break  # the older timeline stops before the switch: something is missing between
        from_timeline, from_number = older, _tail_start(reaching)
    first = Segment(from_timeline, from_number)
    last = Segment(newest, to_number)
    return WalChain(
        timeline=newest,
        from_segment=first.name(per_log),
        to_segment=last.name(per_log),
        from_time=min(present[first]),
        to_time=max(present[last]),
    )


def _tail_start(numbers: list[int]) -> int:
    """The first number of the consecutive run that ends at the largest of ``numbers``."""
    ordered = sorted(set(numbers))
    start = ordered[-1]
    for number in reversed(ordered[:-1]):
        if number != start - 1:
            break
        start = number
    return start
