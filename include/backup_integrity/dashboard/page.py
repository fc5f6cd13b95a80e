"""The HTML page: its Jinja2 templates, the failures chart's geometry and the pager's links.

Pure but for reading the package's own templates and CSS. Autoescaping is on for
every template; the CSS is inlined, so the page loads nothing from elsewhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from include.backup_integrity.dashboard.view import (
    CHART_DAYS,
    STATE_COLOURS,
    STATE_LABELS,
    DayFailures,
    MatrixPage,
    Summary,
    failure_state,
)
from include.backup_integrity.domain.records import FAILURE_KINDS

if TYPE_CHECKING:
    import jinja2

URL_PREFIX = "/backup-integrity"
HERE = Path(__file__).parent

#: The chart stacks each day's bars in the legend's order, missing copies at the bottom.
CHART_KINDS = tuple(sorted(FAILURE_KINDS, key=lambda kind: list(STATE_COLOURS).index(failure_state(kind))))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class AxisLabel:
    x: float
    text: str


@dataclass(frozen=True)
class FailuresChart:
    """Stacked bars of failing copies per day, by kind, in SVG coordinates."""

    days: int
    width: int
    height: int
    left: int
    plot_width: int
    baseline: int
    top: int
    bars: list[Bar] = field(default_factory=list)
    labels: list[AxisLabel] = field(default_factory=list)


def failures_chart(series: list[DayFailures], width: int = 720, height: int = 180) -> FailuresChart:
    """The chart's geometry: the tallest day fills the plot, a label every fifth day and the last."""
    top = max([point.total for point in series] + [1])
    left, bottom, bar_gap = 36, 22, 2
    plot_w, plot_h = width - left - 8, height - bottom - 10
    bar_w = plot_w / max(1, len(series))
    bars, labels = [], []
    for i, point in enumerate(series):
        x = left + i * bar_w
        y = 10 + plot_h
        for kind in CHART_KINDS:
            count = point.by_kind.get(kind, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            bars.append(
                Bar(
                    x=x + bar_gap / 2,
                    y=y,
                    width=bar_w - bar_gap,
                    height=h,
                    colour=STATE_COLOURS.get(failure_state(kind), "#999"),
                    title=f"{point.day}: {count} {STATE_LABELS.get(kind, kind)}",
                )
            )
        if i % 5 == 0 or i == len(series) - 1:
            labels.append(AxisLabel(x=x + bar_w / 2, text=point.day[5:]))
    return FailuresChart(
        days=len(series),
        width=width,
        height=height,
        left=left,
        plot_width=plot_w,
        baseline=10 + plot_h,
        top=top,
        bars=bars,
        labels=labels,
    )


@dataclass(frozen=True)
class Link:
    href: str
    text: str
    id: str | None = None


def page_query(page: int | None, page_size: int, only_failing: bool) -> str:
    """The query string of a page of the matrix, as the page's links and the JSON link carry it."""
    query = f"?page={page}&page_size={page_size}" if page is not None else f"?page_size={page_size}"
    return query + ("&failing=1" if only_failing else "")


def pager(matrix: MatrixPage) -> tuple[Link | None, Link | None, Link]:
    """The links around the matrix: newer page, older page, and the switch to or from failing only."""
    newer = older = None
    if matrix.page > 1:
        newer = Link(page_query(matrix.page - 1, matrix.page_size, matrix.only_failing), "\u2190 newer")
    if matrix.page < matrix.pages:
        older = Link(page_query(matrix.page + 1, matrix.page_size, matrix.only_failing), "older \u2192")
    if matrix.only_failing:
        switch = Link(page_query(None, matrix.page_size, False), "show all backups")
    else:
        switch = Link(
            page_query(None, matrix.page_size, True), "only backups with open alerts", id="only-failing"
        )
    return newer, older, switch


@functools.cache
def templates() -> jinja2.Environment:
    """The page's templates, autoescaped; ``None`` renders as nothing."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=lambda value: "" if value is None else value,
        trim_blocks=True,
    )
    env.globals.update(
        url_prefix=URL_PREFIX,
        chart_days=CHART_DAYS,
        state_colours=STATE_COLOURS,
        state_labels=STATE_LABELS,
        page_query=page_query,
        pager=pager,
        # Our own file, inlined so that the page loads nothing: markup, not text to escape.
        css=Markup((HERE / "static" / "dashboard.css").read_text()),
    )
    return env


def render_page(summary: Summary) -> str:
    """The dashboard page of ``summary``."""
    page = templates().get_template("page.html.j2")
    return page.render(summary=summary, chart=failures_chart(summary.failures_per_day), run_href=run_href)


def run_href(dag_id: str, run_id: str) -> str:
    """A run's view in Airflow's UI: absolute when ``[api] base_url`` is set, else on this server."""
    from urllib.parse import quote

    from include.backup_integrity.dashboard.actions import run_url

    return run_url(dag_id, run_id) or f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def alerts_href(query: dict[str, object]) -> str:
    """The alerts page with ``query`` as its query string."""
    from urllib.parse import urlencode

    return f"{URL_PREFIX}/alerts" + (f"?{urlencode(query)}" if query else "")


#: The alerts table's columns: (sort key or None, heading).
ALERT_COLUMNS = (
    (None, "alert"),
    ("severity", "severity"),
    ("status", "status"),
    ("kind", "kind"),
    ("store", "store"),
    ("backup", "backup"),
    ("created", "created (UTC)"),
    (None, "acknowledged by"),
    (None, "message"),
)


def render_console_page(name: str, **context: object) -> str:
    """One of the console's pages (``alert``, ``backup``, ``alerts``) with its context."""
    from include.backup_integrity.dashboard.console_queries import ALERT_STATUSES, SEVERITIES

    return (
        templates()
        .get_template(f"{name}.html.j2")
        .render(
            run_href=run_href,
            href=alerts_href,
            columns=ALERT_COLUMNS,
            statuses=ALERT_STATUSES,
            severities=SEVERITIES,
            **context,
        )
    )


def render_waiting_page(message: str, *, no_run_yet: bool = False) -> str:
    """The page shown while the catalog's schema is behind this code (the verifier migrates it)."""
    return templates().get_template("waiting.html.j2").render(message=message, no_run_yet=no_run_yet)
