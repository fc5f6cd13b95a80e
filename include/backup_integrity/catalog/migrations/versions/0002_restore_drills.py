"""Restore drills: the drill history table ``backup_integrity_restore``.

Revision ID: 0002_restore_drills
Revises: 0001_baseline

One row per (drill run, backup): how the drill ended, at which stage, from which
copy, and the drill run's window end that ``restore_overdue`` counts in. The DDL
is :data:`include.backup_integrity.catalog.drills.RESTORE_TABLE_DDL` (``IF NOT
EXISTS``: running it on a catalog that has the table changes nothing).
"""

from __future__ import annotations

from alembic import op

from include.backup_integrity.catalog.drills import RESTORE_TABLE_DDL

revision = "0002_restore_drills"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(RESTORE_TABLE_DDL)


def downgrade() -> None:
    raise NotImplementedError(
        "0002_restore_drills is not undone: it would drop the drill history; "
        "drop backup_integrity_restore by hand if meant"
    )
