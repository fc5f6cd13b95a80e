"""A backend that is not asked past its deadlines: the chunk's own, and a silent store's.

:class:`StoreDeadline` holds the two moments (decided by
:mod:`include.backup_integrity.domain.deadlines`) and hooks into a boto3 client so
that no attempt, retries included, starts when it could not end before them.
:class:`DeadlineGuard` wraps a backend like the circuit breaker does: a request
refused becomes ``Observation(error="not asked: …")``, which is what asking a store
that does not answer would have given, so a chunk never fails for it.

The first timeout of a store is shared with the run's other chunks through
``share`` (the catalog, see :mod:`include.backup_integrity.catalog.deadlines`):
the deadline runs from the earliest one any chunk saw.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from include.backup_integrity.domain import deadlines
from include.backup_integrity.stores.base import GuardedBackend

if TYPE_CHECKING:
    from collections.abc import Callable

    from include.backup_integrity.stores.base import Backend

log = logging.getLogger(__name__)


class RequestRefused(TimeoutError):
    """Raised in botocore's ``before-send`` hook: the attempt would end past a deadline.

    A ``TimeoutError`` (an ``OSError``), so every store call that already turns an
    unreachable store into an error string handles it; botocore never retries it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_timeout(exc: BaseException | None) -> bool:
    """Whether a botocore attempt failed because the store did not answer in time."""
    if exc is None:
        return False
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    return isinstance(exc, ConnectTimeoutError | ReadTimeoutError)


class StoreDeadline:
    """When one backend may no longer be asked, in this task.

    ``task_deadline`` is the chunk's own (seconds since the epoch, None: none);
    ``first_timeout_at`` the store's first timeout in the run as known so far;
    ``share(at)`` records a timeout seen here and returns the earliest of the run.
    """

    def __init__(
        self,
        backend: str,
        store_deadline_seconds: float,
        *,
        task_deadline: float | None = None,
        first_timeout_at: float | None = None,
        share: Callable[[float], float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.store_deadline_seconds = store_deadline_seconds
        self.task_deadline = task_deadline
        self.first_timeout_at = first_timeout_at
        self.share = share
        self.clock = clock
        self._lock = threading.Lock()
        self._shared = False
        self._vetoed = threading.local()

    def refusal(self, needs_seconds: float = 0.0) -> str | None:
        """Why a request that may take ``needs_seconds`` must not start now (None: it may)."""
        with self._lock:
            first = self.first_timeout_at
        return deadlines.refusal(
            self.clock(),
            needs_seconds,
            task_deadline=self.task_deadline,
            first_timeout_at=first,
            store_deadline_seconds=self.store_deadline_seconds,
        )

    def timed_out(self) -> None:
        """An attempt timed out here: start the store's clock, and share it once per task."""
        at = self.clock()
        with self._lock:
            if self.first_timeout_at is None or at < self.first_timeout_at:
                self.first_timeout_at = at
            if self._shared or self.share is None:
                return
            self._shared = True
            first = self.first_timeout_at
        log.warning(
            "%s did not answer in time; it is asked for at most %g s more in this run",
            self.backend,
            self.store_deadline_seconds,
        )
        try:
            earliest = self.share(first)
        except Exception:  # the catalog is not the store: keep this task's own clock
            log.exception("could not share the first timeout of %s with the run's other chunks", self.backend)
            return
        with self._lock:
            if self.first_timeout_at is None or earliest < self.first_timeout_at:
                self.first_timeout_at = earliest

    def watch(self, client: Any) -> float:
        """Hook into a boto3 client: timeouts start the clock; no attempt starts that cannot fit.

        Returns what one attempt may take at worst (its connect and read timeouts).
        """
        config = client.meta.config
        needs = float(config.connect_timeout or 0) + float(config.read_timeout or 0)

        def before_send(**_: Any) -> None:
            reason = self.refusal(needs)
            if reason:
                self._vetoed.reason = reason
                raise RequestRefused(reason)

        def needs_retry(caught_exception: BaseException | None = None, **_: Any) -> bool | None:
            if is_timeout(caught_exception):
                self.timed_out()
            if isinstance(caught_exception, RequestRefused) or self.refusal(needs):
                return False  # botocore: no further attempt
            return None

        client.meta.events.register_first("before-send.s3", before_send)
        client.meta.events.register_first("needs-retry.s3", needs_retry)
        return needs

    def take_veto(self) -> str | None:
        """The reason this thread's last request was refused inside botocore, if it was."""
        reason = getattr(self._vetoed, "reason", None)
        self._vetoed.reason = None
        return reason


class DeadlineGuard(GuardedBackend):
    """A backend that refuses requests past its :class:`StoreDeadline`.

    A request may also be refused inside botocore (between retries): the veto it
    leaves replaces the store's own error.
    """

    def __init__(self, backend: Backend, deadline: StoreDeadline) -> None:
        super().__init__(backend)
        self.deadline = deadline
        self._needs_seconds: float | None = None

    def _needs(self) -> float:
        """One connect-and-read timeout of the store's client (0 for a local folder)."""
        if self._needs_seconds is None:
            client = getattr(self.backend, "client", None)
            self._needs_seconds = 0.0 if client is None else self.deadline.watch(client)
        return self._needs_seconds

    def _refusal(self) -> str | None:
        refused = self.deadline.refusal(self._needs())
        if not refused:
            self.deadline.take_veto()  # forget a veto of an earlier request on this thread
        return refused

    def _answered(self, error: str | None) -> str | None:
        return self.deadline.take_veto()

    def open_session(self) -> str | None:
        refused = self._refusal()
        if refused:
            return refused
        error = self.backend.open_session()
        return self._answered(error) or error
