"""The console's routes: actions on alerts, triggered runs, and the pages of alerts and backups.

Each action is its own short write transaction on a connection of its own (the
pages stay read-only); who may act is asked of Airflow's auth manager
(:mod:`.actions`). No ``from __future__ import annotations`` here: FastAPI reads the
routes' annotations, and the types they name are imported inside
:func:`add_action_routes`, so that importing the plugin stays cheap.
"""

from typing import Annotated, Any

from pydantic import BaseModel

from include.backup_integrity.dashboard import actions


class AcknowledgeBody(BaseModel):
    """``POST …/acknowledge``: an optional note, kept like one added by ``…/notes``."""

    note: str | None = None


class NoteBody(BaseModel):
    """``POST …/notes``."""

    text: str


def add_action_routes(app: Any, read: Any) -> None:
    """Add the ``POST`` routes to ``app``; ``read(section)`` runs a read-only section on the catalog."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, HTTPException, Request
    from fastapi.responses import JSONResponse

    from include.backup_integrity.catalog.alert_actions import (
        ACKNOWLEDGE,
        NOTE,
        UNACKNOWLEDGE,
        AlertLocked,
        AlertNotFound,
        AlertResolved,
        act_on_alert,
        check_note,
    )
    from include.backup_integrity.dashboard.queries import as_uuid, read_backup_status

    def acting_user(request: Request, user: Annotated[Any, Depends(get_user)]) -> Any:
        """The authenticated user; a browser's (cookie) request must carry the user's CSRF token."""
        if not actions.bearer_authenticated(request.headers) and not actions.csrf_ok(
            str(user.get_id()), request.headers.get(actions.CSRF_HEADER)
        ):
            raise HTTPException(
                status_code=403,
                detail=f"missing or wrong {actions.CSRF_HEADER} header (reload the page to get a fresh one)",
            )
        return user

    Actor = Annotated[Any, Depends(acting_user)]

    def act(alert_id: int, action: str, user: Any, note: str | None = None) -> JSONResponse:
        from include.backup_integrity.catalog.connection import connect_catalog
        from include.backup_integrity.dashboard.app import load_settings, require_current_schema

        if not actions.can_edit_alerts(user):
            raise HTTPException(
                status_code=403,
                detail=f"acting on alerts needs permission to edit the {actions.ALERTS_DAG_ID} DAG",
            )
        settings = load_settings()
        conn = connect_catalog(settings)
        try:
            require_current_schema(conn)
            conn.rollback()
            outcome = act_on_alert(
                conn, settings.alerts_table, alert_id, action, actions.user_name(user), note
            )
        except AlertNotFound as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        except AlertResolved as error:
            raise HTTPException(status_code=409, detail=str(error)) from None
        except AlertLocked as error:
            raise HTTPException(status_code=503, detail=str(error)) from None
        finally:
            conn.close()
        return JSONResponse(
            {
                "alert_id": outcome.alert_id,
                "action": outcome.action,
                "status": outcome.status,
                "changed": outcome.changed,
            }
        )

    def valid_note(text: Any) -> str:
        try:
            return check_note(text)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None

    @app.post("/api/alerts/{alert_id}/acknowledge")
    def acknowledge(alert_id: int, user: Actor, body: AcknowledgeBody | None = None) -> JSONResponse:
        note = None if body is None or body.note is None else valid_note(body.note)
        return act(alert_id, ACKNOWLEDGE, user, note)

    @app.post("/api/alerts/{alert_id}/unacknowledge")
    def unacknowledge(alert_id: int, user: Actor) -> JSONResponse:
        return act(alert_id, UNACKNOWLEDGE, user)

    @app.post("/api/alerts/{alert_id}/notes")
    def add_note(alert_id: int, user: Actor, body: NoteBody) -> JSONResponse:
        return act(alert_id, NOTE, user, valid_note(body.text))

    def trigger(backup_id: str, action: str, user: Any) -> JSONResponse:
        dag_id = actions.TRIGGERED_DAGS[action]
        if not actions.can_trigger(user, dag_id):
            raise HTTPException(status_code=403, detail=f"needs permission to create runs of {dag_id}")
        status = read(lambda cur, settings, now: read_backup_status(cur, settings, backup_id))
        if status is None:
            raise HTTPException(status_code=404, detail=f"no backup {backup_id!r} in the catalog")
        if status != "COMPLETED":
            raise HTTPException(
                status_code=409, detail=f"backup {backup_id} is {status}, not COMPLETED: nothing to check"
            )
        conf: dict[str, Any] = {"backup_ids": [as_uuid(backup_id)]}
        if action == "verify":
            conf = {"mode": "full", **conf}
        try:
            run = actions.trigger_run(dag_id, conf, user)
        except Exception as error:  # DagNotFound (not serialized yet), a param the DAG refuses
            raise HTTPException(status_code=400, detail=f"{dag_id} could not be triggered: {error}") from None
        return JSONResponse({"dag_id": run.dag_id, "run_id": run.run_id, "url": run.url, "conf": conf})

    @app.post("/api/backups/{backup_id}/verify")
    def verify_backup(backup_id: str, user: Actor) -> JSONResponse:
        return trigger(backup_id, "verify", user)

    @app.post("/api/backups/{backup_id}/drill")
    def drill_backup(backup_id: str, user: Actor) -> JSONResponse:
        return trigger(backup_id, "drill", user)


def add_page_routes(app: Any, read: Any) -> None:
    """Add the console's pages: ``/alerts``, ``/alerts/{id}`` and ``/backups/{id}`` (read-only)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, HTTPException, Query
    from fastapi.responses import HTMLResponse

    from include.backup_integrity.dashboard import console_queries
    from include.backup_integrity.dashboard.page import render_console_page
    from include.backup_integrity.dashboard.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

    User = Annotated[Any, Depends(get_user)]
    Page = Annotated[int, Query(ge=1)]
    PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]

    def context(user: Any) -> dict[str, Any]:
        """What every console page needs of its user: what they may do, and their CSRF token."""
        return {"perms": actions.permissions(user), "csrf": actions.csrf_token(str(user.get_id()))}

    @app.get("/alerts", response_class=HTMLResponse)
    def alerts_page(
        user: User,
        status: str | None = None,
        kind: str | None = None,
        store: str | None = None,
        severity: str | None = None,
        age: str | None = None,
        sort: str = "created",
        order: str = "desc",
        page: Page = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
    ) -> HTMLResponse:
        filters = console_queries.AlertFilters(
            status or None, kind or None, store or None, severity or None, age or None, sort, order
        )
        result = read(
            lambda cur, settings, now: console_queries.read_alerts_page(
                cur, settings, filters, now, page, page_size
            )
        )
        return HTMLResponse(render_console_page("alerts", result=result, **context(user)))

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse)
    def alert_page(alert_id: int, user: User) -> HTMLResponse:
        alert = read(lambda cur, settings, now: console_queries.read_alert(cur, settings, alert_id))
        if alert is None:
            raise HTTPException(status_code=404, detail=f"no alert {alert_id} written by this package")
        return HTMLResponse(render_console_page("alert", alert=alert, **context(user)))

    @app.get("/backups/{backup_id}", response_class=HTMLResponse)
    def backup_page(
        backup_id: str,
        user: User,
        page: Page = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
        store: str | None = None,
    ) -> HTMLResponse:
        found = read(
            lambda cur, settings, now: (
                console_queries.read_backup(cur, settings, backup_id, page, page_size, store or None),
                settings.restore_drill is not None,
            )
        )
        backup, drill_available = found
        if backup is None:
            raise HTTPException(status_code=404, detail=f"no backup {backup_id!r} in the catalog")
        return HTMLResponse(
            render_console_page("backup", b=backup, drill_available=drill_available, **context(user))
        )
