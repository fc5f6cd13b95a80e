"""Which alert rows are the package's and which DAG owns them: pure decisions, no database."""

from __future__ import annotations

import pytest

from include.backup_integrity.catalog.outbox import expiry_reason
from include.backup_integrity.domain.ownership import (
    SOURCE,
    VERIFIER_DAG_ID,
    WATCHDOG_DAG_ID,
    markers,
    produced_by,
    producer_of_kind,
    with_markers,
)


def test_the_marker_names_the_package_and_the_dag_that_wrote_the_row():
    assert SOURCE == "verify_storage_integrity"
    assert markers(WATCHDOG_DAG_ID) == {"source": SOURCE, "producer": "verify_storage_integrity_watchdog"}


def test_marking_copies_the_details_and_the_marker_wins_over_a_same_named_key():
    details = {"kind": "missing", "source": "application"}
    marked = with_markers(details, VERIFIER_DAG_ID)
    assert marked == {"kind": "missing", "source": SOURCE, "producer": VERIFIER_DAG_ID}
    assert details == {"kind": "missing", "source": "application"}, "the caller's dict is not changed"


def test_a_row_without_the_marker_or_with_another_producer_is_not_the_dags():
    assert produced_by(with_markers({"kind": "missing"}, VERIFIER_DAG_ID), VERIFIER_DAG_ID)
    assert not produced_by({"kind": "missing"}, VERIFIER_DAG_ID), "the application's or the replaced task's"
    assert not produced_by(with_markers({"kind": "missing"}, WATCHDOG_DAG_ID), VERIFIER_DAG_ID)
    assert not produced_by({"source": "elsewhere", "producer": VERIFIER_DAG_ID}, VERIFIER_DAG_ID)
    assert not produced_by(None, VERIFIER_DAG_ID)


def test_an_earlier_releases_stall_alert_is_the_watchdogs_and_every_other_kind_the_verifiers():
    assert producer_of_kind("verifier_stalled") == WATCHDOG_DAG_ID
    for kind in (
        "missing",
        "size_mismatch",
        "checksum_mismatch",
        "backend_error",
        "invalid_record",
        "summary",
    ):
        assert producer_of_kind(kind) == VERIFIER_DAG_ID


def test_a_row_needs_a_producer():
    with pytest.raises(ValueError, match="producer"):
        markers("")


def test_an_expired_notice_says_how_long_it_waited_where_it_arrived_and_the_last_error():
    assert expiry_reason(72, [], None) == "expired: not delivered within notice_max_age_hours (72 h)"
    assert expiry_reason(0.5, ["json://hook"], "not accepted by: mailto://ops") == (
        "expired: not delivered within notice_max_age_hours (0.5 h); accepted only by json://hook; "
        "last error: not accepted by: mailto://ops"
    )
