"""Repair: the pure plan, the statistics it adds, and local writes on a real folder."""

from __future__ import annotations

import hashlib
import os

import pytest

from include.backup_integrity.config.settings import (
    ConfigError,
    Settings,
    parse_settings,
    resolve_run_options,
)
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_SERVER_SHA256,
    EVIDENCE_SIZE,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
)
from include.backup_integrity.domain.statistics import run_failed
from include.backup_integrity.stores.local import LocalBackend
from include.backup_integrity.tasks.repair import (
    APPLY,
    FAILED,
    PLAN,
    REFUSED,
    REPAIRED,
    RepairError,
    execute_repairs,
    outcome_of,
    plan_repairs,
    planned_outcomes,
    repair_one,
    repair_statistics,
    write_local,
)
from tests.support.records import CONTENT, CONTENT_SHA256, check_result


def test_each_repairable_failure_gets_its_best_verified_source():
    results = [
        check_result("b-1", "local", PASSED, evidence=EVIDENCE_SIZE),
        check_result("b-1", "r2", MISSING),
        check_result("b-1", "b2", PASSED, evidence=EVIDENCE_SERVER_SHA256),
        check_result("b-2", "local", PASSED, evidence=EVIDENCE_CONTENT, mode="full"),
        check_result("b-2", "r2", PASSED, evidence=EVIDENCE_CONTENT, mode="full"),
        check_result("b-2", "b2", CHECKSUM_MISMATCH, mode="full"),
        check_result("b-3", "local", SIZE_MISMATCH),
        check_result("b-3", "r2", PASSED, evidence=EVIDENCE_CONTENT),
    ]

    tasks = {(t["backup_id"], t["backend"]): t for t in plan_repairs(results)}

    assert set(tasks) == {("b-1", "r2"), ("b-2", "b2"), ("b-3", "local")}
    # The store's own SHA-256 beats size only; both are re-read before use.
    assert [s["backend"] for s in tasks[("b-1", "r2")]["sources"]] == ["b2", "local"]
    assert "verifies its SHA-256 first" in tasks[("b-1", "r2")]["reason"]
    # Among copies read byte for byte, the local one (no transfer) first.
    assert [s["backend"] for s in tasks[("b-2", "b2")]["sources"]] == ["local", "r2"]
    assert "full SHA-256 read" in tasks[("b-2", "b2")]["reason"]
    assert tasks[("b-3", "local")]["expected_sha256"] == CONTENT_SHA256
    assert tasks[("b-3", "local")]["expected_size"] == len(CONTENT)


def test_no_passing_replica_or_no_recorded_location_means_no_source():
    results = [
        check_result("b-1", "local", CHECKSUM_MISMATCH),
        check_result("b-1", "r2", BACKEND_ERROR),
        check_result("b-1", "b2", INVALID_RECORD),
        check_result("b-2", "local", PASSED, evidence=EVIDENCE_CONTENT),
        check_result("b-2", "b2", MISSING, path=None),
    ]

    tasks = {(t["backup_id"], t["backend"]): t for t in plan_repairs(results)}

    assert set(tasks) == {("b-1", "local"), ("b-2", "b2")}, "errors and invalid records are not repaired"
    assert tasks[("b-1", "local")]["sources"] == []
    assert "unverified source" in tasks[("b-1", "local")]["reason"]
    assert tasks[("b-2", "b2")]["sources"] == []
    assert "no location" in tasks[("b-2", "b2")]["reason"]
    plan = planned_outcomes(tasks.values())
    assert {o["status"] for o in plan} == {REFUSED}
    assert all(o["source_backend"] is None for o in plan)


def test_statistics_keys_per_mode_and_what_fails_a_run():
    task = plan_repairs([check_result("b-1", "r2", MISSING), check_result("b-1", "b2", PASSED)])[0]
    planned = planned_outcomes([task])
    assert repair_statistics("off", planned) == {}
    assert repair_statistics(PLAN, planned) == {
        "repair": PLAN,
        "repair_plan": [
            {
                "backup_id": "b-1",
                "backend": "r2",
                "kind": MISSING,
                "source_backend": "b2",
                "reason": task["reason"],
            }
        ],
    }
    done = [outcome_of(task, REPAIRED), outcome_of(task, FAILED), outcome_of(task, REFUSED)]
    stats = repair_statistics(APPLY, done)
    assert (stats["repaired"], stats["repair_failed"]) == (1, 2)

    assert not run_failed({"checks_total": 3, "checks_passed": 1, "repaired": 2})
    assert run_failed({"checks_total": 3, "checks_passed": 1, "repaired": 1})
    assert run_failed({"checks_total": 3, "checks_passed": 1})


