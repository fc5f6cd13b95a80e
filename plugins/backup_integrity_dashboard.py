"""Airflow plugin: the backup-integrity dashboard, mounted at ``/backup-integrity`` in the API server.

Thin on purpose: the queries, view model, page and app are in
``include.backup_integrity.dashboard``. Every route requires an authenticated
Airflow user (Airflow's own auth manager); FastAPI's docs routes are turned off.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.backup_integrity.dashboard.app import URL_PREFIX, LazyApp, create_app


class BackupIntegrityDashboardPlugin(AirflowPlugin):
    name = "backup_integrity_dashboard"
    fastapi_apps = [
        {"app": LazyApp(create_app), "url_prefix": URL_PREFIX, "name": "Backup integrity dashboard"}
    ]
    external_views = [
        {
            "name": "Backup integrity",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "backup-integrity",
        }
    ]
