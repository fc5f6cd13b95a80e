"""The ``verify_chunk`` task: list the folders, compare with the catalog, read only what must be read.

:func:`verify_and_record` is the task's body (catalog in, results recorded);
:func:`verify_chunk` is the engine it runs on one backend.

Existence and size come from folder listings (one request per 1,000 objects);
an object whose fingerprint is unchanged since its SHA-256 was proven passes
without a download. Per-object requests are made only where a listing cannot
answer: a HEAD to confirm an absence or to learn the store's SHA-256 once per
object version, and reads for ``full`` mode, the rotation's slice, or a changed
object in ``rolling`` mode. Nothing here raises: a mapped task that raises is
missing from the reduce step, so every problem becomes a ``backend_error``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.object_state import ObjectState
from include.backup_integrity.config.secrets import redact
from include.backup_integrity.domain.capabilities import StoreCapabilities, add_counts
from include.backup_integrity.domain.checks import Observation, classify, make_result, path_for, precheck
from include.backup_integrity.domain.records import (
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_FINGERPRINT,
    EVIDENCE_SERVER_SHA256,
    EVIDENCE_UPLOAD_METADATA,
    PASSED,
    pack_ids,
)
from include.backup_integrity.domain.rotation import is_due
from include.backup_integrity.domain.timestamps import parse_timestamp, utc_now_iso
from include.backup_integrity.stores.base import CONCURRENCY, FolderListing, split_path

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.records import BackupRecord, CheckResult, Chunk, ChunkOutcome
    from include.backup_integrity.stores.base import Backend, Listed

log = logging.getLogger(__name__)

#: Objects one pool task decides in a row outside ``full`` mode (few of them need a request).
DECISION_BATCH = 32

#: Seconds between progress lines in the task log of a long chunk.
PROGRESS_INTERVAL_SECONDS = 30.0

PROOF_EVIDENCE = (EVIDENCE_CONTENT, EVIDENCE_SERVER_SHA256, EVIDENCE_UPLOAD_METADATA)


class Progress:
    """Objects and bytes done, logged at a steady interval with rate and ETA while work goes on."""

    def __init__(self, label: str, total_objects: int, interval: float = PROGRESS_INTERVAL_SECONDS) -> None:
        self.label = label
        self.total_objects = total_objects
        self.interval = interval
        self.objects = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verify-progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, objects: int = 0, bytes_read: int = 0) -> None:
        with self._lock:
            self.objects += objects
            self.bytes += bytes_read

    def line(self) -> str:
        with self._lock:
            objects, done_bytes = self.objects, self.bytes
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = objects / elapsed
        left = self.total_objects - objects
        eta = f"{left / rate:.0f}s" if rate > 0 else "unknown"
        return (
            f"{self.label}: {objects}/{self.total_objects} objects, {done_bytes / 1e6:.1f} MB read "
            f"({rate:.0f} objects/s, {done_bytes / 1e6 / elapsed:.1f} MB/s), ETA {eta}"
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("progress %s", self.line())


@dataclass
class ObjectCheck:
    """One object's result and what to remember about it."""

    result: CheckResult
    state: ObjectState
    bytes_read: int = 0
    read: bool = False


