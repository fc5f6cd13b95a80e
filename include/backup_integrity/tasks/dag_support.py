"""What the DAG files use besides the task bodies, so that they import nothing of ours but ``tasks``.

At parse time: the trigger params, the drill task's timeout and the types the task
wrappers return. In a task: the Variable's key, its parser and the error that fails a
run without retries, and the params of a run. Each is the ``config`` or ``domain``
name itself, re-exported; importing this module reads no Variable, connection or
database, and costs what importing those two layers costs.
"""

from __future__ import annotations

from include.backup_integrity.config.drill_settings import (
    DRILL_TASK_TIMEOUT,
    drill_params_of_run,
    drill_trigger_params,
)
from include.backup_integrity.config.params import params_of_run, trigger_params
from include.backup_integrity.config.settings import VARIABLE_KEY, ConfigError, parse_settings
from include.backup_integrity.domain.drills import DrillItem, DrillOutcome, DrillStatistics
from include.backup_integrity.domain.records import Chunk, ChunkOutcome, Statistics

__all__ = [
    "DRILL_TASK_TIMEOUT",
    "VARIABLE_KEY",
    "Chunk",
    "ChunkOutcome",
    "ConfigError",
    "DrillItem",
    "DrillOutcome",
    "DrillStatistics",
    "Statistics",
    "drill_params_of_run",
    "drill_trigger_params",
    "params_of_run",
    "parse_settings",
    "trigger_params",
]
