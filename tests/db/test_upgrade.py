"""The previous release's catalog database, restored from its dump, upgraded by this code's schema API.

The dump (tests/fixtures, made by scripts/make_upgrade_fixture.sh) holds what real
runs of that release left: alerts, results, object state, repairs, notifications and
runs. tests/integration/test_upgrade.py takes the same path through the DAG.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from include.backup_integrity.catalog.schema import (
    current_revision,
    head_revision,
    upgrade_schema,
)
from tests.support.catalog_schema import (
    PREVIOUS_RELEASE_NEW_TABLES,
    PREVIOUS_RELEASE_UPGRADE_DDL,
    clear_ddl_log,
    ddl_log,
    describe_schema,
    install_ddl_log,
    restore_dump,
    run_in_thread,
    snapshot,
    verifier_lock_held,
)
from tests.support.ownership import as_upgraded, canonical_snapshot


@pytest.fixture
def previous_release(postgres):
    """A fresh database holding the dump of the previous release's catalog, recording DDL from then on."""
    dsn = postgres.create_database(f"release_{uuid.uuid4().hex[:8]}")
    restore_dump(dsn)
    conn = psycopg.connect(dsn)
    install_ddl_log(conn)
    yield dsn, conn
    conn.close()


def test_the_previous_release_is_adopted_with_no_data_lost_and_a_second_upgrade_does_nothing(
    previous_release, postgres
):
    dsn, conn = previous_release
    before = snapshot(conn)
    assert all(before[name] for name in before), "the dump holds rows in every table"
    assert current_revision(conn) is None

    upgrade = upgrade_schema(conn)

    assert (upgrade.from_revision, upgrade.to_revision, upgrade.migrated) == (None, head_revision(), True)
    assert current_revision(conn) == head_revision()
    assert ddl_log(conn) == PREVIOUS_RELEASE_UPGRADE_DDL, "the release's tables are only stamped"
    upgraded = {**as_upgraded(before), **PREVIOUS_RELEASE_NEW_TABLES}  # new: empty
    assert canonical_snapshot(snapshot(conn)) == upgraded, "no row lost; alerts marked; expired_at"
    assert all(json.loads(row)["details"]["source"] for row in upgraded["backups_backupalert"])
    fresh = psycopg.connect(postgres.create_database(f"fresh_{uuid.uuid4().hex[:8]}"))
    try:
        upgrade_schema(fresh)
        assert describe_schema(conn) == describe_schema(fresh)
    finally:
        fresh.close()

    clear_ddl_log(conn)
    with verifier_lock_held(dsn):
        thread, outcome = run_in_thread(lambda: upgrade_schema(psycopg.connect(dsn)))
        thread.join(timeout=20)
        assert not thread.is_alive(), "the second upgrade waited for the verifier's lock"
    assert outcome["result"].migrated is False
    assert ddl_log(conn) == []
    assert canonical_snapshot(snapshot(conn)) == upgraded