def verify_chunk(
    chunk: Chunk,
    backend: Backend,
    records: list[BackupRecord],
    states: dict[str, ObjectState],
    *,
    progress_interval: float = PROGRESS_INTERVAL_SECONDS,
) -> tuple[ChunkOutcome, list[CheckResult], dict[str, ObjectState]]:
    """Check every record of the chunk on its backend.

    Returns the compact outcome for the reduce step, every result (for the
    history table) and each object's new state.
    """
    mode = chunk["mode"]
    started = time.monotonic()
    now = datetime.fromisoformat(chunk["now"])
    results: list[CheckResult] = []
    new_states: dict[str, ObjectState] = {}
    todo: list[BackupRecord] = []
    for record in records:
        decided = precheck(record, backend.spec, mode=mode, checked_at=utc_now_iso(), now=now)
        if decided is None:
            todo.append(record)
        else:
            results.append(decided)
            new_states[record["id"]] = states.get(record["id"], ObjectState())

    try:
        session_error = backend.open_session()
    except Exception as exc:  # never let a chunk vanish from the aggregate
        session_error = f"{type(exc).__name__}: {exc}"
    if session_error and todo:
        log.error("%s: %s", chunk["label"], redact(session_error))
        for record in todo:
            results.append(_error(record, backend.name, mode, session_error))
            new_states[record["id"]] = states.get(record["id"], ObjectState())
        todo = []

    # One listing per folder (S3: paged, 1,000 keys a request, like rclone), folders in parallel.
    todo.sort(key=lambda r: path_for(r, backend.name) or "")
    by_folder: dict[str, list[str]] = defaultdict(list)
    for record in todo:
        path = path_for(record, backend.name) or ""
        by_folder[split_path(path)[0]].append(path)
    batches = list(by_folder.values())

    bytes_read = objects_read = 0
    with (
        Progress(chunk["label"], len(todo), progress_interval) as progress,
        ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix=f"verify-{backend.name}") as pool,
    ):

        def list_batch(keys: list[str]) -> FolderListing:
            try:
                return backend.list_keys(keys)
            except Exception as exc:
                log.exception("unexpected error listing %s..%s on %s", keys[0], keys[-1], backend.name)
                return FolderListing({}, 0, f"unexpected {type(exc).__name__}: {exc}")

        listing_of: dict[str, FolderListing] = {}
        for keys, listing in zip(batches, pool.map(list_batch, batches), strict=True):
            if listing.error:
                log.warning(
                    "%s: listing %r..%r failed (%s); asking about each object instead",
                    chunk["label"],
                    keys[0],
                    keys[-1],
                    redact(listing.error),
                )
            for key in keys:
                listing_of[key] = listing

        budget = chunk.get("probe_budget")
        may_probe = (
            None
            if budget is None or not getattr(backend, "reports_checksums", False)
            else probes_allowed(todo, backend.name, listing_of, states, budget, now)
        )

        def check(record: BackupRecord) -> ObjectCheck:
            path = path_for(record, backend.name) or ""
            state = states.get(record["id"], ObjectState())
            allowed = may_probe is None or record["id"] in may_probe
            try:
                done = check_object(record, backend, path, listing_of[path], state, chunk, may_probe=allowed)
            except Exception as exc:
                log.exception("unexpected error checking %s on %s", record["id"], backend.name)
                done = ObjectCheck(
                    _error(record, backend.name, mode, f"unexpected {type(exc).__name__}: {exc}"), state
                )
            progress.add(1, done.bytes_read)
            return done

        # Most objects are decided from the listing alone: hand them to the pool in batches,
        # so a future per object does not cost more than the decision; reads stay one apiece.
        batch = 1 if mode == "full" else DECISION_BATCH
        batches_of_records = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        for checked in pool.map(lambda records: [check(r) for r in records], batches_of_records):
            for done in checked:
                results.append(done.result)
                new_states[done.result["backup_id"]] = done.state
                bytes_read += done.bytes_read
                objects_read += int(done.read)

    # Passes travel as ids under one time, so every pass of the chunk is recorded at that time.
    checked_at = utc_now_iso()
    passed: dict[str, list[str]] = defaultdict(list)
    failures = []
    for result in results:
        if result["kind"] == PASSED:
            result["checked_at"] = checked_at
            passed[result["evidence"] or ""].append(result["backup_id"])
        else:
            failures.append(result)
    outcome: ChunkOutcome = {
        "backend": backend.name,
        "label": chunk["label"],
        "mode": mode,
        "checked_at": checked_at,
        "failures": failures,
        "passed": {evidence: pack_ids(ids) for evidence, ids in passed.items()},
        "objects": len(results),
        "objects_read": objects_read,
        "bytes_read": bytes_read,
        "requests": dict(backend.requests),
    }
    sent = getattr(backend, "sent", None)  # an S3 store's, through its guards
    if sent is not None:
        outcome["requests_sent"] = dict(sent)
    elapsed = time.monotonic() - started
    log.info(
        "%s: %d checked, %d failed, %d read (%.1f MB, %.1f MB/s), requests %s, in %.2fs (mode %s)",
        chunk["label"],
        len(results),
        len(failures),
        objects_read,
        bytes_read / 1e6,
        bytes_read / 1e6 / max(elapsed, 1e-9),
        dict(backend.requests),
        elapsed,
        mode,
    )
    return outcome, results, new_states


