"""Which store a backend name of the settings means: kept apart so that ``base`` imports no store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.backup_integrity.stores.local import LocalBackend
from include.backup_integrity.stores.s3 import S3Backend

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.domain.stores import StoreSpec
    from include.backup_integrity.stores.base import Backend


def backend_of(spec: StoreSpec) -> Backend:
    """The store a spec describes: a folder or an S3-compatible bucket."""
    if spec.is_local:
        return LocalBackend(spec.root or "", spec.name, spec.path_column)
    return S3Backend(spec.name, spec.conn_id or "", spec.bucket or "", spec.path_column)


def build_backend(name: str, settings: Settings) -> Backend:
    """The store a backend name of the settings means (one of ``settings.store_specs``)."""
    return backend_of(settings.store(name))
