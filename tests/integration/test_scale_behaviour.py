"""Listings, fingerprints, the rotating re-hash and bounded fan-out, against the real stores."""

from __future__ import annotations

from devtools.seed import corrupt_same_size, delete, seed_backup
from tests.support.catalog import query, results
from tests.support.connections import set_variable


def requests_of(outcome, backend):
    return outcome.statistics["requests"].get(backend, {})


def evidence_by_backend(stores, run_id):
    rows = query(
        stores,
        "SELECT backend, evidence, count(*) AS n FROM backup_integrity_result WHERE run_id = %s "
        "GROUP BY backend, evidence ORDER BY backend, evidence",
        [run_id],
    )
    return {(r["backend"], r["evidence"]): r["n"] for r in rows}


def test_existence_and_size_come_from_listings_not_per_object_requests(stores, run_dag):
    for _ in range(12):
        seed_backup(stores, server_sha256=False)

    first = run_dag({"mode": "quick"})
    second = run_dag({"mode": "quick"})

    assert first.state == second.state == "success"
    for backend in ("r2", "b2"):
        # The first run asks each object once (a HEAD) for a SHA-256 it may carry in its metadata;
        # from then on the hourly run is listings only: one request answers up to 1,000 objects.
        assert requests_of(first, backend).get("head") == 12
        assert requests_of(second, backend) == {"list": 1}
    assert requests_of(second, "local") == {"scandir": 1}
    assert second.statistics["objects_read"] == 0


def test_a_full_read_lets_later_runs_pass_on_the_unchanged_fingerprint(
    stores, run_dag, monkeypatch, airflow_env
):
    # No rotation slice: every rolling run reads at least its oldest-read object, which would be
    # one of these nine (which one depends on the order the full run's chunks ran in).
    set_variable(monkeypatch, {**airflow_env, "rehash_period_days": 0})
    backups = [seed_backup(stores, server_sha256=False) for _ in range(3)]

    full = run_dag({"mode": "full"})
    quick = run_dag({"mode": "quick"})

    assert full.state == quick.state == "success"
    assert evidence_by_backend(stores, quick.run_id) == {
        ("b2", "fingerprint"): 3,
        ("local", "fingerprint"): 3,
        ("r2", "fingerprint"): 3,
    }
    assert quick.statistics["objects_read"] == 0
    assert "get" not in requests_of(quick, "r2")

    victim = backups[1]
    corrupt_same_size(stores, victim, "r2")  # a new version: new ETag, same size
    rolling = run_dag({"mode": "rolling"})

    assert rolling.state == "failed"
    assert results(stores, rolling.run_id)[(victim.id, "r2")] == "checksum_mismatch"
    assert requests_of(rolling, "r2").get("get") == 1, "only the changed object is downloaded"
    assert "get" not in requests_of(rolling, "b2")
    assert rolling.statistics["objects_read"] == 1


def object_rows(stores):
    rows = query(
        stores,
        "SELECT backup_id::text AS backup_id, backend, last_kind, last_run_id, fingerprint, sha256, "
        "sha256_verified_at FROM backup_integrity_object",
    )
    return {(r.pop("backup_id"), r.pop("backend")): r for r in rows}


def test_unchanged_objects_keep_their_state_and_only_a_change_adds_history(stores, run_dag):
    backups = [seed_backup(stores, server_sha256=False) for _ in range(3)]
    run_dag({"mode": "quick"})
    settled = run_dag({"mode": "quick"})
    before = object_rows(stores)

    delete(stores, backups[0], "local")
    changed = run_dag({"mode": "quick"})
    after = object_rows(stores)

    assert settled.state == "success"
    assert changed.state == "failed"
    assert len(results(stores, changed.run_id)) == 9, "every check of the run is known"
    recorded = query(
        stores, "SELECT backend FROM backup_integrity_result WHERE run_id = %s", [changed.run_id]
    )
    assert recorded == [{"backend": "local"}], "the history keeps the one transition"
    gone = after[(backups[0].id, "local")]
    assert (gone["last_kind"], gone["last_run_id"]) == ("missing", changed.run_id)
    unchanged = {key: row for key, row in after.items() if key != (backups[0].id, "local")}
    assert len(unchanged) == 8
    assert {row.pop("last_run_id") for row in unchanged.values()} == {changed.run_id}, "each last check"
    assert unchanged == {
        key: {k: v for k, v in before[key].items() if k != "last_run_id"} for key in unchanged
    }, "their outcome and state are as they were"


