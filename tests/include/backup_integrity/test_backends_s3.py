"""Pure parts of the S3 backend: how listing timestamps are parsed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.utils import parse_timestamp

from include.backup_integrity.backends import fast_timestamp, s3_fingerprint


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T00:49:00.000Z",  # a ListObjectsV2 LastModified
        "2026-12-01T00:49:00Z",
        "2026-12-01T02:49:00.123+02:00",
        "Tue, 01 Dec 2026 00:49:00 GMT",  # a HEAD's Last-Modified header
        1764550140,  # an epoch
    ],
)
def test_fast_timestamp_agrees_with_botocore(text):
    assert fast_timestamp(text) == parse_timestamp(text)


def test_fast_timestamp_is_always_timezone_aware():
    assert fast_timestamp("2026-12-01T00:49:00") == datetime(2026, 12, 1, 0, 49, tzinfo=UTC)
    assert fast_timestamp("2026-12-01T00:49:00+01:00").utcoffset() == timedelta(hours=1)
    assert fast_timestamp("2026-12-01T00:49:00Z").tzinfo is not None


def test_a_listing_and_a_head_give_one_object_the_same_fingerprint():
    listed = fast_timestamp("2026-12-01T00:49:00.000Z")
    headed = fast_timestamp("Tue, 01 Dec 2026 00:49:00 GMT")
    assert s3_fingerprint("abc", 7, listed) == s3_fingerprint("abc", 7, headed)
    assert listed.astimezone(UTC) == headed
