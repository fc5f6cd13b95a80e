"""Which values of a connection are credentials, and that registered ones are redacted."""

from __future__ import annotations

from types import SimpleNamespace

from include.backup_integrity.config.secrets import apprise_secrets, connection_secrets, mask, redact
from include.backup_integrity.stores.s3 import bare_503_is_slow_down, botocore_config_for


def conn(conn_type: str, login: str | None = None, password: str | None = None, extra: dict | None = None):
    return SimpleNamespace(conn_type=conn_type, login=login, password=password, extra_dejson=extra or {})


def test_an_s3_connection_gives_its_access_key_id_secret_and_extra_credentials():
    found = connection_secrets(
        conn(
            "aws",
            "AKIAEXAMPLEKEY",
            "the-secret-key",
            {
                "aws_session_token": "session-token-value",
                "endpoint_url": "https://user:url-password@example.com",
                "region_name": "auto",
                "config_kwargs": {"retries": {"mode": "adaptive"}},
            },
        )
    )
    assert set(found) == {"AKIAEXAMPLEKEY", "the-secret-key", "session-token-value", "url-password"}


def test_a_postgres_login_is_not_a_credential_but_its_password_is():
    assert connection_secrets(conn("postgres", "postgres", "pg-password")) == ["pg-password"]


def test_apprise_urls_give_what_apprise_itself_hides():
    assert "p4ssw0rd-xyz" in apprise_secrets("json://user:p4ssw0rd-xyz@127.0.0.1:8080/hook")
    slack = apprise_secrets("slack://TokenAAAAA/TokenBBBBBBB/TokenCCCCCCCC/#ops")
    assert {"TokenAAAAA", "TokenBBBBBBB", "TokenCCCCCCCC"} <= set(slack)
    assert "#ops" not in slack
    mail = apprise_secrets("mailtos://user:pass12345@smtp.example.com?to=ops@example.com")
    assert "pass12345" in mail
    assert "smtp.example.com" not in mail
    assert "s3cr3t-token" in apprise_secrets("json://host/path?token=s3cr3t-token")


def test_an_apprise_connection_gives_every_url_and_its_parts():
    found = connection_secrets(
        conn(
            "apprise",
            extra={
                "config": [{"path": "json://u:hook-password@h/x"}, {"path": "discord://123456/tokenvalue"}]
            },
        )
    )
    assert {"hook-password", "tokenvalue", "json://u:hook-password@h/x"} <= set(found)


def test_registered_secrets_are_redacted_in_any_form():
    mask("an access/key+with=odd chars")
    assert redact("error for an access/key+with=odd chars") == "error for ***"
    assert redact("quoted an%20access%2Fkey%2Bwith%3Dodd%20chars") == "quoted ***"
    assert redact(None) is None


def test_connection_config_kwargs_override_the_safe_defaults_key_by_key():
    merged = botocore_config_for({"config_kwargs": {"read_timeout": 2, "retries": {"max_attempts": 3}}})
    assert merged["connect_timeout"] == 5
    assert merged["read_timeout"] == 2
    assert merged["retries"] == {"mode": "adaptive", "max_attempts": 3}
    assert botocore_config_for({})["retries"] == {"mode": "adaptive", "max_attempts": 6}


def test_a_bare_503_is_read_as_slow_down_so_botocore_backs_off_as_for_throttling():
    parsed = {
        "Error": {"Code": "503", "Message": "Service Unavailable"},
        "ResponseMetadata": {"HTTPStatusCode": 503},
    }
    bare_503_is_slow_down(response=(object(), parsed))
    assert parsed["Error"]["Code"] == "SlowDown"
    other = {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
    bare_503_is_slow_down(response=(object(), other))
    assert other["Error"]["Code"] == "InternalError"
    bare_503_is_slow_down(response=(object(), None))
