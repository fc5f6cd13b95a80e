"""Small typed records that travel between tasks (as XCom) and between modules.

They are TypedDicts rather than classes so that they cross XCom as plain JSON
without any custom deserialisation setting on the Airflow side.
"""

from __future__ import annotations

from typing import Any, TypedDict

PASSED = "passed"
INVALID_RECORD = "invalid_record"
BACKEND_ERROR = "backend_error"
MISSING = "missing"
SIZE_MISMATCH = "size_mismatch"
CHECKSUM_MISMATCH = "checksum_mismatch"

#: Failure kinds in the order in which the first that applies wins.
FAILURE_KINDS = (INVALID_RECORD, BACKEND_ERROR, MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH)

#: How strongly a result proves the content: read byte for byte, a
#: store-computed whole-object SHA-256, or the size only.
EVIDENCE_CONTENT = "content_sha256"
EVIDENCE_SERVER_SHA256 = "server_sha256"
EVIDENCE_SIZE = "size"


class BackupRecord(TypedDict):
    """One catalog row, as far as verification needs it."""

    id: str
    backup_type: str
    filename: str
    size_bytes: int | None
    checksum: str | None
    local_path: str | None
    r2_path: str | None
    b2_path: str | None
    created_at: str


class Chunk(TypedDict):
    """The unit of fan-out: some backups to verify on one backend."""

    backend: str
    label: str
    mode: str
    backups: list[BackupRecord]


class CheckResult(TypedDict):
    """The one outcome of checking one backup on one backend."""

    backup_id: str
    backend: str | None
    kind: str
    message: str
    path: str | None
    expected: dict[str, Any]
    actual: dict[str, Any] | None
    mode: str
    evidence: str | None
    checked_at: str


class Statistics(TypedDict, total=False):
    """The return value of ``aggregate_results``; the first eight keys are the contract."""

    total_backups_checked: int
    verified_successfully: int
    integrity_failures: int
    missing_files: int
    storage_mismatches: int
    checksum_mismatches: int
    backend_errors: int
    invalid_records: int
    checks_total: int
    checks_passed: int
    mode: str
    run_id: str
    window_start: str | None
    window_end: str | None
    skipped_backup_ids: list[str]
    # Added by repair (present only when the run's repair mode is not "off").
    repair: str
    repair_plan: list[dict[str, Any]]
    repaired: int
    repair_failed: int
