"""The ``repair_copies`` task: heal each bad copy from a copy proven good, then prove it.

The plan (which source for which bad copy, and which are refused) is decided in
:mod:`include.backup_integrity.domain.repair`. Here :func:`repair_copies` runs it:
in ``apply`` mode it copies from the first candidate that is (or is made) verified
by a full SHA-256 read, streaming and hashing every byte on the way, commits the
write only when the bytes read are the catalog's bytes, then re-reads the written
copy and verifies its SHA-256 before calling it repaired. Each outcome is recorded
in the catalog as soon as it is known, so a cleared run finds the copies an earlier
try already proved and does not copy them again. Nothing here raises for a bad
copy: every problem becomes an outcome with an error.

Before anything is copied, the target is set to the catalog's own path (a result's
path is redacted), and copies at a path another catalog row records or beyond the
run's caps are refused; a wrong copy already there is kept as ``<name>.bad-<UTC time>``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog import backups as catalog
from include.backup_integrity.catalog.connection import connect_catalog, transaction
from include.backup_integrity.catalog.repairs import load_recorded, record_repairs, shared_targets
from include.backup_integrity.config.secrets import redact, register_store_secrets
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.checks import path_for
from include.backup_integrity.domain.records import EVIDENCE_CONTENT, unpack_ids
from include.backup_integrity.domain.repair import (
    FAILED,
    OFF,
    PLAN,
    REFUSED,
    REPAIRABLE_KINDS,
    REPAIRED,
    RepairOutcome,
    RepairTask,
    cap_repairs,
    copies_something,
    describe_plan,
    outcome_of,
    plan_repairs,
    planned_outcomes,
    proven_outcome,
    refuse_shared_paths,
)
from include.backup_integrity.domain.timestamps import utc_now_iso
from include.backup_integrity.stores.copying import (
    RepairError,
    bad_copy_suffix,
    read_blocks,
    require_catalog_bytes,
    write_blocks,
)
from include.backup_integrity.tasks.incidents import held_backends, refuse_repairs_on
from include.backup_integrity.tasks.results import compact_repairs, failures_of, passed_result, with_failures

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from include.backup_integrity.domain.records import BackupRecord, CheckResult, ChunkOutcome

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the task body


def repair_copies(outcomes: Iterable[ChunkOutcome], plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Plan (``repair = "plan"``) or make (``"apply"``) the repairs the run's failures call for.

    Returns them as XCom carries them (:func:`~.results.compact_repairs`): what was
    copied or planned in full, the refusals, all recorded, by count.

    In ``apply`` mode a copy that an earlier try of this run proved (its
    ``backup_integrity_repair`` row says ``repaired`` with the catalog's SHA-256) is
    taken from that record, not copied again.
    """
    mode = plan.get("repair", OFF)
    if mode == OFF:
        return compact_repairs([])
    settings = Settings.from_dict(plan["settings"])
    register_store_secrets(settings)
    outcomes = with_failures(outcomes, settings, run_id)
    failures = failures_of(outcomes, plan)
    records = catalog_records_for(failures, settings)
    failures = at_catalog_paths(failures, records)
    tasks = plan_repairs(failures + sources_for_repair(outcomes, records), settings.store_names)
    if not tasks:
        return compact_repairs([])
    tasks, refused = refuse_repairs_on(tasks, held_backends(outcomes, plan))
    tasks, shared = refuse_shared_paths(tasks, shared_paths_of(tasks, settings))
    tasks, capped = cap_repairs(tasks, list(records), settings.repair_max_copies, settings.repair_max_bytes)
    if shared or capped:
        log.warning("repairs refused: %d at a shared path, %d over the cap", len(shared), len(capped))
    refused = refused + shared + capped
    if refused:
        record_outcomes(run_id, refused, settings)
    if mode == PLAN:
        repairs = refused + planned_outcomes(tasks)
        record_outcomes(run_id, repairs, settings)
        log.info("repair plan (nothing copied): %d bad copies", len(repairs))
    else:
        backends: dict[str, Any] = {}
        repairs = refused + apply_repairs(tasks, settings, run_id, backends)
        sent = {name: dict(b.sent) for name, b in sorted(backends.items()) if getattr(b, "sent", None)}
        log.info(
            "repairs: %d repaired, %d not repaired",
            sum(1 for o in repairs if o["status"] == REPAIRED),
            sum(1 for o in repairs if o["status"] != REPAIRED),
        )
    repairs = [redacted_outcome(o) for o in repairs]
    for line in describe_plan(repairs):
        log.info("  %s", line)
    if mode == PLAN:
        return compact_repairs(repairs)
    return {**compact_repairs(repairs), "requests_sent": sent}  # the copies' requests, for the cost


