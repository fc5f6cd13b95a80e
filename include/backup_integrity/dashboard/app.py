"""The dashboard's FastAPI app and its routes, served under ``/backup-integrity``.

``plugins/backup_integrity_dashboard.py`` mounts the app built by :func:`create_app`;
every route requires Airflow's own authentication. Each route reads one section
of the page in a read-only transaction (:mod:`.queries`), builds its records
(:mod:`.view`) and returns them as JSON or renders them as the page (:mod:`.page`).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from include.backup_integrity.config.settings import Settings, parse_settings
from include.backup_integrity.dashboard import queries, view
from include.backup_integrity.dashboard.page import URL_PREFIX, render_page, render_waiting_page
from include.backup_integrity.dashboard.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, DashboardError

API_ENDPOINTS = ("summary", "matrix", "alerts", "last-run", "coverage", "failures-per-day", "restore-drills")


def load_settings() -> Settings:
    """The ``backup_integrity`` Variable, validated exactly as the DAG validates it."""
    from airflow.sdk import Variable

    from include.backup_integrity.config.settings import VARIABLE_KEY

    return parse_settings(Variable.get(VARIABLE_KEY, default=None))


# --------------------------------------------------------------------------- sections


def matrix(
    cur: Any,
    settings: Settings,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    only_failing: bool = False,
) -> view.MatrixPage:
    """One page of the newest backups x backends (``only_failing``: those with an open alert)."""
    rows = queries.read_matrix(cur, settings, page, page_size, only_failing)
    return view.matrix_page(rows, settings.expected_backends, settings.store_names)


def open_alerts(cur: Any, settings: Settings, now: datetime) -> view.OpenAlerts:
    return view.open_alerts(queries.read_open_alerts(cur, settings), now)


def last_run(cur: Any) -> view.LastRun | None:
    return view.last_run(queries.read_last_run(cur))


#: Coverage by (database, last recorded run, settings, 10-minute slot): it aggregates the
#: whole history of full reads, which changes only when a run records its results.
_COVERAGE_CACHE: dict[tuple[Any, ...], view.Coverage] = {}
COVERAGE_SLOT_MINUTES = 10


def coverage(cur: Any, settings: Settings, now: datetime) -> view.Coverage:
    """Per backend: copies expected, and how recently they were last read byte for byte.

    Cached until the next run is recorded (runs write results and repairs in the
    same transaction as their ``backup_integrity_run`` row) or the 10-minute slot of
    ``now`` changes, whichever comes first.
    """
    slot = now.replace(minute=now.minute - now.minute % COVERAGE_SLOT_MINUTES, second=0, microsecond=0)
    key = (
        *queries.coverage_stamp(cur),
        settings.backups_table,
        json.dumps(settings.expected_backends, sort_keys=True),
        settings.store_names,
        slot,
    )
    if key not in _COVERAGE_CACHE:
        if len(_COVERAGE_CACHE) > 16:
            _COVERAGE_CACHE.clear()
        _COVERAGE_CACHE[key] = compute_coverage(cur, settings, now)
    return _COVERAGE_CACHE[key]


def compute_coverage(cur: Any, settings: Settings, now: datetime) -> view.Coverage:
    """What :func:`coverage` caches: two aggregates over the catalog and the full reads."""
    return view.coverage(
        queries.read_coverage(cur, settings, now), settings.expected_backends, settings.store_names
    )


def failures_per_day(cur: Any, today: date, days: int = view.CHART_DAYS) -> list[view.DayFailures]:
    """Distinct failing copies per UTC day and kind, for the last ``days`` days (gaps are zeros)."""
    counts = queries.read_failures_per_day(cur, view.chart_start(today, days))
    return view.failures_per_day(counts, today, days)


def restore_drills(cur: Any, settings: Settings, now: datetime) -> list[view.RestoreDrillType]:
    """Per backup type: the last restore drill, its result and age, and whether drills are overdue."""
    from include.backup_integrity.catalog.drills import restore_overview

    return view.restore_drills(restore_overview(cur, settings.alerts_table), now)


def summary(
    cur: Any,
    settings: Settings,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    now: datetime | None = None,
    only_failing: bool = False,
) -> view.Summary:
    """Everything the page shows."""
    now = now or datetime.now(UTC)
    return view.Summary(
        generated_at=now.isoformat(),
        matrix=matrix(cur, settings, page, page_size, only_failing),
        open_alerts=open_alerts(cur, settings, now),
        last_run=last_run(cur),
        coverage=coverage(cur, settings, now),
        failures_per_day=failures_per_day(cur, now.date()),
        restore_drills=restore_drills(cur, settings, now),
        recovery_chain=view.recovery_chain(queries.read_recovery_chain(cur), now),
        costs=view.store_costs(queries.read_costs(cur, now), now),
    )


# --------------------------------------------------------------------------- app


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class SchemaWaiting(Exception):
    """The catalog's schema is behind this code: the page waits for the verifier to migrate it."""

    def __init__(self, message: str, *, no_run_yet: bool = False) -> None:
        super().__init__(message)
        #: No schema of the verifier at all: it has never run against this catalog.
        self.no_run_yet = no_run_yet


