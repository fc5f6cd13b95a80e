"""The restore drill's part of the ``backup_integrity`` Variable, and the ``restore_drill`` DAG's params.

Two keys of the Variable belong here: ``restore_drill`` (an object; absent or null:
drills are not configured) and the top-level ``wal_segment_bytes``, which the
recovery-chain checks share. :func:`drill_values` validates both and returns them
normalised, defaults filled in, as plain JSON; :func:`parse_settings` stores them on
the :class:`~include.backup_integrity.config.settings.Settings` it builds.

``formats`` and ``checks`` are maps with defaults: the operator's value is merged over
them entry by entry, and an entry set to null removes the default.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.params import TriggerParam
from include.backup_integrity.config.settings import ConfigError
from include.backup_integrity.domain.drills import (
    DEFAULT_PG_DUMP_CHECK,
    FORMATS,
    NO_FORMAT,
    PG_DUMP,
    TAR,
    WAL,
)
from include.backup_integrity.domain.restore_formats import (
    is_valid_wal_segment_size,
)

if TYPE_CHECKING:
    from airflow.sdk import Param

DRILL_KEY = "restore_drill"
WAL_SEGMENT_KEY = "wal_segment_bytes"

RESTORE_TARGET_CONN_ID = "backup_restore_target"
DECRYPT_CONN_ID = "backup_decrypt"
#: The environment variable a decrypt command reads the passphrase from.
PASSPHRASE_ENV = "BACKUP_PASSPHRASE"

#: The ``drill`` task's ``execution_timeout``: a backstop above any drill's own ``timeout_minutes``.
DRILL_TASK_TIMEOUT = timedelta(hours=12)
#: The longest ``timeout_minutes``: the task's backstop less time to drop the scratch database.
MAX_TIMEOUT_MINUTES = int(DRILL_TASK_TIMEOUT.total_seconds() // 60) - 15

DEFAULT_FORMATS: dict[str, str] = {
    "FULL_DATABASE": PG_DUMP,
    "TENANT_BACKUP": PG_DUMP,
    "CONFIGURATION": TAR,
    "WAL_ARCHIVE": WAL,
}

#: The ``restore_drill`` DAG's trigger params, declared once (the trigger form shows each title).
DRILL_TRIGGER_PARAMS: dict[str, TriggerParam] = {
    "backup_ids": TriggerParam(
        [],
        "Backup ids",
        "Drill exactly these COMPLETED backups, whatever their age; empty: choose per type from "
        "the lookback window.",
        {"type": "array", "items": {"type": "string"}},
    ),
    "per_type": TriggerParam(
        None,
        "Backups per type",
        "Backups drilled per backup type; empty: the Variable's restore_drill.per_type.",
        {"type": ["null", "integer"], "minimum": 1},
    ),
}
DRILL_PARAM_DEFAULTS: dict[str, Any] = {name: param.default for name, param in DRILL_TRIGGER_PARAMS.items()}


class DrillConfigError(ConfigError):
    """The drill's part of the Variable, or a drill trigger param, is unusable."""


