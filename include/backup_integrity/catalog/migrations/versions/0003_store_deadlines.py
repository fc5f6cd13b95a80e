"""The first timeout of each store in a run, shared by the run's chunks (bounded waits).

Revision ID: 0003_store_deadlines
Revises: 0002_restore_drills
"""

from __future__ import annotations

from alembic import op

revision = "0003_store_deadlines"
down_revision = "0002_restore_drills"
branch_labels = None
depends_on = None

#: Kept equal to ``include.backup_integrity.catalog.deadlines.STORE_DEADLINE_DDL`` (a test checks).
STORE_DEADLINE_DDL = """
CREATE TABLE IF NOT EXISTS backup_integrity_store_deadline (
    run_id text NOT NULL,
    backend text NOT NULL,
    first_timeout_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, backend)
)
"""


def upgrade() -> None:
    op.execute(STORE_DEADLINE_DDL)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS backup_integrity_store_deadline")
