"""The places backups live: one small interface, a local folder and S3-compatible stores.

A backend answers one question per object, :meth:`Backend.observe`, with an
:class:`~include.backup_integrity.checks.Observation`. It never decides pass or
fail; :mod:`include.backup_integrity.checks` does. Anything that prevents the
store from answering becomes ``Observation(error=...)`` so that it is reported
as ``backend_error`` and never as ``missing``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import logging
import os
import re
import stat
from typing import TYPE_CHECKING, Any, Protocol

from include.backup_integrity.checks import Observation

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

#: Large blocks keep hashing close to SHA-256's own speed and memory flat.
READ_BLOCK_BYTES = 8 * 1024 * 1024

#: Defaults applied under whatever the connection's ``extra.config_kwargs`` sets.
DEFAULT_BOTOCORE_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 30,
    "retries": {"mode": "adaptive", "max_attempts": 6},
    # We hash the bytes ourselves; botocore's own response validation would turn a
    # corrupt object into an exception instead of a checksum_mismatch.
    "response_checksum_validation": "when_required",
    "request_checksum_calculation": "when_required",
}

NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


class Backend(Protocol):
    name: str

    def open_session(self) -> str | None:
        """Prepare to observe; return an error that applies to every object, or None."""

    def observe(self, path: str, *, read_content: bool) -> Observation: ...

    def describe(self, path: str) -> str: ...


def hash_stream(chunks: Iterator[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    for chunk in chunks:
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


class UnsafePathError(Exception):
    """A catalog path that would leave the backup root or follow a symlink."""


class LocalBackend:
    """A folder on the worker's disk; catalog paths are relative to ``root``."""

    name = "local"

    def __init__(self, root: str) -> None:
        self.root = root

    def describe(self, path: str) -> str:
        return os.path.join(self.root, path)

    def open_session(self) -> str | None:
        if not os.path.isdir(self.root):
            return f"local_root {self.root!r} does not exist or is not a folder"
        if not os.access(self.root, os.R_OK | os.X_OK):
            return f"local_root {self.root!r} is not readable"
        return None

    def _walk_to(self, path: str) -> tuple[str, os.stat_result]:
        """lstat every component below the root, refusing symlinks; return the file's stat."""
        current = os.path.realpath(self.root)
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise UnsafePathError(f"local path {path!r} does not stay inside local_root")
        info: os.stat_result | None = None
        for part in parts:
            current = os.path.join(current, part)
            info = os.lstat(current)
            if stat.S_ISLNK(info.st_mode):
                raise UnsafePathError(
                    f"local path {path!r} passes through a symlink at {current!r}; "
                    "symlinks are never followed"
                )
        assert info is not None
        return current, info

    def observe(self, path: str, *, read_content: bool) -> Observation:
        try:
            full, info = self._walk_to(path)
        except UnsafePathError as exc:
            return Observation(invalid=str(exc))
        except FileNotFoundError:
            return Observation(exists=False)
        except NotADirectoryError:
            return Observation(exists=False)
        except OSError as exc:
            return Observation(error=f"cannot stat {path!r} under local_root: {exc.strerror}")
        if not stat.S_ISREG(info.st_mode):
            return Observation(invalid=f"local path {path!r} is not a regular file")
        if not read_content:
            return Observation(exists=True, size=info.st_size)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return Observation(invalid=f"local path {path!r} became a symlink; not followed")
            if exc.errno == errno.ENOENT:
                return Observation(exists=False)
            return Observation(error=f"cannot open {path!r}: {exc.strerror}")
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                return Observation(invalid=f"local path {path!r} changed while being opened")
            digest, total = hash_fd(fd)
        except OSError as exc:
            return Observation(error=f"reading {path!r} failed: {exc.strerror}")
        finally:
            os.close(fd)
        return Observation(exists=True, size=opened.st_size, content_sha256=digest, bytes_read=total)


