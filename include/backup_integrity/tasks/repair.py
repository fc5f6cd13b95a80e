"""Heal a bad copy from a copy that was proven good: plan (pure), then copy, then prove.

:func:`plan_repairs` turns the run's results into one :class:`RepairTask` per
repairable failure (``missing``, ``size_mismatch``, ``checksum_mismatch``) with
the other backends' passing copies as candidate sources, best evidence first.
:func:`execute_repairs` copies from the first candidate that is (or is made)
verified by a full SHA-256 read, streaming and hashing every byte on the way,
commits the write only when the bytes read are the catalog's bytes, then re-reads
the written copy and verifies its SHA-256 before calling it repaired. Nothing
here raises for a bad copy: every problem becomes an outcome with an error.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import logging
import os
import stat
import uuid
from typing import TYPE_CHECKING, Any, TypedDict

from include.backup_integrity.domain.checks import path_problem
from include.backup_integrity.domain.records import (
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_SERVER_SHA256,
    EVIDENCE_SIZE,
    FAILED,
    MISSING,
    PASSED,
    PLANNED,
    REFUSED,
    REPAIRED,
    SIZE_MISMATCH,
    CheckResult,
)
from include.backup_integrity.domain.timestamps import utc_now_iso
from include.backup_integrity.stores.local import LocalBackend

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.stores.s3 import S3Backend

log = logging.getLogger(__name__)

OFF, PLAN, APPLY = "off", "plan", "apply"
REPAIRABLE_KINDS = (MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH)

#: S3 part size: objects larger than one part are uploaded as multipart, part by part.
PART_BYTES = 8 * 1024 * 1024
#: Read size while copying.
READ_BLOCK_BYTES = 8 * 1024 * 1024

_EVIDENCE_RANK = {EVIDENCE_CONTENT: 0, EVIDENCE_SERVER_SHA256: 1, EVIDENCE_SIZE: 2}
_BACKEND_RANK = {"local": 0, "r2": 1, "b2": 2}


class Source(TypedDict):
    """A copy that passed its checks in this run, and how strongly."""

    backend: str
    path: str
    evidence: str | None


class RepairTask(TypedDict):
    """One bad copy and where a good one may come from (the plan's unit)."""

    backup_id: str
    backend: str
    kind: str
    path: str | None
    expected_sha256: str
    expected_size: int
    sources: list[Source]
    reason: str


class RepairOutcome(TypedDict):
    """What became of one bad copy; the first five keys are the ``repair_plan`` entry."""

    backup_id: str
    backend: str
    kind: str
    source_backend: str | None
    reason: str
    status: str
    path: str | None
    source_path: str | None
    sha256: str | None
    repaired_at: str | None
    error: str | None


class RepairError(Exception):
    """A copy could not be made or proven; the message says where and why."""


# --------------------------------------------------------------------------- planning (pure)


def plan_repairs(results: Iterable[CheckResult]) -> list[RepairTask]:
    """One task per repairable failure; sources are the same backup's passing copies, best first.

    Best means: read byte for byte in this run, then the store's own SHA-256,
    then size only (those two are re-read and verified before use); ties go to
    the local folder (no transfer cost), then r2, then b2.
    """
    results = list(results)
    passing: dict[str, list[Source]] = {}
    for result in results:
        if result["kind"] == PASSED and result["backend"] and result["path"]:
            passing.setdefault(result["backup_id"], []).append(
                Source(backend=result["backend"], path=result["path"], evidence=result["evidence"])
            )
    tasks: list[RepairTask] = []
    for result in results:
        if result["kind"] not in REPAIRABLE_KINDS or not result["backend"]:
            continue
        backend = result["backend"]
        sources = sorted(
            (s for s in passing.get(result["backup_id"], []) if s["backend"] != backend),
            key=lambda s: (_EVIDENCE_RANK.get(s["evidence"] or "", 9), _BACKEND_RANK.get(s["backend"], 9)),
        )
        path = result["path"] or None
        if path is None:
            sources = []
            reason = (
                f"the catalog records no location on {backend}; it must name where the copy "
                "belongs before it can be repaired"
            )
        elif not sources:
            reason = (
                f"no other copy of this backup passed its checks in this run; refusing to repair "
                f"{backend} from an unverified source"
            )
        elif sources[0]["evidence"] == EVIDENCE_CONTENT:
            reason = (
                f"copy from {sources[0]['backend']} ({sources[0]['path']}), verified in this run by "
                "a full SHA-256 read"
            )
        else:
            reason = (
                f"copy from {sources[0]['backend']} ({sources[0]['path']}), which passed on "
                f"{sources[0]['evidence'] or 'size'} only: the repair reads it and verifies its "
                "SHA-256 first"
            )
        expected = result["expected"] or {}
        tasks.append(
            RepairTask(
                backup_id=result["backup_id"],
                backend=backend,
                kind=result["kind"],
                path=path,
                expected_sha256=str(expected.get("sha256") or "").strip().lower(),
                expected_size=int(expected.get("size_bytes") or 0),
                sources=sources,
                reason=reason,
            )
        )
    return tasks


def outcome_of(task: RepairTask, status: str, **fields: Any) -> RepairOutcome:
    source = task["sources"][0] if task["sources"] else None
    outcome = RepairOutcome(
        backup_id=task["backup_id"],
        backend=task["backend"],
        kind=task["kind"],
        source_backend=source["backend"] if source else None,
        reason=task["reason"],
        status=status,
        path=task["path"],
        source_path=source["path"] if source else None,
        sha256=None,
        repaired_at=None,
        error=None,
    )
    outcome.update(fields)  # type: ignore[typeddict-item]
    return outcome


def planned_outcomes(tasks: Iterable[RepairTask]) -> list[RepairOutcome]:
    """What ``repair = "plan"`` reports: the plan, nothing copied."""
    return [outcome_of(t, PLANNED if t["sources"] else REFUSED) for t in tasks]


def plan_entry(outcome: RepairOutcome) -> dict[str, Any]:
    """One ``repair_plan`` entry of the run's statistics."""
    return {k: outcome[k] for k in ("backup_id", "backend", "kind", "source_backend", "reason")}  # type: ignore[literal-required]


def repair_statistics(mode: str, outcomes: list[RepairOutcome]) -> dict[str, Any]:
    """The statistics keys repair adds: ``repair_plan``; in apply mode ``repaired`` and ``repair_failed``."""
    if mode == OFF:
        return {}
    stats: dict[str, Any] = {"repair": mode, "repair_plan": [plan_entry(o) for o in outcomes]}
    if mode == APPLY:
        stats["repaired"] = sum(1 for o in outcomes if o["status"] == REPAIRED)
        stats["repair_failed"] = sum(1 for o in outcomes if o["status"] != REPAIRED)
    return stats


def describe_plan(outcomes: Iterable[RepairOutcome]) -> list[str]:
    """Log lines, one per bad copy."""
    lines = []
    for o in outcomes:
        where = f"{o['backup_id']} {o['kind']} on {o['backend']} ({o['path'] or 'no location'})"
        lines.append(f"{where}: {o['reason']}")
    return lines


# --------------------------------------------------------------------------- reading


def _verify(sha: str, size: int, task: RepairTask, what: str) -> None:
    if size != task["expected_size"]:
        raise RepairError(f"{what}: {size} bytes, catalog says {task['expected_size']}")
    if sha != task["expected_sha256"]:
        raise RepairError(f"{what}: SHA-256 {sha}, catalog says {task['expected_sha256']}")


def _open_parent(root: str, path: str, *, create: bool) -> tuple[int, str]:
    """An fd of the folder that holds ``path`` under ``root``, and the file's name.

    Each folder is opened relative to its parent with O_NOFOLLOW, so a symlink
    anywhere on the way is refused, never followed, and nothing outside ``root``
    is ever reached; with ``create``, missing folders are made.
    """
    problem = path_problem("local", path)
    if problem:
        raise RepairError(problem)
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise RepairError(f"local path {path!r} does not stay inside local_root")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    dir_fd = os.open(os.path.realpath(root), flags)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, flags | os.O_NOFOLLOW, dir_fd=dir_fd)
            except FileNotFoundError:
                if not create:
                    raise RepairError(f"local path {path!r}: folder {part!r} does not exist") from None
                os.mkdir(part, 0o755, dir_fd=dir_fd)
                next_fd = os.open(part, flags | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise RepairError(
                        f"local path {path!r}: {part!r} is a symlink or not a folder; not followed"
                    ) from None
                raise
            os.close(dir_fd)
            dir_fd = next_fd
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd, parts[-1]


def read_local(backend: LocalBackend, path: str) -> Iterator[bytes]:
    """The file's bytes in blocks; symlinks on the way are refused, never followed."""
    dir_fd, name = _open_parent(backend.root, path, create=False)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RepairError(f"local path {path!r} is a symlink; not followed") from None
            raise
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RepairError(f"local path {path!r} is not a regular file")
        while True:
            block = os.read(fd, READ_BLOCK_BYTES)
            if not block:
                return
            yield block
    finally:
        os.close(fd)


def read_s3(backend: S3Backend, key: str) -> Iterator[bytes]:
    response = backend.client.get_object(Bucket=backend.bucket, Key=key)
    body = response["Body"]
    try:
        yield from body.iter_chunks(READ_BLOCK_BYTES)
    finally:
        body.close()


def read_blocks(backend: Any, path: str) -> Iterator[bytes]:
    if isinstance(backend, LocalBackend):
        return read_local(backend, path)
    return read_s3(backend, path)


# --------------------------------------------------------------------------- writing


class _Hashing:
    """Pass blocks through while counting and hashing them."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self.blocks = blocks
        self.digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for block in self.blocks:
            self.digest.update(block)
            self.size += len(block)
            yield block


def write_local(backend: LocalBackend, path: str, blocks: Iterable[bytes], task: RepairTask) -> None:
    """Write to a temporary file in the target's folder, fsync, verify, then rename over atomically.

    Every folder on the way is opened relative to its parent without following
    symlinks (and created when missing), so the write cannot leave ``local_root``.
    """
    dir_fd, name = _open_parent(backend.root, path, create=True)
    try:
        try:
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise RepairError(f"local path {path!r} is a symlink or not a regular file; not replaced")
        temp = f".{name}.repair-{uuid.uuid4().hex[:12]}.tmp"
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640, dir_fd=dir_fd
        )
        try:
            try:
                if existing is not None:
                    os.fchmod(fd, stat.S_IMODE(existing.st_mode))  # the replaced file's permissions
                hashing = _Hashing(blocks)
                for block in hashing:
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            _verify(hashing.digest.hexdigest(), hashing.size, task, "the source's bytes as copied")
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)  # the rename itself is durable
    finally:
        os.close(dir_fd)


def write_s3(backend: S3Backend, key: str, blocks: Iterable[bytes], task: RepairTask) -> None:
    """One PUT (with the store verifying our SHA-256) up to one part; multipart beyond, part by part.

    Nothing becomes visible unless every byte read hashed to the catalog's SHA-256:
    the PUT happens after hashing its one part; a multipart upload is completed
    only then, and aborted otherwise.
    """
    client, bucket = backend.client, backend.bucket
    hashing = _Hashing(blocks)
    buffer = bytearray()
    upload_id: str | None = None
    parts: list[dict[str, Any]] = []
    try:
        for block in hashing:
            buffer += block
            while len(buffer) > PART_BYTES:
                if upload_id is None:
                    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                number = len(parts) + 1
                part = client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(buffer[:PART_BYTES]),
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
                del buffer[:PART_BYTES]
        sha = hashing.digest.hexdigest()
        _verify(sha, hashing.size, task, "the source's bytes as copied")
        if upload_id is None:
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=bytes(buffer),
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha)).decode(),
            )
            return
        if buffer:
            number = len(parts) + 1
            part = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(buffer)
            )
            parts.append({"PartNumber": number, "ETag": part["ETag"]})
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        upload_id = None
    finally:
        if upload_id is not None:
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:
                log.exception("could not abort the multipart upload of %s to %s", key, backend.name)


def write_blocks(backend: Any, path: str, blocks: Iterable[bytes], task: RepairTask) -> None:
    if isinstance(backend, LocalBackend):
        write_local(backend, path, blocks, task)
    else:
        write_s3(backend, path, blocks, task)


# --------------------------------------------------------------------------- executing


def verify_copy(backend: Any, path: str, task: RepairTask, what: str) -> None:
    """Read a copy byte for byte and require the catalog's size and SHA-256."""
    observation = backend.observe(path, read_content=True)
    if observation.error or observation.invalid:
        raise RepairError(f"{what} could not be read: {observation.error or observation.invalid}")
    if not observation.exists:
        raise RepairError(f"{what} is not there")
    _verify(observation.content_sha256 or "", observation.bytes_read or 0, task, what)


def repair_one(task: RepairTask, backend_for: Callable[[str], Any]) -> RepairOutcome:
    """Copy one bad copy from the first source that verifies; never raises."""
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
            write_blocks(target, task["path"], read_blocks(source_backend, source["path"]), task)
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
    tasks: Iterable[RepairTask], settings: Settings, backend_for: Callable[[str], Any] | None = None
) -> list[RepairOutcome]:
    """Repair every task in turn (repairs are rare; one at a time keeps load predictable)."""
    from include.backup_integrity.stores.base import build_backend

    cache: dict[str, Any] = {}

    def default_backend_for(name: str) -> Any:
        if name not in cache:
            cache[name] = build_backend(name, settings)
        return cache[name]

    get = backend_for or default_backend_for
    outcomes = []
    for task in tasks:
        try:
            outcomes.append(repair_one(task, get))
        except Exception as exc:  # a backend that cannot even be built
            log.exception("repair of %s on %s failed", task["backup_id"], task["backend"])
            outcomes.append(outcome_of(task, FAILED, error=f"{type(exc).__name__}: {exc}"))
    return outcomes


# --------------------------------------------------------------------------- recording


def record_repairs(cur: Any, run_id: str, outcomes: Iterable[RepairOutcome]) -> None:
    """Keep what each repair did, once per (run, backup, backend)."""
    rows = [
        (
            run_id,
            o["backup_id"],
            o["backend"],
            o["kind"],
            o["status"],
            o["source_backend"],
            o["sha256"],
            o["reason"],
            o["error"],
            o["repaired_at"],
        )
        for o in outcomes
    ]
    if rows:
        cur.executemany(
            "INSERT INTO backup_integrity_repair (run_id, backup_id, backend, kind, status, "
            "source_backend, sha256, reason, error, repaired_at) "
            "VALUES (%s, %s::uuid, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id, backup_id, backend) DO UPDATE SET kind = EXCLUDED.kind, "
            "status = EXCLUDED.status, source_backend = EXCLUDED.source_backend, "
            "sha256 = EXCLUDED.sha256, reason = EXCLUDED.reason, error = EXCLUDED.error, "
            "repaired_at = EXCLUDED.repaired_at",
            rows,
        )