def test_the_store_sha256_is_fetched_once_per_object_version(stores, run_dag):
    seed_backup(stores)  # uploaded with a whole-object SHA-256 on both S3 stores

    first = run_dag({"mode": "quick"})
    second = run_dag({"mode": "quick"})

    assert evidence_by_backend(stores, first.run_id)[("r2", "server_sha256")] == 1
    assert evidence_by_backend(stores, second.run_id)[("r2", "fingerprint")] == 1
    assert requests_of(second, "r2") == {"list": 1}


def test_the_rotation_reads_every_object_once_per_period_within_its_budget(
    stores, run_dag, monkeypatch, airflow_env
):
    backups = [seed_backup(stores, size=1000, server_sha256=False) for _ in range(6)]
    # 6 backups x 3 backends = 18 objects of 1,000 bytes; 6,000 bytes a run is a third of them.
    set_variable(monkeypatch, {**airflow_env, "rehash_budget_bytes": 6000})

    reads = []
    for _ in range(3):
        outcome = run_dag({"mode": "rolling"})
        assert outcome.state == "success"
        reads.append(outcome.statistics["objects_read"])
        assert outcome.statistics["rehash_planned_objects"] == 6

    assert reads == [6, 6, 6], "each run reads its slice and no more"
    coverage = query(
        stores,
        "SELECT backup_id::text AS b, backend, last_read_at, last_read_bytes FROM backup_integrity_object",
    )
    assert len(coverage) == 18
    assert all(row["last_read_at"] is not None for row in coverage), "every object was read once"
    assert {row["last_read_bytes"] for row in coverage} == {1000}
    assert {row["b"] for row in coverage} == {b.id for b in backups}

    oldest = sorted(coverage, key=lambda row: row["last_read_at"])[:6]
    fourth = run_dag({"mode": "rolling"})
    reread = query(
        stores,
        "SELECT backup_id::text AS b, backend FROM backup_integrity_object WHERE last_read_at > %s",
        [max(row["last_read_at"] for row in coverage)],
    )
    assert fourth.statistics["objects_read"] == 6
    assert {(r["b"], r["backend"]) for r in reread} == {(r["b"], r["backend"]) for r in oldest}, (
        "the next slice is the objects read longest ago"
    )


def test_quick_mode_never_reads_even_when_the_rotation_is_due(stores, run_dag):
    seed_backup(stores, server_sha256=False)

    quick = run_dag({"mode": "quick"})

    assert quick.statistics["objects_read"] == 0
    assert quick.statistics["bytes_read"] == 0
    assert "rehash_planned_objects" not in quick.statistics


def test_fan_out_stays_bounded_however_many_backups(stores, run_dag, monkeypatch, airflow_env):
    seeded = [seed_backup(stores, size=64, server_sha256=False) for _ in range(30)]
    set_variable(monkeypatch, {**airflow_env, "chunk_size": 1, "max_chunks_per_backend": 4})

    outcome = run_dag({"mode": "quick"})

    assert outcome.state == "success"
    assert outcome.statistics["chunks"] == 12, "4 chunks on each of 3 backends"
    checked = results(stores, outcome.run_id)
    assert len(checked) == 90, "every backup on every backend, exactly once"
    assert {b for (b, _) in checked} == {b.id for b in seeded}
    paths = sorted(b.paths["local"] for b in seeded)
    labels = mapped_labels(outcome.run_id)
    assert len(labels) == 12
    backends_in_map_order = [label.split()[0] for label in labels]
    assert [set(backends_in_map_order[i : i + 3]) for i in range(0, 12, 3)] == [{"local", "r2", "b2"}] * 4, (
        "backends take turns, so chunks running side by side ask different stores"
    )
    first = next(label for label in labels if label.startswith("local 1/4: "))
    assert first.startswith("local 1/4: 8 backups "), "the UI label says which chunk and how many"
    assert first.endswith(paths[7][-40:]), "and which keys it covers"


def mapped_labels(run_id):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstance.map_index, TaskInstance.rendered_map_index)
            .filter(TaskInstance.run_id == run_id, TaskInstance.task_id == "verify_chunk")
            .order_by(TaskInstance.map_index)
            .all()
        )
    return [label for _, label in rows]
