"""The listing fast path on pages written out here, against botocore's own parser of the same bytes.

Real listings from moto, and the fast path inside a real client, are in
``tests/integration/test_s3_store.py``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import botocore.session
import pytest
from botocore.parsers import create_parser
from botocore.utils import parse_timestamp

from include.backup_integrity.stores.s3 import s3_fingerprint
from include.backup_integrity.stores.s3_listing import (
    OFF,
    ON,
    UNCHECKED,
    ListingFastPath,
    fast_timestamp,
    read_listing_page,
)

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"

PLAIN = (
    "<Contents><Key>db/a.dump</Key><LastModified>2026-12-01T00:49:00.000Z</LastModified>"
    "<ETag>&quot;9e107d9d372bb6826bd81d3542a419d6&quot;</ETag><Size>10</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
)
SUMMED = (
    "<Contents><Key>db/b &amp; c&lt;.dump</Key><LastModified>2026-12-01T00:50:00.123Z</LastModified>"
    "<ETag>&quot;e4d909c290d0fb1ca068ffaddf22cbd0-2&quot;</ETag><ChecksumAlgorithm>SHA256</ChecksumAlgorithm>"
    "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumType>COMPOSITE</ChecksumType><Size>0</Size>"
    "<Owner><DisplayName>ops</DisplayName><ID>75aa57f09aa0c8caeab4f8c24e99d10f</ID></Owner>"
    "<StorageClass>STANDARD_IA</StorageClass></Contents>"
)
EMPTY_FIELDS = "<Contents><Key>db/c.dump</Key><ETag></ETag><Size>1</Size><StorageClass/></Contents>"
RESTORING = (
    "<Contents><Key>db/d.dump</Key><Size>1</Size><RestoreStatus><IsRestoreInProgress>true"
    "</IsRestoreInProgress></RestoreStatus></Contents>"
)


def page(*objects: str, namespace: str = NAMESPACE) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{namespace}">'
        "<Name>backups</Name><Prefix>db/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>{''.join(objects)}"
        "<CommonPrefixes><Prefix>db/sub/</Prefix></CommonPrefixes>"
        "<NextContinuationToken>token</NextContinuationToken></ListBucketResult>"
    ).encode()


@pytest.fixture(scope="module")
def output_shape():
    model = botocore.session.get_session().get_service_model("s3")
    return model.operation_model("ListObjectsV2").output_shape


def botocore_parse(body: bytes, output_shape) -> dict:
    parsed = create_parser("rest-xml").parse({"headers": {}, "status_code": 200, "body": body}, output_shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


@pytest.mark.parametrize(
    "objects",
    [(PLAIN,), (PLAIN, SUMMED), (EMPTY_FIELDS,), ()],
    ids=["plain", "checksums and an owner", "empty elements", "no objects"],
)
def test_a_page_reads_as_botocore_parses_it(objects, output_shape):
    body = page(*objects)
    read = read_listing_page(body)

    assert read is not None
    expected = botocore_parse(body, output_shape)
    assert read.objects == expected.get("Contents", [])
    rest = botocore_parse(read.remainder, output_shape)
    assert "Contents" not in rest
    assert rest == {k: v for k, v in expected.items() if k != "Contents"}, "the rest of the page is intact"


def test_a_page_without_a_namespace_reads_alike(output_shape):
    body = page(PLAIN, SUMMED).replace(f' xmlns="{NAMESPACE}"'.encode(), b"")
    assert read_listing_page(body).objects == botocore_parse(body, output_shape)["Contents"]


@pytest.mark.parametrize(
    "body",
    [
        page(PLAIN, RESTORING),
        page(PLAIN.replace("<Size>10</Size>", "<Size>10</Size><!-- a comment -->")),
        page(PLAIN.replace("db/a.dump", "<![CDATA[db/</Contents>.dump]]>")),
        page(PLAIN.replace("<Contents>", '<Contents kind="x">')),
        page(PLAIN, "<CommonPrefixes><Prefix>db/a/</Prefix></CommonPrefixes>", SUMMED),
    ],
    ids=["an element it does not read", "a comment", "CDATA", "an attribute", "objects not side by side"],
)
def test_a_page_with_anything_else_is_left_to_botocore(body):
    assert read_listing_page(body) is None


def listing_call(body: bytes, status: int = 200) -> tuple[dict, dict]:
    """The arguments botocore's before-parse event passes, for one response."""
    return {"headers": {}, "status_code": status, "body": body, "context": {}}, {}


def test_the_fast_path_is_on_only_after_a_page_read_as_botocore_read_it(output_shape):
    fast_path = ListingFastPath()
    body = page(PLAIN, SUMMED)

    response, customized = listing_call(body)
    fast_path.before_parse(response_dict=response, customized_response_dict=customized)
    assert response["body"] == body, "the check page is botocore's to parse"
    assert customized == {}
    fast_path.after_call(parsed=botocore_parse(body, output_shape))
    assert fast_path.state == ON

    response, customized = listing_call(body)
    fast_path.before_parse(response_dict=response, customized_response_dict=customized)
    assert customized["Contents"] == botocore_parse(body, output_shape)["Contents"]
    assert b"<Contents>" not in response["body"]
    assert fast_path.pages_read == 1


def test_a_page_without_objects_decides_nothing(output_shape):
    fast_path = ListingFastPath()
    response, customized = listing_call(page())
    fast_path.before_parse(response_dict=response, customized_response_dict=customized)
    fast_path.after_call(parsed=botocore_parse(page(), output_shape))
    assert fast_path.state == UNCHECKED


def test_an_error_response_is_never_touched():
    fast_path = ListingFastPath()
    fast_path.state = ON
    error = b"<Error><Code>SlowDown</Code></Error>"
    response, customized = listing_call(error, status=503)
    fast_path.before_parse(response_dict=response, customized_response_dict=customized)
    assert response["body"] == error
    assert customized == {}


def test_a_reading_unlike_botocores_turns_the_fast_path_off_with_a_warning(output_shape, caplog):
    fast_path = ListingFastPath()
    body = page(PLAIN)
    response, customized = listing_call(body)
    fast_path.before_parse(response_dict=response, customized_response_dict=customized)
    parsed = botocore_parse(body, output_shape)
    parsed["Contents"][0]["Size"] = 11  # as if botocore read the page otherwise

    with caplog.at_level(logging.WARNING):
        fast_path.after_call(parsed=parsed)

    assert fast_path.state == OFF
    assert "listing fast path off" in caplog.text
    assert "'db/a.dump', field(s) Size" in caplog.text
    response, customized = listing_call(body)
    fast_path.before_parse(response_dict=response, customized_response_dict=customized)
    assert response["body"] == body, "off for good"
    assert customized == {}


def test_an_event_without_the_expected_arguments_turns_the_fast_path_off(caplog):
    fast_path = ListingFastPath()
    with caplog.at_level(logging.WARNING):
        fast_path.before_parse(response={"body": page(PLAIN)})
    assert fast_path.state == OFF
    assert "no longer passes response_dict" in caplog.text


def test_a_reader_that_breaks_turns_the_fast_path_off_and_leaves_the_page_alone(caplog):
    def broken(body: bytes):
        raise KeyError("surprise")

    fast_path = ListingFastPath(read_page=broken)
    body = page(PLAIN)
    response, customized = listing_call(body)
    with caplog.at_level(logging.WARNING):
        fast_path.before_parse(response_dict=response, customized_response_dict=customized)
    assert fast_path.state == OFF
    assert response["body"] == body
    assert customized == {}


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