def redacted_outcome(outcome: RepairOutcome) -> RepairOutcome:
    """An outcome with any registered credential masked in its text (for XCom, alerts, the record)."""
    masked = {key: redact(outcome[key]) for key in ("reason", "error", "path", "source_path")}  # type: ignore[literal-required]
    return {**outcome, **masked}  # type: ignore[typeddict-item]


def catalog_records_for(failures: list[CheckResult], settings: Settings) -> dict[str, BackupRecord]:
    """The catalog rows of the backups with a repairable failure, newest first (few rows)."""
    wanted = {f["backup_id"] for f in failures if f["kind"] in REPAIRABLE_KINDS and f["backend"]}
    if not wanted:
        return {}
    conn = connect_catalog(settings)
    try:
        records, _ = catalog.select_by_ids(conn, settings, sorted(wanted))
        conn.commit()
    finally:
        conn.close()
    return {record["id"]: record for record in records}


def at_catalog_paths(failures: list[CheckResult], records: dict[str, BackupRecord]) -> list[CheckResult]:
    """The failures, each repairable one with the catalog's own location as its target.

    A result's ``path`` is its redacted form (it went through XCom); writing there
    would put the copy at ``.../***/...`` and leave the real one missing.
    """
    placed = []
    for failure in failures:
        if failure["kind"] in REPAIRABLE_KINDS and failure["backend"]:
            record = records.get(failure["backup_id"])
            failure = {**failure, "path": path_for(record, failure["backend"]) if record else None}
        placed.append(failure)
    return placed


def shared_paths_of(tasks: list[RepairTask], settings: Settings) -> set[tuple[str, str]]:
    """Which copies would be written where another catalog row records a copy too."""
    targets = [(t["backup_id"], t["backend"], t["path"] or "") for t in tasks if copies_something(t)]
    if not targets:
        return set()
    conn = connect_catalog(settings)
    try:
        shared = shared_targets(conn, settings, targets)
        conn.commit()
    finally:
        conn.close()
    return shared


def apply_repairs(
    tasks: list[RepairTask], settings: Settings, run_id: str, backends: dict[str, Any] | None = None
) -> list[RepairOutcome]:
    """Repair what an earlier try of this run did not prove; record each outcome as it comes.

    ``backends`` receives the stores it built (their request counts price the copies).
    """
    conn = connect_catalog(settings)
    try:
        with conn.cursor() as cur:
            recorded = load_recorded(cur, run_id)
        conn.commit()
    finally:
        conn.close()
    proven: dict[int, RepairOutcome] = {}
    for index, task in enumerate(tasks):
        outcome = proven_outcome(task, recorded.get((task["backup_id"], task["backend"])))
        if outcome is not None:
            proven[index] = outcome
            log.info(
                "%s on %s was repaired and proven by an earlier try of this run (%s); not copied again",
                task["backup_id"],
                task["backend"],
                outcome["repaired_at"],
            )
    todo = [task for index, task in enumerate(tasks) if index not in proven]
    made = iter(
        execute_repairs(
            todo, settings, on_outcome=lambda o: record_outcomes(run_id, [o], settings), backends=backends
        )
    )
    return [proven[index] if index in proven else next(made) for index in range(len(tasks))]


def record_outcomes(run_id: str, repairs: list[RepairOutcome], settings: Settings | None = None) -> None:
    """Record outcomes in their own transaction: what was done survives whatever comes next."""
    conn = connect_catalog(settings)
    try:
        with transaction(conn) as cur:
            record_repairs(cur, run_id, [redacted_outcome(o) for o in repairs])
    finally:
        conn.close()


def sources_for_repair(outcomes: list[ChunkOutcome], records: dict[str, BackupRecord]) -> list[CheckResult]:
    """The passing copies of the backups that have a repairable failure, with their locations.

    Passes travel as ids; where each copy lives comes from the catalog rows.
    """
    sources = []
    for outcome in outcomes:
        for evidence, packed in outcome["passed"].items():
            for backup_id in unpack_ids(packed):
                record = records.get(backup_id)
                if record is None:
                    continue
                source = passed_result(backup_id, outcome, evidence)
                source["path"] = path_for(record, outcome["backend"])
                sources.append(source)
    return sources


