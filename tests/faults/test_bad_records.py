"""Bad catalog rows: each is an ``invalid_record`` with a clear message, the rest of the run is
unaffected, and no file outside ``local_root`` is ever opened.

The proof of the last point: the run happens in a child process that records every file
it opens with :func:`sys.addaudithook`, and each unsafe path leads to a decoy outside the
root holding exactly the bytes its catalog row describes, so following it would "pass".
"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta

from devtools.seed import insert_row, seed_backup
from tests.support.catalog import query
from tests.support.connections import set_variable
from tests.support.processes import start_dag_process

DECOY = b"exactly the bytes the catalog row describes" * 10
DECOY_SHA = hashlib.sha256(DECOY).hexdigest()


def row(name: str, **overrides) -> dict:
    base = {
        "id": str(uuid.uuid4()),
        "backup_type": "LOCAL_ONLY",
        "filename": f"{name}.enc",
        "size_bytes": len(DECOY),
        "checksum": DECOY_SHA,
        "local_path": f"{name}.enc",
        "r2_path": None,
        "b2_path": None,
        "status": "COMPLETED",
        "created_at": datetime.now(UTC) - timedelta(hours=1),
        "metadata": "{}",
    }
    return {**base, **overrides}


def test_bad_rows_are_invalid_records_and_nothing_outside_the_root_is_opened(
    stores, airflow_env, airflow_db, monkeypatch, tmp_path
):
    monkeypatch.delenv("AIRFLOW_CONN_BACKUP_NOTIFY")  # fourteen alerts: notices are not the point here
    root = stores.local_root
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("dotdot", "absolute", "via-folder-link", "file-link-target"):
        (outside / f"decoy-{name}.enc").write_bytes(DECOY)
    os.symlink(outside, os.path.join(root, "linked"))
    os.symlink(outside / "decoy-file-link-target.enc", os.path.join(root, "file-link.enc"))
    set_variable(
        monkeypatch,
        {
            **airflow_env,
            "expected_backends": {
                "LOCAL_ONLY": ["local"],
                "WAL_ARCHIVE": ["r2", "b2"],
                "FULL_DATABASE": ["local", "r2", "b2"],
            },
        },
    )
    good = [seed_backup(stores), seed_backup(stores, backup_type="WAL_ARCHIVE")]
    (tmp_path / "backups" / "fine.enc").write_bytes(DECOY)
    bad = {
        "dotdot": (row("dotdot", local_path="../outside/decoy-dotdot.enc"), "local", "contains '..'"),
        "absolute": (row("absolute", local_path=str(outside / "decoy-absolute.enc")), "local", "is absolute"),
        "folder symlink": (
            row("folder-link", local_path="linked/decoy-via-folder-link.enc"),
            "local",
            "symlink",
        ),
        "file symlink": (row("file-link", local_path="file-link.enc"), "local", "symlink"),
        "NULL size": (
            row("null-size", local_path="fine.enc", size_bytes=None),
            "local",
            "size_bytes is NULL",
        ),
        "negative size": (row("negative", local_path="fine.enc", size_bytes=-1), "local", "negative"),
        "short checksum": (
            row("short", local_path="fine.enc", checksum=DECOY_SHA[:63]),
            "local",
            "not a SHA-256",
        ),
        "not hex": (row("nothex", local_path="fine.enc", checksum="z" * 64), "local", "not a SHA-256"),
        "unknown type": (
            row("mystery", backup_type="MYSTERY_DUMP", local_path="fine.enc"),
            None,
            "not in expected_backends",
        ),
        "ancient": (
            row("ancient", local_path="fine.enc", created_at=datetime(1970, 1, 1, tzinfo=UTC)),
            "local",
            "implausibly old",
        ),
        "future": (
            row("future", local_path="fine.enc", created_at=datetime(2999, 1, 1, tzinfo=UTC)),
            "local",
            "in the future",
        ),
        "control char key": (
            row(
                "bell",
                backup_type="WAL_ARCHIVE",
                local_path=None,
                r2_path="wal/\x07bell.enc",
                b2_path="wal/ok\n.enc",
            ),
            "r2",
            "control characters",
        ),
    }
    for record, _, _ in bad.values():
        insert_row(stores, record)
    fine = row("fine", local_path="fine.enc")
    insert_row(stores, fine)
    audit = tmp_path / "opened.txt"
    ids = [b.id for b in good] + [r["id"] for r, _, _ in bad.values()] + [fine["id"]]

    child = start_dag_process(
        datetime.now(UTC) + timedelta(hours=1),
        conf={"backup_ids": ids, "mode": "full"},
        audit_opens=str(audit),
    )
    outcome = child.finish()

    assert outcome["state"] == "failed"
    found = {
        (r["backup_id"], r["backend"]): r
        for r in query(
            stores,
            "SELECT backup_id::text, backend, kind, message FROM backup_integrity_result WHERE run_id = %s",
            [outcome["run_id"]],
        )
    }
    for name, (record, backend, reason) in bad.items():
        result = found[(record["id"], backend or "")]
        assert result["kind"] == "invalid_record", (name, result)
        assert reason in result["message"], (name, result["message"])
    assert found[(bad["control char key"][0]["id"], "b2")]["kind"] == "invalid_record"
    for backup in good:
        assert {r["kind"] for (b, _), r in found.items() if b == backup.id} == {"passed"}, (
            "the rest is unaffected"
        )
    assert found[(fine["id"], "local")]["kind"] == "passed"

    opened = [line.split("\t", 1)[1].rstrip("\n") for line in audit.read_text().splitlines() if "\t" in line]
    assert any(path.endswith("fine.enc") for path in opened), "the audit saw the verifier open files"
    outside_real = os.path.realpath(outside)
    leaked = [p for p in opened if "decoy" in p or os.path.realpath(p).startswith(outside_real)]
    assert leaked == [], f"opened outside local_root: {leaked}"
