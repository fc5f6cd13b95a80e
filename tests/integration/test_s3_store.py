"""The S3 backend's own parsing of listings: timestamps, and listed objects against botocore's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.utils import parse_timestamp

from include.backup_integrity.stores.backends import fast_timestamp, make_s3_client, s3_fingerprint

pytestmark = pytest.mark.s3_servers  # r2 on moto, then on SeaweedFS


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


@pytest.mark.parametrize("owner", [{}, {"FetchOwner": True}], ids=["plain objects", "objects with an owner"])
def test_a_listing_parses_as_botocore_parses_it(stores, airflow_env, owner):
    bucket = stores.r2_bucket
    stores.r2.put_object(Bucket=bucket, Key="db/2026/12/01/plain.dump", Body=b"x" * 10)
    stores.r2.put_object(
        Bucket=bucket, Key="db/2026/12/01/summed.dump", Body=b"y" * 7, ChecksumAlgorithm="SHA256"
    )
    stores.r2.put_object(Bucket=bucket, Key="db/2026/12/01/a b+c%\u00fc&<.dump", Body=b"")
    stores.r2.put_object(Bucket=bucket, Key="db/2026/12/01/sub/deeper.dump", Body=b"z")

    ours = make_s3_client("backup_r2")
    request = {"Bucket": bucket, "Prefix": "db/2026/12/01/", "Delimiter": "/", **owner}

    page = ours.list_objects_v2(**request)
    expected = stores.r2.list_objects_v2(**request)

    page.pop("ResponseMetadata")
    expected.pop("ResponseMetadata")
    assert page == expected
    assert len(page["Contents"]) == 3
    assert all({"Key", "LastModified", "ETag", "Size"} <= set(item) for item in page["Contents"])
    assert all(("Owner" in item) == bool(owner) for item in page["Contents"])
