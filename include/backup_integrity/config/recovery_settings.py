"""The Variable keys of the recovery checks: freshness, the WAL base, immutability and prices.

Map-valued keys with defaults (``max_age_hours``, ``prices``) are merged over their
defaults entry by entry; an entry set to null removes it (the null is kept, so the
merged value validates to itself when it travels between tasks). ``wal_segment_bytes``
is shared with the restore drills and validated there
(:func:`~include.backup_integrity.config.drill_settings.parse_wal_segment_bytes`).
Every error names the key and what it should hold.
"""

from __future__ import annotations

import math
from typing import Any

#: Hours after which the newest COMPLETED backup of a type is stale (null: not judged).
DEFAULT_MAX_AGE_HOURS: dict[str, float | None] = {"FULL_DATABASE": 26, "WAL_ARCHIVE": 2}

#: The price fields of one store, in US dollars (free tiers are not modelled).
PRICE_FIELDS = ("list_per_million", "head_per_million", "get_per_million", "put_per_million", "egress_per_gb")

#: Public list prices: R2 Class A $4.50 / million (ListObjects and writes), Class B $0.36 / million,
#: free egress; B2 list $0.004 / 1,000, HEAD and GET $0.004 / 10,000, uploads free, download $0.01 / GB.
DEFAULT_PRICES: dict[str, dict[str, float] | None] = {
    "local": dict.fromkeys(PRICE_FIELDS, 0.0),
    "r2": {
        "list_per_million": 4.50,
        "head_per_million": 0.36,
        "get_per_million": 0.36,
        "put_per_million": 4.50,
        "egress_per_gb": 0.0,
    },
    "b2": {
        "list_per_million": 4.00,
        "head_per_million": 0.40,
        "get_per_million": 0.40,
        "put_per_million": 0.0,
        "egress_per_gb": 0.01,
    },
}

RECOVERY_KEYS = (
    "max_age_hours",
    "base_backup_type",
    "require_object_lock",
    "min_retention_days",
    "prices",
)


def _where(key: str) -> str:
    return f"Variable 'backup_integrity', key {key!r}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _store_names(key: str, names: Any, known: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{_where(key)}: unknown store(s) {unknown!r}; known stores are {list(known)!r}")


def parse_max_age_hours(value: Any) -> dict[str, float | None]:
    if not isinstance(value, dict):
        raise ValueError(
            f"{_where('max_age_hours')}: expected an object mapping backup_type to hours or null"
        )
    merged: dict[str, float | None] = dict(DEFAULT_MAX_AGE_HOURS)
    for backup_type, hours in value.items():
        if hours is not None and not (_is_number(hours) and hours > 0):
            raise ValueError(
                f"{_where('max_age_hours')}: type {backup_type!r} must map to a number of hours > 0 "
                f"or null, got {hours!r}"
            )
        merged[backup_type] = float(hours) if hours is not None else None
    return merged


def parse_base_backup_type(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ValueError(f"{_where('base_backup_type')}: expected null or a backup_type, got {value!r}")
    return value


def parse_require_object_lock(value: Any, known: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{_where('require_object_lock')}: expected a list of store names, got {value!r}")
    _store_names("require_object_lock", value, known)
    return list(dict.fromkeys(value))


def parse_min_retention_days(value: Any, known: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"{_where('min_retention_days')}: expected an object mapping store name to days")
    _store_names("min_retention_days", value, known)
    for store, days in value.items():
        if not (_is_number(days) and days > 0):
            raise ValueError(
                f"{_where('min_retention_days')}: store {store!r} must map to a number of days > 0, "
                f"got {days!r}"
            )
    return {store: float(days) for store, days in value.items()}


def parse_prices(value: Any, known: tuple[str, ...]) -> dict[str, dict[str, float] | None]:
    if not isinstance(value, dict):
        raise ValueError(f"{_where('prices')}: expected an object mapping store name to its prices or null")
    _store_names("prices", value, known)
    merged = {store: (dict(p) if p else p) for store, p in DEFAULT_PRICES.items()}
    for store, prices in value.items():
        if prices is None:
            merged[store] = None
            continue
        if not isinstance(prices, dict):
            raise ValueError(
                f"{_where('prices')}: store {store!r} must map to an object with {list(PRICE_FIELDS)!r} "
                f"or null, got {prices!r}"
            )
        unknown = sorted(set(prices) - set(PRICE_FIELDS))
        if unknown:
            raise ValueError(
                f"{_where('prices')}: store {store!r} has unknown price(s) {unknown!r}; "
                f"known prices are {list(PRICE_FIELDS)!r}"
            )
        for name, price in prices.items():
            if not (_is_number(price) and price >= 0):
                raise ValueError(
                    f"{_where('prices')}: {store}.{name} must be a number of US dollars >= 0, got {price!r}"
                )
        # A store's prices are replaced whole; a price it leaves out is 0.
        merged[store] = {name: float(prices.get(name, 0.0)) for name in PRICE_FIELDS}
    return merged


def recovery_values(data: dict[str, Any], known_stores: tuple[str, ...]) -> dict[str, Any]:
    """The recovery keys of the decoded Variable, validated and merged, as Settings field values."""
    parsers = {
        "max_age_hours": parse_max_age_hours,
        "base_backup_type": parse_base_backup_type,
        "require_object_lock": lambda v: parse_require_object_lock(v, known_stores),
        "min_retention_days": lambda v: parse_min_retention_days(v, known_stores),
        "prices": lambda v: parse_prices(v, known_stores),
    }
    return {key: parse(data[key]) for key, parse in parsers.items() if key in data}
