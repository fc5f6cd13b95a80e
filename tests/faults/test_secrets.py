"""No access key, secret, password or Apprise URL credential in task logs, XCom, alert rows or notices.

Every connection carries distinctive credentials; R2 answers downloads with an error that
quotes the request's access key id (as some stores do), so the key reaches the verifier's
own messages; the SMTP target's login fails. Then every place the package writes is
searched for every credential.
"""

from __future__ import annotations

import json
from typing import Any

from devtools.seed import delete, seed_backup
from devtools.services import apprise_connection
from tests.support.catalog import query
from tests.support.connections import s3_connection, set_connection

R2_KEY, R2_SECRET = "AKIAFAULTR2KEY7Q3X9", "r2SecretValue-9fJq2LmZ"
B2_KEY, B2_SECRET = "B2KEYID00FAULT4711", "b2SecretValue-Xy81Kq"
PG_PASSWORD = "pgPassword-Zz93Lk"
HOOK_PASSWORD = "hookPassword-Qw7Rt2"
SMTP_PASSWORD = "smtpPassword-Mn4Vb8"
SECRETS = (R2_KEY, R2_SECRET, B2_KEY, B2_SECRET, PG_PASSWORD, HOOK_PASSWORD, SMTP_PASSWORD)


def xcoms_of(run_id: str) -> list[Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id == run_id).all()
        return [row.value for row in rows]


def test_no_credential_is_logged_stored_or_sent(
    stores, through_proxies, postgres, run_with_retries, monkeypatch, webhook, smtp, capfd
):
    r2, b2, catalog = through_proxies["r2"], through_proxies["b2"], through_proxies["catalog"]
    for conn_id, proxy, key, secret in (
        ("backup_r2", r2, R2_KEY, R2_SECRET),
        ("backup_b2", b2, B2_KEY, B2_SECRET),
    ):
        set_connection(
            monkeypatch,
            conn_id,
            s3_connection(proxy, login=key, password=secret, retries={"max_attempts": 1}),
        )
    set_connection(
        monkeypatch,
        "backup_catalog",
        {**postgres.airflow_connection(stores.dbname, port=catalog.port), "password": PG_PASSWORD},
    )
    set_connection(
        monkeypatch,
        "backup_notify",
        apprise_connection(
            f"json://hookuser:{HOOK_PASSWORD}@127.0.0.1:{webhook.port}/hook",
            f"mailto://mailer:{SMTP_PASSWORD}@127.0.0.1:{smtp.port}"
            "?from=verifier@example.com&to=ops@example.com&secure=no&smtp=127.0.0.1",
        ),
    )
    gone = seed_backup(stores)
    delete(stores, gone, "b2")
    r2.set_mode("echo_credential", methods=("GET",))  # downloads answer 403 quoting the key id

    outcome = run_with_retries({"mode": "full"})

    assert outcome.state == "failed"
    assert r2.count("echoed") >= 1, "the store did quote the access key id"
    (r2_result,) = query(
        stores,
        "SELECT kind, message FROM backup_integrity_result WHERE run_id = %s AND backend = 'r2'",
        [outcome.run_id],
    )
    assert r2_result["kind"] == "backend_error"
    assert "The access key *** does not exist" in r2_result["message"], "redacted, not absent"
    assert webhook.messages, "the webhook was notified"

    logs = capfd.readouterr()
    places: dict[str, str] = {
        "task logs": logs.out + logs.err,
        "XCom": json.dumps(xcoms_of(outcome.run_id), default=str),
        "results": json.dumps(query(stores, "SELECT * FROM backup_integrity_result"), default=str),
        "runs": json.dumps(query(stores, "SELECT * FROM backup_integrity_run"), default=str),
        "alert rows": json.dumps(query(stores, "SELECT * FROM backups_backupalert"), default=str),
        "outbox": json.dumps(query(stores, "SELECT * FROM backup_integrity_notification"), default=str),
        "metadata": json.dumps(query(stores, "SELECT metadata FROM backups_backup"), default=str),
        "webhook": json.dumps(webhook.messages),
        "email": "\n".join(m.as_string() for m in smtp.messages),
    }
    assert "backend error" in places["alert rows"] or "backend_error" in places["alert rows"]
    leaks = {(where, secret) for where, text in places.items() for secret in SECRETS if secret in text}
    assert leaks == set()
