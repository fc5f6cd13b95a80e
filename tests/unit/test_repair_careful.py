"""Careful repair, without services: caps newest first, oversize objects, shared paths, the
catalog's own path as the target, a wrong local copy kept beside the good one, the new keys."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

import pytest

from include.backup_integrity.config.settings import ConfigError, Settings, parse_settings
from include.backup_integrity.domain.records import EVIDENCE_CONTENT, MISSING, PASSED, SIZE_MISMATCH
from include.backup_integrity.domain.repair import (
    REFUSED,
    REPAIR_CAP,
    SHARED_PATH,
    cap_repairs,
    plan_repairs,
    refuse_shared_paths,
)
from include.backup_integrity.stores.copying import bad_copy_suffix, write_local
from include.backup_integrity.stores.local import LocalBackend
from include.backup_integrity.tasks.repair import at_catalog_paths
from tests.support.records import CONTENT, backup_record, check_result


def tasks_of(sizes: dict[str, int]):
    results = []
    for backup_id, size in sizes.items():
        missing = check_result(backup_id, "r2", MISSING, path=f"db/{backup_id}.dump")
        missing["expected"] = {**missing["expected"], "size_bytes": size}
        results += [missing, check_result(backup_id, "local", PASSED, evidence=EVIDENCE_CONTENT)]
    return plan_repairs(results)


def test_the_count_cap_keeps_the_newest_and_refuses_the_rest():
    tasks = tasks_of({"old": 10, "new": 10, "mid": 10})
    kept, refused = cap_repairs(tasks, ["new", "mid", "old"], max_copies=2, max_bytes=10**9)
    assert [t["backup_id"] for t in kept] == ["new", "mid"]
    assert [(o["backup_id"], o["status"], o["reason"]) for o in refused] == [("old", REFUSED, REPAIR_CAP)]
    assert "left to the next run" in refused[0]["error"]


def test_the_byte_cap_refuses_every_later_copy_once_spent_and_an_oversize_object_on_its_own():
    tasks = tasks_of({"a": 1000, "b": 5000, "c": 1500, "d": 1000, "e": 100})
    kept, refused = cap_repairs(tasks, ["a", "b", "c", "d", "e"], max_copies=50, max_bytes=3000)
    assert [t["backup_id"] for t in kept] == ["a", "c"]
    reasons = {o["backup_id"]: o["reason"] for o in refused}
    assert reasons["b"] == "larger than repair_max_bytes (5000 > 3000 bytes)"
    assert reasons["d"] == reasons["e"] == REPAIR_CAP, "newest first: the rest wait for the next run"


def test_copies_already_refused_neither_count_nor_are_capped():
    unsourced = plan_repairs([check_result("lost", "r2", MISSING)])
    kept, refused = cap_repairs(unsourced + tasks_of({"x": 10}), ["lost", "x"], max_copies=1, max_bytes=10)
    assert [t["backup_id"] for t in kept] == ["lost", "x"]
    assert refused == []


def test_a_shared_target_is_refused():
    tasks = tasks_of({"a": 10, "b": 10})
    kept, refused = refuse_shared_paths(tasks, {("b", "r2")})
    assert [t["backup_id"] for t in kept] == ["a"]
    assert [(o["backup_id"], o["reason"]) for o in refused] == [("b", SHARED_PATH)]


def test_the_target_is_the_catalogs_path_not_the_results_redacted_one():
    failure = check_result("b-1", "local", MISSING, path="vault/***/full.dump")
    passing = check_result("b-1", "r2", PASSED, path="vault/***/full.dump")
    record = backup_record(id="b-1", local_path="vault/s3cr3t-token/full.dump")
    placed = at_catalog_paths([failure, passing], {"b-1": record})
    assert placed[0]["path"] == "vault/s3cr3t-token/full.dump"
    assert placed[1] is passing, "only repairable failures are re-pointed"
    assert at_catalog_paths([failure], {})[0]["path"] is None, "no catalog row: no target at all"


def test_the_kept_copy_suffix_is_a_utc_timestamp():
    assert bad_copy_suffix(datetime(2026, 3, 1, 9, 5, 7, tzinfo=UTC)) == ".bad-20260301T090507Z"
    assert re.fullmatch(r"\.bad-\d{8}T\d{6}Z", bad_copy_suffix())


def test_a_wrong_local_copy_is_kept_in_its_folder_and_the_good_one_written(tmp_path):
    target = tmp_path / "db/full.dump"
    target.parent.mkdir()
    target.write_bytes(b"wrong bytes")
    result = check_result("b-1", "local", SIZE_MISMATCH, path="db/full.dump")
    task = plan_repairs([result, check_result("b-1", "r2", PASSED, evidence=EVIDENCE_CONTENT)])[0]

    write_local(LocalBackend(str(tmp_path)), "db/full.dump", iter([CONTENT]), task, ".bad-20260301T090507Z")

    assert target.read_bytes() == CONTENT
    assert (tmp_path / "db/full.dump.bad-20260301T090507Z").read_bytes() == b"wrong bytes"
    assert sorted(os.listdir(target.parent)) == ["full.dump", "full.dump.bad-20260301T090507Z"]

    write_local(LocalBackend(str(tmp_path)), "db/full.dump", iter([CONTENT]), task, None)
    assert len(os.listdir(target.parent)) == 2, "without keeping, nothing is added"


def test_the_repair_keys_have_defaults_and_are_validated():
    settings = Settings()
    assert (settings.repair_max_copies, settings.repair_max_bytes, settings.repair_keep_bad_copies) == (
        50,
        10737418240,
        True,
    )
    for key, value, message in (
        ("repair_max_copies", 0, "must be >= 1"),
        ("repair_max_bytes", "10", "expected an integer"),
        ("repair_keep_bad_copies", "yes", "expected true or false"),
    ):
        with pytest.raises(ConfigError, match=rf"key '{key}': {message}"):
            parse_settings({key: value})
