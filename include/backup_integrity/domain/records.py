"""Small typed records that travel between tasks (as XCom) and between modules.

They are TypedDicts rather than classes so that they cross XCom as plain JSON
without any custom deserialisation setting on the Airflow side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

if TYPE_CHECKING:
    from collections.abc import Iterable

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
#: Unchanged (same ETag/checksum, size and modification time, or for a local file the
#: same size, mtime, ctime and inode) since its SHA-256 was proven by a read or the store.
EVIDENCE_FINGERPRINT = "fingerprint"
#: A SHA-256 the uploader stored in the object's metadata: weaker, the store never checked it.
EVIDENCE_UPLOAD_METADATA = "upload_metadata"

#: Evidence strong enough to say the content is right (and to resolve a checksum alert).
CONTENT_EVIDENCE = (EVIDENCE_CONTENT, EVIDENCE_SERVER_SHA256, EVIDENCE_FINGERPRINT)

#: What became of a repair (the alert store resolves an alert as repaired on the second).
#: "refused": nothing could be copied safely (no verified source, no recorded location);
#: "failed": a copy was attempted and did not verify.
PLANNED, REPAIRED, FAILED, REFUSED = "planned", "repaired", "failed", "refused"


class BackupRecord(TypedDict):
    """One catalog row, as far as verification needs it."""

    id: str
    backup_type: str
    filename: str
    size_bytes: int | None
    checksum: str | None
    #: Store name -> the path its ``path_column`` records (None: not recorded).
    paths: dict[str, str | None]
    created_at: str


class Scope(TypedDict):
    """Which catalog rows a run covers: a window (newest first, optionally capped) or ids."""

    window_start: str | None
    window_end: str | None
    limit: int | None
    backup_ids: list[str]


class Chunk(TypedDict):
    """The unit of fan-out: one key range of the run's scope on one backend.

    The chunk carries no rows: its task reads them from the catalog, so the XCom
    stays small whatever the size of the catalog. Paths in
    ``(after_path, through_path]`` (byte order; None: unbounded) belong to it, and
    the rows without a recorded path when ``unrecorded`` is set.
    """

    backend: str
    label: str
    mode: str
    part: int
    parts: int
    count: int
    after_path: str | None
    through_path: str | None
    unrecorded: bool
    types: list[str]
    scope: Scope
    now: str
    rehash_through: list[str | None] | None
    #: Objects whose store checksum this chunk may learn (None: all; ``domain/planning.py``).
    probe_budget: NotRequired[int | None]


def pack_ids(ids: Iterable[str]) -> str:
    """Backup ids as XCom carries a chunk's passes: one space-separated string.

    Airflow's execution API validates and re-encodes each item of a JSON list,
    so 12,500 ids as one string cross it many times faster than as a list.
    """
    return " ".join(ids)


def unpack_ids(packed: str | list[str]) -> list[str]:
    """The ids of :func:`pack_ids` (a list, as XComs of earlier versions hold, is taken as is)."""
    return packed.split() if isinstance(packed, str) else list(packed)


class ChunkOutcome(TypedDict):
    """What a chunk hands to the reduce: its failures, its passes as packed ids per evidence.

    Through XCom the failures travel as their count (``failure_count``) and wait in the
    catalog (``catalog/handover``); the tasks after the chunks put them back in ``failures``.
    """

    backend: str
    label: str
    mode: str
    checked_at: str
    failures: list[CheckResult]
    failure_count: NotRequired[int]
    passed: dict[str, str]
    objects: int
    objects_read: int
    bytes_read: int
    requests: dict[str, int]
    #: An S3 store's requests as sent, retries included, by kind (what it bills; absent: local).
    requests_sent: NotRequired[dict[str, int]]
    #: An S3 store's learned capabilities after this chunk (``domain/capabilities.py``).
    capabilities: NotRequired[dict[str, Any]]


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
    passed_by_evidence: dict[str, int]
    objects_read: int
    bytes_read: int
    requests: dict[str, dict[str, int]]
    chunks: int
    # Added by repair (present only when the run's repair mode is not "off").
    repair: str
    repair_plan: list[dict[str, Any]]
    repair_plan_total: int
    repaired: int
    repair_failed: int
    # The backends in incident in this run ([] when none).
    backend_incidents: list[str]
    # Per S3 store: what it was found to offer (domain/capabilities.py).
    store_capabilities: dict[str, dict[str, Any]]