# --------------------------------------------------------------------------- executing


def verify_copy(backend: Any, path: str, task: RepairTask, what: str) -> None:
    """Read a copy byte for byte and require the catalog's size and SHA-256."""
    observation = backend.observe(path, read_content=True)
    if observation.error or observation.invalid:
        raise RepairError(f"{what} could not be read: {observation.error or observation.invalid}")
    if not observation.exists:
        raise RepairError(f"{what} is not there")
    require_catalog_bytes(observation.content_sha256 or "", observation.bytes_read or 0, task, what)


def repair_one(
    task: RepairTask, backend_for: Callable[[str], Any], keep_bad_copies: bool = True
) -> RepairOutcome:
    """Copy one bad copy from the first source that verifies; never raises.

    With ``keep_bad_copies``, a wrong copy already at the target is kept beside it
    (``<name>.bad-<UTC time>``) before the good one replaces it.
    """
    if not task["path"] or not task["sources"]:
        return outcome_of(task, REFUSED, error=task["reason"])
    target = backend_for(task["backend"])
    notes: list[str] = []
    for source in task["sources"]:
        source_backend = backend_for(source["backend"])
        label = f"{source['backend']} copy {source_backend.describe(source['path'])}"
        try:
            if source["evidence"] != EVIDENCE_CONTENT:
                verify_copy(source_backend, source["path"], task, f"the {label}")
        except Exception as exc:
            notes.append(f"{source['backend']} not used: {exc}")
            log.warning("repair of %s on %s: %s not used: %s", task["backup_id"], task["backend"], label, exc)
            continue
        used = outcome_of(task, FAILED, source_backend=source["backend"], source_path=source["path"])
        destination = target.describe(task["path"])
        try:
            keep_bad_as = bad_copy_suffix() if keep_bad_copies else None
            write_blocks(target, task["path"], read_blocks(source_backend, source["path"]), task, keep_bad_as)
            verify_copy(target, task["path"], task, f"the written copy {destination}")
        except Exception as exc:
            detail = exc if isinstance(exc, RepairError) else f"{type(exc).__name__}: {exc}"
            used["error"] = "; ".join(
                [*notes, f"copy from {source['backend']} to {destination} failed: {detail}"]
            )
            log.error("repair of %s on %s failed: %s", task["backup_id"], task["backend"], used["error"])
            return used
        used.update(status=REPAIRED, sha256=task["expected_sha256"], repaired_at=utc_now_iso())
        if notes:
            used["reason"] = f"copy from {source['backend']} ({source['path']}); " + "; ".join(notes)
        log.info(
            "repaired %s on %s (%s) from %s; SHA-256 %s verified on the written copy",
            task["backup_id"],
            task["backend"],
            destination,
            label,
            task["expected_sha256"],
        )
        return used
    return outcome_of(
        task,
        REFUSED,
        source_backend=None,
        source_path=None,
        error="no source could be verified good: " + "; ".join(notes),
    )


def execute_repairs(
    tasks: Iterable[RepairTask],
    settings: Settings,
    backend_for: Callable[[str], Any] | None = None,
    on_outcome: Callable[[RepairOutcome], None] | None = None,
    backends: dict[str, Any] | None = None,
) -> list[RepairOutcome]:
    """Repair every task in turn (repairs are rare; one at a time keeps load predictable).

    ``on_outcome`` is called with each outcome as soon as it is known (outside the
    per-copy error handling: if it raises, the repair stops there).
    """
    from include.backup_integrity.stores.factory import build_backend

    cache: dict[str, Any] = {} if backends is None else backends

    def default_backend_for(name: str) -> Any:
        if name not in cache:
            cache[name] = build_backend(name, settings)
        return cache[name]

    get = backend_for or default_backend_for
    outcomes = []
    for task in tasks:
        try:
            outcome = repair_one(task, get, settings.repair_keep_bad_copies)
        except Exception as exc:  # a backend that cannot even be built
            log.exception("repair of %s on %s failed", task["backup_id"], task["backend"])
            outcome = outcome_of(task, FAILED, error=f"{type(exc).__name__}: {exc}")
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
