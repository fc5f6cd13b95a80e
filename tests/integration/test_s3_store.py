"""The listing fast path on real listings from moto, and the botocore hooks it relies on (its guard).

The guard tests fail loudly when a botocore upgrade changes the ``before-parse``
event's arguments or the order of the ``after-call`` handlers; the fast path then
turns itself off at run time (botocore parses every page), and these name what changed.
"""

from __future__ import annotations

import logging
import re

import pytest

from include.backup_integrity.stores.s3 import make_s3_client
from include.backup_integrity.stores.s3_listing import (
    AFTER_CALL,
    BEFORE_PARSE,
    OFF,
    ON,
    ListingFastPath,
    install_listing_fast_path,
    read_listing_page,
)

pytestmark = pytest.mark.s3_servers  # r2 on moto, then on SeaweedFS

FOLDER = "db/2026/12/01/"


def seed_folder(client, bucket: str) -> None:
    """Objects of every shape a listing shows: checksums, multipart, odd keys, a sub-folder."""
    client.put_object(Bucket=bucket, Key=f"{FOLDER}plain.dump", Body=b"x" * 10)
    client.put_object(Bucket=bucket, Key=f"{FOLDER}summed.dump", Body=b"y" * 7, ChecksumAlgorithm="SHA256")
    client.put_object(Bucket=bucket, Key=f"{FOLDER}crc.dump", Body=b"c" * 3, ChecksumAlgorithm="CRC32")
    client.put_object(Bucket=bucket, Key=f"{FOLDER}a b+c%\u00fc&<.dump", Body=b"")
    client.put_object(Bucket=bucket, Key=f"{FOLDER}cold.dump", Body=b"i", StorageClass="STANDARD_IA")
    client.put_object(Bucket=bucket, Key=f"{FOLDER}sub/deeper.dump", Body=b"z")
    upload = client.create_multipart_upload(Bucket=bucket, Key=f"{FOLDER}parts.dump")
    part = client.upload_part(
        Bucket=bucket, Key=f"{FOLDER}parts.dump", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 99
    )
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=f"{FOLDER}parts.dump",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    for index in range(23):
        client.put_object(Bucket=bucket, Key=f"{FOLDER}many/{index:03d}.dump", Body=b"m" * index)


def all_pages(client, **request) -> list[dict]:
    """Every page of a listing, without the per-request metadata."""
    pages = []
    while True:
        page = client.list_objects_v2(**request)
        pages.append({k: v for k, v in page.items() if k != "ResponseMetadata"})
        if not page.get("IsTruncated"):
            return pages
        request["ContinuationToken"] = page["NextContinuationToken"]


REQUESTS = [
    {"Prefix": FOLDER, "Delimiter": "/"},
    {"Prefix": FOLDER, "Delimiter": "/", "FetchOwner": True},
    {"Prefix": FOLDER, "MaxKeys": 5},
    {"Prefix": f"{FOLDER}many/", "StartAfter": f"{FOLDER}many/010", "MaxKeys": 4},
    {"Prefix": "nothing/here/"},
]


def test_the_fast_path_reads_real_listings_as_botocore_does(stores, r2_store):
    bucket = stores.r2_bucket
    seed_folder(stores.r2, bucket)
    plain = r2_store.client()
    fast = r2_store.client()
    fast_path = install_listing_fast_path(fast)

    for request in REQUESTS:
        assert all_pages(fast, Bucket=bucket, **request) == all_pages(plain, Bucket=bucket, **request), (
            request
        )

    assert fast_path.state == ON
    assert fast_path.pages_read >= 10, "after its first page, the fast path read the others itself"


def test_a_fast_path_that_reads_unlike_botocore_turns_off_and_every_page_stays_right(
    stores, r2_store, caplog
):
    bucket = stores.r2_bucket
    seed_folder(stores.r2, bucket)

    def wrong_sizes(body: bytes):
        page = read_listing_page(body)
        for item in page.objects if page else []:
            item["Size"] += 1
        return page

    plain = r2_store.client()
    fast = r2_store.client()
    fast_path = install_listing_fast_path(fast, ListingFastPath(read_page=wrong_sizes))

    with caplog.at_level(logging.WARNING, logger="include.backup_integrity.stores.s3_listing"):
        pages = all_pages(fast, Bucket=bucket, Prefix=FOLDER, MaxKeys=5)

    assert pages == all_pages(plain, Bucket=bucket, Prefix=FOLDER, MaxKeys=5)
    assert fast_path.state == OFF
    assert fast_path.pages_read == 0
    assert "listing fast path off: it read a page unlike botocore" in caplog.text


