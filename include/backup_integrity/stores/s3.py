"""S3-compatible buckets (R2, B2, ...) as stores, reached through the amazon provider's hook.

A HEAD can tell more than a listing: the store's own whole-object SHA-256 (when it
computed one), or a SHA-256 the uploader recorded in the object's metadata. A GET
streams the object and hashes it; it is conditional on the listed ETag so that an
object replaced between the listing and the read is never judged by the wrong bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import Counter
from datetime import datetime
from typing import Any

from include.backup_integrity.domain.checks import Observation
from include.backup_integrity.domain.immutability import (
    LOCK_DISABLED,
    LOCK_ENABLED,
    UNVERIFIABLE,
    BucketProtection,
)
from include.backup_integrity.domain.stores import S3, StoreSpec
from include.backup_integrity.stores.base import (
    READ_BLOCK_BYTES,
    FolderListing,
    Listed,
    hash_stream,
    split_path,
)
from include.backup_integrity.stores.s3_listing import install_listing_fast_path

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

#: The kind each S3 operation is counted (and priced, ``domain/cost.py``) as when it is sent;
#: any other operation counts under its own name (priced as a write, the dearer class).
OPERATION_KINDS = {
    "ListObjectsV2": "list",
    "ListObjects": "list",
    "HeadObject": "head",
    "HeadBucket": "head",
    "GetObject": "get",
    "GetBucketVersioning": "bucket_config",
    "GetObjectLockConfiguration": "bucket_config",
    "PutObject": "put",
    "CreateMultipartUpload": "put",
    "UploadPart": "put",
    "CompleteMultipartUpload": "put",
    "AbortMultipartUpload": "put",
    "CopyObject": "copy",
    "UploadPartCopy": "copy",
}


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
    #: Every HEAD and GET says the object's object-lock retain-until date (absent: no retention).
    reports_retention = True

    def __init__(self, name: str, conn_id: str, bucket: str, path_column: str | None = None) -> None:
        self.name = name
        self.conn_id = conn_id
        self.bucket = bucket
        self.spec = StoreSpec(name, S3, path_column or f"{name}_path", conn_id=conn_id, bucket=bucket)
        self._client: Any = None
        self.requests: Counter[str] = Counter()
        #: Every attempt botocore sent, retries included, by kind: what the store bills.
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        #: Whether HEADs and GETs carry ``x-amz-checksum-mode`` (off: the store's learned answer).
        self.checksum_mode = True
        #: What this backend saw of the store's capabilities (``domain/capabilities.py``).
        self.capability_counts: Counter[str] = Counter()

    def _saw(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.capability_counts[what] += n

    def describe(self, path: str) -> str:
        return f"s3://{self.bucket}/{path}"

    @property
    def client(self) -> Any:
        if self._client is None:
            client = make_s3_client(self.conn_id)
            # Registered last: an attempt a deadline refuses first (``register_first``) is not sent.
            client.meta.events.register("before-send.s3", self._sending)
            self._client = client
        return self._client

    def _sending(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.sent[OPERATION_KINDS.get(operation, operation)] += 1

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

    def bucket_protection(self) -> BucketProtection:
        """The bucket's versioning state and object-lock configuration, asked once (two requests).

        Self-contained so that whoever needs it (the hourly recovery checks, a store's
        learned capabilities) can call it on any S3 store; both requests are counted as
        ``bucket_config``. A bucket without object lock answers
        ``ObjectLockConfigurationNotFoundError``: ``disabled``. A store that cannot say
        through the S3 API (R2 keeps its bucket locks in Cloudflare's own API and answers
        ``NotImplemented``) or refuses to (``AccessDenied``), or any other error, makes it
        ``unverifiable``, with the store's answer in ``error``. Never raises.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        versioning: str | None = None
        try:
            self._count("bucket_config")
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") or "Disabled"
        except ClientError:
            versioning = None
        except (BotoCoreError, OSError):
            versioning = None
        try:
            self._count("bucket_config")
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            code, message = describe_client_error(exc)
            if code == "ObjectLockConfigurationNotFoundError":
                return BucketProtection(self.name, versioning, LOCK_DISABLED)
            return BucketProtection(self.name, versioning, UNVERIFIABLE, error=message)
        except (BotoCoreError, OSError) as exc:
            return BucketProtection(self.name, versioning, UNVERIFIABLE, error=f"{type(exc).__name__}: {exc}")
        config = answer.get("ObjectLockConfiguration") or {}
        enabled = config.get("ObjectLockEnabled") == "Enabled"
        retention = (config.get("Rule") or {}).get("DefaultRetention")
        return BucketProtection(
            self.name,
            versioning,
            LOCK_ENABLED if enabled else LOCK_DISABLED,
            dict(retention) if retention else None,
        )

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
                        self._saw("listed")
                        if any(k.startswith("Checksum") for k in item):
                            self._saw("listed_with_checksum")
                if past_last or not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
                request.pop("StartAfter", None)
        except ClientError as exc:
            return FolderListing(entries, requests, describe_client_error(exc)[1])
        except (BotoCoreError, OSError) as exc:
            return FolderListing(entries, requests, f"{type(exc).__name__}: {exc}")
        return FolderListing(entries, requests)

    def _checksum_call(self, call: Any, request: dict[str, Any]) -> Any:
        """``call(**request)`` in checksum mode while the store accepts it; without, once it does not.

        A store that answers 400 to a request carrying ``x-amz-checksum-mode`` and accepts the
        same request without it rejects the header: it is not asked with it again, and the
        answer without it is the object's (never a ``backend_error`` because of the header).
        """
        from botocore.exceptions import ClientError

        if not self.checksum_mode:
            return call(**request)
        try:
            response = call(**request, ChecksumMode="ENABLED")
        except ClientError as exc:
            status = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = describe_client_error(exc)[0]
            if status != 400 and code not in ("InvalidArgument", "InvalidRequest"):
                raise
            response = call(**request)  # raises if the header was not the problem
            self.checksum_mode = False
            self._saw("checksum_mode_rejected")
            return response
        self._saw("checksum_probes")
        if sha256_from_store(response) is not None:
            self._saw("sha256_answers")
        return response

    def _head(self, path: str) -> tuple[dict[str, Any] | None, Observation | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        self._count("head")
        try:
            return self._checksum_call(self.client.head_object, {"Bucket": self.bucket, "Key": path}), None
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
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": path}
        if etag:
            request["IfMatch"] = etag
        try:
            response = self._checksum_call(self.client.get_object, request)
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
    retain_until = head.get("ObjectLockRetainUntilDate")
    return Observation(
        exists=True,
        size=size,
        server_sha256=sha256_from_store(head),
        metadata_sha256=metadata_sha256_of(head.get("Metadata")),
        # An S3 store reports the object's retention, if it has one, with every HEAD and GET.
        extra={"etag": etag}
        | (
            {"retain_until": retain_until.isoformat() if isinstance(retain_until, datetime) else retain_until}
            if retain_until
            else {}
        ),
        fingerprint=s3_fingerprint(etag, size, head.get("LastModified")),
    )


def make_s3_client(conn_id: str) -> Any:
    """A boto3 S3 client for a connection, with bounded timeouts and retries and the listing fast path."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook
    from botocore.config import Config

    connection = BaseHook.get_connection(conn_id)
    config = Config(**botocore_config_for(connection.extra_dejson))
    client = S3Hook(aws_conn_id=conn_id, config=config).get_conn()
    client.meta.events.register_first("needs-retry.s3", bare_503_is_slow_down)
    install_listing_fast_path(client)
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
