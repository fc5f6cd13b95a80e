"""Guard of the one private Airflow API the package uses: the secrets masker's ``redact``.

These fail when an Airflow upgrade moves or changes it; the package then falls back to
the secrets it registered itself (also tested here), and this file says what to look at.
"""

from __future__ import annotations

import inspect

from airflow.sdk.log import mask_secret

from include.backup_integrity.config.masker import (
    MIN_SECRET_LENGTH,
    airflow_redact,
    redact_remembered,
    remember,
)


def test_airflow_still_offers_redact_where_the_package_looks_for_it():
    redact = airflow_redact()
    assert redact is not None, "neither airflow.sdk.log.redact nor airflow.sdk._shared.secrets_masker.redact"
    parameters = list(inspect.signature(redact).parameters)
    assert parameters[0] == "value", f"redact's signature changed: {parameters}"


def test_airflow_redact_still_hides_what_mask_secret_registered():
    mask_secret("guard-secret-0f3a9c")
    redacted = airflow_redact()("token guard-secret-0f3a9c in a message")
    assert redacted == "token *** in a message"
    assert airflow_redact()("nothing secret here") == "nothing secret here"


def test_the_fallback_hides_the_secrets_the_package_registered_longest_first():
    remember("fallback-secret")
    remember("fallback-secret-longer")
    short = "x" * (MIN_SECRET_LENGTH - 1)
    remember(short)  # too short to redact, as in Airflow by default

    text = f"a fallback-secret-longer and a fallback-secret, {short}"
    assert redact_remembered(text) == f"a *** and a ***, {short}"
