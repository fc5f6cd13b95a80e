"""How the package writes and reads times: one fixed-width UTC form, so that times compare as text.

Every check time the package writes comes from :func:`utc_now_iso`; times written by
others (the catalog's ``metadata``, an alert's ``details``) are read with
:func:`parse_timestamp`, which never raises.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

#: How this package writes check times (``utc_now_iso``): fixed width, UTC, so that two of
#: them compare as times when compared as text.
CANONICAL_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00"
_CANONICAL_TIME = re.compile(CANONICAL_TIME)


def utc_now_iso() -> str:
    """Now, as :data:`CANONICAL_TIME`."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` accepted; naive taken as UTC), or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def canonical_time(value: str) -> str:
    """``value`` written as :data:`CANONICAL_TIME` (raises ValueError when it is not a time)."""
    if _CANONICAL_TIME.fullmatch(value):
        return value
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"not an ISO 8601 time: {value!r}")
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")


def is_later(checked_at: str, last_seen: datetime | None) -> bool:
    """Whether a check at ``checked_at`` came after ``last_seen`` (anything is later than never)."""
    when = parse_timestamp(checked_at)
    return when is not None and (last_seen is None or when > last_seen)
