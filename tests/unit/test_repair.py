"""Repair execution on real folders: local writes and reads that never follow a symlink,
a source that does not verify is never copied, outcomes reported as they come."""

from __future__ import annotations

import hashlib
import os

import pytest

from include.backup_integrity.config.settings import Settings
from include.backup_integrity.domain.records import EVIDENCE_CONTENT, EVIDENCE_SIZE, MISSING, PASSED
from include.backup_integrity.domain.repair import REFUSED, REPAIRED, plan_repairs
from include.backup_integrity.stores.copying import RepairError, read_local, write_local
from include.backup_integrity.stores.local import LocalBackend
from include.backup_integrity.tasks.repair import execute_repairs, repair_one
from tests.support.records import CONTENT, CONTENT_SHA256, check_result


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


def test_each_outcome_is_handed_over_as_soon_as_it_is_known_and_a_failing_handover_stops(tmp_path):
    """The task records each outcome when it comes; if recording fails, nothing more is copied."""
    source_root, target_root = tmp_path / "source", tmp_path / "target"
    (source_root / "db").mkdir(parents=True)
    target_root.mkdir()
    backends = {"r2": LocalBackend(str(source_root)), "local": LocalBackend(str(target_root))}
    tasks = []
    for name in ("one.dump", "two.dump"):
        (source_root / "db" / name).write_bytes(CONTENT)
        results = [
            check_result(f"b-{name}", "local", MISSING, path=f"db/{name}"),
            check_result(f"b-{name}", "r2", PASSED, evidence=EVIDENCE_CONTENT, path=f"db/{name}"),
        ]
        tasks.extend(plan_repairs(results))
    handed: list[tuple[str, bool]] = []

    def hand_over(outcome):
        handed.append((outcome["backup_id"], (target_root / outcome["path"]).exists()))
        raise ConnectionError("the catalog went away")

    with pytest.raises(ConnectionError):
        execute_repairs(tasks, Settings(), backends.__getitem__, on_outcome=hand_over)

    assert handed == [("b-one.dump", True)], "handed over once written and proven, before the next copy"
    assert not (target_root / "db/two.dump").exists()
