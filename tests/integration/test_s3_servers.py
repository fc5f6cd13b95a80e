"""What the two S3 servers of the suite answer, as the verifier relies on it.

moto is a simulator; SeaweedFS is a production object store. The facts below are the
differences and common ground the verifier's S3 code depends on; if a pinned release of either
changes one of them, this file says which.
"""

from __future__ import annotations

import base64
import hashlib

import botocore.exceptions
import pytest

from devtools.faultproxy import FaultProxy
from devtools.services import s3_client

BODY = b"backup bytes " * 100
SHA256_B64 = base64.b64encode(hashlib.sha256(BODY).digest()).decode()


@pytest.fixture(params=["moto", "seaweedfs"])
def s3_server(request):
    server = request.getfixturevalue("r2_server" if request.param == "moto" else "seaweed_server")
    server.reset()
    client = server.client()
    client.create_bucket(Bucket="facts-bucket")
    return request.param, server, client


def test_a_missing_key_answers_404_to_head(s3_server):
    _, _, client = s3_server
    with pytest.raises(botocore.exceptions.ClientError) as error:
        client.head_object(Bucket="facts-bucket", Key="no/such.dump")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_sha256_given_at_upload_comes_back_on_head_in_checksum_mode(s3_server):
    _, _, client = s3_server
    client.put_object(Bucket="facts-bucket", Key="a/with.dump", Body=BODY, ChecksumAlgorithm="SHA256")
    head = client.head_object(Bucket="facts-bucket", Key="a/with.dump", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == SHA256_B64
    assert head["ContentLength"] == len(BODY)


def test_an_upload_without_a_checksum_has_no_sha256(s3_server):
    _, _, client = s3_server
    client.put_object(Bucket="facts-bucket", Key="a/without.dump", Body=BODY)
    head = client.head_object(Bucket="facts-bucket", Key="a/without.dump", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in head


def test_a_crc32_sent_by_the_sdk_is_kept_and_is_not_a_sha256(s3_server):
    """Current SDKs send a CRC32 with every upload by default; both servers keep it."""
    _, _, client = s3_server
    client.put_object(Bucket="facts-bucket", Key="a/crc.dump", Body=BODY, ChecksumAlgorithm="CRC32")
    head = client.head_object(Bucket="facts-bucket", Key="a/crc.dump", ChecksumMode="ENABLED")
    assert "ChecksumCRC32" in head
    assert "ChecksumSHA256" not in head


def test_listings_give_size_and_etag_and_seaweedfs_gives_no_checksum_algorithm(s3_server):
    name, _, client = s3_server
    client.put_object(Bucket="facts-bucket", Key="a/one.dump", Body=BODY, ChecksumAlgorithm="SHA256")
    (listed,) = client.list_objects_v2(Bucket="facts-bucket", Prefix="a/", Delimiter="/")["Contents"]
    assert listed["Size"] == len(BODY)
    assert listed["ETag"] == '"' + hashlib.md5(BODY).hexdigest() + '"'
    if name == "seaweedfs":
        assert "ChecksumAlgorithm" not in listed


def test_the_fault_proxy_can_reject_the_checksum_mode_header_as_b2_did(seaweed_server):
    seaweed_server.reset()
    client = seaweed_server.client()
    client.create_bucket(Bucket="facts-bucket")
    client.put_object(Bucket="facts-bucket", Key="a/x.dump", Body=BODY)
    proxy = FaultProxy(seaweed_server.port, http=True).start()
    try:
        proxy.set_mode("reject_checksum_mode")
        through = s3_client(proxy.url)
        assert through.head_object(Bucket="facts-bucket", Key="a/x.dump")["ContentLength"] == len(BODY)
        with pytest.raises(botocore.exceptions.ClientError) as error:
            through.head_object(Bucket="facts-bucket", Key="a/x.dump", ChecksumMode="ENABLED")
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert ("HEAD", "/facts-bucket/a/x.dump", "rejected_header") in proxy.log
    finally:
        proxy.stop()
