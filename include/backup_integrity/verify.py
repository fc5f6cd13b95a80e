"""Verify one chunk: ask one backend about some backups, concurrently, and never raise.

A mapped task that raises is missing from the reduce step, so every problem
met here, even an unexpected one, becomes a ``backend_error`` result instead.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from include.backup_integrity.checks import Observation, classify, path_for
from include.backup_integrity.planning import utc_now_iso

if TYPE_CHECKING:
    from include.backup_integrity.backends import Backend
    from include.backup_integrity.records import BackupRecord, CheckResult, Chunk

log = logging.getLogger(__name__)

#: Objects checked at once within one chunk (HEAD requests or reads in flight).
CONCURRENCY = 8


def verify_chunk(chunk: Chunk, backend: Backend) -> list[CheckResult]:
    """One result per backup of the chunk, in the chunk's order."""
    mode = chunk["mode"]
    started = time.monotonic()
    try:
        session_error = backend.open_session()
    except Exception as exc:  # never let a chunk vanish from the aggregate
        session_error = f"{type(exc).__name__}: {exc}"
    if session_error:
        log.error("%s: %s", chunk["label"], session_error)
        checked_at = utc_now_iso()
        return [
            classify(
                record,
                backend.name,
                path_for(record, backend.name) or "",
                Observation(error=session_error),
                mode=mode,
                checked_at=checked_at,
            )
            for record in chunk["backups"]
        ]

    def check(record: BackupRecord) -> CheckResult:
        path = path_for(record, backend.name) or ""
        try:
            observation = backend.observe(path, read_content=(mode == "full"))
        except Exception as exc:
            log.exception("unexpected error checking %s on %s", record["id"], backend.name)
            observation = Observation(error=f"unexpected {type(exc).__name__}: {exc}")
        return classify(record, backend.name, path, observation, mode=mode, checked_at=utc_now_iso())

    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix=f"verify-{backend.name}") as pool:
        results = list(pool.map(check, chunk["backups"]))
    failed = sum(1 for r in results if r["kind"] != "passed")
    log.info(
        "%s: %d checked, %d failed, in %.2fs (mode %s)",
        chunk["label"],
        len(results),
        failed,
        time.monotonic() - started,
        mode,
    )
    return results
