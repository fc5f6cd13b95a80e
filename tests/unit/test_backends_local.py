"""The local backend on real files, and the pure helpers the S3 backend relies on."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from include.backup_integrity.domain.checks import Observation
from include.backup_integrity.stores.base import READ_BLOCK_BYTES, hash_stream
from include.backup_integrity.stores.local import LocalBackend, hash_fd
from include.backup_integrity.stores.s3 import DEFAULT_BOTOCORE_CONFIG, botocore_config_for, sha256_from_store
from tests.support.records import CONTENT, CONTENT_SHA256


@pytest.fixture
def root(tmp_path):
    """A local root holding ``db/full.dump`` with :data:`CONTENT`."""
    root = tmp_path / "backups"
    (root / "db").mkdir(parents=True)
    (root / "db" / "full.dump").write_bytes(CONTENT)
    return root


@pytest.fixture
def backend(root):
    return LocalBackend(str(root))


@pytest.mark.parametrize("read_content", [False, True])
@pytest.mark.parametrize("path", ["db/absent.dump", "absent/full.dump", "db/full.dump/inner"])
def test_an_absent_file_does_not_exist(backend, path, read_content):
    assert backend.observe(path, read_content=read_content) == Observation(exists=False)


def test_quick_observation_reports_the_size_and_fingerprint_without_reading(root, backend):
    info = os.lstat(root / "db" / "full.dump")

    observation = backend.observe("db/full.dump", read_content=False)

    assert observation == Observation(
        exists=True,
        size=len(CONTENT),
        fingerprint=f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}",
    )


def test_full_observation_reads_the_content(backend):
    observation = backend.observe("db/full.dump", read_content=True)

    assert observation == Observation(
        exists=True,
        size=len(CONTENT),
        content_sha256=CONTENT_SHA256,
        bytes_read=len(CONTENT),
        fingerprint=backend.observe("db/full.dump", read_content=False).fingerprint,
    )


def test_a_file_larger_than_one_read_block_is_hashed_whole(root, backend):
    data = os.urandom(2 * READ_BLOCK_BYTES + 12345)
    (root / "big.dump").write_bytes(data)

    observation = backend.observe("big.dump", read_content=True)

    assert observation.content_sha256 == hashlib.sha256(data).hexdigest()
    assert observation.size == observation.bytes_read == len(data)


def test_an_empty_file_has_the_empty_sha256(root, backend):
    (root / "empty.dump").write_bytes(b"")

    observation = backend.observe("empty.dump", read_content=True)

    assert (observation.size, observation.content_sha256) == (0, hashlib.sha256(b"").hexdigest())


@pytest.mark.parametrize("read_content", [False, True])
def test_a_symlinked_file_is_refused(root, backend, read_content):
    (root / "db" / "link.dump").symlink_to(root / "db" / "full.dump")

    observation = backend.observe("db/link.dump", read_content=read_content)

    assert observation.exists is False
    assert observation.content_sha256 is None
    assert "passes through a symlink" in observation.invalid
    assert "symlinks are never followed" in observation.invalid


@pytest.mark.parametrize("read_content", [False, True])
def test_a_symlinked_directory_on_the_way_is_refused(root, tmp_path, backend, read_content):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "full.dump").write_bytes(CONTENT)
    (root / "linked").symlink_to(outside, target_is_directory=True)

    observation = backend.observe("linked/full.dump", read_content=read_content)

    assert observation.invalid is not None
    assert f"symlink at {str(root / 'linked')!r}" in observation.invalid


def test_a_dangling_symlink_is_refused_not_missing(root, backend):
    (root / "db" / "gone.dump").symlink_to(root / "db" / "nowhere.dump")

    assert backend.observe("db/gone.dump", read_content=False).invalid is not None


@pytest.mark.parametrize(
    "path", ["../backups/db/full.dump", "db/../db/full.dump", "db\\..\\..\\etc", "", "./"]
)
def test_a_path_leaving_the_root_is_refused(backend, path):
    observation = backend.observe(path, read_content=True)

    assert observation.invalid == f"local path {path!r} does not stay inside local_root"


def test_a_directory_is_not_a_regular_file(backend):
    assert backend.observe("db", read_content=False).invalid == "local path 'db' is not a regular file"


def test_the_root_itself_may_be_a_symlink(root, tmp_path):
    link = tmp_path / "current"
    link.symlink_to(root, target_is_directory=True)

    observation = LocalBackend(str(link)).observe("db/full.dump", read_content=True)

    assert observation.content_sha256 == CONTENT_SHA256


def test_open_session_checks_the_root(root, tmp_path):
    assert LocalBackend(str(root)).open_session() is None
    missing = str(tmp_path / "absent")
    assert LocalBackend(missing).open_session() == f"local_root {missing!r} does not exist or is not a folder"


def test_describe_gives_the_full_path(root, backend):
    assert backend.describe("db/full.dump") == str(root / "db" / "full.dump")


# ----------------------------------------------------------------------------- hashing


def test_hash_fd_matches_hashlib(tmp_path):
    data = os.urandom(READ_BLOCK_BYTES + 1)
    target = tmp_path / "blob"
    target.write_bytes(data)
    fd = os.open(target, os.O_RDONLY)
    try:
        assert hash_fd(fd) == (hashlib.sha256(data).hexdigest(), len(data))
    finally:
        os.close(fd)


def test_hash_stream_matches_hashlib():
    assert hash_stream(iter([b"ab", b"", b"cd"])) == (hashlib.sha256(b"abcd").hexdigest(), 4)


# ----------------------------------------------------------------------------- S3 helpers

DIGEST = hashlib.sha256(CONTENT).digest()
ENCODED = base64.b64encode(DIGEST).decode()


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"ChecksumSHA256": ENCODED}, CONTENT_SHA256),
        ({"ChecksumSHA256": ENCODED, "ChecksumType": "FULL_OBJECT"}, CONTENT_SHA256),
        ({"ChecksumSHA256": ENCODED, "ChecksumType": "COMPOSITE"}, None),
        ({"ChecksumSHA256": f"{ENCODED}-3"}, None),
        # A store that marks neither: a multipart object's ETag still ends in -<parts>.
        ({"ChecksumSHA256": ENCODED, "ETag": '"9b2cf535f27731c974343645a3985328-3"'}, None),
        ({"ChecksumSHA256": ENCODED, "ETag": '"9b2cf535f27731c974343645a3985328"'}, CONTENT_SHA256),
        ({"ChecksumSHA256": ENCODED, "ETag": '"x-2"', "ChecksumType": "FULL_OBJECT"}, CONTENT_SHA256),
        ({"ChecksumSHA256": "not base64!"}, None),
        ({"ChecksumSHA256": base64.b64encode(DIGEST[:20]).decode()}, None),
        ({"ChecksumSHA256": ""}, None),
        ({}, None),
    ],
)
def test_sha256_from_store(response, expected):
    assert sha256_from_store(response) == expected


def test_botocore_config_defaults():
    config = botocore_config_for({})

    assert config == DEFAULT_BOTOCORE_CONFIG
    assert config["response_checksum_validation"] == "when_required"


def test_botocore_config_is_overridden_key_by_key():
    config = botocore_config_for({"config_kwargs": {"read_timeout": 120, "retries": {"max_attempts": 2}}})

    assert config["read_timeout"] == 120
    assert config["connect_timeout"] == DEFAULT_BOTOCORE_CONFIG["connect_timeout"]
    assert config["retries"] == {"mode": "adaptive", "max_attempts": 2}
    assert DEFAULT_BOTOCORE_CONFIG["retries"] == {"mode": "adaptive", "max_attempts": 6}
