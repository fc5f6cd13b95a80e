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
from typing import TYPE_CHECKING, Any, Protocol

from include.backup_integrity.domain.checks import Observation

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable, Iterator

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


class GuardedBackend:
    """A backend asked through a guard that may refuse a request before it is sent.

    The circuit breaker and the deadline guard differ only in when they refuse and
    what they learn from an answer; both forward everything else to the backend they
    wrap, and a refused request is reported as what asking a store that does not
    answer would have given: ``Observation(error=…)`` or a listing with that error.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name

    @property
    def requests(self) -> Counter[str]:
        return self.backend.requests

    @property
    def reports_checksums(self) -> bool:
        return getattr(self.backend, "reports_checksums", False)

    def __getattr__(self, name: str) -> Any:
        """Anything else the backend offers (its client, bucket, …) is the backend's own."""
        return getattr(self.backend, name)

    def describe(self, path: str) -> str:
        return self.backend.describe(path)

    def open_session(self) -> str | None:
        return self.backend.open_session()

    def _refusal(self) -> str | None:
        """Why no request may be sent now (None: it may)."""
        raise NotImplementedError

    def _answered(self, error: str | None) -> str | None:
        """Learn from one answer; return the error to report instead of the store's, if any."""
        return None

    def _ask(self, request: Callable[[], Observation]) -> Observation:
        refused = self._refusal()
        if refused:
            return Observation(error=refused)
        observation = request()
        replaced = self._answered(observation.error)
        return Observation(error=replaced) if replaced else observation

    def observe(self, path: str, *, read_content: bool) -> Observation:
        return self._ask(lambda: self.backend.observe(path, read_content=read_content))

    def probe(self, path: str) -> Observation:
        return self._ask(lambda: self.backend.probe(path))

    def read(self, path: str, listed: Listed | None) -> Observation:
        return self._ask(lambda: self.backend.read(path, listed))

    def list_keys(self, keys: list[str]) -> FolderListing:
        refused = self._refusal()
        if refused:
            return FolderListing({}, 0, refused)
        listing = self.backend.list_keys(keys)
        replaced = self._answered(listing.error)
        return FolderListing(listing.entries, listing.requests, replaced) if replaced else listing


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
