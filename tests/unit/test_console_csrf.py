"""The console's CSRF token: one per user under the shared secret, required only of cookie requests."""

from __future__ import annotations

from include.backup_integrity.dashboard.actions import bearer_authenticated, csrf_ok, csrf_token


def test_a_token_is_the_users_own_under_the_secret():
    token = csrf_token("op", "secret-a")
    assert token == csrf_token("op", "secret-a"), "the same in every worker"
    assert len(token) == 64
    assert token != csrf_token("viewer", "secret-a")
    assert token != csrf_token("op", "secret-b")
    assert csrf_ok("op", token, "secret-a")
    assert not csrf_ok("viewer", token, "secret-a")
    assert not csrf_ok("op", None, "secret-a")
    assert not csrf_ok("op", "", "secret-a")


def test_only_a_bearer_credential_counts_as_a_scripts_request():
    assert bearer_authenticated({"authorization": "Bearer abc.def"})
    assert bearer_authenticated({"authorization": "bearer abc"})
    assert not bearer_authenticated({"authorization": "Bearer "})
    assert not bearer_authenticated({"authorization": "Basic b3A6cHc="})
    assert not bearer_authenticated({})
