"""The places backups live: one small interface, a local folder and S3-compatible stores.

A backend answers one question per object, :meth:`Backend.observe`, with an
:class:`~include.backup_integrity.domain.checks.Observation`. It never decides pass or
fail; :mod:`include.backup_integrity.domain.checks` does. Anything that prevents the
store from answering becomes ``Observation(error=...)`` so that it is reported
as ``backend_error`` and never as ``missing``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import functools
import hashlib
import logging
import os
import re
import stat
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from include.backup_integrity.domain.checks import Observation

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

#: Requests or reads in flight at once within one chunk (also the breaker's threshold).
CONCURRENCY = 8

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


@dataclass(frozen=True)
class Listed:
    """One entry of a folder listing: enough to judge existence, size and "unchanged"."""

    size: int | None
    fingerprint: str
    etag: str | None = None
    has_sha256: bool = False
    invalid: str | None = None


@dataclass
class FolderListing:
    """The wanted keys a listing found (absent keys: the store says they are not there)."""

    entries: dict[str, Listed]
    requests: int
    error: str | None = None


class Backend(Protocol):
    name: str
    requests: Counter[str]

    def open_session(self) -> str | None:
        """Prepare to observe; return an error that applies to every object, or None."""

    def observe(self, path: str, *, read_content: bool) -> Observation: ...

    def list_keys(self, keys: list[str]) -> FolderListing:
        """List the store around ``keys``: what it found, keyed by path (absent: not there)."""

    def read(self, path: str, listed: Listed | None) -> Observation:
        """Read the object byte for byte and hash it."""

    def probe(self, path: str) -> Observation:
        """Ask about one object (a HEAD): a store checksum, metadata, or that it is not there."""

    def describe(self, path: str) -> str: ...


def split_path(path: str) -> tuple[str, str]:
    """(folder with its trailing "/" or "", name) of a key or relative path."""
    folder, slash, name = path.rpartition("/")
    return (folder + slash, name)


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
    reports_checksums = False

    def __init__(self, root: str) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._lock:
            self.requests[what] += 1

    def list_keys(self, keys: list[str]) -> FolderListing:
        """One ``os.scandir`` per folder the keys live in."""
        folders: dict[str, list[str]] = {}
        for key in keys:
            folder, name = split_path(key)
            folders.setdefault(folder, []).append(name)
        found: dict[str, Listed] = {}
        requests = 0
        for folder, names in folders.items():
            listing = self.list_folder(folder, names)
            requests += listing.requests
            if listing.error:
                return FolderListing(found, requests, listing.error)
            found.update({folder + name: entry for name, entry in listing.entries.items()})
        return FolderListing(found, requests)

    def list_folder(self, folder: str, names: list[str]) -> FolderListing:
        """One ``os.scandir`` of the folder; entries are lstat-ed, symlinks never followed."""
        self._count("scandir")
        wanted = set(names)
        try:
            directory = self._safe_folder(folder)
        except UnsafePathError as exc:
            return FolderListing({n: Listed(None, "", invalid=str(exc)) for n in wanted}, 1)
        except (FileNotFoundError, NotADirectoryError):
            return FolderListing({}, 1)
        except OSError as exc:
            return FolderListing({}, 1, f"cannot stat folder {folder!r} under local_root: {exc.strerror}")
        entries: dict[str, Listed] = {}
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    if entry.name not in wanted:
                        continue
                    path = folder + entry.name
                    if entry.is_symlink():
                        entries[entry.name] = Listed(
                            None, "", invalid=f"local path {path!r} is a symlink; symlinks are never followed"
                        )
                        continue
                    info = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode):
                        entries[entry.name] = Listed(
                            None, "", invalid=f"local path {path!r} is not a regular file"
                        )
                        continue
                    entries[entry.name] = Listed(info.st_size, local_fingerprint(info))
        except FileNotFoundError:
            return FolderListing({}, 1)
        except OSError as exc:
            return FolderListing({}, 1, f"cannot list folder {folder!r} under local_root: {exc.strerror}")
        return FolderListing(entries, 1)

    def _safe_folder(self, folder: str) -> str:
        """The folder's real location, refusing ``..`` and symlinked components."""
        current = os.path.realpath(self.root)
        parts = [p for p in folder.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafePathError(f"local folder {folder!r} does not stay inside local_root")
        for part in parts:
            current = os.path.join(current, part)
            if stat.S_ISLNK(os.lstat(current).st_mode):
                raise UnsafePathError(
                    f"local folder {folder!r} passes through a symlink at {current!r}; "
                    "symlinks are never followed"
                )
        return current

    def read(self, path: str, listed: Listed | None) -> Observation:
        self._count("read")
        return self.observe(path, read_content=True)

    def probe(self, path: str) -> Observation:
        self._count("stat")
        return self.observe(path, read_content=False)

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
            return Observation(exists=True, size=info.st_size, fingerprint=local_fingerprint(info))
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
        return Observation(
            exists=True,
            size=opened.st_size,
            content_sha256=digest,
            bytes_read=total,
            fingerprint=local_fingerprint(opened),
        )


def local_fingerprint(info: os.stat_result) -> str:
    """Size, mtime, ctime and inode: any write or replacement changes at least one of them."""
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"


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

    #: A HEAD can tell more than a listing: the store's SHA-256, or one recorded at upload.
    reports_checksums = True

    def __init__(self, name: str, conn_id: str, bucket: str) -> None:
        self.name = name
        self.conn_id = conn_id
        self.bucket = bucket
        self._client: Any = None
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

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

    def _count(self, what: str) -> None:
        with self._lock:
            self.requests[what] += 1

    def list_keys(self, keys: list[str]) -> FolderListing:
        """ListObjectsV2 of each folder the keys live in, from just before its first key to its last.

        One request answers up to 1,000 keys; a folder is listed without recursing
        into sub-folders (``Delimiter="/"``, as ``rclone`` does), and paging stops
        once past the last wanted key.
        """
        folders: dict[str, list[str]] = {}
        for key in sorted(keys):
            folders.setdefault(split_path(key)[0], []).append(key)
        found: dict[str, Listed] = {}
        requests = 0
        for folder, wanted in folders.items():
            listing = self._list_folder(folder, wanted)
            requests += listing.requests
            found.update(listing.entries)
            if listing.error:
                return FolderListing(found, requests, listing.error)
        return FolderListing(found, requests)

    def _list_folder(self, folder: str, keys: list[str]) -> FolderListing:
        from botocore.exceptions import BotoCoreError, ClientError

        wanted = set(keys)
        first, last = keys[0], keys[-1]
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": folder, "Delimiter": "/"}
        if len(first) > len(folder):
            request["StartAfter"] = first[:-1]  # a proper prefix of ``first`` sorts just before it
        entries: dict[str, Listed] = {}
        requests = 0
        try:
            while True:
                self._count("list")
                requests += 1
                page = self.client.list_objects_v2(**request)
                past_last = False
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key > last:
                        past_last = True
                        break
                    if key in wanted:
                        entries[key] = s3_listed(item)
                if past_last or not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
                request.pop("StartAfter", None)
        except ClientError as exc:
            return FolderListing(entries, requests, describe_client_error(exc)[1])
        except (BotoCoreError, OSError) as exc:
            return FolderListing(entries, requests, f"{type(exc).__name__}: {exc}")
        return FolderListing(entries, requests)

    def _head(self, path: str) -> tuple[dict[str, Any] | None, Observation | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        self._count("head")
        try:
            return self.client.head_object(Bucket=self.bucket, Key=path, ChecksumMode="ENABLED"), None
        except ClientError as exc:
            code, message = describe_client_error(exc)
            if code in NOT_FOUND_CODES:
                return None, Observation(exists=False)
            return None, Observation(error=message)
        except (BotoCoreError, OSError) as exc:
            return None, Observation(error=f"{type(exc).__name__}: {exc}")

    def probe(self, path: str) -> Observation:
        head, failed = self._head(path)
        if failed is not None:
            return failed
        assert head is not None
        return head_observation(head)

    def observe(self, path: str, *, read_content: bool) -> Observation:
        head, failed = self._head(path)
        if failed is not None:
            return failed
        assert head is not None
        if not read_content:
            return head_observation(head)
        return self._get(path, head_observation(head), head.get("ETag"))

    def read(self, path: str, listed: Listed | None) -> Observation:
        """GET the object (conditional on the listed ETag) and hash it as it streams."""
        if listed is None or not listed.etag:
            return self.observe(path, read_content=True)
        return self._get(
            path,
            Observation(exists=True, size=listed.size, fingerprint=listed.fingerprint),
            f'"{listed.etag}"',
        )

    def _get(self, path: str, seen: Observation, etag: str | None) -> Observation:
        from botocore.exceptions import BotoCoreError, ClientError

        self._count("get")
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": path, "ChecksumMode": "ENABLED"}
        if etag:
            request["IfMatch"] = etag
        try:
            response = self.client.get_object(**request)
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
        got = head_observation(response)
        return Observation(
            exists=True,
            size=got.size if got.size is not None else seen.size,
            server_sha256=got.server_sha256 or seen.server_sha256,
            metadata_sha256=got.metadata_sha256 or seen.metadata_sha256,
            content_sha256=digest,
            bytes_read=total,
            extra=got.extra,
            fingerprint=got.fingerprint or seen.fingerprint,
        )


#: Object metadata keys (``x-amz-meta-…``) under which uploaders commonly record a SHA-256.
METADATA_SHA256_KEYS = ("sha256", "sha256sum", "content-sha256", "checksum-sha256", "x-sha256")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def metadata_sha256_of(metadata: dict[str, str] | None) -> str | None:
    for key, value in (metadata or {}).items():
        if key.lower() in METADATA_SHA256_KEYS and isinstance(value, str) and _HEX64.match(value.strip()):
            return value.strip().lower()
    return None


def s3_fingerprint(etag: str | None, size: int | None, last_modified: Any) -> str:
    """ETag, size and modification second: what a listing and a HEAD both say of one version."""
    moment = int(last_modified.timestamp()) if isinstance(last_modified, datetime) else last_modified
    return f"{etag or ''}:{size}:{moment}"


def s3_listed(item: dict[str, Any]) -> Listed:
    etag = (item.get("ETag") or "").strip('"') or None
    size = item.get("Size")
    return Listed(
        size=size,
        fingerprint=s3_fingerprint(etag, size, item.get("LastModified")),
        etag=etag,
        has_sha256="SHA256" in (item.get("ChecksumAlgorithm") or []),
    )


def head_observation(head: dict[str, Any]) -> Observation:
    """What a HEAD (or a GET's headers) says about an existing object."""
    etag = (head.get("ETag") or "").strip('"') or None
    size = head.get("ContentLength")
    return Observation(
        exists=True,
        size=size,
        server_sha256=sha256_from_store(head),
        metadata_sha256=metadata_sha256_of(head.get("Metadata")),
        extra={"etag": etag},
        fingerprint=s3_fingerprint(etag, size, head.get("LastModified")),
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
    endpoint = getattr(client, "_endpoint", None)
    if getattr(endpoint, "_response_parser_factory", None) is not None:
        # The hook the AWS CLI uses to choose its timestamp parser, here also choosing the parser.
        parsers = listing_parser_factory()()
        parsers.set_parser_defaults(timestamp_parser=fast_timestamp)
        endpoint._response_parser_factory = parsers  # type: ignore[union-attr]
    return client


#: The elements of a listed object that :func:`listing_parser_factory` reads itself, and how.
_OBJECT_TEXT = ("Key", "ETag", "StorageClass", "ChecksumType")
_OWNER_TEXT = ("DisplayName", "ID")


def _local_name(element: Any) -> str:
    """An XML element's tag without its namespace (``{http://s3.amazonaws.com/…}Key`` → ``Key``)."""
    return element.tag.rpartition("}")[2]


@functools.cache
def listing_parser_factory() -> type:
    """botocore's parser factory, with a fast path for the objects of a listing page.

    botocore parses each ``<Contents>`` element of a ListObjectsV2 page through its
    model, member by member: about a quarter of a chunk's CPU at 1,000 objects a
    page. An object holding only the plain elements below is read directly into the
    same dict; any other element sends that object through botocore's own parser.
    """
    from botocore.parsers import ResponseParserFactory, RestXMLParser

    class ListingXMLParser(RestXMLParser):
        def _handle_structure(self, shape: Any, node: Any) -> Any:
            if shape.name == "Object" and not isinstance(node, list):
                parsed = self._listed_object(node)
                if parsed is not None:
                    return parsed
            return super()._handle_structure(shape, node)

        def _listed_object(self, node: Any) -> dict[str, Any] | None:
            parsed: dict[str, Any] = {}
            for child in node:
                tag = _local_name(child)
                text = child.text or ""
                if tag in _OBJECT_TEXT:
                    parsed[tag] = text
                elif tag == "Size":
                    parsed[tag] = int(text)
                elif tag == "LastModified":
                    parsed[tag] = self._timestamp_parser(text)
                elif tag == "ChecksumAlgorithm":
                    parsed.setdefault(tag, []).append(text)
                elif tag == "Owner" and all(_local_name(o) in _OWNER_TEXT for o in child):
                    parsed[tag] = {_local_name(o): o.text or "" for o in child}
                else:
                    return None
            return parsed

    class ListingParserFactory(ResponseParserFactory):
        def create_parser(self, protocol_name: str) -> Any:
            if protocol_name == "rest-xml":
                return ListingXMLParser(**self._defaults)
            return super().create_parser(protocol_name)

    return ListingParserFactory


def fast_timestamp(text: str) -> datetime:
    """botocore's timestamp parsing, minus dateutil for ISO 8601 (a listing page has 1,000 of them).

    dateutil spends about 0.2 s of CPU on each 1,000-key page; ``fromisoformat``
    parses the same ``2026-12-01T00:49:00.000Z`` in a few microseconds. Anything
    else (RFC 822 headers, epochs) goes to botocore's own parser.
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        from botocore.utils import parse_timestamp

        return parse_timestamp(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
    from include.backup_integrity.config.settings import BACKEND_CONN_IDS

    if name == "local":
        return LocalBackend(settings.local_root)
    return S3Backend(name, BACKEND_CONN_IDS[name], settings.bucket_for(name))
