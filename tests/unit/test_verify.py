"""Verifying a chunk on real files: listings, fingerprints, the rotation and progress."""

from __future__ import annotations

import logging
import os

import pytest

from include.backup_integrity.catalog.object_state import ObjectState
from include.backup_integrity.domain.records import (
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    EVIDENCE_FINGERPRINT,
    EVIDENCE_SIZE,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
    unpack_ids,
)
from include.backup_integrity.stores.local import LocalBackend
from include.backup_integrity.tasks.verify import verify_chunk
from tests.support.records import CONTENT, backup_record


def chunk(mode: str, rehash_through=None) -> dict:
    return {
        "backend": "local",
        "label": "local 1/1: test",
        "mode": mode,
        "part": 1,
        "parts": 1,
        "count": 0,
        "after_path": None,
        "through_path": None,
        "unrecorded": True,
        "types": ["FULL_DATABASE"],
        "scope": {"window_start": None, "window_end": None, "limit": None, "backup_ids": []},
        "now": "2026-03-01T11:00:00+00:00",
        "rehash_through": rehash_through,
    }


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "backups"
    for folder in ("db", "wal"):
        (root / folder).mkdir(parents=True)
    for n in range(5):
        (root / "db" / f"full-{n}.dump").write_bytes(CONTENT)
    (root / "wal" / "000001").write_bytes(CONTENT)
    return root


def records(count=5):
    rows = [backup_record(id=f"b-{n}", local_path=f"db/full-{n}.dump") for n in range(count)]
    rows.append(backup_record(id="b-wal", local_path="wal/000001"))
    return rows


def run(root, mode, states=None, rows=None, rehash_through=None):
    backend = LocalBackend(str(root))
    outcome, results, new_states = verify_chunk(
        chunk(mode, rehash_through), backend, rows or records(), states or {}
    )
    return outcome, {r["backup_id"]: r for r in results}, new_states, backend


def test_quick_mode_lists_each_folder_once_and_reads_nothing(root):
    outcome, results, _, backend = run(root, "quick")

    assert {r["kind"] for r in results.values()} == {PASSED}
    assert {r["evidence"] for r in results.values()} == {EVIDENCE_SIZE}
    assert backend.requests == {"scandir": 2}
    assert outcome["objects_read"] == 0
    assert {e: unpack_ids(ids) for e, ids in outcome["passed"].items()} == {
        EVIDENCE_SIZE: [f"b-{n}" for n in range(5)] + ["b-wal"]
    }
    assert outcome["failures"] == []


def test_missing_and_wrong_size_come_from_the_listing(root):
    os.remove(root / "db" / "full-1.dump")
    (root / "db" / "full-2.dump").write_bytes(CONTENT + b"x")

    outcome, results, _, backend = run(root, "quick")

    assert results["b-1"]["kind"] == MISSING
    assert results["b-2"]["kind"] == SIZE_MISMATCH
    assert backend.requests == {"scandir": 2, "stat": 1}, "an absence is confirmed on the object itself"
    assert {f["backup_id"] for f in outcome["failures"]} == {"b-1", "b-2"}


def test_a_missing_folder_makes_its_backups_missing(root):
    rows = [backup_record(id="b-x", local_path="nowhere/full.dump")]

    _, results, _, _ = run(root, "quick", rows=rows)

    assert results["b-x"]["kind"] == MISSING


def test_a_read_records_a_fingerprint_that_later_quick_runs_pass_on(root):
    _, first, states, _ = run(root, "full")
    assert {r["evidence"] for r in first.values()} == {EVIDENCE_CONTENT}
    assert all(s.last_read_at is not None and s.sha256_evidence == EVIDENCE_CONTENT for s in states.values())

    outcome, second, _, backend = run(root, "quick", states)

    assert {r["evidence"] for r in second.values()} == {EVIDENCE_FINGERPRINT}
    assert {r["kind"] for r in second.values()} == {PASSED}
    assert outcome["objects_read"] == 0
    assert "read" not in backend.requests


def test_a_same_size_change_voids_the_fingerprint_and_rolling_rereads_it(root):
    _, _, states, _ = run(root, "full")
    corrupted = root / "db" / "full-3.dump"
    corrupted.write_bytes(b"X" * len(CONTENT))

    _, quick, _, _ = run(root, "quick", states)
    assert quick["b-3"]["kind"] == PASSED
    assert quick["b-3"]["evidence"] == EVIDENCE_SIZE, "quick never reads: without a fingerprint, size only"

    outcome, rolling, new_states, backend = run(root, "rolling", states)
    assert rolling["b-3"]["kind"] == CHECKSUM_MISMATCH
    assert rolling["b-3"]["evidence"] == EVIDENCE_CONTENT
    assert backend.requests["read"] == 1, "only the changed object is read"
    assert outcome["objects_read"] == 1

    _, again, _, _ = run(root, "quick", new_states)
    assert again["b-3"]["kind"] == CHECKSUM_MISMATCH, "a known-bad, unchanged object stays bad"
    assert again["b-3"]["evidence"] == EVIDENCE_FINGERPRINT


def test_rolling_reads_exactly_the_rotation_slice(root):
    _, results, states, backend = run(root, "rolling", rehash_through=[None, "b-2"])

    assert backend.requests["read"] == 3
    assert {k for k, r in results.items() if r["evidence"] == EVIDENCE_CONTENT} == {"b-0", "b-1", "b-2"}
    assert {k for k, s in states.items() if s.last_read_at} == {"b-0", "b-1", "b-2"}


def test_a_symlink_is_never_followed_and_nothing_outside_the_root_is_read(root, tmp_path):
    outside = tmp_path / "secret"
    outside.write_bytes(CONTENT)
    (root / "db" / "full-0.dump").unlink()
    (root / "db" / "full-0.dump").symlink_to(outside)
    (root / "linked").symlink_to(tmp_path)
    rows = [
        backup_record(id="b-0", local_path="db/full-0.dump"),
        backup_record(id="b-9", local_path="linked/secret"),
    ]

    _, results, _, _ = run(root, "full", rows=rows)

    assert results["b-0"]["kind"] == INVALID_RECORD
    assert "symlink" in results["b-0"]["message"]
    assert results["b-9"]["kind"] == INVALID_RECORD
    assert "symlink" in results["b-9"]["message"]


def test_unchanged_objects_keep_their_state(root):
    state = ObjectState(fingerprint="x", sha256="y", sha256_evidence=EVIDENCE_CONTENT, sha256_fingerprint="x")

    _, results, new_states, _ = run(root, "quick", {"b-0": state})

    assert results["b-0"]["evidence"] == EVIDENCE_SIZE, "a different fingerprint proves nothing"
    assert new_states["b-0"].sha256 == "y"
    assert new_states["b-0"].fingerprint != "x"


def test_progress_is_logged_while_a_chunk_runs(root, caplog):
    big = root / "db" / "big.dump"
    big.write_bytes(os.urandom(1024) * 64 * 1024)  # 64 MiB
    rows = [backup_record(id="b-big", local_path="db/big.dump", size_bytes=big.stat().st_size)]
    backend = LocalBackend(str(root))

    with caplog.at_level(logging.INFO, logger="include.backup_integrity.tasks.verify"):
        verify_chunk(chunk("full"), backend, rows, {}, progress_interval=0.001)

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert lines, "no progress line was logged"
    assert "objects" in lines[-1]
    assert "MB read" in lines[-1]
    assert "ETA" in lines[-1]
