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
from typing import TYPE_CHECKING

from include.backup_integrity.stores.base import CONCURRENCY, GuardedBackend

if TYPE_CHECKING:
    from include.backup_integrity.stores.base import Backend

#: Consecutive failed requests after which a backend is not asked again in this chunk.
THRESHOLD = CONCURRENCY


class CircuitBreaker(GuardedBackend):
    """A backend that stops being asked after :data:`THRESHOLD` errors in a row."""

    def __init__(self, backend: Backend, threshold: int = THRESHOLD) -> None:
        super().__init__(backend)
        self.threshold = threshold
        self._failures = 0
        self._last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._failures >= self.threshold

    def _refusal(self) -> str | None:
        with self._lock:
            if self._failures >= self.threshold:
                return (
                    f"not asked: {self.name} failed {self._failures} requests in a row "
                    f"in this chunk (last: {self._last_error})"
                )
        return None

    def _answered(self, error: str | None) -> str | None:
        with self._lock:
            if error:
                self._failures += 1
                self._last_error = error
            else:
                self._failures = 0
        return None