def _error(record: BackupRecord, backend: str, mode: str, message: str) -> CheckResult:
    return classify(
        record,
        backend,
        path_for(record, backend) or "",
        Observation(error=message),
        mode=mode,
        checked_at=utc_now_iso(),
    )


#: A backup created this recently (since the previous hourly run) with no recorded state is
#: new: probed ahead of the backlog. Older unprobed objects are the backlog, whatever their age.
NEW_OBJECT_HOURS = 1


def probes_allowed(
    records: list[BackupRecord],
    backend_name: str,
    listing_of: dict[str, FolderListing],
    states: dict[str, ObjectState],
    budget: int,
    now: datetime,
) -> set[str]:
    """The backups whose store checksum this chunk may learn by a HEAD, within its budget.

    New objects (no state, created within :data:`NEW_OBJECT_HOURS`) and changed ones (a
    fingerprint other than the one recorded) are always probed; the backlog (objects never
    probed) takes what is left of the budget, in path order, so the next run takes the next
    ones. A key the listing did not show is asked about anyway, outside the budget: "missing"
    is always the store's own answer about the key.
    """
    new_since = now - timedelta(hours=NEW_OBJECT_HOURS)
    first: list[str] = []
    backlog: list[str] = []
    for record in records:
        path = path_for(record, backend_name) or ""
        listing = listing_of[path]
        listed = None if listing.error else listing.entries.get(path)
        if listed is None or listed.invalid:
            continue
        state = states.get(record["id"], ObjectState())
        if listed.fingerprint in (state.sha256_fingerprint, state.probed_fingerprint):
            continue  # proven, or already asked about this very version
        created = parse_timestamp(record["created_at"])
        changed = state.fingerprint is not None and state.fingerprint != listed.fingerprint
        new = state.fingerprint is None and created is not None and created >= new_since
        (first if changed or new else backlog).append(record["id"])
    return {*first, *backlog[: max(0, budget - len(first))]}


def check_object(
    record: BackupRecord,
    backend: Backend,
    path: str,
    listing: FolderListing,
    state: ObjectState,
    chunk: Chunk,
    *,
    may_probe: bool = True,
) -> ObjectCheck:
    """Decide one object from its listing entry, asking the store only what the listing cannot say.

    ``may_probe`` false: this run's probe budget is spent elsewhere; the object is decided from
    its listing (and its recorded proof) alone.
    """
    mode = chunk["mode"]
    listed: Listed | None = listing.entries.get(path)
    if listing.error or listed is None:
        # The listing could not answer, or says "not there": ask about the object itself,
        # so that "missing" is always the store's own answer about this key.
        observation = backend.probe(path)
        probed = True
    elif listed.invalid:
        observation = Observation(invalid=listed.invalid)
        probed = False
    else:
        observation = Observation(
            exists=True,
            size=listed.size,
            fingerprint=listed.fingerprint,
            extra={"etag": listed.etag} if listed.etag else None,
        )
        probed = False

    def done(obs: Observation, new_state: ObjectState, read: bool = False) -> ObjectCheck:
        result = classify(record, backend.name, path, obs, mode=mode, checked_at=utc_now_iso())
        return ObjectCheck(result, new_state, obs.bytes_read or 0, read)

    if observation.invalid or observation.error:
        return done(observation, state)
    if not observation.exists:
        return done(observation, replace(state, fingerprint=None))
    if state.fingerprint != observation.fingerprint:
        state = replace(state, fingerprint=observation.fingerprint)
    if observation.size != record["size_bytes"]:
        return done(observation, state)

    proven = (
        state.sha256_fingerprint is not None
        and state.sha256_fingerprint == observation.fingerprint
        and state.sha256_evidence in PROOF_EVIDENCE
    )
    changed = state.sha256_fingerprint is not None and state.sha256_fingerprint != observation.fingerprint
    due = mode == "rolling" and is_due(state.last_read_at, record["id"], chunk["rehash_through"])
    if mode == "full" or (mode == "rolling" and (due or changed)):
        return _read(record, backend, path, listed, state, chunk)

    if proven:
        return ObjectCheck(_unchanged_result(record, backend.name, path, observation, state, mode), state)

    wants_probe = (
        getattr(backend, "reports_checksums", False)
        and may_probe
        and not probed
        and (
            (listed is not None and listed.has_sha256) or state.probed_fingerprint != observation.fingerprint
        )
    )
    if wants_probe:
        headed = backend.probe(path)
        if headed.error or headed.invalid or not headed.exists or headed.size != record["size_bytes"]:
            return done(headed, replace(state, fingerprint=headed.fingerprint))
        observation = headed
        state = replace(state, fingerprint=headed.fingerprint, probed_fingerprint=headed.fingerprint)
    elif probed:
        state = replace(state, probed_fingerprint=observation.fingerprint)
    proof_sha, proof_evidence = _store_proof(observation)
    if proof_sha is not None:
        state = replace(
            state,
            sha256=proof_sha,
            sha256_evidence=proof_evidence,
            sha256_fingerprint=observation.fingerprint,
            sha256_verified_at=datetime.now(UTC),
        )
    checked = done(observation, state)
    if mode == "rolling" and checked.result["kind"] == CHECKSUM_MISMATCH:
        # The store's (or uploader's) word says the content is wrong: read it to settle it.
        return _read(record, backend, path, listed, state, chunk)
    return checked


