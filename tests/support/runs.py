"""Running the DAG in tests: the window a ``dag.test()`` run gets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devtools.runs import load_dag

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["load_dag", "window_end_for"]


def window_end_for(logical_date: datetime) -> datetime:
    """The data interval end ``dag.test(logical_date=...)`` gives with the hourly timetable."""
    return logical_date.replace(minute=0, second=0, microsecond=0)
