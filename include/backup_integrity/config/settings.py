"""The ``backup_integrity`` Variable and the DAG's trigger params, validated.

Everything here is pure: the DAG reads the raw Variable text inside a task and
hands it to :func:`parse_settings`, so a typo in the Variable fails the run with
a message naming the key instead of being silently replaced by defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

VARIABLE_KEY = "backup_integrity"

CATALOG_CONN_ID = "backup_catalog"
NOTIFY_CONN_ID = "backup_notify"
BACKEND_CONN_IDS = {"r2": "backup_r2", "b2": "backup_b2"}

BACKENDS = ("local", "r2", "b2")
MODES = ("quick", "rolling", "full")
DEFAULT_MODE = "rolling"
REPAIR_MODES = ("off", "plan", "apply")

#: The DAG's trigger params and their defaults (the trigger form shows these).
PARAM_DEFAULTS: dict[str, Any] = {
    "mode": DEFAULT_MODE,
    "lookback_days": None,
    "max_backups": None,
    "backup_ids": [],
    "repair": None,
}

DEFAULT_EXPECTED_BACKENDS: dict[str, list[str]] = {
    "FULL_DATABASE": ["local", "r2", "b2"],
    "TENANT_BACKUP": ["local", "r2", "b2"],
    "CONFIGURATION": ["local", "r2", "b2"],
    "WAL_ARCHIVE": ["r2", "b2"],
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class ConfigError(ValueError):
    """The Variable or the trigger params hold something the verifier cannot use."""


@dataclass(frozen=True)
class Settings:
    """The validated content of the ``backup_integrity`` Variable."""

    local_root: str = "/var/backups/jewelry-shop"
    r2_bucket: str = "securesyntax"
    b2_bucket: str = "securesyntax"
    lookback_days: int = 30
    max_backups: int | None = None
    backups_table: str = "backups_backup"
    alerts_table: str = "backups_backupalert"
    expected_backends: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_EXPECTED_BACKENDS.items()}
    )
    chunk_size: int = 50
    max_chunks_per_backend: int = 8
    rehash_period_days: int = 7
    rehash_budget_bytes: int | None = None
    #: The watchdog alerts when no run has finished this many hours after its scheduled time.
    stall_after_hours: float = 2
    repair: str = "off"
    #: Restore drills (``config/drill_settings.py``): the validated object, or None when not configured.
    restore_drill: dict[str, Any] | None = None
    wal_segment_bytes: int = 16 * 1024 * 1024

    def bucket_for(self, backend: str) -> str:
        """The bucket configured for an S3-compatible backend."""
        return {"r2": self.r2_bucket, "b2": self.b2_bucket}[backend]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunOptions:
    """What one run does: the Variable's settings with the trigger params applied."""

    mode: str
    lookback_days: int
    max_backups: int | None
    backup_ids: list[str]
    repair: str = "off"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _where(key: str) -> str:
    return f"Variable {VARIABLE_KEY!r}, key {key!r}"


def _require_int(key: str, value: Any, *, minimum: int, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an integer or null" if nullable else "an integer"
        raise ConfigError(f"{_where(key)}: expected {kind}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{_where(key)}: must be >= {minimum}, got {value}")
    return value


def _require_positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{_where(key)}: expected a number of hours > 0, got {value!r}")
    return value


def _require_str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_where(key)}: expected a non-empty string, got {value!r}")
    return value