def is_api_request(request: Any) -> bool:
    """Whether ``request`` is for the JSON API (``/api/...`` under wherever the app is mounted)."""
    path = request.url.path
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == "/api" or path.startswith("/api/")


def require_current_schema(conn: Any) -> None:
    """Never DDL here: the verifier's first task migrates; until then the page says it waits."""
    from include.backup_integrity.catalog.schema import schema_status

    status = schema_status(conn)
    if status.pending:
        raise SchemaWaiting(status.waiting_message, no_run_yet=status.revision is None)


class LazyApp:
    """An ASGI app that builds the real one on its first request.

    Every Airflow process imports plugins (task processes too, for macros), but only
    the API server serves this app: building FastAPI and Airflow's security stack
    at import would cost every task about a second.
    """

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._factory()
        await self._app(scope, receive, send)


def create_app() -> Any:
    """The FastAPI app; every route needs an authenticated Airflow user, docs routes are off."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, Response

    app = FastAPI(
        title="Backup integrity",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
    )

    def read(section: Any) -> Any:
        """Run ``section(cur, settings, now)`` in a read-only transaction on the catalog."""
        from include.backup_integrity.catalog.connection import connect_catalog
        from include.backup_integrity.config.settings import ConfigError

        try:
            settings = load_settings()
            conn = connect_catalog()
        except ConfigError as error:
            raise HTTPException(status_code=500, detail=str(error)) from None
        try:
            queries.start_read_only_session(conn)
            require_current_schema(conn)
            with conn.cursor() as cur:
                return section(cur, settings, datetime.now(UTC))
        except DashboardError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        except Exception as error:
            if not queries.is_statement_timeout(error):
                raise
            raise HTTPException(
                status_code=503,
                detail=f"the catalog did not answer within {queries.STATEMENT_TIMEOUT_SECONDS} s; try again",
            ) from None
        finally:
            conn.rollback()
            conn.close()

    @app.exception_handler(SchemaWaiting)
    def schema_waiting(request: Any, waiting: SchemaWaiting) -> Response:
        """The JSON API says so in JSON; a console page shows the waiting page."""
        if is_api_request(request):
            detail = json.dumps({"detail": str(waiting)})
            return Response(detail, status_code=503, media_type="application/json")
        page = render_waiting_page(str(waiting), no_run_yet=waiting.no_run_yet)
        return HTMLResponse(page, status_code=503)

    def as_json(value: Any) -> Response:
        return Response(json.dumps(view.as_json(value), default=_json_default), media_type="application/json")

    page_q = Query(1, ge=1)
    size_q = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)

    @app.get("/", response_class=HTMLResponse)
    def html_page(page: int = page_q, page_size: int = size_q, failing: bool = False) -> HTMLResponse:
        try:
            model = read(lambda c, s, now: summary(c, s, page, page_size, now, failing))
        except SchemaWaiting as waiting:
            return HTMLResponse(render_waiting_page(str(waiting), no_run_yet=waiting.no_run_yet))
        return HTMLResponse(render_page(model))

    @app.get("/api/summary")
    def api_summary(page: int = page_q, page_size: int = size_q, failing: bool = False) -> Response:
        return as_json(read(lambda c, s, now: summary(c, s, page, page_size, now, failing)))

    @app.get("/api/matrix")
    def api_matrix(page: int = page_q, page_size: int = size_q, failing: bool = False) -> Response:
        return as_json(read(lambda c, s, now: matrix(c, s, page, page_size, failing)))

    @app.get("/api/alerts")
    def api_alerts() -> Response:
        return as_json(read(open_alerts))

    @app.get("/api/last-run")
    def api_last_run() -> Response:
        return as_json(read(lambda c, s, now: last_run(c)))

    @app.get("/api/coverage")
    def api_coverage() -> Response:
        return as_json(read(coverage))

    @app.get("/api/failures-per-day")
    def api_failures() -> Response:
        return as_json(read(lambda c, s, now: failures_per_day(c, now.date())))

    @app.get("/api/restore-drills")
    def api_restore_drills() -> Response:
        return as_json(read(restore_drills))

    @app.get("/api/")
    def api_index() -> Response:
        return as_json({"endpoints": [f"{URL_PREFIX}/api/{name}" for name in API_ENDPOINTS]})

    from include.backup_integrity.dashboard.console_routes import add_action_routes, add_page_routes

    add_action_routes(app, read)
    add_page_routes(app, read)

    # Last, so that it matches only what nothing else does: an unknown path is answered
    # (404) only after authentication, so nothing about the app shows to an anonymous caller.
    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def not_found(rest: str) -> Response:
        raise HTTPException(status_code=404, detail="Not Found")

    return app
