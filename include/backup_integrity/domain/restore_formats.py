"""Recognising what a backup's plaintext is, from its bytes alone.

A restore drill is told a backup type's format (``pg_dump``, ``tar``, ``wal``); what
exactly the bytes hold is read from them: gzip by its magic number, a pg_dump archive
by ``PGDMP`` (custom) or a ustar archive holding ``toc.dat`` (tar), anything else as
plain SQL, which must end with pg_dump's completion trailer. A WAL segment must carry
a valid long page header. Pure functions of bytes (or of a seekable file of them), so
each rule is tested without a server or a tool.
"""

from __future__ import annotations

import posixpath
import struct
import tarfile
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
PGDMP_MAGIC = b"PGDMP"
#: The member that makes a tar archive pg_dump's tar format: its table of contents.
PG_DUMP_TOC = "toc.dat"

#: What a ``pg_dump`` backup turned out to be.
CUSTOM_ARCHIVE = "custom"
TAR_ARCHIVE = "tar"
PLAIN_SQL = "plain"
#: A tar archive that is not pg_dump's tar format (a directory-format dump packed
#: with tar, or any other tar): pg_restore cannot read it.
FOREIGN_TAR = "foreign_tar"

#: How many bytes :func:`pg_dump_archive_format` reads before it knows the kind of file.
HEAD_BYTES = 512
#: How many bytes from the end :func:`plain_dump_is_complete` reads.
TAIL_BYTES = 64 * 1024

COMPLETION_TRAILER = "-- PostgreSQL database dump complete"

_USTAR_MAGIC_OFFSET = 257


def is_gzip(head: bytes) -> bool:
    """Whether the data starts with gzip's magic number (RFC 1952)."""
    return head[:2] == GZIP_MAGIC


def is_ustar(head: bytes) -> bool:
    """Whether the data starts with a POSIX ustar (or GNU tar) header."""
    return len(head) >= _USTAR_MAGIC_OFFSET + 5 and head[_USTAR_MAGIC_OFFSET : _USTAR_MAGIC_OFFSET + 5] == (
        b"ustar"
    )


def pg_dump_archive_format(archive: BinaryIO) -> str:
    """Which of pg_dump's single-file formats a seekable binary file holds, from its start.

    Custom: the ``PGDMP`` magic. Tar: a ustar archive holding a member named
    ``toc.dat`` (pg_dump writes it first; any member may be, so all headers are
    scanned); any other tar is :data:`FOREIGN_TAR`. Otherwise plain SQL. The directory format is a folder,
    never a single file.
    """
    archive.seek(0)
    head = archive.read(HEAD_BYTES)
    if head.startswith(PGDMP_MAGIC):
        return CUSTOM_ARCHIVE
    if is_ustar(head):
        archive.seek(0)
        return TAR_ARCHIVE if tar_holds_member(archive, PG_DUMP_TOC) else FOREIGN_TAR
    return PLAIN_SQL


def tar_holds_member(archive: BinaryIO, name: str) -> bool:
    """Whether a seekable tar archive has a member named ``name``.

    Only the members' headers are read: ``tarfile`` seeks over each member's data, so
    an archive of any size is scanned in constant memory. A damaged archive holds what
    was found before the damage.
    """
    try:
        with tarfile.open(fileobj=archive, mode="r:") as members:
            for member in members:
                if member.name == name:
                    return True
    except (tarfile.TarError, EOFError):
        return False
    return False


def plain_dump_is_complete(tail: bytes) -> bool:
    """Whether a plain SQL dump ends with pg_dump's completion trailer.

    pg_dump writes ``-- PostgreSQL database dump complete`` as its last comment; since
    the August 2025 releases it follows it with ``\\unrestrict <key>``. A dump cut at a
    statement boundary replays without error, and only this trailer tells it apart.
    """
    lines = tail.decode("utf-8", errors="replace").splitlines()
    while lines and (
        not lines[-1].strip() or lines[-1].strip() == "--" or lines[-1].startswith("\\unrestrict ")
    ):
        lines.pop()
    return bool(lines) and lines[-1].rstrip() == COMPLETION_TRAILER


def tar_member_problem(name: str) -> str | None:
    """Why a tar member's name is unsafe to extract (absolute, or climbing with ``..``), or None."""
    if name.startswith("/"):
        return f"member {name!r} has an absolute name"
    if ".." in posixpath.normpath(name).split("/") or ".." in name.split("/"):
        return f"member {name!r} climbs out of the archive with '..'"
    return None


# ----------------------------------------------------------------------------- WAL segments

#: ``xlp_magic`` of each PostgreSQL major version whose WAL the drill knows (xlog_internal.h).
WAL_PAGE_MAGIC: dict[int, str] = {
    0xD097: "10",
    0xD098: "11",
    0xD101: "12",
    0xD106: "13",
    0xD10D: "14",
    0xD110: "15",
    0xD113: "16",
    0xD116: "17",
    0xD118: "18",
}
#: ``xlp_info`` flag of a long page header, the header of a segment's first page.
XLP_LONG_HEADER = 0x0002
#: ``XLogLongPageHeaderData``: the standard header (magic, info, tli, pageaddr, rem_len,
#: padded to 24 bytes), then sysid, seg_size and xlog_blcksz; little-endian, as written
#: by the x86 and ARM servers that produce nearly all WAL.
_LONG_HEADER = struct.Struct("<HHIQI4xQII")
WAL_HEADER_BYTES = _LONG_HEADER.size

#: The segment sizes PostgreSQL accepts (initdb --wal-segsize): powers of two, 1 MiB to 1 GiB.
MIN_WAL_SEGMENT_BYTES = 1024 * 1024
MAX_WAL_SEGMENT_BYTES = 1024 * 1024 * 1024
DEFAULT_WAL_SEGMENT_BYTES = 16 * 1024 * 1024


def is_valid_wal_segment_size(value: int) -> bool:
    return MIN_WAL_SEGMENT_BYTES <= value <= MAX_WAL_SEGMENT_BYTES and value & (value - 1) == 0


def wal_segment_problem(size: int, first_page: bytes, segment_bytes: int) -> str | None:
    """Why a WAL segment is not one a server could replay, or None when its shape is right.

    It must be exactly ``segment_bytes`` long and its first page must carry a long page
    header: a known ``xlp_magic``, the long-header flag, and ``xlp_seg_size`` equal to
    ``segment_bytes``.
    """
    if size != segment_bytes:
        return f"the segment is {size} bytes, not wal_segment_bytes ({segment_bytes})"
    header = first_page[:WAL_HEADER_BYTES]
    if len(header) < WAL_HEADER_BYTES:
        return "the segment is too short for a WAL page header"
    magic, info, _tli, _pageaddr, _rem_len, _sysid, seg_size, _blcksz = _LONG_HEADER.unpack(header)
    if magic not in WAL_PAGE_MAGIC:
        known = ", ".join(f"0x{m:04X} (PostgreSQL {v})" for m, v in WAL_PAGE_MAGIC.items())
        return f"the first page's xlp_magic 0x{magic:04X} is not that of a supported version ({known})"
    if not info & XLP_LONG_HEADER:
        return f"the first page has no long page header (xlp_info 0x{info:04X})"
    if seg_size != segment_bytes:
        return (
            f"the long page header says segments of {seg_size} bytes, not wal_segment_bytes ({segment_bytes})"
        )
    return None


def wal_version(first_page: bytes) -> str | None:
    """The PostgreSQL major version that wrote a segment, from its ``xlp_magic``."""
    if len(first_page) < 2:
        return None
    return WAL_PAGE_MAGIC.get(struct.unpack_from("<H", first_page)[0])
