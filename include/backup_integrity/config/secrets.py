"""Every credential the package handles, registered with Airflow's secrets masker.

Airflow masks a connection's password and its ``extra`` as one string, but not
an S3 access key id (the login), nor the tokens and passwords inside the Apprise
URLs of ``backup_notify``'s extra. Each task registers all of them before it
logs anything, so Airflow's log masking covers them; and everything the package
writes where Airflow does not mask (results in XCom, alert rows, notices) goes
through :func:`redact` with the same patterns (see :mod:`~include.backup_integrity.config.masker`).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from include.backup_integrity.config.masker import redact_text, remember
from include.backup_integrity.config.settings import (
    BACKEND_CONN_IDS,
    CATALOG_CONN_ID,
    NOTIFY_CONN_ID,
    Settings,
)

log = logging.getLogger(__name__)

#: Keys in a connection's extra (or an Apprise URL's query) whose values are credentials.
SENSITIVE_KEY = re.compile(r"key|secret|token|pass|auth|sig|credential|session", re.IGNORECASE)
_URL_PARTS = re.compile(r"[/:@?&=#]")
#: Apprise's privacy form of a secret: ``****`` or ``first...last``.
_MASKED = re.compile(r"^(\*+|.?\.\.\..?)$")


def mask(value: Any) -> None:
    """Register one secret with Airflow's masker (this process and, in a worker, its supervisor)."""
    if not isinstance(value, str) or not value.strip():
        return
    from airflow.sdk.log import mask_secret

    for form in {value, quote(value, safe=""), unquote(value)}:
        mask_secret(form)
        remember(form)


def redact(text: str | None) -> str | None:
    """``text`` with every registered secret replaced by ``***``."""
    if not text:
        return text
    return redact_text(text)


def extra_secrets(extra: dict[str, Any]) -> list[str]:
    """Credential values in a connection's extra: sensitive keys, and passwords inside URLs."""
    found: list[str] = []
    for key, value in extra.items():
        if isinstance(value, dict):
            found.extend(extra_secrets(value))
        elif isinstance(value, str):
            if SENSITIVE_KEY.search(key):
                found.append(value)
            elif "://" in value:
                found.extend(url_credentials(value))
    return found


def url_credentials(url: str) -> list[str]:
    """The password and the credential-like query values of a URL."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [password] if password else []
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if value and SENSITIVE_KEY.search(key):
            found.append(unquote(value))
    return found


def apprise_secrets(url: str) -> list[str]:
    """What in an Apprise URL is a credential: the parts Apprise itself hides in its privacy form.

    Whatever Apprise's plugin for the URL considers secret (a password, a bot token,
    webhook ids) appears masked in ``url(privacy=True)``; comparing it part by part
    with the full form names exactly those values. The URL's password and
    credential-like query values are added in any case.
    """
    found = [url, *url_credentials(url)]
    try:
        import apprise

        service = apprise.Apprise.instantiate(url)
    except Exception:  # an invalid URL is reported by the notifier; still mask what we can
        service = None
    if service:
        public = _URL_PARTS.split(service.url(privacy=True))
        full = _URL_PARTS.split(service.url(privacy=False))
        if len(public) == len(full):
            found += [f for p, f in zip(public, full, strict=True) if p != f and _MASKED.match(p)]
        else:
            found += [f for f in full if f and f not in public]
    return [value for value in found if value]


def connection_secrets(conn: Any) -> list[str]:
    """Credentials of an Airflow connection: password, an S3 access key id, extra secrets."""
    found = [conn.password] if conn.password else []
    if conn.conn_type == "aws" and conn.login:
        found.append(conn.login)  # the access key id
    extra = conn.extra_dejson or {}
    found += extra_secrets(extra)
    if conn.conn_type == "apprise":
        config = extra.get("config")
        entries = config if isinstance(config, list) else [config]
        for entry in entries:
            path = entry.get("path") if isinstance(entry, dict) else entry
            if isinstance(path, str) and path:
                found += apprise_secrets(path)
    return found


def register_connection(conn_id: str) -> None:
    """Mask every credential of one connection (nothing when it is not defined)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return
    for value in connection_secrets(conn):
        mask(value)


def register_package_secrets() -> None:
    """Mask the credentials of every connection the package uses; called first in each task."""
    for conn_id in (CATALOG_CONN_ID, *BACKEND_CONN_IDS.values(), NOTIFY_CONN_ID):
        try:
            register_connection(conn_id)
        except Exception:  # a broken connection is reported where it is used
            log.warning("could not read connection %r to mask its credentials", conn_id)


def register_store_secrets(settings: Settings) -> None:
    """Mask the credentials of the named stores' own connections (the built-in ones are masked first)."""
    known = {CATALOG_CONN_ID, *BACKEND_CONN_IDS.values(), NOTIFY_CONN_ID}
    for spec in settings.store_specs:
        if spec.conn_id and spec.conn_id not in known:
            try:
                register_connection(spec.conn_id)
            except Exception:  # a broken connection is reported where it is used
                log.warning("could not read connection %r to mask its credentials", spec.conn_id)