def _store_proof(observation: Observation) -> tuple[str | None, str | None]:
    if observation.server_sha256:
        return observation.server_sha256.lower(), EVIDENCE_SERVER_SHA256
    if observation.metadata_sha256:
        return observation.metadata_sha256.lower(), EVIDENCE_UPLOAD_METADATA
    return None, None


def _read(
    record: BackupRecord,
    backend: Backend,
    path: str,
    listed: Listed | None,
    state: ObjectState,
    chunk: Chunk,
) -> ObjectCheck:
    observation = backend.read(path, listed)
    result = classify(record, backend.name, path, observation, mode=chunk["mode"], checked_at=utc_now_iso())
    if observation.content_sha256 is not None:
        read_at = datetime.now(UTC)
        state = replace(
            state,
            fingerprint=observation.fingerprint,
            sha256=observation.content_sha256.lower(),
            sha256_evidence=EVIDENCE_CONTENT,
            sha256_fingerprint=observation.fingerprint,
            sha256_verified_at=read_at,
            last_read_at=read_at,
            last_read_bytes=observation.bytes_read,
        )
        if getattr(backend, "reports_retention", False):
            # The rotation's read is also its retention read: the GET says the retain-until date.
            state = replace(
                state,
                retain_until=parse_timestamp((observation.extra or {}).get("retain_until")),
                retention_read_at=read_at,
            )
    elif not observation.error and not observation.exists:
        state = replace(state, fingerprint=None)
    return ObjectCheck(result, state, observation.bytes_read or 0, observation.content_sha256 is not None)


def _unchanged_result(
    record: BackupRecord, backend: str, path: str, observation: Observation, state: ObjectState, mode: str
) -> CheckResult:
    """The result for an object unchanged since its SHA-256 was proven (by us or the store)."""
    expected = (record["checksum"] or "").strip().lower()
    how = {
        EVIDENCE_CONTENT: "by reading it",
        EVIDENCE_SERVER_SHA256: "by the store's own SHA-256",
        EVIDENCE_UPLOAD_METADATA: "by the SHA-256 recorded at upload (weaker)",
    }[state.sha256_evidence or EVIDENCE_CONTENT]
    when = state.sha256_verified_at.isoformat() if state.sha256_verified_at else "an earlier run"
    weak = state.sha256_evidence == EVIDENCE_UPLOAD_METADATA
    evidence = EVIDENCE_UPLOAD_METADATA if weak else EVIDENCE_FINGERPRINT
    actual = {"size_bytes": observation.size, "sha256": state.sha256, "fingerprint": observation.fingerprint}
    if state.sha256 == expected:
        kind, message = PASSED, f"unchanged since its SHA-256 was verified {how} at {when}"
    else:
        kind = CHECKSUM_MISMATCH
        message = (
            f"{backend} object {path!r} is unchanged since its SHA-256 was found to be {state.sha256} "
            f"{how} at {when}; catalog says {expected}"
        )
    return make_result(
        record,
        backend,
        kind,
        message,
        mode=mode,
        checked_at=utc_now_iso(),
        path=path,
        actual=actual,
        evidence=evidence,
    )


