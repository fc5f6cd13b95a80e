"""Recognising a backup's plaintext from its bytes: gzip, pg_dump's formats, the trailer, tar names, WAL."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile

import pytest

from include.backup_integrity.domain import restore_formats as formats

SEGMENT = 16 * 1024 * 1024


def ustar(*members: str, size: int = 3) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in members:
            info = tarfile.TarInfo(name)
            info.size = size
            archive.addfile(info, io.BytesIO(b"x" * size))
    return buffer.getvalue()


class CountingReader(io.BytesIO):
    """A file that counts the bytes read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def wal_page(magic: int = 0xD110, info: int = 0x0002, seg_size: int = SEGMENT) -> bytes:
    header = struct.pack("<HHIQI4xQII", magic, info, 1, 0x3000000, 0, 7714477997509765107, seg_size, 8192)
    return header + b"\0" * (8192 - len(header))


def test_gzip_is_known_by_its_magic_number():
    assert formats.is_gzip(gzip.compress(b"data"))
    assert not formats.is_gzip(b"PGDMP\x01")
    assert not formats.is_gzip(b"\x1f")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"PGDMP\x01\x0e\x00\x04\x08\x01\x01", formats.CUSTOM_ARCHIVE),
        (ustar("toc.dat"), formats.TAR_ARCHIVE),
        (ustar("./toc.dat"), formats.FOREIGN_TAR),
        (ustar("etc/app.conf"), formats.FOREIGN_TAR),
        (b"--\n-- PostgreSQL database dump\n--\n", formats.PLAIN_SQL),
        (b"", formats.PLAIN_SQL),
    ],
)
def test_pg_dump_archive_format_from_the_bytes(head, expected):
    assert formats.pg_dump_archive_format(io.BytesIO(head)) == expected


def test_a_tar_holding_toc_dat_after_other_members_is_pg_dumps_tar_format():
    assert formats.pg_dump_archive_format(io.BytesIO(ustar("3001.dat", "toc.dat"))) == formats.TAR_ARCHIVE
    assert formats.pg_dump_archive_format(io.BytesIO(ustar("3001.dat", "restore.sql"))) == (
        formats.FOREIGN_TAR
    )
    assert formats.pg_dump_archive_format(io.BytesIO(ustar("a/toc.dat"))) == formats.FOREIGN_TAR


def test_the_members_are_found_by_their_headers_without_reading_their_data():
    archive = CountingReader(ustar("big.dat", "toc.dat", size=4 * 1024 * 1024))

    assert formats.pg_dump_archive_format(archive) == formats.TAR_ARCHIVE
    assert archive.bytes_read < 64 * 1024, "a member's data was read, not skipped"


def test_a_damaged_tar_holds_only_what_comes_before_the_damage():
    whole = ustar("3001.dat", "toc.dat")
    cut = whole[: 512 + 512 + 100]  # the first member and part of the second header
    assert formats.pg_dump_archive_format(io.BytesIO(cut)) == formats.FOREIGN_TAR
    assert formats.pg_dump_archive_format(io.BytesIO(ustar("toc.dat")[:700])) == formats.TAR_ARCHIVE


@pytest.mark.parametrize(
    "tail",
    [
        b"COPY t FROM stdin;\n\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n",
        # pg_dump since the August 2025 releases: \unrestrict after the trailer.
        b"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict ox0eNiGMicCH7fT53cu7Dri\n\n",
        b"-- PostgreSQL database dump complete",
    ],
)
def test_a_complete_plain_dump_ends_with_the_trailer(tail):
    assert formats.plain_dump_is_complete(tail)


@pytest.mark.parametrize(
    "tail",
    [
        b"CREATE TABLE public.t (\n    a integer\n);\n\n",  # cut at a statement boundary
        b"COPY t FROM stdin;\n1\n2\n",
        b"-- PostgreSQL database dump complete\nCREATE TABLE after_the_trailer ();\n",
        b"",
    ],
)
def test_a_plain_dump_without_the_trailer_is_incomplete(tail):
    assert not formats.plain_dump_is_complete(tail)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("etc/app.conf", None),
        ("./etc/app.conf", None),
        ("a..b/c", None),
        ("/etc/passwd", "absolute name"),
        ("../outside", "'..'"),
        ("etc/../../outside", "'..'"),
    ],
)
def test_tar_member_names(name, problem):
    found = formats.tar_member_problem(name)
    assert (found is None) if problem is None else (problem in found)


def test_a_segment_of_the_right_size_with_a_valid_long_header_is_a_wal_segment():
    page = wal_page()

    assert formats.wal_segment_problem(SEGMENT, page, SEGMENT) is None
    assert formats.wal_version(page) == "15"
    assert formats.WAL_HEADER_BYTES == 40


@pytest.mark.parametrize(
    ("size", "page", "problem"),
    [
        (SEGMENT - 8192, wal_page(), "not wal_segment_bytes"),
        (SEGMENT, wal_page(magic=0x1234), "xlp_magic 0x1234 is not that of a supported version"),
        (SEGMENT, wal_page(info=0x0001), "no long page header"),
        (SEGMENT, wal_page(seg_size=64 * 1024 * 1024), "segments of 67108864 bytes"),
        (SEGMENT, b"\0" * 10, "too short"),
    ],
)
def test_a_wrong_segment_says_why(size, page, problem):
    assert problem in formats.wal_segment_problem(size, page, SEGMENT)


def test_every_supported_version_magic_is_known():
    assert set(formats.WAL_PAGE_MAGIC.values()) == {str(v) for v in range(10, 19)}
    for magic in formats.WAL_PAGE_MAGIC:
        assert formats.wal_segment_problem(SEGMENT, wal_page(magic=magic), SEGMENT) is None


@pytest.mark.parametrize("size", [2**20, 2**24, 2**30])
def test_segment_sizes_postgresql_accepts(size):
    assert formats.is_valid_wal_segment_size(size)
    assert not formats.is_valid_wal_segment_size(size + 1)
