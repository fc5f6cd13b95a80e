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
    """The statistics that are numbers (booleans, text and lists are not metrics)."""
    return {
        key: value
        for key, value in stats.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _stats_module() -> Any:
    """Airflow's metrics facade, initialised from [metrics] when no task runner has done it.

    A worker's task runner initialises it; ``dag.test()`` and scripts run tasks
    without one, and would otherwise emit to nowhere.
    """
    from airflow.sdk._shared.observability.metrics import stats as shared
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    if getattr(shared, "_factory", None) is None:
        from airflow.sdk.configuration import conf

        stats.initialize(
            factory=stats_utils.get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=True),
        )
    return stats


def emit_statistics(stats: dict[str, Any]) -> int:
    """Send every numeric statistic as a gauge; return how many were sent."""
    values = numeric_statistics(stats)
    try:
        facade = _stats_module()
        for key, value in values.items():
            facade.gauge(f"{PREFIX}.{key}", value)
    except Exception:
        log.exception("could not emit the run's statistics as metrics")
        return 0
    return len(values)