def _validate_expected_backends(value: Any) -> dict[str, list[str]]:
    key = "expected_backends"
    if not isinstance(value, dict) or not value:
        raise ConfigError(
            f"{_where(key)}: expected a JSON object mapping backup_type to a list of backends, got {value!r}"
        )
    result: dict[str, list[str]] = {}
    for backup_type, backends in value.items():
        if not isinstance(backends, list) or not backends:
            raise ConfigError(
                f"{_where(key)}: type {backup_type!r} must map to a non-empty list of backends, "
                f"got {backends!r}"
            )
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise ConfigError(
                f"{_where(key)}: type {backup_type!r} names unknown backend(s) {unknown!r}; "
                f"known backends are {list(BACKENDS)!r}"
            )
        result[backup_type] = list(dict.fromkeys(backends))
    return result


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
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"Variable {VARIABLE_KEY!r} has unknown key(s) {unknown!r}; known keys are {sorted(known)!r}"
        )
    values: dict[str, Any] = {}
    for key in ("local_root", "r2_bucket", "b2_bucket", "backups_table", "alerts_table"):
        if key in data:
            values[key] = _require_str(key, data[key])
    for key in ("r2_bucket", "b2_bucket"):
        if key in values and not _BUCKET.match(values[key]):
            raise ConfigError(f"{_where(key)}: {values[key]!r} is not a valid bucket name")
    for key in ("backups_table", "alerts_table"):
        if key in values and not _IDENTIFIER.match(values[key]):
            raise ConfigError(f"{_where(key)}: {values[key]!r} is not a table name ([schema.]identifier)")
    if "lookback_days" in data:
        values["lookback_days"] = _require_int("lookback_days", data["lookback_days"], minimum=1)
    if "max_backups" in data:
        values["max_backups"] = _require_int("max_backups", data["max_backups"], minimum=1, nullable=True)
    if "chunk_size" in data:
        values["chunk_size"] = _require_int("chunk_size", data["chunk_size"], minimum=1)
    if "max_chunks_per_backend" in data:
        values["max_chunks_per_backend"] = _require_int(
            "max_chunks_per_backend", data["max_chunks_per_backend"], minimum=1
        )
    if "rehash_period_days" in data:
        values["rehash_period_days"] = _require_int(
            "rehash_period_days", data["rehash_period_days"], minimum=0
        )
    if "rehash_budget_bytes" in data:
        values["rehash_budget_bytes"] = _require_int(
            "rehash_budget_bytes", data["rehash_budget_bytes"], minimum=1, nullable=True
        )
    if "stall_after_hours" in data:
        values["stall_after_hours"] = _require_positive_number("stall_after_hours", data["stall_after_hours"])
    if "expected_backends" in data:
        values["expected_backends"] = _validate_expected_backends(data["expected_backends"])
    if "repair" in data:
        values["repair"] = _require_repair_mode(_where("repair"), data["repair"])
    from include.backup_integrity.config.drill_settings import drill_values  # it imports ConfigError

    values.update(drill_values(data))
    return replace(Settings(), **values)


def _require_repair_mode(where: str, value: Any) -> str:
    if value not in REPAIR_MODES:
        raise ConfigError(f"{where}: expected one of {list(REPAIR_MODES)!r}, got {value!r}")
    return value


def _param_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"trigger param {name!r}: expected null or an integer >= {minimum}, got {value!r}")
    return value


def params_of_run(conf: dict[str, Any] | None) -> dict[str, Any]:
    """The run's params: the declared defaults overlaid with the run's conf.

    Read from the run's conf rather than from the task's ``params``: when tasks
    run in one process (``dag.test()``), Airflow resolves a run's conf into the
    DAG's shared Param objects, and the next run would inherit it.
    """
    params = {
        key: (list(value) if isinstance(value, list) else value) for key, value in PARAM_DEFAULTS.items()
    }
    params.update({key: value for key, value in (conf or {}).items() if key in PARAM_DEFAULTS})
    return params


def resolve_run_options(settings: Settings, params: dict[str, Any] | None) -> RunOptions:
    """Apply the trigger params to the Variable's settings for one run."""
    params = dict(params or {})
    mode = params.get("mode") or DEFAULT_MODE
    if mode not in MODES:
        raise ConfigError(f"trigger param 'mode': expected one of {list(MODES)!r}, got {mode!r}")
    lookback = _param_int("lookback_days", params.get("lookback_days"), 1)
    cap = _param_int("max_backups", params.get("max_backups"), 1)
    backup_ids = params.get("backup_ids") or []
    if isinstance(backup_ids, str):
        backup_ids = [part.strip() for part in backup_ids.replace("\n", ",").split(",")]
    if not isinstance(backup_ids, list) or not all(isinstance(b, str) for b in backup_ids):
        raise ConfigError(f"trigger param 'backup_ids': expected a list of backup ids, got {backup_ids!r}")
    repair = params.get("repair")
    repair = settings.repair if repair is None else _require_repair_mode("trigger param 'repair'", repair)
    return RunOptions(
        mode=mode,
        lookback_days=lookback if lookback is not None else settings.lookback_days,
        max_backups=cap if cap is not None else settings.max_backups,
        backup_ids=[b.strip() for b in backup_ids if b.strip()],
        repair=repair,
    )


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
