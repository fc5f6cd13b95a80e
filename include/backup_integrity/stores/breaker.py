"""Stop asking a store that keeps failing: bounds the time a stalled store costs a chunk.

Botocore bounds each request (timeouts, attempts); a chunk asks about up to
thousands of objects where a listing cannot answer (or every object, when the
listing itself fails), so a store that answers its bucket check but then lets
every request time out would cost a chunk that bound once per object. After
:data:`THRESHOLD` failed requests in a row (as many as are in flight at once),
the rest of the chunk is not asked and reported as ``backend_error``, which is
what asking would have given.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain.checks import Observation
from include.backup_integrity.stores.base import CONCURRENCY

if TYPE_CHECKING:
    from collections.abc import Callable

    from include.backup_integrity.stores.base import Backend, FolderListing, Listed

#: Consecutive failed requests after which a backend is not asked again in this chunk.
THRESHOLD = CONCURRENCY


class CircuitBreaker:
    """A backend that stops being asked after :data:`THRESHOLD` errors in a row."""

    def __init__(self, backend: Backend, threshold: int = THRESHOLD) -> None:
        self.backend = backend
        self.name = backend.name
        self.threshold = threshold
        self._failures = 0
        self._last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def requests(self) -> Any:
        return self.backend.requests

    @property
    def reports_checksums(self) -> bool:
        return getattr(self.backend, "reports_checksums", False)

    def __getattr__(self, name: str) -> Any:
        """Anything else the backend offers (e.g. listings) is the backend's own."""
        return getattr(self.backend, name)

    def describe(self, path: str) -> str:
        return self.backend.describe(path)

    def open_session(self) -> str | None:
        return self.backend.open_session()

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._failures >= self.threshold

    def _refused(self) -> str | None:
        with self._lock:
            if self._failures >= self.threshold:
                return (
                    f"not asked: {self.name} failed {self._failures} requests in a row "
                    f"in this chunk (last: {self._last_error})"
                )
        return None

    def _record(self, error: str | None) -> None:
        with self._lock:
            if error:
                self._failures += 1
                self._last_error = error
            else:
                self._failures = 0

    def _ask(self, request: Callable[[], Observation]) -> Observation:
        refused = self._refused()
        if refused:
            return Observation(error=refused)
        observation = request()
        self._record(observation.error)
        return observation

    def observe(self, path: str, *, read_content: bool) -> Observation:
        return self._ask(lambda: self.backend.observe(path, read_content=read_content))

    def probe(self, path: str) -> Observation:
        return self._ask(lambda: self.backend.probe(path))

    def read(self, path: str, listed: Listed | None) -> Observation:
        return self._ask(lambda: self.backend.read(path, listed))

    def list_keys(self, keys: list[str]) -> FolderListing:
        from include.backup_integrity.stores.base import FolderListing

        refused = self._refused()
        if refused:
            return FolderListing({}, 0, refused)
        listing = self.backend.list_keys(keys)
        self._record(listing.error)
        return listing
