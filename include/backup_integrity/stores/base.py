"""The store interface every place backups live implements, and the types a listing returns.

A backend answers one question per object, :meth:`Backend.observe`, with an
:class:`~include.backup_integrity.domain.checks.Observation`. It never decides pass or
fail; :mod:`include.backup_integrity.domain.checks` does. Anything that prevents the
store from answering becomes ``Observation(error=...)`` so that it is reported
as ``backend_error`` and never as ``missing``. The implementations are
:mod:`~include.backup_integrity.stores.local` and :mod:`~include.backup_integrity.stores.s3`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Iterator

    from include.backup_integrity.domain.checks import Observation
    from include.backup_integrity.domain.stores import StoreSpec

#: Requests or reads in flight at once within one chunk (also the breaker's threshold).
CONCURRENCY = 8

#: Large blocks keep hashing close to SHA-256's own speed and memory flat.
READ_BLOCK_BYTES = 8 * 1024 * 1024


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
    """What every store answers, object by object or folder by folder."""

    name: str
    #: What the operator configured this store as (its type, path column, where it is).
    spec: StoreSpec
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
