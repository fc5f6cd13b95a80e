"""Put backups where the verifier will look: catalog rows, local files and S3 objects.

Used by the tests and by the demo; every backup is real bytes in real stores,
and its catalog row says what a correct copy is (size and SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from include.backup_integrity.catalog.schema import read_shipped_sql

TYPES_ON_ALL = ("FULL_DATABASE", "TENANT_BACKUP", "CONFIGURATION")


@dataclass
class Stores:
    """Where seeded backups go: a catalog DSN, a local root and two S3 clients with buckets."""

    catalog_dsn: str
    local_root: str
    r2: Any
    b2: Any
    r2_bucket: str = "securesyntax"
    b2_bucket: str = "securesyntax"

    def s3(self, backend: str) -> tuple[Any, str]:
        return (self.r2, self.r2_bucket) if backend == "r2" else (self.b2, self.b2_bucket)

    def connect(self) -> Any:
        import psycopg2

        return psycopg2.connect(self.catalog_dsn)


@dataclass
class SeededBackup:
    id: str
    backup_type: str
    filename: str
    content: bytes
    created_at: datetime
    paths: dict[str, str | None] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def create_catalog(stores: Stores) -> None:
    conn = stores.connect()
    with conn, conn.cursor() as cur:
        cur.execute(read_shipped_sql("catalog_tables.sql"))
    conn.close()


def create_buckets(stores: Stores) -> None:
    for backend in ("r2", "b2"):
        client, bucket = stores.s3(backend)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def put_object(stores: Stores, backend: str, key: str, content: bytes, *, sha256: bool = True) -> None:
    """Upload like the backup writer does; with ``sha256`` the store keeps a whole-object SHA-256."""
    client, bucket = stores.s3(backend)
    kwargs: dict[str, Any] = {}
    if sha256:
        kwargs["ChecksumAlgorithm"] = "SHA256"
    client.put_object(Bucket=bucket, Key=key, Body=content, **kwargs)


def write_local(stores: Stores, path: str, content: bytes) -> None:
    full = os.path.join(stores.local_root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as handle:
        handle.write(content)


def seed_backup(
    stores: Stores,
    *,
    backup_type: str = "FULL_DATABASE",
    size: int = 2048,
    created_at: datetime | None = None,
    status: str = "COMPLETED",
    on: tuple[str, ...] | None = None,
    record_paths: tuple[str, ...] | None = None,
    server_sha256: bool = True,
    row_overrides: dict[str, Any] | None = None,
    content: bytes | None = None,
) -> SeededBackup:
    """Write a backup's bytes to ``on`` (default: where its type belongs) and insert its row."""
    backup_id = str(uuid.uuid4())
    created_at = created_at or datetime.now(UTC) - timedelta(hours=2)
    content = content if content is not None else os.urandom(size)
    filename = f"{backup_type.lower()}_{created_at:%Y%m%d_%H%M%S}_{backup_id[:8]}.dump.enc"
    default_on = ("r2", "b2") if backup_type == "WAL_ARCHIVE" else ("local", "r2", "b2")
    on = default_on if on is None else on
    record_paths = on if record_paths is None else record_paths
    folder = f"{backup_type.lower()}/{created_at:%Y/%m/%d}"
    key = f"{folder}/{filename}"
    paths: dict[str, str | None] = {b: (key if b in record_paths else None) for b in ("local", "r2", "b2")}
    for backend in on:
        if backend == "local":
            write_local(stores, key, content)
        else:
            put_object(stores, backend, key, content, sha256=server_sha256)
    backup = SeededBackup(backup_id, backup_type, filename, content, created_at, paths)
    row = {
        "id": backup_id,
        "backup_type": backup_type,
        "filename": filename,
        "size_bytes": len(content),
        "checksum": backup.sha256,
        "local_path": paths["local"],
        "r2_path": paths["r2"],
        "b2_path": paths["b2"],
        "status": status,
        "created_at": created_at,
        "metadata": json.dumps({"seeded": True}),
    }
    row.update(row_overrides or {})
    insert_row(stores, row)
    return backup


def insert_row(stores: Stores, row: dict[str, Any]) -> None:
    columns = list(row)
    conn = stores.connect()
    with conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO backups_backup ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
            [row[c] for c in columns],
        )
    conn.close()


def corrupt_same_size(stores: Stores, backup: SeededBackup, backend: str) -> None:
    """Flip bytes in place: same size, different content (the store recomputes its checksum)."""
    damaged = bytearray(backup.content)
    damaged[len(damaged) // 2] ^= 0xFF
    key = backup.paths[backend]
    assert key
    if backend == "local":
        write_local(stores, key, bytes(damaged))
    else:
        put_object(stores, backend, key, bytes(damaged))


def truncate(stores: Stores, backup: SeededBackup, backend: str, keep: int | None = None) -> None:
    keep = len(backup.content) // 2 if keep is None else keep
    key = backup.paths[backend]
    assert key
    if backend == "local":
        write_local(stores, key, backup.content[:keep])
    else:
        put_object(stores, backend, key, backup.content[:keep])


def delete(stores: Stores, backup: SeededBackup, backend: str) -> None:
    key = backup.paths[backend]
    assert key
    if backend == "local":
        os.remove(os.path.join(stores.local_root, key))
    else:
        client, bucket = stores.s3(backend)
        client.delete_object(Bucket=bucket, Key=key)


def restore(stores: Stores, backup: SeededBackup, backend: str) -> None:
    key = backup.paths[backend]
    assert key
    if backend == "local":
        write_local(stores, key, backup.content)
    else:
        put_object(stores, backend, key, backup.content)
