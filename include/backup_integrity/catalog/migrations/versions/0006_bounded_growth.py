"""Bounded growth: chunks hand their failures to the later tasks through the catalog, not XCom.

Revision ID: 0006_bounded_growth
Revises: 0005_notice_expiry

However many checks fail, a chunk's XCom stays small: its failures wait in
``backup_integrity_chunk_failure`` for ``repair_copies``, ``aggregate_results`` and
``raise_alerts``, and a later run removes them once their run is recorded. The
retention of history (``retention_days``) needs an index to find old notices.
"""

from __future__ import annotations

from alembic import op

revision = "0006_bounded_growth"
down_revision = "0005_notice_expiry"
branch_labels = None
depends_on = None

#: Kept equal to ``include.backup_integrity.catalog.handover.CHUNK_FAILURE_DDL`` (a test checks).
CHUNK_FAILURE_DDL = """
CREATE TABLE IF NOT EXISTS backup_integrity_chunk_failure (
    run_id text NOT NULL,
    label text NOT NULL,
    backup_id uuid NOT NULL,
    backend text NOT NULL,
    result jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, label, backup_id, backend)
)
"""


def upgrade() -> None:
    op.execute(CHUNK_FAILURE_DDL)
    op.execute(
        "CREATE INDEX IF NOT EXISTS backup_integrity_run_recorded_idx ON backup_integrity_run (recorded_at)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS backup_integrity_repair_recorded_idx "
        "ON backup_integrity_repair (recorded_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS backup_integrity_repair_recorded_idx")
    op.execute("DROP INDEX IF EXISTS backup_integrity_run_recorded_idx")
    op.execute("DROP TABLE IF EXISTS backup_integrity_chunk_failure")
