"""The verifier's trigger params: declared once, as data, for the DAG and for each run.

:data:`TRIGGER_PARAMS` is the one declaration: :func:`trigger_params` turns it into
the DAG's ``Param`` objects (the trigger form shows each title and description),
:func:`params_of_run` reads a run's conf against it, and :func:`resolve_run_options`
applies the params to the Variable's settings. Importing this module reads
nothing: the DAG file imports it at parse time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.backup_integrity.config.settings import DEFAULT_MODE, MODES, REPAIR_MODES, ConfigError

if TYPE_CHECKING:
    from airflow.sdk import Param

    from include.backup_integrity.config.settings import Settings


@dataclass(frozen=True)
class TriggerParam:
    """One trigger param: its default, how the form names and explains it, its JSON schema."""

    default: Any
    title: str
    description: str
    schema: dict[str, Any]


TRIGGER_PARAMS: dict[str, TriggerParam] = {
    "mode": TriggerParam(
        DEFAULT_MODE,
        "Mode",
        "rolling: quick checks of everything plus this hour's slice of the rotating full re-hash "
        "(and a re-read of anything changed); quick: existence, size, fingerprints and the "
        "store's own SHA-256, never a download; full: read every object and compare its SHA-256.",
        {"enum": ["rolling", "quick", "full"]},
    ),
    "lookback_days": TriggerParam(
        None,
        "Lookback (days)",
        "Days before the window end to verify; empty: the Variable's value.",
        {"type": ["null", "integer"], "minimum": 1},
    ),
    "max_backups": TriggerParam(
        None,
        "At most this many backups",
        "Check at most this many backups, newest first; empty: the Variable's value.",
        {"type": ["null", "integer"], "minimum": 1},
    ),
    "backup_ids": TriggerParam(
        [],
        "Backup ids",
        "Check exactly these COMPLETED backups, whatever their age; empty: the window.",
        {"type": "array", "items": {"type": "string"}},
    ),
    "repair": TriggerParam(
        None,
        "Repair",
        "Repair bad copies from a replica verified good: off, plan (list only) or apply; "
        "empty: the Variable's value (default off).",
        {"type": ["null", "string"], "enum": [None, *REPAIR_MODES]},
    ),
}

#: The trigger params' defaults (what a run without conf gets).
PARAM_DEFAULTS: dict[str, Any] = {name: param.default for name, param in TRIGGER_PARAMS.items()}


def trigger_params() -> dict[str, Param]:
    """The DAG's ``params``, built from :data:`TRIGGER_PARAMS`."""
    from airflow.sdk import Param

    return {
        name: Param(
            copy.deepcopy(param.default),
            title=param.title,
            description=param.description,
            **copy.deepcopy(param.schema),
        )
        for name, param in TRIGGER_PARAMS.items()
    }


@dataclass(frozen=True)
class RunOptions:
    """What one run does: the Variable's settings with the trigger params applied."""

    mode: str
    lookback_days: int
    max_backups: int | None
    backup_ids: list[str]
    repair: str = "off"


def params_of_run(conf: dict[str, Any] | None) -> dict[str, Any]:
    """The run's params: the declared defaults overlaid with the run's conf.

    Read from the run's conf rather than from the task's ``params``: when tasks
    run in one process (``dag.test()``), Airflow resolves a run's conf into the
    DAG's shared Param objects, and the next run would inherit it.
    """
    params = copy.deepcopy(PARAM_DEFAULTS)
    params.update({key: value for key, value in (conf or {}).items() if key in PARAM_DEFAULTS})
    return params


def _param_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"trigger param {name!r}: expected null or an integer >= {minimum}, got {value!r}")
    return value


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
    if repair is None:
        repair = settings.repair
    elif repair not in REPAIR_MODES:
        raise ConfigError(f"trigger param 'repair': expected one of {list(REPAIR_MODES)!r}, got {repair!r}")
    return RunOptions(
        mode=mode,
        lookback_days=lookback if lookback is not None else settings.lookback_days,
        max_backups=cap if cap is not None else settings.max_backups,
        backup_ids=[b.strip() for b in backup_ids if b.strip()],
        repair=repair,
    )
