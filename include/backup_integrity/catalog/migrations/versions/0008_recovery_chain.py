"""Retention reads: the object-lock retain-until date each object's last read found, and when.

Revision ID: 0008_recovery_chain
Revises: 0007_store_capabilities

The rotation's read of an object on an S3 store also reads its retention (the GET's
``ObjectLockRetainUntilDate``); ``retention_short`` alerts are judged from these two
columns. Adding NULL columns rewrites no row.
"""

from __future__ import annotations

from alembic import op

revision = "0008_recovery_chain"
down_revision = "0007_store_capabilities"
branch_labels = None
depends_on = None

COLUMNS = ("retain_until", "retention_read_at")


def upgrade() -> None:
    bind = op.get_bind()
    for column in COLUMNS:
        exists = bind.exec_driver_sql(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            f"AND table_name = 'backup_integrity_object' AND column_name = '{column}'"
        ).fetchone()
        if exists is None:  # the shipped SQL, run by hand, may have added it already
            op.execute(f"ALTER TABLE backup_integrity_object ADD COLUMN {column} timestamptz")


def downgrade() -> None:
    for column in COLUMNS:
        op.execute(f"ALTER TABLE backup_integrity_object DROP COLUMN IF EXISTS {column}")
