"""Immutability: can someone holding the store's keys delete the backups, and for how long can't they?

Ransomware that finds the backup credentials deletes the backups first. S3 Object
Lock (AWS, Backblaze B2, moto) stops it, while the lock is in force and the object's
retain-until date is in the future. The store's answer arrives as a
:class:`BucketProtection`; this module says what it means. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Object lock states: in force, not enabled on the bucket, or not knowable through the S3 API.
LOCK_ENABLED = "enabled"
LOCK_DISABLED = "disabled"
UNVERIFIABLE = "unverifiable"

#: ``details.reason`` of a ``not_immutable`` alert.
REASON_LOCK_DISABLED = "lock_disabled"
REASON_UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True)
class BucketProtection:
    """What a bucket says of its versioning and object lock (one probe per run per S3 store).

    ``versioning`` is the bucket's status (``Enabled``, ``Suspended``, ``Disabled`` for never
    enabled) or None when the store would not say; ``object_lock`` one of ``enabled``,
    ``disabled``, ``unverifiable``; ``error`` why it is unverifiable.
    """

    backend: str
    versioning: str | None
    object_lock: str
    default_retention: dict[str, object] | None = None
    error: str | None = None
    #: How many requests the probe sent (priced like any other).
    requests: int = 0

    @property
    def immutable(self) -> bool:
        return self.object_lock == LOCK_ENABLED

    def as_statistics(self) -> dict[str, object]:
        return {
            "versioning": self.versioning,
            "object_lock": self.object_lock,
            "default_retention": self.default_retention,
            "error": self.error,
        }


def not_immutable_reason(protection: BucketProtection) -> str | None:
    """The ``not_immutable`` reason for a store whose lock is not in force (None when it is)."""
    if protection.object_lock == LOCK_ENABLED:
        return None
    return REASON_UNVERIFIABLE if protection.object_lock == UNVERIFIABLE else REASON_LOCK_DISABLED
