"""Which checks a run makes, split into chunks for dynamic task mapping.

Decisions that need no store (unknown backup type, a bad row, a path that is
not recorded or not safe) are made here, once, and become results directly;
everything else is grouped per backend into chunks of ``chunk_size`` backups.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from include.backup_integrity.checks import make_result, precheck
from include.backup_integrity.records import INVALID_RECORD, BackupRecord, CheckResult, Chunk

if TYPE_CHECKING:
    from include.backup_integrity.config import Settings

BACKEND_ORDER = ("local", "r2", "b2")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def effective_chunk_size(counts: list[int], chunk_size: int, max_chunks: int | None) -> int:
    """``chunk_size``, grown just enough that all backends' chunks fit in ``max_chunks``.

    Each backend's last chunk may be partial, so ``total / (max_chunks - backends)`` per
    chunk guarantees the bound.
    """
    busy = [n for n in counts if n]
    if max_chunks is None or not busy:
        return chunk_size
    total = sum(busy)
    room = max(max_chunks - len(busy), 1)
    return max(chunk_size, -(-total // room))


def plan_checks(
    records: list[BackupRecord],
    settings: Settings,
    mode: str,
    checked_at: str | None = None,
    max_chunks: int | None = None,
    now: datetime | None = None,
) -> tuple[list[Chunk], list[CheckResult]]:
    """Split the selected backups into per-backend chunks and catalog-only results.

    ``max_chunks`` (Airflow's ``max_map_length``) bounds the number of chunks, so a
    window of any size can be mapped.
    """
    checked_at = checked_at or utc_now_iso()
    decided: list[CheckResult] = []
    per_backend: dict[str, list[BackupRecord]] = {b: [] for b in BACKEND_ORDER}
    for record in records:
        backends = settings.expected_backends.get(record["backup_type"])
        if backends is None:
            decided.append(
                make_result(
                    record,
                    None,
                    INVALID_RECORD,
                    f"backup_type {record['backup_type']!r} is not in expected_backends "
                    f"(known types: {sorted(settings.expected_backends)})",
                    mode=mode,
                    checked_at=checked_at,
                )
            )
            continue
        for backend in backends:
            result = precheck(record, backend, mode=mode, checked_at=checked_at, now=now)
            if result is not None:
                decided.append(result)
            else:
                per_backend[backend].append(record)
    chunks: list[Chunk] = []
    size = effective_chunk_size([len(per_backend[b]) for b in BACKEND_ORDER], settings.chunk_size, max_chunks)
    for backend in BACKEND_ORDER:
        items = per_backend[backend]
        count = (len(items) + size - 1) // size
        for index in range(count):
            part = items[index * size : (index + 1) * size]
            chunks.append(
                Chunk(
                    backend=backend,
                    label=chunk_label(backend, index, count, part),
                    mode=mode,
                    backups=part,
                )
            )
    return chunks, decided


def chunk_label(backend: str, index: int, count: int, part: list[BackupRecord]) -> str:
    """What a mapped task instance covers, for its name in the UI."""
    position = f" {index + 1}/{count}" if count > 1 else ""
    if len(part) == 1:
        return f"{backend}{position}: {part[0]['filename']}"
    newest, oldest = part[0]["created_at"][:16], part[-1]["created_at"][:16]
    return f"{backend}{position}: {len(part)} backups {oldest}..{newest}"
