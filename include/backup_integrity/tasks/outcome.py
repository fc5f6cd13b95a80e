"""The ``check_outcome`` task: end the run failed when any of its checks failed and was not repaired.

Its failure is the run's verdict, already recorded and notified by
``raise_alerts``; the crash callback therefore stays silent about it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from include.backup_integrity.domain.statistics import run_failed

if TYPE_CHECKING:
    from include.backup_integrity.domain.records import Statistics

log = logging.getLogger(__name__)

OUTCOME_TASK_ID = "check_outcome"


class IntegrityFailure(Exception):
    """The run found problems (already recorded and notified): the run must end failed."""


def check_outcome(statistics: Statistics) -> None:
    """End the run failed when any of its own checks failed or could not run."""
    if run_failed(statistics):
        raise IntegrityFailure(
            f"{statistics['integrity_failures']} of {statistics['total_backups_checked']} backup(s) "
            f"failed verification: {statistics['missing_files']} missing, "
            f"{statistics['storage_mismatches']} size mismatches, "
            f"{statistics['checksum_mismatches']} checksum mismatches, "
            f"{statistics['backend_errors']} backend errors, "
            f"{statistics['invalid_records']} invalid records (alerts raised)"
            + (
                f"; {statistics['repaired']} repaired, {statistics['repair_failed']} not repaired"
                if "repaired" in statistics
                else ""
            )
            + recovery_part(statistics)
        )
    log.info("all %d check(s) passed", statistics.get("checks_total", 0))


def recovery_part(statistics: Statistics) -> str:
    """What the recovery checks found, for the failure message ("" when nothing)."""
    found = []
    if statistics.get("stale_types"):
        found.append(f"stale backup type(s) {statistics['stale_types']}")
    if statistics.get("wal_gaps"):
        found.append(f"{statistics['wal_gaps']} WAL gap(s)")
    for key, label in (
        ("not_immutable_alerts", "store(s) required to be immutable are not"),
        ("retention_short", "copies retained too briefly"),
    ):
        if statistics.get(key):
            found.append(f"{statistics[key]} {label}")
    return f"; recovery: {', '.join(found)}" if found else ""
