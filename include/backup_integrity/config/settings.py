"""The ``backup_integrity`` Variable, declared once and validated by pydantic.

Everything here is pure: the DAG reads the raw Variable text inside a task and
hands it to :func:`parse_settings`, so a typo in the Variable fails the run with
a message naming the key instead of being silently replaced by defaults. Types
are strict (``"30"`` is not an integer, ``true`` is not one either) and unknown
keys are refused; pydantic's errors are translated into messages that say which
key is wrong and what it should hold.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from include.backup_integrity.config.recovery_settings import (
    DEFAULT_MAX_AGE_HOURS,
    DEFAULT_PRICES,
    recovery_values,
)

if TYPE_CHECKING:
    from include.backup_integrity.domain.stores import StoreSpec

VARIABLE_KEY = "backup_integrity"

CATALOG_CONN_ID = "backup_catalog"
NOTIFY_CONN_ID = "backup_notify"
#: The connections and names of the stores of a Variable without ``stores`` (see ``store_settings``);
#: code iterates ``Settings.store_specs``, never these.
BACKEND_CONN_IDS = {"r2": "backup_r2", "b2": "backup_b2"}

BACKENDS = ("local", "r2", "b2")
MODES = ("quick", "rolling", "full")
DEFAULT_MODE = "rolling"
RepairMode = Literal["off", "plan", "apply"]
REPAIR_MODES: tuple[str, ...] = get_args(RepairMode)

DEFAULT_EXPECTED_BACKENDS: dict[str, list[str]] = {
    "FULL_DATABASE": ["local", "r2", "b2"],
    "TENANT_BACKUP": ["local", "r2", "b2"],
    "CONFIGURATION": ["local", "r2", "b2"],
    "WAL_ARCHIVE": ["r2", "b2"],
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_EXPECTED_BACKENDS_SHAPE = "expected a JSON object mapping backup_type to a list of backends"


class ConfigError(ValueError):
    """The Variable or the trigger params hold something the verifier cannot use."""


# ----------------------------------------------------------------------------- the field types


def _bucket_name(value: str) -> str:
    if not _BUCKET.match(value):
        raise PydanticCustomError("bucket_name", "{value} is not a valid bucket name", {"value": repr(value)})
    return value


def _table_name(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise PydanticCustomError(
            "table_name", "{value} is not a table name ([schema.]identifier)", {"value": repr(value)}
        )
    return value


def _known_backends(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """A backend named twice counts once, in order (that each is a configured store is checked
    once the stores are known: :func:`_backends_configured`)."""
    for backup_type, backends in value.items():
        odd = [b for b in backends if not isinstance(b, str)]
        if odd:
            raise PydanticCustomError(
                "unknown_backend",
                "type {type} names unknown backend(s) {unknown}",
                {"type": repr(backup_type), "unknown": repr(odd)},
            )
    return {backup_type: list(dict.fromkeys(backends)) for backup_type, backends in value.items()}


def _hours(value: Any, handler: ValidatorFunctionWrapHandler) -> float:
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "hours", "expected a number of hours > 0, got {value}", {"value": repr(value)}
        ) from None


def _ratio(value: Any, handler: ValidatorFunctionWrapHandler) -> float:
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "ratio", "expected a number > 0 and <= 1, got {value}", {"value": repr(value)}
        ) from None


Text = Annotated[str, Field(min_length=1, pattern=r"\S")]
BucketName = Annotated[Text, AfterValidator(_bucket_name)]
TableName = Annotated[Text, AfterValidator(_table_name)]
Count = Annotated[int, Field(ge=1)]
Hours = Annotated[float, Field(gt=0), WrapValidator(_hours)]
Ratio = Annotated[float, Field(gt=0, le=1), WrapValidator(_ratio)]
BackendsByType = Annotated[
    dict[str, Annotated[list[Any], Field(min_length=1)]],
    Field(min_length=1),
    AfterValidator(_known_backends),
]


class Settings(BaseModel):
    """The validated content of the ``backup_integrity`` Variable (every key has a default)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    local_root: Text = "/var/backups/jewelry-shop"
    r2_bucket: BucketName = "securesyntax"
    b2_bucket: BucketName = "securesyntax"
    lookback_days: Count = 30
    max_backups: Count | None = None
    backups_table: TableName = "backups_backup"
    alerts_table: TableName = "backups_backupalert"
    expected_backends: BackendsByType = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_EXPECTED_BACKENDS.items()}
    )
    chunk_size: Count = 50
    max_chunks_per_backend: Count = 4
    rehash_period_days: Annotated[int, Field(ge=0)] = 7
    rehash_budget_bytes: Count | None = None
    #: The watchdog alerts when no run has finished this many hours after its scheduled time.
    stall_after_hours: Hours = 2
    repair: RepairMode = "off"
    #: Repair writes at most this many copies and this many bytes per run (newest backups first).
    repair_max_copies: Count = 50
    repair_max_bytes: Count = 10 * 1024**3
    #: A present but wrong copy is kept beside the repaired one (``<name>.bad-<UTC time>``).
    repair_keep_bad_copies: bool = True
    #: Bounded waits: per catalog statement (also idle in a transaction), per lock, per silent store.
    db_statement_timeout_seconds: Count = 900
    db_lock_timeout_seconds: Count = 30
    store_deadline_seconds: Count = 120
    #: A backend incident: at least this many copies missing or the wrong size in one run...
    incident_min_copies: Count = 20
    #: ...making at least this share of the backend's store-answered checks.
    incident_ratio: Ratio = 0.5
    #: A notice not delivered this long after it was queued is marked expired, never sent late.
    notice_max_age_hours: Hours = 72
    #: A run that queues more notices than this sends each channel one digest instead.
    notify_digest_after: Annotated[int, Field(ge=0)] = 5
    #: History (results, runs, sent or expired notices, resolved alerts' occurrences, repairs)
    #: older than this many days is pruned by each run; open alerts and object state never are.
    retention_days: Count = 90
    #: Restore drills: validated by ``config/drill_settings.py`` (None: drills not configured).
    restore_drill: dict[str, Any] | None = None
    wal_segment_bytes: int = 16 * 1024 * 1024
    #: Recovery checks (validated and merged by ``config/recovery_settings.py``).
    max_age_hours: dict[str, float | None] = Field(default_factory=lambda: dict(DEFAULT_MAX_AGE_HOURS))
    base_backup_type: str | None = None
    require_object_lock: list[str] = Field(default_factory=list)
    min_retention_days: dict[str, float] = Field(default_factory=dict)
    prices: dict[str, dict[str, float] | None] = Field(
        default_factory=lambda: {k: (dict(v) if v else v) for k, v in DEFAULT_PRICES.items()}
    )
    #: Named stores (``config/store_settings.py``); None: local, r2 and b2 from the keys above.
    stores: dict[str, Any] | None = None

    @cached_property
    def store_specs(self) -> tuple[StoreSpec, ...]:
        """The configured stores, in the operator's order of preference as sources.

        Worked out once per (frozen) settings: every catalog row read asks for it.
        """
        from include.backup_integrity.config.store_settings import configured_stores

        return configured_stores(self.stores, self.local_root, self.r2_bucket, self.b2_bucket)

    @property
    def store_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.store_specs)

    def store(self, name: str) -> StoreSpec:
        """The spec of a configured store; a ConfigError names the unknown one."""
        for spec in self.store_specs:
            if spec.name == name:
                return spec
        raise ConfigError(
            f"store {name!r} is not configured; configured stores are {list(self.store_names)!r}"
        )

    def bucket_for(self, backend: str) -> str:
        """The bucket configured for an S3-compatible backend."""
        bucket = self.store(backend).bucket
        if bucket is None:
            raise ConfigError(f"store {backend!r} is not an S3 store: it has no bucket")
        return bucket

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, as the settings travel between tasks (XCom)."""
        data = self.model_dump()
        if self.stores is not None:
            from include.backup_integrity.config.store_settings import LEGACY_STORE_KEYS

            for key in LEGACY_STORE_KEYS:
                data.pop(key, None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """The settings back from :meth:`to_dict` (validated again: XCom is an edge too)."""
        return cls.model_validate(data)


# ----------------------------------------------------------------------------- parsing


def _where(key: str) -> str:
    return f"Variable {VARIABLE_KEY!r}, key {key!r}"


def _explain(error: ErrorDetails) -> str:
    """One pydantic error as the operator reads it: which key, what it should hold, what it holds."""
    key = str(error["loc"][0])
    kind, got, context = error["type"], error["input"], error.get("ctx") or {}
    if key == "expected_backends" and kind != "unknown_backend":
        if len(error["loc"]) == 1:
            return f"{_where(key)}: {_EXPECTED_BACKENDS_SHAPE}, got {got!r}"
        backup_type = error["loc"][1]
        return f"{_where(key)}: type {backup_type!r} must map to a non-empty list of backends, got {got!r}"
    field = Settings.model_fields[key]
    if kind == "int_type":
        nullable = type(None) in get_args(field.annotation)
        return f"{_where(key)}: expected an integer{' or null' if nullable else ''}, got {got!r}"
    if kind == "bool_type":
        return f"{_where(key)}: expected true or false, got {got!r}"
    if kind == "greater_than_equal":
        return f"{_where(key)}: must be >= {context['ge']}, got {got!r}"
    if kind in ("string_type", "string_too_short", "string_pattern_mismatch"):
        return f"{_where(key)}: expected a non-empty string, got {got!r}"
    if kind == "literal_error":
        return f"{_where(key)}: expected one of {list(get_args(field.annotation))!r}, got {got!r}"
    return f"{_where(key)}: {error['msg']}"


def parse_settings(raw: str | dict[str, Any] | None) -> Settings:
    """Validate the Variable (raw JSON text or an already decoded object)."""
    if raw is None:
        return Settings()
    if isinstance(raw, str):
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"Variable {VARIABLE_KEY!r} is not valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno}"
            ) from exc
    else:
        data = raw
    if not isinstance(data, dict):
        raise ConfigError(f"Variable {VARIABLE_KEY!r} must be a JSON object, got {type(data).__name__}")
    from include.backup_integrity.config.drill_settings import drill_values  # it imports ConfigError

    data = {**data, **drill_values(data), **_store_defaults(data)}
    try:
        named = data.get("stores")
        data = {**data, **recovery_values(data, tuple(named) if isinstance(named, dict) else BACKENDS)}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return _backends_configured(_waits_in_order(Settings.model_validate(data)))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            raise ConfigError(
                f"Variable {VARIABLE_KEY!r} has unknown key(s) {unknown!r}; "
                f"known keys are {sorted(Settings.model_fields)!r}"
            ) from None
        raise ConfigError("; ".join(_explain(e) for e in errors)) from None


def require_connection(conn_id: str, purpose: str) -> None:
    """Fail with a clear message when an Airflow connection the run needs is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConfigError(
            f"Airflow connection {conn_id!r} ({purpose}) is not defined; create it in the UI, "
            f"as AIRFLOW_CONN_{conn_id.upper()} or in your secrets backend"
        ) from None


