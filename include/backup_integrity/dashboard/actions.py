"""The console's actions: who may act (Airflow's auth manager), the CSRF token, and the triggers.

Airflow decides permissions, never the plugin: acting on an alert needs the
permission to edit the ``verify_storage_integrity`` DAG, triggering a run needs the
permission to create runs of the DAG it triggers. Airflow gives plugins no CSRF
protection, so a request authenticated by the session cookie (a browser) must carry
:func:`csrf_token` in the ``X-CSRF-Token`` header; one authenticated by a Bearer
token (a script) cannot be forged by another site and needs none.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from include.backup_integrity.domain.drills import DRILL_DAG_ID
from include.backup_integrity.domain.ownership import VERIFIER_DAG_ID

CSRF_HEADER = "X-CSRF-Token"
#: Alert actions are edits of the verifier DAG, for every alert the package writes.
ALERTS_DAG_ID = VERIFIER_DAG_ID
#: What ``POST /api/backups/{id}/<action>`` triggers.
TRIGGERED_DAGS = {"verify": VERIFIER_DAG_ID, "drill": DRILL_DAG_ID}


@dataclass(frozen=True)
class Permissions:
    """What the current user may do in the console."""

    edit_alerts: bool
    trigger: dict[str, bool]

    @property
    def any(self) -> bool:
        return self.edit_alerts or any(self.trigger.values())


def shared_secret() -> str:
    """The API server's shared secret (``[api] secret_key``), as Airflow itself reads it."""
    from airflow.api_fastapi.auth.tokens import get_signing_key

    return get_signing_key("api", "secret_key")


def csrf_token(user_id: str, secret: str | None = None) -> str:
    """The user's CSRF token: an HMAC of their id under the shared secret (the same in every worker)."""
    key = (secret if secret is not None else shared_secret()).encode()
    return hmac.new(key, f"backup-integrity-csrf:{user_id}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(user_id: str, presented: str | None, secret: str | None = None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(user_id, secret), presented or "")


def bearer_authenticated(headers: Any) -> bool:
    """Whether the request carried its own credential (Airflow's ``get_user`` prefers it to the cookie)."""
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and bool(credentials.strip())


def can_edit_alerts(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return get_auth_manager().is_authorized_dag(method="PUT", details=DagDetails(id=ALERTS_DAG_ID), user=user)


def can_trigger(user: Any, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    )


def permissions(user: Any) -> Permissions:
    return Permissions(
        edit_alerts=can_edit_alerts(user),
        trigger={action: can_trigger(user, dag_id) for action, dag_id in TRIGGERED_DAGS.items()},
    )


def user_name(user: Any) -> str:
    return str(user.get_name())


@dataclass(frozen=True)
class TriggeredRun:
    dag_id: str
    run_id: str
    url: str | None


def run_url(dag_id: str, run_id: str) -> str | None:
    """The run's page in Airflow's UI, from ``[api] base_url`` (None when it is unset)."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}" if base else None


def trigger_run(dag_id: str, conf: dict[str, Any], user: Any) -> TriggeredRun:
    """A new queued manual run of ``dag_id`` with ``conf``, triggered by ``user`` (Airflow's function)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(
        dag_id, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user_name(user), conf=conf
    )
    if run is None:
        raise RuntimeError(f"Airflow created no run of {dag_id}")
    return TriggeredRun(dag_id=dag_id, run_id=run.run_id, url=run_url(dag_id, run.run_id))
