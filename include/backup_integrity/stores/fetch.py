"""Fetching one copy of a backup into a local file, hashing it on the way.

The restore drill needs the bytes themselves, not an observation: a copy is streamed
into the drill's work folder while its SHA-256 and size are computed, so that the
caller can hold them against the catalog before anything reads the file. Local paths
are opened one component at a time relative to the root, never following a symlink
(as the verifier's local store refuses them); S3 objects are read with one GET.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.backup_integrity.stores.base import READ_BLOCK_BYTES
from include.backup_integrity.stores.s3 import describe_client_error, make_s3_client

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from include.backup_integrity.config.settings import Settings

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class CopyUnusable(Exception):
    """This copy cannot be fetched (not there, unsafe path, store refused): try the next one."""


class TooLarge(Exception):
    """The copy grew past the drill's ``max_bytes`` while it was fetched."""


@dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int


def fetch_copy(
    backend: str,
    path: str,
    settings: Settings,
    destination: str,
    *,
    max_bytes: int,
    on_block: Callable[[], None] | None = None,
) -> Fetched:
    """Stream one copy into ``destination`` (created, never overwritten) and hash it.

    ``on_block`` is called after each block (the caller's deadline check); an
    ``OSError`` writing the destination (no space left) propagates.
    """
    spec = settings.store(backend)
    if spec.is_local:
        blocks = _local_blocks(spec.root or "", path)
    else:
        blocks = _s3_blocks(spec.conn_id or "", spec.bucket or "", path)
    digest = hashlib.sha256()
    total = 0
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
    try:
        for block in blocks:
            total += len(block)
            if total > max_bytes:
                raise TooLarge(f"the copy on {backend} is larger than max_bytes ({max_bytes})")
            digest.update(block)
            view = memoryview(block)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if on_block is not None:
                on_block()
    finally:
        os.close(fd)
    return Fetched(digest.hexdigest(), total)


def _open_below(root: str, path: str) -> int:
    """A descriptor of ``root/path``, opened component by component without following symlinks."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise CopyUnusable(f"local path {path!r} does not stay inside local_root")
    try:
        current = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except OSError as exc:
        raise CopyUnusable(f"local_root {root!r} cannot be opened: {exc.strerror}") from None
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | (0 if last else _DIRECTORY)
            try:
                following = os.open(part, flags, dir_fd=current)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) or (exc.errno == errno.ENXIO):
                    raise CopyUnusable(
                        f"local path {path!r} passes through a symlink or a non-folder at {part!r}; "
                        "symlinks are never followed"
                    ) from None
                if exc.errno == errno.ENOENT:
                    raise CopyUnusable(f"local path {path!r} is not there") from None
                raise CopyUnusable(f"cannot open local path {path!r}: {exc.strerror}") from None
            os.close(current)
            current = following
        if not stat.S_ISREG(os.fstat(current).st_mode):
            raise CopyUnusable(f"local path {path!r} is not a regular file")
        return current
    except BaseException:
        os.close(current)
        raise


def _local_blocks(root: str, path: str) -> Iterator[bytes]:
    fd = _open_below(root, path)
    try:
        while True:
            try:
                block = os.read(fd, READ_BLOCK_BYTES)
            except OSError as exc:
                raise CopyUnusable(f"reading local path {path!r} failed: {exc.strerror}") from None
            if not block:
                return
            yield block
    finally:
        os.close(fd)


def _s3_blocks(conn_id: str, bucket: str, key: str) -> Iterator[bytes]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response: dict[str, Any] = make_s3_client(conn_id).get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise CopyUnusable(f"s3://{bucket}/{key} ({conn_id}): {describe_client_error(exc)[1]}") from None
    except (BotoCoreError, OSError) as exc:
        raise CopyUnusable(f"s3://{bucket}/{key} ({conn_id}) cannot be reached: {exc}") from None
    body = response["Body"]
    try:
        yield from body.iter_chunks(READ_BLOCK_BYTES)
    except (BotoCoreError, OSError) as exc:
        raise CopyUnusable(f"reading s3://{bucket}/{key} ({conn_id}) failed: {exc}") from None
    finally:
        body.close()