def test_the_clients_of_the_package_list_with_the_fast_path(stores, airflow_env):
    bucket = stores.r2_bucket
    seed_folder(stores.r2, bucket)
    ours = make_s3_client("backup_r2")
    request = {"Bucket": bucket, "Prefix": FOLDER, "Delimiter": "/", "FetchOwner": True}
    left_to_botocore: list[bool] = []
    ours.meta.events.register(  # after the fast path's own handler: sees what botocore will parse
        BEFORE_PARSE,
        lambda response_dict, **_: left_to_botocore.append(b"<Contents>" in response_dict["body"]),
    )

    first, second = all_pages(ours, **request), all_pages(ours, **request)

    assert first == second == all_pages(stores.r2, **request)
    assert len(first[0]["Contents"]) == 6
    assert left_to_botocore == [True, False], "the first page checks the fast path, it reads the second"


# ----------------------------------------------------------------------------- guard: botocore's hooks


def test_botocore_still_passes_before_parse_what_the_fast_path_uses(stores, r2_store):
    """``response_dict`` with the raw body, ``customized_response_dict`` merged into the response."""
    bucket = stores.r2_bucket
    seed_folder(stores.r2, bucket)
    client = r2_store.client()
    seen: list[dict] = []

    def handler(**kwargs):
        response = kwargs["response_dict"]
        seen.append({"status": response["status_code"], "body": response["body"], "names": set(kwargs)})
        response["body"] = re.sub(rb"<Contents>.*?</Contents>", b"", response["body"], flags=re.DOTALL)
        kwargs["customized_response_dict"]["Contents"] = [{"Key": "from the handler"}]

    client.meta.events.register(BEFORE_PARSE, handler)
    page = client.list_objects_v2(Bucket=bucket, Prefix=FOLDER, Delimiter="/")

    assert len(seen) == 1, f"{BEFORE_PARSE} was not emitted once per request"
    assert {"response_dict", "customized_response_dict", "operation_model"} <= seen[0]["names"]
    assert seen[0]["status"] == 200
    assert isinstance(seen[0]["body"], bytes)
    assert b"<Contents>" in seen[0]["body"], "the handler sees the raw page"
    assert page["Contents"] == [{"Key": "from the handler"}], "customized_response_dict is the response's"
    prefixes = {p["Prefix"] for p in page["CommonPrefixes"]}
    assert prefixes == {f"{FOLDER}sub/", f"{FOLDER}many/"}, "the rest of the body is parsed as before"


def test_a_first_after_call_handler_still_sees_keys_before_botocore_decodes_them(stores, r2_store):
    """botocore asks for URL-encoded keys and decodes them in its own after-call handler, later."""
    bucket = stores.r2_bucket
    seed_folder(stores.r2, bucket)
    client = r2_store.client()
    seen: list[str] = []

    client.meta.events.register_first(
        AFTER_CALL, lambda parsed, **_: seen.extend(item["Key"] for item in parsed.get("Contents", []))
    )
    page = client.list_objects_v2(Bucket=bucket, Prefix=FOLDER, Delimiter="/")

    odd = f"{FOLDER}a b+c%\u00fc&<.dump"
    assert odd in [item["Key"] for item in page["Contents"]]
    assert odd not in seen, "the first after-call handler no longer sees the keys as listed"


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

    for _ in range(2):  # the first page checks the fast path, the second is read by it
        page = ours.list_objects_v2(**request)
        expected = stores.r2.list_objects_v2(**request)
        page.pop("ResponseMetadata")
        expected.pop("ResponseMetadata")
        assert page == expected
    assert len(page["Contents"]) == 3
    assert all({"Key", "LastModified", "ETag", "Size"} <= set(item) for item in page["Contents"])
    assert all(("Owner" in item) == bool(owner) for item in page["Contents"])
