"""Restore drill runs: every configured drill run, kept in ``backup_integrity_restore_run``.

Revision ID: 0010_restore_runs
Revises: 0009_console_indexes

One row per drill run, whether it drilled anything or not: its window end and the
statistics it returned. ``restore_overdue`` counts ``max_age_days`` from the earliest
window end, so a type whose backups never had a copy to drill becomes overdue too
(the drill history alone starts the clock only once something was drilled). A new
table: no existing row is touched.
"""

from __future__ import annotations

from alembic import op

revision = "0010_restore_runs"
down_revision = "0009_console_indexes"
branch_labels = None
depends_on = None

#: The shipped ``sql/integrity_tables.sql`` carries the same statement (a test checks).
RESTORE_RUN_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS backup_integrity_restore_run (
    run_id text PRIMARY KEY,
    window_end timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    statistics jsonb NULL
)
"""


def upgrade() -> None:
    op.execute(RESTORE_RUN_TABLE_DDL)


def downgrade() -> None:
    raise NotImplementedError(
        "0010_restore_runs is not undone: it would drop the drill runs and the overdue clock's start; "
        "drop backup_integrity_restore_run by hand if meant"
    )
