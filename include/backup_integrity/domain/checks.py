"""Compare what a store says about an object with what the catalog says.

Pure functions only: a catalog record and an :class:`Observation` go in, one
:class:`~include.backup_integrity.domain.records.CheckResult` comes out. The order of
failure kinds is the contract's: ``invalid_record``, ``backend_error``,
``missing``, ``size_mismatch``, ``checksum_mismatch``; the first that applies wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_SERVER_SHA256,
    EVIDENCE_SIZE,
    EVIDENCE_UPLOAD_METADATA,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
    BackupRecord,
    CheckResult,
)

if TYPE_CHECKING:
    from include.backup_integrity.domain.stores import StoreSpec

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Catalog rows created before this year, or more than a day in the future, are absurd.
EARLIEST_PLAUSIBLE_YEAR = 2000
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class Observation:
    """What a store answered about one object.

    ``error`` set means the store could not be asked (refused, timeout, 5xx,
    auth); ``exists`` is then meaningless. ``content_sha256`` is set only when
    the bytes were read; ``server_sha256`` only when the store computed a
    whole-object SHA-256 itself. ``invalid`` set means the location must not be
    used (a symlink on the way, not a regular file).
    """

    exists: bool = False
    size: int | None = None
    server_sha256: str | None = None
    content_sha256: str | None = None
    bytes_read: int | None = None
    error: str | None = None
    invalid: str | None = None
    extra: dict[str, Any] | None = None
    fingerprint: str | None = None
    metadata_sha256: str | None = None


def path_for(record: BackupRecord, backend: str) -> str | None:
    """The catalog's location of a backup on a backend, or None when not recorded."""
    value = (record.get("paths") or {}).get(backend)
    if value is None or not str(value).strip():
        return None
    return str(value)


def record_problem(record: BackupRecord, now: datetime | None = None) -> str | None:
    """Why a catalog row cannot be checked safely at all, or None when it can.

    ``now`` is the latest time a backup can plausibly have been created at (the
    later of the run's window end and the clock); a day of slack absorbs skew.
    """
    size = record.get("size_bytes")
    checksum = record.get("checksum")
    if size is None:
        return "size_bytes is NULL: nothing to compare the stored size with"
    if isinstance(size, bool) or not isinstance(size, int):
        return f"size_bytes {size!r} is not an integer"
    if size < 0:
        return f"size_bytes is negative ({size})"
    if checksum is None:
        return "checksum is NULL: no SHA-256 to verify the content against"
    if not isinstance(checksum, str) or not _SHA256_HEX.fullmatch(checksum.strip()):
        return f"checksum {checksum!r} is not a SHA-256 (64 hexadecimal characters)"
    created_at = record.get("created_at")
    if created_at:
        try:
            created = datetime.fromisoformat(str(created_at))
        except ValueError:
            return f"created_at {created_at!r} is not a date"
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        if created.year < EARLIEST_PLAUSIBLE_YEAR:
            return f"created_at {created_at} is implausibly old"
        if created > (now or datetime.now(UTC)) + FUTURE_TOLERANCE:
            return f"created_at {created_at} is in the future"
    return None


def path_problem(backend: str, path: str, *, local: bool) -> str | None:
    """Why a recorded location must not be used, or None when it is safe.

    Paths on a ``local`` store must stay inside its root: relative, without ``..``. Object
    keys are names, not paths, so only control characters are refused there.
    """
    if _CONTROL.search(path):
        return f"{backend} path {path!r} contains control characters"
    if not local:
        return None
    if path.startswith("/") or path.startswith("\\") or re.match(r"^[A-Za-z]:[\\/]", path):
        return f"local path {path!r} is absolute; catalog paths must be relative to local_root"
    if ".." in re.split(r"[\\/]", path):
        return f"local path {path!r} contains '..'"
    if path.endswith("/"):
        return f"local path {path!r} names a folder, not a file"
    return None


def expected_of(record: BackupRecord) -> dict[str, Any]:
    return {"size_bytes": record.get("size_bytes"), "sha256": record.get("checksum")}


def make_result(
    record: BackupRecord,
    backend: str | None,
    kind: str,
    message: str,
    *,
    mode: str,
    checked_at: str,
    path: str | None = None,
    actual: dict[str, Any] | None = None,
    evidence: str | None = None,
) -> CheckResult:
    return CheckResult(
        backup_id=record["id"],
        backend=backend,
        kind=kind,
        message=message,
        path=path,
        expected=expected_of(record),
        actual=actual,
        mode=mode,
        evidence=evidence,
        checked_at=checked_at,
    )


