"""The Variable's ``stores`` key: named stores, validated into :class:`StoreSpec` values.

When the key is absent the stores are the three of earlier releases, built from
``local_root``, ``r2_bucket`` and ``b2_bucket`` (connections ``backup_r2`` and
``backup_b2``), so an existing Variable keeps its meaning. Errors name the store
and the field, because a Variable describing five stores is otherwise hard to fix.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.settings import BACKEND_CONN_IDS, VARIABLE_KEY, ConfigError
from include.backup_integrity.domain.stores import (
    LOCAL,
    RESERVED_STORE_NAMES,
    S3,
    STORE_NAME,
    STORE_TYPES,
    StoreSpec,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

STORES_KEY = "stores"
#: The keys ``stores`` replaces: a Variable holding both would say two different things.
LEGACY_STORE_KEYS = ("local_root", "r2_bucket", "b2_bucket")
LEGACY_CONN_IDS = BACKEND_CONN_IDS

SPEC_FIELDS: dict[str, tuple[str, ...]] = {
    LOCAL: ("type", "root", "path_column"),
    S3: ("type", "conn_id", "bucket", "path_column"),
}

_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def legacy_stores(local_root: str, r2_bucket: str, b2_bucket: str) -> tuple[StoreSpec, ...]:
    """The stores of a Variable without ``stores``: local, r2, b2, in that order."""
    return (
        StoreSpec("local", LOCAL, "local_path", root=local_root),
        StoreSpec("r2", S3, "r2_path", conn_id=LEGACY_CONN_IDS["r2"], bucket=r2_bucket),
        StoreSpec("b2", S3, "b2_path", conn_id=LEGACY_CONN_IDS["b2"], bucket=b2_bucket),
    )


def store_error(name: str, field: str | None, problem: str) -> ConfigError:
    where = f"Variable {VARIABLE_KEY!r}, key {STORES_KEY!r}, store {name!r}"
    return ConfigError(f"{where}, field {field!r}: {problem}" if field else f"{where}: {problem}")


def _text(name: str, spec: Mapping[str, Any], field: str) -> str:
    value = spec.get(field)
    if field not in spec:
        raise store_error(name, field, f"is required for a {spec['type']!r} store")
    if not isinstance(value, str) or not value.strip():
        raise store_error(name, field, f"expected a non-empty string, got {value!r}")
    return value


def parse_store(name: Any, spec: Any) -> StoreSpec:
    """One entry of ``stores``, or a ConfigError naming the store and the field."""
    if not isinstance(name, str) or not STORE_NAME.match(name):
        raise ConfigError(
            f"Variable {VARIABLE_KEY!r}, key {STORES_KEY!r}: store name {name!r} must match "
            f"{STORE_NAME.pattern} (lower case letters, digits and _, starting with a letter)"
        )
    if name in RESERVED_STORE_NAMES:
        raise ConfigError(f"Variable {VARIABLE_KEY!r}, key {STORES_KEY!r}: store name {name!r} is reserved")
    if not isinstance(spec, dict):
        raise store_error(name, None, f"expected a JSON object (the store's spec), got {spec!r}")
    kind = spec.get("type")
    if kind not in STORE_TYPES:
        problem = "is required" if "type" not in spec else f"unknown type {kind!r}"
        raise store_error(name, "type", f"{problem}; known types are {list(STORE_TYPES)!r}")
    unknown = sorted(str(k) for k in spec if k not in SPEC_FIELDS[kind])
    if unknown:
        raise store_error(
            name, None, f"unknown key(s) {unknown!r}; a {kind!r} store takes {sorted(SPEC_FIELDS[kind])!r}"
        )
    column = _text(name, spec, "path_column")
    if not _COLUMN.match(column):
        raise store_error(name, "path_column", f"{column!r} is not a column name")
    if kind == LOCAL:
        return StoreSpec(name, LOCAL, column, root=_text(name, spec, "root"))
    bucket = _text(name, spec, "bucket")
    if not _BUCKET.match(bucket):
        raise store_error(name, "bucket", f"{bucket!r} is not a valid bucket name")
    return StoreSpec(name, S3, column, conn_id=_text(name, spec, "conn_id"), bucket=bucket)


def parse_stores(value: Any) -> tuple[StoreSpec, ...]:
    """The whole ``stores`` object, in the operator's order."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            f"Variable {VARIABLE_KEY!r}, key {STORES_KEY!r}: expected a non-empty JSON object mapping "
            f"store names to their specs, got {value!r}"
        )
    return tuple(parse_store(name, spec) for name, spec in value.items())


@lru_cache(maxsize=32)
def _parsed(text: str) -> tuple[StoreSpec, ...]:
    return parse_stores(json.loads(text))


def configured_stores(
    stores: dict[str, Any] | None, local_root: str, r2_bucket: str, b2_bucket: str
) -> tuple[StoreSpec, ...]:
    """The run's stores: from ``stores`` when set, else from the keys of earlier releases."""
    if stores is None:
        return legacy_stores(local_root, r2_bucket, b2_bucket)
    return _parsed(json.dumps(stores))


def default_expected_backends(
    stores: tuple[StoreSpec, ...], defaults: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """``expected_backends`` when ``stores`` is set but that key is not: every type on every store.

    Except, as in the built-in default, the WAL archive, which only the object stores hold.
    """
    expected = {t: [s.name for s in stores] for t in defaults}
    offsite = [s.name for s in stores if not s.is_local]
    if "WAL_ARCHIVE" in expected and offsite:
        expected["WAL_ARCHIVE"] = offsite
    return expected