def test_repair_key_and_param_are_validated_and_the_param_wins():
    assert parse_settings(None).repair == "off"
    settings = parse_settings('{"repair": "plan"}')
    assert resolve_run_options(settings, {}).repair == "plan"
    assert resolve_run_options(settings, {"repair": None}).repair == "plan"
    assert resolve_run_options(settings, {"repair": "apply"}).repair == "apply"
    assert resolve_run_options(settings, {"repair": "off"}).repair == "off"
    with pytest.raises(ConfigError, match=r"Variable 'backup_integrity', key 'repair'.*'fix'"):
        parse_settings('{"repair": "fix"}')
    with pytest.raises(ConfigError, match=r"trigger param 'repair'.*True"):
        resolve_run_options(Settings(), {"repair": True})


# --------------------------------------------------------------------------- local writes


def local_task(path: str = "db/2026/full.dump", content: bytes = CONTENT):
    result = check_result("b-1", "local", MISSING, path=path)
    result["expected"] = {"size_bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    return plan_repairs([result, check_result("b-1", "r2", PASSED, evidence=EVIDENCE_CONTENT)])[0]


def blocks(content: bytes, size: int = 100):
    for start in range(0, len(content), size):
        yield content[start : start + size]


def test_local_write_creates_folders_and_renames_a_verified_file_into_place(tmp_path):
    backend = LocalBackend(str(tmp_path))
    write_local(backend, "db/2026/full.dump", blocks(CONTENT), local_task())
    assert (tmp_path / "db/2026/full.dump").read_bytes() == CONTENT
    assert os.listdir(tmp_path / "db/2026") == ["full.dump"], "no temporary file left"


def test_local_write_of_wrong_bytes_leaves_the_old_file_untouched(tmp_path):
    target = tmp_path / "db/2026/full.dump"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old, wrong content")
    backend = LocalBackend(str(tmp_path))
    damaged = bytearray(CONTENT)
    damaged[5] ^= 1
    with pytest.raises(RepairError, match="SHA-256"):
        write_local(backend, "db/2026/full.dump", blocks(bytes(damaged)), local_task())
    assert target.read_bytes() == b"old, wrong content"
    assert os.listdir(target.parent) == ["full.dump"]


def test_local_write_refuses_symlinks_and_paths_outside_the_root(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "db").symlink_to(outside)
    backend = LocalBackend(str(root))
    with pytest.raises(RepairError, match="symlink"):
        write_local(backend, "db/full.dump", blocks(CONTENT), local_task("db/full.dump"))
    assert os.listdir(outside) == []

    (root / "real").mkdir()
    (root / "real/full.dump").symlink_to(outside / "target")
    with pytest.raises(RepairError, match="symlink"):
        write_local(backend, "real/full.dump", blocks(CONTENT), local_task("real/full.dump"))
    assert not (outside / "target").exists()

    for bad in ("../outside/full.dump", "/etc/full.dump"):
        with pytest.raises(RepairError):
            write_local(backend, bad, blocks(CONTENT), local_task(bad))
    assert os.listdir(outside) == []


def test_a_local_source_that_does_not_verify_is_never_copied(tmp_path):
    """Local to local stands in for any pair: the source is read and refused before any write."""
    source_root, target_root = tmp_path / "source", tmp_path / "target"
    (source_root / "db").mkdir(parents=True)
    target_root.mkdir()
    (source_root / "db/full.dump").write_bytes(CONTENT[:-1] + b"X")
    backends = {"r2": LocalBackend(str(source_root)), "local": LocalBackend(str(target_root))}
    results = [
        check_result("b-1", "local", MISSING, path="db/full.dump"),
        check_result("b-1", "r2", PASSED, evidence=EVIDENCE_SIZE, path="db/full.dump"),
    ]
    task = plan_repairs(results)[0]

    outcome = repair_one(task, backends.__getitem__)

    assert outcome["status"] == REFUSED
    assert "no source could be verified good" in outcome["error"]
    assert os.listdir(target_root) == []

    (source_root / "db/full.dump").write_bytes(CONTENT)
    [outcome] = execute_repairs([task], Settings(), backends.__getitem__)
    assert outcome["status"] == REPAIRED
    assert outcome["sha256"] == CONTENT_SHA256
    assert (target_root / "db/full.dump").read_bytes() == CONTENT


def test_a_symlinked_source_is_never_read(tmp_path):
    from include.backup_integrity.tasks.repair import read_local

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "db").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_bytes(CONTENT)
    (root / "db/full.dump").symlink_to(outside / "secret")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    backend = LocalBackend(str(root))
    with pytest.raises(RepairError, match="symlink"):
        b"".join(read_local(backend, "db/full.dump"))
    with pytest.raises(RepairError, match="symlink"):
        b"".join(read_local(backend, "linked/secret"))
