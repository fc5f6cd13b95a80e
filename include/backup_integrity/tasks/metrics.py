"""The run's statistics as Airflow metrics, so existing StatsD/OpenTelemetry dashboards see them.

Each numeric statistic becomes a gauge ``backup_integrity.<statistic>`` (after
Airflow's own prefix, e.g. ``airflow.backup_integrity.missing_files``). Metrics
are a side channel: a metrics backend that fails never fails the run.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "backup_integrity"


def numeric_statistics(stats: dict[str, Any]) -> dict[str, float]:
    """The statistics that are numbers (booleans, text and lists are not metrics).

    Of the maps, ``estimated_cost_usd`` is one metric per store:
    ``backup_integrity.estimated_cost_usd.<store>`` (and ``.total``).
    """
    values = {
        key: value
        for key, value in stats.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    for store, dollars in (stats.get("estimated_cost_usd") or {}).items():
        values[f"estimated_cost_usd.{store}"] = dollars
    return values


def _stats() -> Any:
    """Airflow's public metrics facade, (re)initialised from ``[metrics]`` as a task runner does.

    A worker's task runner initialises it at start-up; ``dag.test()`` and scripts run
    tasks without one and would otherwise emit to nowhere. There is no public way to
    ask whether it was initialised, so it is initialised here each time (once per run,
    from the same configuration as the task runner's, so nothing it set is lost).
    """
    from airflow.sdk.configuration import conf
    from airflow.sdk.observability.metrics import stats_utils
    from airflow.sdk.observability.stats import Stats

    Stats.initialize(
        factory=stats_utils.get_stats_factory(),
        export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
    )
    return Stats


def emit_statistics(stats: dict[str, Any]) -> int:
    """Send every numeric statistic as a gauge; return how many were sent."""
    values = numeric_statistics(stats)
    try:
        facade = _stats()
        for key, value in values.items():
            facade.gauge(f"{PREFIX}.{key}", value)
    except Exception:
        log.exception("could not emit the run's statistics as metrics")
        return 0
    return len(values)
