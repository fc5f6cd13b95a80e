"""Alert markers: the alert rows earlier releases wrote are marked as the package's.

Revision ID: 0004_alert_markers
Revises: 0003_store_deadlines

From this revision on, every alert row the package writes carries ``details.source``
and ``details.producer``, and no DAG changes a row without them. Rows that earlier
releases wrote (those the package's own tables refer to by id) get the markers here,
so their alerts keep being updated and resolved; any other row of the alert table is
the application's and is not touched. The alert table's name is the Variable's
``alerts_table``, handed over by ``schema.upgrade_schema``.
"""

from __future__ import annotations

from alembic import context, op

from include.backup_integrity.catalog.alert_markers import adopt_earlier_alerts

revision = "0004_alert_markers"
down_revision = "0003_store_deadlines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    alerts_table = context.config.attributes["alerts_table"]
    cursor = op.get_bind().connection.cursor()
    try:
        adopt_earlier_alerts(cursor, alerts_table)
    finally:
        cursor.close()


def downgrade() -> None:
    raise NotImplementedError(
        "the markers are not removed: without them no DAG would update or resolve its own alerts"
    )
