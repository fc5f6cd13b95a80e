"""Redacting the text the package writes where Airflow does not mask: with Airflow's masker, or ours.

Secrets are registered through Airflow's public ``airflow.sdk.log.mask_secret``, but
Airflow has no public way to redact text it does not log itself (results in XCom,
alert rows, notices). Its masker's ``redact`` is importable from ``airflow.sdk.log``
(the path Airflow's ``common.compat`` provider names first) and, where it is defined,
``airflow.sdk._shared.secrets_masker``: neither is declared public, so
``tests/unit/test_masker.py`` fails when it is gone or behaves otherwise. Should it be
gone at run time, :func:`redact_text` falls back, with a warning, to the secrets the
package registered itself (every one goes through :func:`remember` as well).
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

REPLACEMENT = "***"
#: Shorter values are not redacted (Airflow's default ``[logging] min_length_masked_secret``).
MIN_SECRET_LENGTH = 5

_remembered: set[str] = set()
_remembered_lock = threading.Lock()


def remember(secret: str) -> None:
    """Keep a secret registered with Airflow for the fallback too."""
    if len(secret) >= MIN_SECRET_LENGTH:
        with _remembered_lock:
            _remembered.add(secret)


def _redacts_text(candidate: Any) -> bool:
    """Whether ``candidate`` can be called as ``redact(text)``."""
    if not callable(candidate):
        return False
    try:
        inspect.signature(candidate).bind("text")
    except (TypeError, ValueError):
        return False
    return True


@functools.cache
def airflow_redact() -> Callable[[str], Any] | None:
    """Airflow's masker's ``redact``, or None (with a warning, once) when it is gone."""
    try:
        from airflow.sdk.log import redact
    except ImportError:
        try:
            from airflow.sdk._shared.secrets_masker import redact
        except ImportError:
            redact = None
    if _redacts_text(redact):
        return redact
    log.warning(
        "Airflow's secrets masker offers no redact(text) any more: text the package writes is "
        "redacted with the secrets the package registered itself only"
    )
    return None


def redact_remembered(text: str) -> str:
    """``text`` with every secret of :func:`remember` replaced, the longest first."""
    with _remembered_lock:
        secrets = sorted(_remembered, key=len, reverse=True)
    if not secrets:
        return text
    return re.sub("|".join(re.escape(s) for s in secrets), REPLACEMENT, text)


def redact_text(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    redact = airflow_redact()
    return str(redact(text)) if redact is not None else redact_remembered(text)