def precheck(
    record: BackupRecord, store: StoreSpec, *, mode: str, checked_at: str, now: datetime | None = None
) -> CheckResult | None:
    """The result decided from the catalog row alone, before asking any store."""
    backend = store.name
    problem = record_problem(record, now)
    path = path_for(record, backend)
    if problem:
        return make_result(
            record, backend, INVALID_RECORD, problem, mode=mode, checked_at=checked_at, path=path
        )
    if path is None:
        return make_result(
            record,
            backend,
            MISSING,
            f"not recorded in catalog: {store.path_column} is empty",
            mode=mode,
            checked_at=checked_at,
        )
    problem = path_problem(backend, path, local=store.is_local)
    if problem:
        return make_result(
            record, backend, INVALID_RECORD, problem, mode=mode, checked_at=checked_at, path=path
        )
    return None


def classify(
    record: BackupRecord,
    backend: str,
    path: str,
    observation: Observation,
    *,
    mode: str,
    checked_at: str,
) -> CheckResult:
    """Turn a store's answer into exactly one result."""
    actual: dict[str, Any] = {}
    if observation.size is not None:
        actual["size_bytes"] = observation.size
    if observation.server_sha256:
        actual["server_sha256"] = observation.server_sha256
    if observation.content_sha256:
        actual["sha256"] = observation.content_sha256
    if observation.extra:
        actual.update(observation.extra)

    def result(kind: str, message: str, evidence: str | None = None) -> CheckResult:
        return make_result(
            record,
            backend,
            kind,
            message,
            mode=mode,
            checked_at=checked_at,
            path=path,
            actual=actual or None,
            evidence=evidence,
        )

    if observation.invalid:
        return result(INVALID_RECORD, observation.invalid)
    if observation.error:
        return result(BACKEND_ERROR, f"{backend} could not be checked: {observation.error}")
    if not observation.exists:
        return result(MISSING, f"{backend} has no object at {path!r}")
    expected_size = record["size_bytes"]
    if observation.size != expected_size:
        return result(
            SIZE_MISMATCH,
            f"{backend} object {path!r} is {observation.size} bytes, catalog says {expected_size}",
        )
    expected_sha = (record["checksum"] or "").strip().lower()
    if observation.content_sha256 is not None:
        if observation.content_sha256.lower() != expected_sha:
            return result(
                CHECKSUM_MISMATCH,
                f"{backend} object {path!r}: SHA-256 of its content is "
                f"{observation.content_sha256}, catalog says {expected_sha}",
                EVIDENCE_CONTENT,
            )
        return result(PASSED, "content read and SHA-256 matched", EVIDENCE_CONTENT)
    if mode == "full":
        # Full mode promises the bytes were read; without a content hash that promise is unmet.
        return result(BACKEND_ERROR, f"{backend} object {path!r} was not read in full mode")
    if observation.server_sha256 is not None:
        if observation.server_sha256.lower() != expected_sha:
            return result(
                CHECKSUM_MISMATCH,
                f"{backend} object {path!r}: the store's SHA-256 is {observation.server_sha256}, "
                f"catalog says {expected_sha}",
                EVIDENCE_SERVER_SHA256,
            )
        return result(PASSED, "size matched and the store's SHA-256 matched", EVIDENCE_SERVER_SHA256)
    if observation.metadata_sha256 is not None:
        if observation.metadata_sha256.lower() != expected_sha:
            return result(
                CHECKSUM_MISMATCH,
                f"{backend} object {path!r}: the SHA-256 recorded in its metadata at upload is "
                f"{observation.metadata_sha256}, catalog says {expected_sha} (weaker evidence: "
                "the store never checked it; a full read settles it)",
                EVIDENCE_UPLOAD_METADATA,
            )
        return result(
            PASSED,
            "size matched and the SHA-256 recorded at upload matched (weaker: not checked by the store)",
            EVIDENCE_UPLOAD_METADATA,
        )
    return result(PASSED, "exists and size matched", EVIDENCE_SIZE)


def store_answered(result: CheckResult) -> bool:
    """The store was asked and answered (a catalog-only decision does not count)."""
    if result["kind"] in (PASSED, SIZE_MISMATCH, CHECKSUM_MISMATCH):
        return True
    return result["kind"] == MISSING and bool(result["path"])
