"""Copying one object between stores for a repair: streamed, hashed, and never visible unverified.

A local write goes to a temporary file in the target's folder, is fsynced and
renamed into place only when every byte hashed to the catalog's SHA-256; an S3
write is one PUT (the store verifies our SHA-256) up to one part, or a multipart
upload completed only then. Every local folder on the way is opened relative to
its parent without following symlinks, so nothing outside ``local_root`` is read
or written.
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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain.checks import path_problem
from include.backup_integrity.stores.local import LocalBackend

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from include.backup_integrity.domain.repair import RepairTask
    from include.backup_integrity.stores.s3 import S3Backend

log = logging.getLogger(__name__)

#: S3 part size: objects larger than one part are uploaded as multipart, part by part.
PART_BYTES = 8 * 1024 * 1024
#: Read size while copying.
READ_BLOCK_BYTES = 8 * 1024 * 1024
#: The largest object one CopyObject may copy (5 GiB).
SINGLE_COPY_BYTES = 5 * 1024**3


class RepairError(Exception):
    """A copy could not be made or proven; the message says where and why."""


def require_catalog_bytes(sha: str, size: int, task: RepairTask, what: str) -> None:
    """Raise unless ``size`` and ``sha`` are the catalog's for the task's backup."""
    if size != task["expected_size"]:
        raise RepairError(f"{what}: {size} bytes, catalog says {task['expected_size']}")
    if sha != task["expected_sha256"]:
        raise RepairError(f"{what}: SHA-256 {sha}, catalog says {task['expected_sha256']}")


# --------------------------------------------------------------------------- reading


def _open_parent(root: str, path: str, *, create: bool) -> tuple[int, str]:
    """An fd of the folder that holds ``path`` under ``root``, and the file's name.

    Each folder is opened relative to its parent with O_NOFOLLOW, so a symlink
    anywhere on the way is refused, never followed, and nothing outside ``root``
    is ever reached; with ``create``, missing folders are made.
    """
    problem = path_problem("local", path, local=True)
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


def bad_copy_suffix(now: datetime | None = None) -> str:
    """The suffix a kept bad copy gets: ``.bad-<UTC time YYYYMMDDTHHMMSSZ>``."""
    return f".bad-{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%dT%H%M%SZ}"


def write_local(
    backend: LocalBackend,
    path: str,
    blocks: Iterable[bytes],
    task: RepairTask,
    keep_bad_as: str | None = None,
) -> None:
    """Write to a temporary file in the target's folder, fsync, verify, then rename over atomically.

    Every folder on the way is opened relative to its parent without following
    symlinks (and created when missing), so the write cannot leave ``local_root``.
    With ``keep_bad_as`` (a suffix), a file already there is kept under its name plus
    the suffix, in the same folder (hard-linked, so the target is never absent).
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
            require_catalog_bytes(
                hashing.digest.hexdigest(), hashing.size, task, "the source's bytes as copied"
            )
            if existing is not None and keep_bad_as:
                _keep_local(dir_fd, name, name + keep_bad_as)
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)  # the rename itself is durable
    finally:
        os.close(dir_fd)


def _keep_local(dir_fd: int, name: str, kept: str) -> None:
    """Keep the file ``name`` also as ``kept`` (never replacing a file of that name)."""
    try:
        os.link(name, kept, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise RepairError(f"a kept bad copy {kept!r} is already there; not replaced") from None
    except OSError:  # a file system without hard links: move it aside instead
        with contextlib.suppress(FileNotFoundError):
            os.stat(kept, dir_fd=dir_fd, follow_symlinks=False)
            raise RepairError(f"a kept bad copy {kept!r} is already there; not replaced") from None
        os.rename(name, kept, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    log.info("the bad copy %s is kept as %s", name, kept)


def _keep_s3(backend: S3Backend, key: str, kept: str) -> None:
    """Copy an object already at ``key`` to ``kept``, server-side, before it is overwritten."""
    client, bucket = backend.client, backend.bucket
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return
        raise
    source = {"Bucket": bucket, "Key": key}
    if int(head.get("ContentLength") or 0) <= SINGLE_COPY_BYTES:
        client.copy_object(Bucket=bucket, Key=kept, CopySource=source)
    else:  # CopyObject stops at 5 GiB; the managed copy goes part by part, still server-side
        client.copy(source, bucket, kept)
    log.info("the bad copy %s on %s is kept as %s", key, backend.name, kept)


def write_s3(
    backend: S3Backend, key: str, blocks: Iterable[bytes], task: RepairTask, keep_bad_as: str | None = None
) -> None:
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
        require_catalog_bytes(sha, hashing.size, task, "the source's bytes as copied")
        if keep_bad_as:
            _keep_s3(backend, key, key + keep_bad_as)
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


def write_blocks(
    backend: Any, path: str, blocks: Iterable[bytes], task: RepairTask, keep_bad_as: str | None = None
) -> None:
    if isinstance(backend, LocalBackend):
        write_local(backend, path, blocks, task, keep_bad_as)
    else:
        write_s3(backend, path, blocks, task, keep_bad_as)
