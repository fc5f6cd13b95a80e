"""Which store a backend name of the settings means: kept apart so that ``base`` imports no store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.backup_integrity.config.settings import BACKEND_CONN_IDS
from include.backup_integrity.stores.local import LocalBackend
from include.backup_integrity.stores.s3 import S3Backend

if TYPE_CHECKING:
    from include.backup_integrity.config.settings import Settings
    from include.backup_integrity.stores.base import Backend


def build_backend(name: str, settings: Settings) -> Backend:
    """The store a backend name of the settings means (``local`` or an S3-compatible one)."""
    if name == "local":
        return LocalBackend(settings.local_root)
    return S3Backend(name, BACKEND_CONN_IDS[name], settings.bucket_for(name))
