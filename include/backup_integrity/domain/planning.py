"""How a run fans out: routing by backup type, and a bounded number of chunks per backend.

Pure functions: counts and key boundaries come from the catalog (see
:mod:`include.backup_integrity.catalog.scope`); here they become chunk descriptors.
However large the catalog, a backend gets at most ``max_chunks_per_backend``
chunks (and all of them together fit Airflow's ``max_map_length``);
``chunk_size`` is the smallest chunk worth a task of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from include.backup_integrity.domain.records import Chunk, Scope

#: Longest path shown in a chunk's label in the UI.
LABEL_PATH_CHARS = 60

HOURS_PER_DAY = 24
#: A store with fewer objects than this per run has every checksum learned in one run.
MIN_PROBES_PER_RUN = 100


def probe_budget(objects: int, rehash_period_days: int) -> int | None:
    """Objects whose store checksum one run may learn (a HEAD each), so that all are within a period.

    The objects in scope / (``rehash_period_days`` * 24), at least :data:`MIN_PROBES_PER_RUN`;
    None (no budget: every one at once) when the rotation is off.
    """
    if rehash_period_days <= 0:
        return None
    return max(MIN_PROBES_PER_RUN, -(-objects // (rehash_period_days * HOURS_PER_DAY)))


def chunk_share(budget: int | None, count: int, total: int) -> int | None:
    """A chunk's part of its store's probe budget, by its share of the store's objects."""
    if budget is None:
        return None
    return -(-budget * count // max(total, 1))


class Routing(Protocol):
    """What routing needs of the settings: the backends each backup type is expected on."""

    @property
    def expected_backends(self) -> Mapping[str, Iterable[str]]: ...

    @property
    def store_names(self) -> tuple[str, ...]: ...


def routes(settings: Routing) -> dict[str, list[str]]:
    """backend -> the backup types expected on it, in the configured stores' order."""
    by_backend: dict[str, list[str]] = {}
    for backend in settings.store_names:
        types = sorted(t for t, backends in settings.expected_backends.items() if backend in backends)
        if types:
            by_backend[backend] = types
    return by_backend


def parts_for(
    counts: dict[str, int], chunk_size: int, max_per_backend: int, max_map_length: int
) -> dict[str, int]:
    """Chunks per backend: one per ``chunk_size`` rows, at most ``max_per_backend``, within the map limit."""
    parts = {b: min(max_per_backend, -(-n // chunk_size)) for b, n in counts.items() if n}
    while sum(parts.values()) > max_map_length and max(parts.values(), default=1) > 1:
        largest = max(parts, key=lambda b: parts[b])
        parts[largest] -= 1
    return parts


def build_chunks(
    backend: str,
    types: list[str],
    ranges: list[tuple[str, str, int]],
    unrecorded: int,
    *,
    mode: str,
    scope: Scope,
    now: str,
    rehash_through: list[str | None] | None,
    probe_budget: int | None = None,
) -> list[Chunk]:
    """One chunk per key range; rows without a recorded path ride with the first chunk.

    Each range is half-open on the left, ``(previous range's last path, its own
    last path]``, so a path shared by two rows is never checked twice, and the
    last range is open on the right.
    """
    spans: list[tuple[str | None, str | None, str, str, int]] = []
    previous: str | None = None
    for first, last, count in ranges:
        if previous is not None and last <= previous:
            continue  # every row of this range shares the previous range's last path
        spans.append((previous, last, first, last, count))
        previous = last
    if spans:
        spans[-1] = (spans[-1][0], None, *spans[-1][2:])  # the last range takes any later path
    if not spans and unrecorded:
        spans.append((None, None, "", "", 0))
    chunks: list[Chunk] = []
    total = sum(span[4] for span in spans) + unrecorded
    for index, (after, through, first, last, count) in enumerate(spans):
        extra = unrecorded if index == 0 else 0
        chunks.append(
            {
                "backend": backend,
                "label": chunk_label(backend, index, len(spans), count + extra, first, last),
                "mode": mode,
                "part": index + 1,
                "parts": len(spans),
                "count": count + extra,
                "after_path": after,
                "through_path": through,
                "unrecorded": index == 0,
                "types": types,
                "scope": scope,
                "now": now,
                "rehash_through": rehash_through,
                "probe_budget": chunk_share(probe_budget, count + extra, total),
            }
        )
    return chunks


def _short(path: str) -> str:
    return path if len(path) <= LABEL_PATH_CHARS else "…" + path[-(LABEL_PATH_CHARS - 1) :]


def chunk_label(backend: str, index: int, count: int, backups: int, first: str, last: str) -> str:
    """What a mapped task instance covers, for its name in the UI."""
    position = f" {index + 1}/{count}"
    noun = "backup" if backups == 1 else "backups"
    span = f" {_short(first)}" if first == last else f" {_short(first)} .. {_short(last)}"
    return f"{backend}{position}: {backups:,} {noun}{span if first else ''}"
