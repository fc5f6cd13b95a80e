"""Builders for catalog rows and check results, shared by the unit tests of the pure core."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.settings import BACKENDS as BUILT_IN_STORES
from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.records import PASSED, BackupRecord, CheckResult

if TYPE_CHECKING:
    from include.backup_integrity.domain.stores import StoreSpec

CONTENT = b"pg_dump output\n" * 64
CONTENT_SHA256 = hashlib.sha256(CONTENT).hexdigest()
OTHER_SHA256 = hashlib.sha256(b"something else").hexdigest()

EARLIER = "2026-03-01T10:00:00+00:00"
CHECKED_AT = "2026-03-01T11:00:00+00:00"
LATER = "2026-03-01T12:00:00+00:00"


def backup_record(**overrides: Any) -> BackupRecord:
    """A correct catalog row for :data:`CONTENT`, recorded on every built-in store.

    ``<store>_path=`` sets one store's recorded path (``wasabi_path=`` adds a store).
    """
    paths: dict[str, str | None] = dict.fromkeys(BUILT_IN_STORES, "db/full.dump")
    for key in [k for k in overrides if k.endswith("_path")]:
        paths[key.removesuffix("_path")] = overrides.pop(key)
    record = BackupRecord(
        id="b-1",
        backup_type="FULL_DATABASE",
        filename="full.dump",
        size_bytes=len(CONTENT),
        checksum=CONTENT_SHA256,
        paths=paths,
        created_at="2026-03-01T09:00:00+00:00",
    )
    record.update(overrides)  # type: ignore[typeddict-item]
    return record


def store_spec(name: str) -> StoreSpec:
    """The spec of a built-in store, as a Variable without ``stores`` configures it."""
    return Settings().store(name)


def check_result(
    backup_id: str,
    backend: str | None,
    kind: str = PASSED,
    *,
    checked_at: str = CHECKED_AT,
    evidence: str | None = None,
    path: str | None = "db/full.dump",
    mode: str = "quick",
    message: str | None = None,
) -> CheckResult:
    return CheckResult(
        backup_id=backup_id,
        backend=backend,
        kind=kind,
        message=message or f"{kind} on {backend}",
        path=path,
        expected={"size_bytes": len(CONTENT), "sha256": CONTENT_SHA256},
        actual=None,
        mode=mode,
        evidence=evidence,
        checked_at=checked_at,
    )
