"""Configuration that can only be checked against the world: the local folder and the buckets.

Run by ``select_backups`` before any check, for the backends the run uses, so a
typo in ``local_root`` or a bucket name fails the run with a message naming it
instead of turning every backup into a ``backend_error``. Only a definite answer
is a configuration error: a store that cannot be reached right now is not, and
its checks report ``backend_error`` as usual.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from include.backup_integrity.config.settings import BACKEND_CONN_IDS, VARIABLE_KEY, ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.stores import StoreSpec
    from include.backup_integrity.stores.deadline import StoreDeadline

log = logging.getLogger(__name__)

BUCKET_NOT_FOUND = {"404", "NoSuchBucket", "NotFound"}


def check_local_root(root: str, where: str | None = None) -> None:
    """A local store's root (``local_root``) must be a folder this process can list and read."""
    where = where or f"Variable {VARIABLE_KEY!r}, key 'local_root'"
    if not os.path.isabs(root):
        raise ConfigError(f"{where}: {root!r} is not an absolute path")
    try:
        os.stat(root)
    except FileNotFoundError:
        raise ConfigError(f"{where}: folder {root!r} does not exist") from None
    except PermissionError:
        raise ConfigError(
            f"{where}: folder {root!r} cannot be reached by this worker (uid {os.geteuid()}): "
            "permission denied on a folder above it"
        ) from None
    if not os.path.isdir(root):
        raise ConfigError(f"{where}: {root!r} is not a folder")
    if not os.access(root, os.R_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise ConfigError(f"{where}: folder {root!r} is not readable by this worker (uid {os.geteuid()})")
    try:
        with os.scandir(root) as entries:
            next(entries, None)
    except PermissionError:
        raise ConfigError(
            f"{where}: folder {root!r} is not readable by this worker (uid {os.geteuid()})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where}: folder {root!r} cannot be read: {exc.strerror}") from None


def check_bucket(
    backend: str,
    bucket: str,
    deadline: StoreDeadline | None = None,
    *,
    conn_id: str | None = None,
    where: str | None = None,
) -> str | None:
    """Fail when the store says the bucket does not exist; return a warning when it cannot say."""
    from botocore.exceptions import BotoCoreError, ClientError

    from include.backup_integrity.stores.s3 import describe_client_error, make_s3_client

    conn_id = conn_id or BACKEND_CONN_IDS[backend]
    where = where or f"Variable {VARIABLE_KEY!r}, key '{backend}_bucket'"
    client = make_s3_client(conn_id)
    refused = deadline.refusal(deadline.watch(client)) if deadline is not None else None
    if refused:
        return f"bucket {bucket!r} on {backend} not confirmed ({refused}); checking anyway"
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code, message = describe_client_error(exc)
        if code in BUCKET_NOT_FOUND:
            raise ConfigError(
                f"{where}: bucket {bucket!r} does not exist on {backend} (connection {conn_id!r})"
            ) from None
        return f"bucket {bucket!r} on {backend} could not be confirmed ({message}); checking anyway"
    except (BotoCoreError, OSError) as exc:
        return f"{backend} ({conn_id}) unreachable to confirm bucket {bucket!r} ({exc}); checking anyway"
    return None


def preflight(
    settings: Settings, backends: Iterable[str], deadlines: Mapping[str, StoreDeadline] | None = None
) -> None:
    """Check what the run's backends need from the world; raise ConfigError naming what is wrong.

    ``deadlines``: a store that times out here starts the run's clock for it, as in a chunk.
    """
    for backend in sorted(set(backends)):
        spec = settings.store(backend)
        if spec.is_local:
            check_local_root(spec.root or "", field_of(settings, spec, "root", "local_root"))
            continue
        warning = check_bucket(
            backend,
            spec.bucket or "",
            (deadlines or {}).get(backend),
            conn_id=spec.conn_id,
            where=field_of(settings, spec, "bucket", f"{backend}_bucket"),
        )
        if warning:
            log.warning("%s", warning)


def field_of(settings: Settings, spec: StoreSpec, field: str, legacy_key: str | None = None) -> str:
    """Where the operator wrote a store's field: in ``stores``, or the key of earlier releases."""
    if settings.stores is None:
        if legacy_key is None:
            return f"store {spec.name!r} (built in: no 'stores' key), field {field!r}"
        return f"Variable {VARIABLE_KEY!r}, key {legacy_key!r}"
    return f"Variable {VARIABLE_KEY!r}, key 'stores', store {spec.name!r}, field {field!r}"
