"""A fourth store configured only through the Variable's ``stores`` key, end to end with ``dag.test()``.

``wasabi`` is an s3 store on a second bucket of the b2 moto server, with a ``wasabi_path``
column the test adds to the catalog table, as an operator would. It is checked, alerted
under its own name, written into the backups' metadata and the statistics, shown as a
column of the dashboard, and a bad configuration of it fails ``select_backups`` naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from devtools.seed import delete, seed_backup
from include.backup_integrity.config.settings import parse_settings
from include.backup_integrity.dashboard.app import summary
from include.backup_integrity.dashboard.page import render_page
from tests.support.catalog import last_check, open_alerts_by_key, query, results
from tests.support.connections import NO_FRESHNESS_LIMITS, set_connection, set_variable

WASABI_BUCKET = "wasabi-copies"


@pytest.fixture
def wasabi(stores, b2_server, airflow_env, monkeypatch):
    """The fourth store: a bucket, a connection, a catalog column and the Variable naming four stores."""
    client = b2_server.client()
    if WASABI_BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=WASABI_BUCKET)
    with stores.connect() as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE backups_backup ADD COLUMN wasabi_path text NULL")
    set_connection(monkeypatch, "backup_wasabi", b2_server.airflow_connection("backup_wasabi"))
    variable = {
        "stores": {
            "local": {"type": "local", "root": stores.local_root, "path_column": "local_path"},
            "r2": {
                "type": "s3",
                "conn_id": "backup_r2",
                "bucket": stores.r2_bucket,
                "path_column": "r2_path",
            },
            "b2": {
                "type": "s3",
                "conn_id": "backup_b2",
                "bucket": stores.b2_bucket,
                "path_column": "b2_path",
            },
            "wasabi": {
                "type": "s3",
                "conn_id": "backup_wasabi",
                "bucket": WASABI_BUCKET,
                "path_column": "wasabi_path",
            },
        },
        "max_age_hours": NO_FRESHNESS_LIMITS,  # the seeded catalog is not a backup schedule
    }
    set_variable(monkeypatch, variable)
    return client, variable


def copy_to_wasabi(stores, client, backup, *, content=None):
    key = backup.paths["r2"]
    client.put_object(Bucket=WASABI_BUCKET, Key=key, Body=backup.content if content is None else content)
    with stores.connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE backups_backup SET wasabi_path = %s WHERE id = %s", [key, backup.id])


def test_a_fourth_store_is_verified_alerted_and_shown_under_its_own_name(stores, wasabi, run_dag):
    client, variable = wasabi
    healthy = seed_backup(stores)
    copy_to_wasabi(stores, client, healthy)
    gone = seed_backup(stores)
    copy_to_wasabi(stores, client, gone)
    client.delete_object(Bucket=WASABI_BUCKET, Key=gone.paths["r2"])
    short = seed_backup(stores)
    copy_to_wasabi(stores, client, short, content=short.content[:100])
    wal = seed_backup(stores, backup_type="WAL_ARCHIVE")
    copy_to_wasabi(stores, client, wal)
    missing_on_b2 = seed_backup(stores)  # a built-in store keeps working beside it
    copy_to_wasabi(stores, client, missing_on_b2)
    delete(stores, missing_on_b2, "b2")

    outcome = run_dag({"mode": "quick"})

    assert outcome.state == "failed"
    checked = results(stores, outcome.run_id)
    assert {backend for (backup_id, backend) in checked if backup_id == wal.id} == {"r2", "b2", "wasabi"}
    assert checked[(healthy.id, "wasabi")] == "passed"
    assert checked[(gone.id, "wasabi")] == "missing"
    assert checked[(short.id, "wasabi")] == "size_mismatch"
    assert checked[(missing_on_b2.id, "b2")] == "missing"
    assert checked[(missing_on_b2.id, "wasabi")] == "passed"
    opened = {key: alert for key, alert in open_alerts_by_key(stores).items() if key[1] is not None}
    assert set(opened) == {
        (gone.id, "wasabi", "missing"),
        (short.id, "wasabi", "size_mismatch"),
        (missing_on_b2.id, "b2", "missing"),
    }
    assert opened[(gone.id, "wasabi", "missing")]["details"]["backend"] == "wasabi"
    stats = outcome.statistics
    assert stats["missing_files"] == 2
    assert stats["storage_mismatches"] == 1
    assert "wasabi" in stats["requests"]
    errors = last_check(stores, short.id)["errors"]
    assert [(e["backend"], e["kind"]) for e in errors] == [("wasabi", "size_mismatch")]
    recorded = query(
        stores, "SELECT backend, count(*) AS n FROM backup_integrity_object GROUP BY backend ORDER BY backend"
    )
    assert {r["backend"]: r["n"] for r in recorded}["wasabi"] == 5

    settings = parse_settings(variable)
    with psycopg.connect(stores.catalog_dsn) as conn, conn.cursor() as cur:
        model = summary(cur, settings, now=datetime.now(UTC))
    assert model.matrix.backends == ["local", "r2", "b2", "wasabi"]
    cells = {row.backup_id: row.cells for row in model.matrix.rows}
    assert cells[gone.id]["wasabi"].kind == "missing"
    assert cells[healthy.id]["wasabi"].kind == "passed"
    assert [c.backend for c in model.coverage.backends] == ["local", "r2", "b2", "wasabi"]
    page = render_page(model)
    assert "<th>wasabi</th>" in page
    assert 'data-backend="wasabi" data-state="missing"' in page


def test_repair_copies_to_the_fourth_store_from_the_preferred_source(stores, wasabi, run_dag, monkeypatch):
    client, variable = wasabi
    backup = seed_backup(stores)
    copy_to_wasabi(stores, client, backup)
    client.delete_object(Bucket=WASABI_BUCKET, Key=backup.paths["r2"])
    set_variable(monkeypatch, {**variable, "repair": "apply"})

    outcome = run_dag({"mode": "full"})

    assert outcome.statistics["repaired"] == 1
    assert outcome.statistics["repair_plan"][0]["backend"] == "wasabi"
    assert outcome.statistics["repair_plan"][0]["source_backend"] == "local", "the first store named"
    restored = client.get_object(Bucket=WASABI_BUCKET, Key=backup.paths["r2"])["Body"].read()
    assert restored == backup.content


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            {"path_column": "offsite_path"},
            "key 'stores', store 'wasabi', field 'path_column': the catalog table 'backups_backup' "
            "has no column 'offsite_path'",
        ),
        (
            {"conn_id": "backup_nowhere"},
            "key 'stores', store 'wasabi', field 'conn_id': Airflow connection 'backup_nowhere'",
        ),
        ({"type": "gcs"}, "key 'stores', store 'wasabi', field 'type': unknown type 'gcs'"),
    ],
)
def test_a_bad_store_spec_fails_select_backups_naming_store_and_field(
    stores, wasabi, run_dag, monkeypatch, capfd, change, says
):
    _, variable = wasabi
    seed_backup(stores)
    broken = {**variable["stores"], "wasabi": {**variable["stores"]["wasabi"], **change}}
    set_variable(monkeypatch, {"stores": broken})

    outcome = run_dag()

    select = next(t for t in outcome.dag_run.get_task_instances() if t.task_id == "select_backups")
    assert str(select.state) == "failed"
    output = capfd.readouterr()
    assert says in output.out + output.err
    if query(stores, "SELECT to_regclass('backup_integrity_result')::text AS t")[0]["t"]:
        assert query(stores, "SELECT count(*) AS n FROM backup_integrity_result")[0]["n"] == 0


def test_a_store_no_type_expects_needs_no_connection(stores, wasabi, run_dag, monkeypatch):
    _, variable = wasabi
    seed_backup(stores)
    monkeypatch.delenv("AIRFLOW_CONN_BACKUP_WASABI")
    set_variable(
        monkeypatch,
        {**variable, "expected_backends": {"FULL_DATABASE": ["local", "r2", "b2"], "WAL_ARCHIVE": ["r2"]}},
    )

    outcome = run_dag()

    assert outcome.state == "success"
    assert {backend for (_, backend) in results(stores, outcome.run_id)} == {"local", "r2", "b2"}
