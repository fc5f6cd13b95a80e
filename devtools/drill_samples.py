"""Real backups for the restore drill's tests and the demo, made by the real tools.

Dumps come from the system's ``pg_dump`` (custom, plain and tar formats) of a database
on a throwaway PostgreSQL; WAL segments are archived by a separate small server started
with ``archive_mode = on`` and an ``archive_command`` that copies into a folder, after
``pg_switch_wal()``; configuration backups are real ``.tar.gz`` files; encryption is
``openssl enc -aes-256-cbc -pbkdf2``, as a backup job would run it.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
import tempfile
import time
from typing import TYPE_CHECKING

from devtools.services import PostgresServer

if TYPE_CHECKING:
    from collections.abc import Iterable

#: The decrypt command of the drill, for files made by :func:`encrypt`.
OPENSSL_DECRYPT = ["openssl", "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-pass", "env:BACKUP_PASSPHRASE"]

#: A table every sample database holds, so a check can look for it.
SAMPLE_TABLE = "drill_sample_orders"

PG_DUMP_FORMATS = {"custom": "c", "plain": "p", "tar": "t"}


def create_source_database(server: PostgresServer, name: str, rows: int = 200) -> str:
    """A database with a few tables, an index, a view and a sequence: something to dump."""
    import psycopg

    dsn = server.create_database(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {SAMPLE_TABLE} (id bigserial PRIMARY KEY, customer text NOT NULL, "
            "total numeric(10, 2) NOT NULL, placed_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("CREATE TABLE drill_sample_customers (name text PRIMARY KEY, tier int NOT NULL)")
        conn.execute(
            f"INSERT INTO {SAMPLE_TABLE} (customer, total) "
            "SELECT 'customer ' || (i %% 17), (i * 3.25)::numeric(10, 2) FROM generate_series(1, %s) AS i",
            [rows],
        )
        conn.execute(
            "INSERT INTO drill_sample_customers SELECT 'customer ' || i, i % 3 "
            "FROM generate_series(0, 16) AS i"
        )
        conn.execute(f"CREATE INDEX ON {SAMPLE_TABLE} (customer)")
        conn.execute(
            f"CREATE VIEW drill_sample_totals AS SELECT customer, sum(total) AS total FROM {SAMPLE_TABLE} "
            "GROUP BY customer"
        )
    return dsn


def pg_dump(server: PostgresServer, database: str, dump_format: str = "custom", *extra: str) -> bytes:
    """The database dumped by the system's pg_dump, in ``custom``, ``plain`` or ``tar`` format."""
    command = [
        "pg_dump",
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--username",
        server.user,
        "--format",
        PG_DUMP_FORMATS[dump_format],
        *extra,
        database,
    ]
    return subprocess.run(command, check=True, capture_output=True, env=_client_env()).stdout


def _client_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PGCONNECT_TIMEOUT": "10"}


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A real ``.tar.gz`` of these files (name → content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = int(time.time())
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def without_trailer(plain_dump: bytes) -> bytes:
    """A plain dump cut at a statement boundary: everything before its completion trailer."""
    cut = plain_dump.rfind(b"--\n-- PostgreSQL database dump complete")
    assert cut > 0, "not a plain dump with pg_dump's completion trailer"
    return plain_dump[:cut]


def cut_short(data: bytes, keep: float = 0.6) -> bytes:
    """The first part of a file, as a writer that ran out of disk leaves it."""
    return data[: int(len(data) * keep)]


def archived_wal_segments(count: int = 2) -> list[bytes]:
    """WAL segments archived by a real server (``archive_mode = on``, a copying ``archive_command``)."""
    import psycopg

    archive = tempfile.mkdtemp(prefix="bi-wal-archive-")
    os.chmod(archive, 0o777)  # the server may run as another user
    server = PostgresServer(
        settings=(
            "wal_level=replica",
            "archive_mode=on",
            f"archive_command='cp %p {archive}/%f'",
            "archive_timeout=0",
        )
    )
    server.start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE wal_filler (id int, payload text)")
            for round_ in range(count):
                conn.execute(
                    "INSERT INTO wal_filler SELECT i, repeat('x', 100) FROM generate_series(1, 2000) AS i"
                )
                conn.execute("SELECT pg_switch_wal()")
                _wait_for_segments(archive, round_ + 1)
        names = sorted(n for n in os.listdir(archive) if len(n) == 24)
        segments = []
        for name in names[:count]:
            with open(os.path.join(archive, name), "rb") as handle:
                segments.append(handle.read())
        return segments
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", archive], check=False)


def _wait_for_segments(archive: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([n for n in os.listdir(archive) if len(n) == 24]) >= count:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the server archived fewer than {count} WAL segment(s) into {archive}")


def encrypt(data: bytes, passphrase: str) -> bytes:
    """``openssl enc -aes-256-cbc -pbkdf2`` of the data, with a fresh salt."""
    return _openssl(["enc", "-aes-256-cbc", "-pbkdf2", "-salt"], data, passphrase).stdout


def decrypts_with(data: bytes, passphrase: str) -> bool:
    return _openssl(["enc", "-d", "-aes-256-cbc", "-pbkdf2"], data, passphrase, check=False).returncode == 0


def encrypt_for_another_key(data: bytes, other_key: str, drill_key: str) -> bytes:
    """Encrypted with ``other_key`` such that ``drill_key`` is refused by openssl (not garbage out).

    A wrong key passes the padding check about once in 256 tries and yields garbage; a
    fresh salt is drawn until openssl refuses the drill's key, so the sample always
    fails where a lost key fails: at decryption.
    """
    for _ in range(64):
        encrypted = encrypt(data, other_key)
        if not decrypts_with(encrypted, drill_key):
            return encrypted
    raise AssertionError("openssl accepted the wrong key 64 times in a row")


def _openssl(
    args: Iterable[str], data: bytes, passphrase: str, check: bool = True
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", *args, "-pass", "env:SAMPLE_PASSPHRASE"],
        input=data,
        capture_output=True,
        check=check,
        env={**_client_env(), "SAMPLE_PASSPHRASE": passphrase},
    )