# --------------------------------------------------------------------------- the task body


def learned_capabilities(conn: Any, settings: Settings, store: str) -> StoreCapabilities | None:
    """An S3 store's learned capabilities for this run (a new period starts here); None: local."""
    from include.backup_integrity.catalog.capabilities import load_capabilities, start_period

    if settings.store(store).is_local:
        return None
    stored = load_capabilities(conn, store)
    capabilities = stored.for_run(datetime.now(UTC), settings.rehash_period_days)
    if capabilities != stored:
        with conn.cursor() as cur:
            start_period(cur, capabilities, stored)
    return capabilities


def verify_and_record(
    chunk: Chunk, settings: dict[str, Any], run_id: str, execution_timeout: timedelta | None = None
) -> ChunkOutcome:
    """Verify one chunk on its backend; every problem becomes a result, recorded as it is found.

    Stores are asked until a few minutes before ``execution_timeout`` (the task's), and
    not past the run's deadline for a store that stopped answering.
    """
    from include.backup_integrity.catalog import object_state
    from include.backup_integrity.catalog.capabilities import add_capabilities
    from include.backup_integrity.catalog.connection import connect_catalog, transaction
    from include.backup_integrity.catalog.handover import record_chunk_failures
    from include.backup_integrity.catalog.scope import chunk_records
    from include.backup_integrity.catalog.sessions import SessionTimeouts, naming_waits
    from include.backup_integrity.config.secrets import register_package_secrets, register_store_secrets
    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.stores.breaker import CircuitBreaker
    from include.backup_integrity.stores.deadline import DeadlineGuard
    from include.backup_integrity.stores.factory import build_backend
    from include.backup_integrity.tasks.deadlines import chunk_store_deadline
    from include.backup_integrity.tasks.results import redact_result

    started_at = time.time()
    register_package_secrets()
    parsed = Settings.from_dict(settings)
    register_store_secrets(parsed)
    timeouts = SessionTimeouts.of(parsed)
    conn = connect_catalog(parsed)
    try:
        with naming_waits(timeouts, "reading the chunk's backups"):
            records = chunk_records(conn, parsed, chunk)
            recorded = object_state.load_recorded(conn, chunk["backend"], [r["id"] for r in records])
            states = {backup_id: r.state for backup_id, r in recorded.items()}
            capabilities = learned_capabilities(conn, parsed, chunk["backend"])
            conn.commit()
            deadline = chunk_store_deadline(
                conn,
                parsed,
                run_id,
                chunk["backend"],
                started_at=started_at,
                execution_timeout=execution_timeout,
            )
        store = build_backend(chunk["backend"], parsed)
        if capabilities is not None:
            store.checksum_mode = capabilities.asks_checksum_mode()  # type: ignore[attr-defined]
        backend = DeadlineGuard(CircuitBreaker(store), deadline)
        outcome, results, new_states = verify_chunk(chunk, backend, records, states)
        # Failures carry free text from stores and the catalog: it goes to XCom, alerts and the history.
        results = [redact_result(r) if r["kind"] != PASSED else r for r in results]
        outcome["failures"] = [redact_result(r) for r in outcome["failures"]]
        with naming_waits(timeouts, "recording the chunk's checks"), transaction(conn) as cur:
            object_state.save_checks(cur, run_id, results, new_states, recorded)
            if capabilities is not None:
                seen = add_counts([getattr(store, "capability_counts", {})])  # type: ignore[list-item]
                learned = add_capabilities(cur, chunk["backend"], seen, datetime.now(UTC))
                outcome["capabilities"] = learned.statistics()
            # However many checks failed, the XCom carries their count; the rows wait in the catalog.
            outcome["failure_count"] = record_chunk_failures(cur, run_id, chunk["label"], outcome["failures"])
            outcome["failures"] = []
    finally:
        conn.close()
    return outcome
