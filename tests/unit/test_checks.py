"""Comparing a store's answer with the catalog: row and path problems, prechecks, classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.backup_integrity.domain.checks import (
    Observation,
    classify,
    path_for,
    path_problem,
    precheck,
    record_problem,
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
from tests.support.records import (
    CHECKED_AT,
    CONTENT,
    CONTENT_SHA256,
    OTHER_SHA256,
    backup_record,
    store_spec,
)

SIZE = len(CONTENT)
PATH = "db/full.dump"


def observe(record, observation, *, mode="quick", backend="r2"):
    return classify(record, backend, PATH, observation, mode=mode, checked_at=CHECKED_AT)


# ----------------------------------------------------------------------------- catalog rows


def test_a_correct_row_has_no_problem():
    assert record_problem(backup_record()) is None


def test_checksum_in_upper_case_is_a_sha256():
    assert record_problem(backup_record(checksum=CONTENT_SHA256.upper())) is None


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"size_bytes": None}, "size_bytes is NULL"),
        ({"size_bytes": -1}, "size_bytes is negative (-1)"),
        ({"size_bytes": "960"}, "size_bytes '960' is not an integer"),
        ({"size_bytes": True}, "size_bytes True is not an integer"),
        ({"checksum": None}, "checksum is NULL"),
        ({"checksum": ""}, "checksum '' is not a SHA-256"),
        ({"checksum": "d41d8cd98f00b204e9800998ecf8427e"}, "is not a SHA-256 (64 hexadecimal characters)"),
        ({"checksum": CONTENT_SHA256[:63]}, "is not a SHA-256"),
        ({"checksum": CONTENT_SHA256 + "0"}, "is not a SHA-256"),
        ({"checksum": "g" + CONTENT_SHA256[1:]}, "is not a SHA-256"),
        ({"checksum": 12345}, "checksum 12345 is not a SHA-256"),
        (
            {"created_at": "1970-01-01T00:00:00+00:00"},
            "created_at 1970-01-01T00:00:00+00:00 is implausibly old",
        ),
        ({"created_at": "0001-01-01"}, "is implausibly old"),
        ({"created_at": "last tuesday"}, "created_at 'last tuesday' is not a date"),
    ],
)
def test_row_problems_are_named(overrides, says):
    problem = record_problem(backup_record(**overrides))

    assert problem is not None
    assert says in problem


def test_a_created_at_far_in_the_future_is_absurd():
    assert record_problem(backup_record(created_at="9999-12-31T00:00:00+00:00")) is not None


def test_the_future_is_measured_from_the_runs_window_end():
    window_end = datetime(2030, 1, 10, tzinfo=UTC)
    record = backup_record(created_at="2030-01-09T23:00:00+00:00")

    assert record_problem(record, window_end) is None
    assert record_problem(record, window_end - timedelta(days=3)) is not None


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("../full.dump", "contains '..'"),
        ("db/../../etc/passwd", "contains '..'"),
        ("db\\..\\full.dump", "contains '..'"),
        ("/var/backups/full.dump", "is absolute; catalog paths must be relative to local_root"),
        ("\\\\share\\full.dump", "is absolute"),
        ("C:/backups/full.dump", "is absolute"),
        ("c:\\backups\\full.dump", "is absolute"),
        ("db/full.dump\n", "contains control characters"),
        ("db/\x00full.dump", "contains control characters"),
        ("db/\tfull.dump", "contains control characters"),
        ("db/full.dump\x7f", "contains control characters"),
        ("db/", "names a folder, not a file"),
    ],
)
def test_unsafe_local_paths_are_refused(path, says):
    problem = path_problem("local", path, local=True)

    assert problem is not None
    assert problem.startswith(f"local path {path!r} ")
    assert says in problem


@pytest.mark.parametrize("key", ["../full.dump", "/full/x.enc", "db/../x", "C:/odd-but-valid-key"])
def test_object_keys_are_names_not_paths(key):
    assert path_problem("r2", key, local=False) is None
    assert path_problem("b2", key, local=False) is None


@pytest.mark.parametrize("key", ["db/full.dump\n", "db/\x00full.dump"])
def test_object_keys_with_control_characters_are_refused(key):
    assert "contains control characters" in path_problem("b2", key, local=False)


@pytest.mark.parametrize("path", ["db/full.dump", "full..dump", "db/.hidden/x.tar.gz", "2026/03/01/wal-0001"])
def test_safe_paths_pass(path):
    assert path_problem("local", path, local=True) is None


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_empty_path_is_not_recorded(value):
    assert path_for(backup_record(r2_path=value), "r2") is None


def test_path_for_reads_the_backend_column():
    record = backup_record(local_path="l/x", r2_path="r/x", b2_path="b/x")

    assert [path_for(record, b) for b in ("local", "r2", "b2")] == ["l/x", "r/x", "b/x"]


# ----------------------------------------------------------------------------- precheck


@pytest.mark.parametrize("value", [None, "", "  "])
def test_precheck_reports_an_unrecorded_path_as_missing(value):
    result = precheck(backup_record(b2_path=value), store_spec("b2"), mode="quick", checked_at=CHECKED_AT)

    assert result is not None
    assert result["kind"] == MISSING
    assert result["message"] == "not recorded in catalog: b2_path is empty"
    assert result["path"] is None
    assert result["backend"] == "b2"
    assert result["checked_at"] == CHECKED_AT


def test_precheck_reports_a_bad_row_before_a_missing_path():
    result = precheck(
        backup_record(size_bytes=None, local_path=None),
        store_spec("local"),
        mode="quick",
        checked_at=CHECKED_AT,
    )

    assert result is not None
    assert result["kind"] == INVALID_RECORD
    assert "size_bytes is NULL" in result["message"]


def test_precheck_refuses_an_unsafe_path_and_keeps_it():
    result = precheck(
        backup_record(local_path="../x"), store_spec("local"), mode="full", checked_at=CHECKED_AT
    )

    assert result is not None
    assert (result["kind"], result["path"], result["mode"]) == (INVALID_RECORD, "../x", "full")
    assert "contains '..'" in result["message"]


def test_precheck_leaves_a_good_row_to_the_store():
    assert precheck(backup_record(), store_spec("local"), mode="quick", checked_at=CHECKED_AT) is None


# ----------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("observation", "kind"),
    [
        (Observation(invalid="symlink", error="timeout", exists=False), INVALID_RECORD),
        (Observation(error="timeout", exists=False), BACKEND_ERROR),
        (Observation(error="timeout", exists=True, size=1, content_sha256=OTHER_SHA256), BACKEND_ERROR),
        (Observation(exists=False), MISSING),
        (Observation(exists=False, size=1, content_sha256=OTHER_SHA256), MISSING),
        (Observation(exists=True, size=SIZE + 1, content_sha256=OTHER_SHA256), SIZE_MISMATCH),
        (Observation(exists=True, size=None), SIZE_MISMATCH),
        (Observation(exists=True, size=SIZE, content_sha256=OTHER_SHA256), CHECKSUM_MISMATCH),
        (Observation(exists=True, size=SIZE, content_sha256=CONTENT_SHA256), PASSED),
    ],
)
def test_the_first_failure_that_applies_wins(observation, kind):
    assert observe(backup_record(), observation)["kind"] == kind


@pytest.mark.parametrize(
    ("server_sha256", "kind", "evidence"),
    [
        (CONTENT_SHA256, PASSED, EVIDENCE_SERVER_SHA256),
        (CONTENT_SHA256.upper(), PASSED, EVIDENCE_SERVER_SHA256),
        (OTHER_SHA256, CHECKSUM_MISMATCH, EVIDENCE_SERVER_SHA256),
        (None, PASSED, EVIDENCE_SIZE),
    ],
)
def test_quick_mode_uses_the_stores_sha256_when_there_is_one(server_sha256, kind, evidence):
    result = observe(backup_record(), Observation(exists=True, size=SIZE, server_sha256=server_sha256))

    assert (result["kind"], result["evidence"]) == (kind, evidence)


@pytest.mark.parametrize("mode", ["quick", "full"])
@pytest.mark.parametrize(
    ("content_sha256", "kind"), [(CONTENT_SHA256, PASSED), (OTHER_SHA256, CHECKSUM_MISMATCH)]
)
def test_a_content_hash_decides_over_the_stores_sha256(mode, content_sha256, kind):
    observation = Observation(
        exists=True, size=SIZE, server_sha256=OTHER_SHA256, content_sha256=content_sha256
    )

    result = observe(backup_record(), observation, mode=mode)

    assert (result["kind"], result["evidence"]) == (kind, EVIDENCE_CONTENT)


@pytest.mark.parametrize("server_sha256", [None, CONTENT_SHA256])
def test_full_mode_without_a_content_hash_is_never_passed(server_sha256):
    observation = Observation(exists=True, size=SIZE, server_sha256=server_sha256)

    result = observe(backup_record(), observation, mode="full", backend="local")

    assert result["kind"] == BACKEND_ERROR
    assert result["evidence"] is None
    assert result["message"] == f"local object {PATH!r} was not read in full mode"


def test_catalog_checksum_in_upper_case_matches_the_content():
    record = backup_record(checksum=CONTENT_SHA256.upper())

    result = observe(record, Observation(exists=True, size=SIZE, content_sha256=CONTENT_SHA256), mode="full")

    assert result["kind"] == PASSED


@pytest.mark.parametrize("checksum", [CONTENT_SHA256 + "\n", f" {CONTENT_SHA256} "])
def test_checksum_accepted_with_whitespace_matches_its_content(checksum):
    record = backup_record(checksum=checksum)
    assert record_problem(record) is None

    result = observe(record, Observation(exists=True, size=SIZE, content_sha256=CONTENT_SHA256), mode="full")

    assert result["kind"] == PASSED


def test_a_result_carries_what_was_expected_and_what_was_found():
    observation = Observation(
        exists=True,
        size=SIZE + 1,
        server_sha256=OTHER_SHA256,
        extra={"etag": "abc"},
    )

    result = observe(backup_record(id="b-9"), observation)

    assert result == {
        "backup_id": "b-9",
        "backend": "r2",
        "kind": SIZE_MISMATCH,
        "message": f"r2 object {PATH!r} is {SIZE + 1} bytes, catalog says {SIZE}",
        "path": PATH,
        "expected": {"size_bytes": SIZE, "sha256": CONTENT_SHA256},
        "actual": {"size_bytes": SIZE + 1, "server_sha256": OTHER_SHA256, "etag": "abc"},
        "mode": "quick",
        "evidence": None,
        "checked_at": CHECKED_AT,
    }


def test_a_missing_object_has_no_actual_values():
    result = observe(backup_record(), Observation(exists=False))

    assert result["actual"] is None
    assert result["message"] == f"r2 has no object at {PATH!r}"


def test_a_backend_error_names_the_backend_and_the_error():
    result = observe(backup_record(), Observation(error="ReadTimeout"), backend="b2")

    assert result["message"] == "b2 could not be checked: ReadTimeout"