@dataclass(frozen=True)
class DrillSettings:
    """The validated ``restore_drill`` object, every default applied."""

    decrypt_command: list[str] | None = None
    formats: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FORMATS))
    per_type: int = 1
    checks: dict[str, list[str]] = field(default_factory=dict)
    timeout_minutes: float = 60
    max_bytes: int = 53_687_091_200
    work_dir: str | None = None
    max_age_days: float = 8

    def format_of(self, backup_type: str) -> str:
        return self.formats.get(backup_type, NO_FORMAT)

    def drilled_types(self) -> list[str]:
        """The backup types drilled at all (a format other than ``none``)."""
        return sorted(t for t, f in self.formats.items() if f != NO_FORMAT)

    def checks_for(self, backup_type: str) -> list[str]:
        return list(self.checks.get(backup_type, []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "decrypt_command": self.decrypt_command,
            "formats": dict(self.formats),
            "per_type": self.per_type,
            "checks": {k: list(v) for k, v in self.checks.items()},
            "timeout_minutes": self.timeout_minutes,
            "max_bytes": self.max_bytes,
            "work_dir": self.work_dir,
            "max_age_days": self.max_age_days,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrillSettings:
        return cls(**data)


def _where(key: str) -> str:
    return f"Variable 'backup_integrity', key {key!r}"


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise DrillConfigError(f"{_where(key)}: expected a number > 0, got {value!r}")
    return value


def _integer(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DrillConfigError(f"{_where(key)}: expected an integer >= {minimum}, got {value!r}")
    return value


def _merged(key: str, value: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The operator's map over the defaults, entry by entry; an entry set to null removes one."""
    if not isinstance(value, dict):
        raise DrillConfigError(
            f"{_where(key)}: expected an object mapping backup_type to a value, got {value!r}"
        )
    merged = dict(defaults)
    for backup_type, entry in value.items():
        if not isinstance(backup_type, str) or not backup_type.strip():
            raise DrillConfigError(
                f"{_where(key)}: backup types must be non-empty strings, got {backup_type!r}"
            )
        if entry is None:
            merged.pop(backup_type, None)
        else:
            merged[backup_type] = entry
    return merged


def _validate_decrypt_command(value: Any) -> list[str] | None:
    key = f"{DRILL_KEY}.decrypt_command"
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a for a in value):
        raise DrillConfigError(
            f"{_where(key)}: expected null or a non-empty list of strings (an argv, run without a shell), "
            f"got {value!r}"
        )
    return list(value)


def _validate_formats(value: Any) -> dict[str, str]:
    key = f"{DRILL_KEY}.formats"
    formats = _merged(key, value, DEFAULT_FORMATS)
    for backup_type, backup_format in formats.items():
        if backup_format not in FORMATS:
            raise DrillConfigError(
                f"{_where(key)}: type {backup_type!r} has format {backup_format!r}; "
                f"expected one of {list(FORMATS)!r}"
            )
    return formats


def _validate_checks(value: Any, formats: dict[str, str]) -> dict[str, list[str]]:
    key = f"{DRILL_KEY}.checks"
    defaults = {t: [DEFAULT_PG_DUMP_CHECK] for t, f in formats.items() if f == PG_DUMP}
    checks = defaults if value is None else _merged(key, value, defaults)
    for backup_type, queries in checks.items():
        if not isinstance(queries, list) or not all(isinstance(q, str) and q.strip() for q in queries):
            raise DrillConfigError(
                f"{_where(key)}: type {backup_type!r} must map to a list of SQL queries (each returning "
                f"one boolean), or null to remove the default; got {queries!r}"
            )
        if queries and formats.get(backup_type) in (TAR, WAL):
            raise DrillConfigError(
                f"{_where(key)}: type {backup_type!r} has format {formats[backup_type]!r}; checks are SQL "
                "run in a restored database and apply to pg_dump types only"
            )
    return {t: list(q) for t, q in checks.items()}


def parse_drill_settings(value: Any) -> DrillSettings | None:
    """Validate the ``restore_drill`` object; None when drills are not configured."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DrillConfigError(f"{_where(DRILL_KEY)}: expected a JSON object or null, got {value!r}")
    known = set(DrillSettings.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise DrillConfigError(
            f"{_where(DRILL_KEY)} has unknown key(s) {unknown!r}; known keys are {sorted(known)!r}"
        )
    values: dict[str, Any] = {}
    if "decrypt_command" in value:
        values["decrypt_command"] = _validate_decrypt_command(value["decrypt_command"])
    formats = (
        _validate_formats(value["formats"]) if value.get("formats") is not None else dict(DEFAULT_FORMATS)
    )
    values["formats"] = formats
    values["checks"] = _validate_checks(value.get("checks"), formats)
    if "per_type" in value:
        values["per_type"] = _integer(f"{DRILL_KEY}.per_type", value["per_type"], 1)
    if "timeout_minutes" in value:
        minutes = _positive_number(f"{DRILL_KEY}.timeout_minutes", value["timeout_minutes"])
        if minutes > MAX_TIMEOUT_MINUTES:
            raise DrillConfigError(
                f"{_where(DRILL_KEY + '.timeout_minutes')}: at most {MAX_TIMEOUT_MINUTES}, got {minutes!r} "
                f"(the drill task's execution_timeout is {DRILL_TASK_TIMEOUT}, with time left to clean up)"
            )
        values["timeout_minutes"] = minutes
    if "max_bytes" in value:
        values["max_bytes"] = _integer(f"{DRILL_KEY}.max_bytes", value["max_bytes"], 1)
    if "max_age_days" in value:
        values["max_age_days"] = _positive_number(f"{DRILL_KEY}.max_age_days", value["max_age_days"])
    if value.get("work_dir") is not None:
        work_dir = value["work_dir"]
        if not isinstance(work_dir, str) or not os.path.isabs(work_dir):
            raise DrillConfigError(
                f"{_where(DRILL_KEY + '.work_dir')}: expected null or an absolute path, got {work_dir!r}"
            )
        values["work_dir"] = work_dir
    return DrillSettings(**values)


def parse_wal_segment_bytes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not is_valid_wal_segment_size(value):
        raise DrillConfigError(
            f"{_where(WAL_SEGMENT_KEY)}: expected a power of two from 1048576 (1 MiB) to "
            f"1073741824 (1 GiB), as initdb --wal-segsize allows; got {value!r}"
        )
    return value


def drill_values(data: dict[str, Any]) -> dict[str, Any]:
    """The drill keys of the decoded Variable, validated, as :class:`Settings` field values."""
    values: dict[str, Any] = {}
    if DRILL_KEY in data:
        drill = parse_drill_settings(data[DRILL_KEY])
        values[DRILL_KEY] = drill.to_dict() if drill is not None else None
    if WAL_SEGMENT_KEY in data:
        values[WAL_SEGMENT_KEY] = parse_wal_segment_bytes(data[WAL_SEGMENT_KEY])
    return values


def drill_settings_of(restore_drill: dict[str, Any] | None) -> DrillSettings | None:
    """The typed drill settings of a validated ``Settings.restore_drill`` value."""
    return None if restore_drill is None else DrillSettings.from_dict(restore_drill)


# ----------------------------------------------------------------------------- trigger params


def drill_trigger_params() -> dict[str, Param]:
    """The ``restore_drill`` DAG's ``params``, built from :data:`DRILL_TRIGGER_PARAMS`."""
    from airflow.sdk import Param

    return {
        name: Param(
            copy.deepcopy(param.default),
            title=param.title,
            description=param.description,
            **copy.deepcopy(param.schema),
        )
        for name, param in DRILL_TRIGGER_PARAMS.items()
    }


def drill_params_of_run(conf: dict[str, Any] | None) -> dict[str, Any]:
    """The run's params: the declared defaults overlaid with the run's conf (see ``params_of_run``)."""
    params = copy.deepcopy(DRILL_PARAM_DEFAULTS)
    params.update({k: v for k, v in (conf or {}).items() if k in DRILL_PARAM_DEFAULTS})
    return params


@dataclass(frozen=True)
class DrillRunOptions:
    backup_ids: list[str]
    per_type: int


def resolve_drill_options(drill: DrillSettings, params: dict[str, Any]) -> DrillRunOptions:
    """Apply the trigger params to the drill settings for one run."""
    backup_ids = params.get("backup_ids") or []
    if isinstance(backup_ids, str):
        backup_ids = [part.strip() for part in backup_ids.replace("\n", ",").split(",")]
    if not isinstance(backup_ids, list) or not all(isinstance(b, str) for b in backup_ids):
        raise DrillConfigError(
            f"trigger param 'backup_ids': expected a list of backup ids, got {backup_ids!r}"
        )
    per_type = params.get("per_type")
    if per_type is not None and (isinstance(per_type, bool) or not isinstance(per_type, int) or per_type < 1):
        raise DrillConfigError(
            f"trigger param 'per_type': expected null or an integer >= 1, got {per_type!r}"
        )
    return DrillRunOptions(
        backup_ids=[b.strip() for b in backup_ids if b.strip()],
        per_type=per_type if per_type is not None else drill.per_type,
    )