def hash_fd(fd: int) -> tuple[str, int]:
    """SHA-256 of an open file, read in large blocks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_BLOCK_BYTES)
    view = memoryview(buffer)
    total = 0
    while True:
        n = os.readv(fd, [buffer])
        if not n:
            break
        digest.update(view[:n])
        total += n
    return digest.hexdigest(), total


def botocore_config_for(extra: dict[str, Any]) -> dict[str, Any]:
    """Our safe defaults, overridden key by key by the connection's ``config_kwargs``."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_BOTOCORE_CONFIG.items()}
    for key, value in (extra.get("config_kwargs") or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


MULTIPART_ETAG = re.compile(r'-\d+"?$')


def sha256_from_store(response: dict[str, Any]) -> str | None:
    """The store's whole-object SHA-256 as hex, or None (absent, or a composite of parts).

    A multipart upload's checksum is a checksum of the parts' checksums, not of the
    content. Stores that say so set ``ChecksumType = COMPOSITE`` or suffix the value
    with ``-N``; others (moto among them) say neither, but a multipart object's ETag
    always ends in ``-N``, so that is checked too.
    """
    value = response.get("ChecksumSHA256")
    if not value:
        return None
    checksum_type = response.get("ChecksumType")
    if checksum_type and checksum_type != "FULL_OBJECT":
        return None
    if "-" in value:
        return None
    if checksum_type is None and MULTIPART_ETAG.search(response.get("ETag") or ""):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def describe_client_error(exc: Exception) -> tuple[str | None, str]:
    """(error code, readable message) of a botocore exception."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    code = error.get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = error.get("Message") or str(exc)
    label = f"{code or type(exc).__name__}"
    if status:
        label += f" (HTTP {status})"
    return code, f"{label}: {message}"


class S3Backend:
    """An S3-compatible bucket (R2, B2, ...) reached through the amazon provider's hook."""

    def __init__(self, name: str, conn_id: str, bucket: str) -> None:
        self.name = name
        self.conn_id = conn_id
        self.bucket = bucket
        self._client: Any = None

    def describe(self, path: str) -> str:
        return f"s3://{self.bucket}/{path}"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_s3_client(self.conn_id)
        return self._client

    def open_session(self) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code, message = describe_client_error(exc)
            if code in NOT_FOUND_CODES or code == "NoSuchBucket":
                return f"bucket {self.bucket!r} does not exist on {self.name} ({self.conn_id})"
            return f"bucket {self.bucket!r} on {self.name} cannot be reached: {message}"
        except (BotoCoreError, OSError) as exc:
            return f"{self.name} ({self.conn_id}) cannot be reached: {exc}"
        return None

    def observe(self, path: str, *, read_content: bool) -> Observation:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=path, ChecksumMode="ENABLED")
        except ClientError as exc:
            code, message = describe_client_error(exc)
            if code in NOT_FOUND_CODES:
                return Observation(exists=False)
            return Observation(error=message)
        except (BotoCoreError, OSError) as exc:
            return Observation(error=f"{type(exc).__name__}: {exc}")
        size = head.get("ContentLength")
        extra = {"etag": (head.get("ETag") or "").strip('"') or None}
        server_sha = sha256_from_store(head)
        if not read_content:
            return Observation(exists=True, size=size, server_sha256=server_sha, extra=extra)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=path, IfMatch=head.get("ETag"))
            body = response["Body"]
            try:
                digest, total = hash_stream(body.iter_chunks(READ_BLOCK_BYTES))
            finally:
                body.close()
        except ClientError as exc:
            code, message = describe_client_error(exc)
            if code in NOT_FOUND_CODES:
                return Observation(exists=False)
            return Observation(error=f"download of {path!r} failed: {message}")
        except (BotoCoreError, OSError) as exc:
            return Observation(error=f"download of {path!r} failed: {type(exc).__name__}: {exc}")
        expected_length = response.get("ContentLength")
        if expected_length is not None and total != expected_length:
            return Observation(error=f"download of {path!r} ended after {total} of {expected_length} bytes")
        return Observation(
            exists=True,
            size=size,
            server_sha256=server_sha,
            content_sha256=digest,
            bytes_read=total,
            extra=extra,
        )


def make_s3_client(conn_id: str) -> Any:
    """A boto3 S3 client for a connection, with bounded timeouts and retries."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook
    from botocore.config import Config

    connection = BaseHook.get_connection(conn_id)
    config = Config(**botocore_config_for(connection.extra_dejson))
    client = S3Hook(aws_conn_id=conn_id, config=config).get_conn()
    client.meta.events.register_first("needs-retry.s3", bare_503_is_slow_down)
    return client


def bare_503_is_slow_down(response: Any = None, **_: Any) -> None:
    """Name a bodiless 503 (a HEAD request's SlowDown) as the throttling it is.

    S3 answers a throttled HEAD with a bare 503, which botocore parses as error code
    "503": not a throttling error, so its retry mode would back off by milliseconds
    and spend its retry quota thrice as fast, and the adaptive mode would never slow
    the client down. Runs before botocore's own retry handlers decide.
    """
    if not response or response[1] is None:
        return
    error = response[1].get("Error") or {}
    status = response[1].get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status == 503 and error.get("Code") in (None, "", "503"):
        error["Code"] = "SlowDown"
        response[1]["Error"] = error


def build_backend(name: str, settings: Any) -> Backend:
    from include.backup_integrity.config import BACKEND_CONN_IDS

    if name == "local":
        return LocalBackend(settings.local_root)
    return S3Backend(name, BACKEND_CONN_IDS[name], settings.bucket_for(name))