def _store_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Check ``stores`` against the keys it replaces, and default ``expected_backends`` to its stores."""
    from include.backup_integrity.config.store_settings import (
        LEGACY_STORE_KEYS,
        STORES_KEY,
        default_expected_backends,
        parse_stores,
    )

    if data.get(STORES_KEY) is None:
        return {}
    clashing = [key for key in LEGACY_STORE_KEYS if key in data]
    if clashing:
        raise ConfigError(
            f"Variable {VARIABLE_KEY!r}: key {STORES_KEY!r} replaces {list(LEGACY_STORE_KEYS)!r}; "
            f"remove {clashing!r} and describe those stores in {STORES_KEY!r}"
        )
    stores = parse_stores(data[STORES_KEY])
    if "expected_backends" in data:
        return {}
    return {"expected_backends": default_expected_backends(stores, DEFAULT_EXPECTED_BACKENDS)}


def _backends_configured(settings: Settings) -> Settings:
    """``expected_backends`` may name only configured stores."""
    known = settings.store_names
    for backup_type, backends in settings.expected_backends.items():
        unknown = [b for b in backends if b not in known]
        if unknown:
            raise ConfigError(
                f"{_where('expected_backends')}: type {backup_type!r} names unknown backend(s) {unknown!r}; "
                f"configured stores are {list(known)!r}"
            )
    return settings


def _waits_in_order(settings: Settings) -> Settings:
    """A lock may not be waited for longer than the statement that waits for it may run."""
    if settings.db_lock_timeout_seconds > settings.db_statement_timeout_seconds:
        raise ConfigError(
            f"{_where('db_lock_timeout_seconds')}: must not exceed db_statement_timeout_seconds "
            f"({settings.db_statement_timeout_seconds})"
        )
    return settings
