"""The integrity dashboard: SQL that aggregates and paginates, a view model, and its page.

Everything the page shows is computed in the database (one page of backups at a
time, counts grouped in SQL), so it stays fast with 100k backups. The FastAPI app
served under ``/backup-integrity`` by ``plugins/backup_integrity_dashboard.py`` is
built by :func:`create_app`; every route requires Airflow's own authentication.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.backup_integrity.catalog.backups import table
from include.backup_integrity.catalog.connection import sql
from include.backup_integrity.config.settings import BACKENDS, Settings, parse_settings
from include.backup_integrity.domain.records import (
    BACKEND_ERROR,
    CHECKSUM_MISMATCH,
    EVIDENCE_CONTENT,
    INVALID_RECORD,
    MISSING,
    PASSED,
    SIZE_MISMATCH,
)
from include.backup_integrity.domain.statistics import CONTRACT_STATISTICS

if TYPE_CHECKING:
    from collections.abc import Iterable

URL_PREFIX = "/backup-integrity"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
CHART_DAYS = 30
MAX_ALERTS_LISTED = 100

#: Cell states of the matrix, besides the failure kinds themselves.
REPAIRED = "repaired"
COULD_NOT_CHECK = "could_not_check"
NOT_EXPECTED = "not_expected"
NOT_CHECKED = "not_checked"

STATE_COLOURS = {
    PASSED: "#2e7d32",
    REPAIRED: "#66bb6a",
    MISSING: "#c62828",
    SIZE_MISMATCH: "#ef6c00",
    CHECKSUM_MISMATCH: "#8e24aa",
    INVALID_RECORD: "#6d4c41",
    COULD_NOT_CHECK: "#f9a825",
    NOT_CHECKED: "#90a4ae",
    NOT_EXPECTED: "#eceff1",
}
STATE_LABELS = {
    PASSED: "passed",
    REPAIRED: "repaired",
    MISSING: "missing",
    SIZE_MISMATCH: "size mismatch",
    CHECKSUM_MISMATCH: "checksum mismatch",
    INVALID_RECORD: "invalid record",
    COULD_NOT_CHECK: "could not check",
    NOT_CHECKED: "not checked yet",
    NOT_EXPECTED: "not expected",
}
#: The run's statistics in the order the README lists them (the database keeps no order).
STATISTICS_ORDER = (
    *CONTRACT_STATISTICS,
    "checks_total",
    "checks_passed",
    "repaired",
    "repair_failed",
    "repair",
    "repair_plan",
    "mode",
    "window_start",
    "window_end",
    "skipped_backup_ids",
)
FAILURE_KINDS = (MISSING, SIZE_MISMATCH, CHECKSUM_MISMATCH, INVALID_RECORD, BACKEND_ERROR)


API_ENDPOINTS = ("summary", "matrix", "alerts", "last-run", "coverage", "failures-per-day")


class SchemaWaiting(Exception):
    """The catalog's schema is behind this code: the page waits for the verifier to migrate it."""


def render_waiting_page(message: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Backup integrity</title></head>"
        f"<body><h1>Backup integrity</h1><p id='schema-waiting'>{_e(message)}</p></body></html>"
    )


class DashboardError(ValueError):
    """A request the dashboard cannot answer (a bad page number, say)."""


def load_settings() -> Settings:
    """The ``backup_integrity`` Variable, validated exactly as the DAG validates it."""
    from airflow.sdk import Variable

    from include.backup_integrity.config.settings import VARIABLE_KEY

    return parse_settings(Variable.get(VARIABLE_KEY, default=None))


# --------------------------------------------------------------------------- queries


def full_reads_query(backup_filter: sql.Composable | None = None) -> sql.Composable:
    """When each copy was last read byte for byte: (backup_id, backend, last_read).

    The one place that knows where that evidence lives: the rotation's record of
    each object's last read (``backup_integrity_object.last_read_at``), checks
    that hashed the content, and repairs (whose written copy is read back and hashed).
    """
    where = sql.SQL(" AND ") + backup_filter if backup_filter is not None else sql.SQL("")
    return sql.SQL(
        "SELECT backup_id, backend, max(at) AS last_read FROM ("
        "SELECT backup_id, backend, last_read_at AS at FROM backup_integrity_object "
        "WHERE last_read_at IS NOT NULL{where} "
        "UNION ALL SELECT backup_id, backend, checked_at FROM backup_integrity_result "
        "WHERE evidence = {content}{where} "
        "UNION ALL SELECT backup_id, backend, repaired_at FROM backup_integrity_repair "
        "WHERE status = 'repaired'{where}) reads GROUP BY backup_id, backend"
    ).format(content=sql.Literal(EVIDENCE_CONTENT), where=where)


def last_full_reads(cur: Any, backup_ids: list[str]) -> dict[tuple[str, str], datetime]:
    cur.execute(
        full_reads_query(sql.SQL("backup_id = ANY(%s::uuid[])")), [backup_ids, backup_ids, backup_ids]
    )
    return {(row[0], row[1]): row[2] for row in cur.fetchall()}


def cell_state(kind: str | None, repaired_after: bool, expected: bool) -> str:
    if not expected:
        return NOT_EXPECTED
    if kind is None:
        return NOT_CHECKED
    if kind == PASSED:
        return PASSED
    if repaired_after:
        return REPAIRED
    if kind == BACKEND_ERROR:
        return COULD_NOT_CHECK
    return kind


def matrix(
    cur: Any,
    settings: Settings,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    only_failing: bool = False,
) -> dict[str, Any]:
    """One page of the newest COMPLETED backups x backends, each cell coloured by its last result.

    ``only_failing`` keeps the backups with an open alert, so that a handful of
    failures among 100k backups is one click away.
    """
    if page < 1:
        raise DashboardError(f"page must be >= 1, got {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise DashboardError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    where = sql.SQL("status = 'COMPLETED'")
    if only_failing:
        where += sql.SQL(
            " AND id IN (SELECT backup_id FROM {a} WHERE alert_type = 'INTEGRITY_FAILURE' "
            "AND status IN ('ACTIVE', 'ACKNOWLEDGED') AND backup_id IS NOT NULL)"
        ).format(a=table(settings.alerts_table))
    backups = table(settings.backups_table)
    cur.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {w}").format(t=backups, w=where))
    total = cur.fetchone()[0]
    cur.execute(
        sql.SQL(
            "SELECT id::text, backup_type, filename, created_at, size_bytes FROM {t} "
            "WHERE {w} ORDER BY created_at DESC, id LIMIT %s OFFSET %s"
        ).format(t=backups, w=where),
        [page_size, (page - 1) * page_size],
    )
    rows = cur.fetchall()
    ids = [r[0] for r in rows]
    latest: dict[tuple[str, str], tuple[Any, ...]] = {}
    repaired: dict[tuple[str, str], datetime] = {}
    reads: dict[tuple[str, str], datetime] = {}
    if ids:
        cur.execute(
            "SELECT DISTINCT ON (backup_id, backend) backup_id::text, backend, kind, evidence, "
            "checked_at, message, run_id FROM backup_integrity_result WHERE backup_id = ANY(%s::uuid[]) "
            "ORDER BY backup_id, backend, checked_at DESC",
            [ids],
        )
        latest = {(r[0], r[1]): r[2:] for r in cur.fetchall()}
        cur.execute(
            "SELECT backup_id::text, backend, max(repaired_at) FROM backup_integrity_repair "
            "WHERE backup_id = ANY(%s::uuid[]) AND status = 'repaired' GROUP BY 1, 2",
            [ids],
        )
        repaired = {(r[0], r[1]): r[2] for r in cur.fetchall()}
        reads = {(str(k[0]), k[1]): v for k, v in last_full_reads(cur, ids).items()}
    out_rows = []
    for backup_id, backup_type, filename, created_at, size in rows:
        expected = settings.expected_backends.get(backup_type, [])
        cells = {}
        for backend in BACKENDS:
            last = latest.get((backup_id, backend))
            kind, evidence, checked_at, message, run_id = last if last else (None,) * 5
            repaired_at = repaired.get((backup_id, backend))
            repaired_after = bool(repaired_at and checked_at and repaired_at >= checked_at)
            unroutable = latest.get((backup_id, ""))
            if unroutable and (not checked_at or unroutable[2] > checked_at) and backend not in expected:
                kind, evidence, checked_at, message, run_id = unroutable
                state = INVALID_RECORD
            else:
                state = cell_state(kind, repaired_after, backend in expected)
            cells[backend] = {
                "state": state,
                "label": STATE_LABELS[state],
                "kind": kind,
                "evidence": evidence,
                "checked_at": _iso(checked_at),
                "message": message,
                "run_id": run_id,
                "repaired_at": _iso(repaired_at),
                "last_full_read": _iso(reads.get((backup_id, backend))),
            }
        out_rows.append(
            {
                "backup_id": backup_id,
                "backup_type": backup_type,
                "filename": filename,
                "created_at": _iso(created_at),
                "size_bytes": size,
                "cells": cells,
            }
        )
    return {
        "page": page,
        "page_size": page_size,
        "only_failing": only_failing,
        "total": total,
        "pages": max(1, -(-total // page_size)),
        "backends": list(BACKENDS),
        "rows": out_rows,
    }


def open_alerts(
    cur: Any, settings: Settings, now: datetime, limit: int = MAX_ALERTS_LISTED
) -> dict[str, Any]:
    """The open integrity alerts, most severe and newest first, with their age and occurrences."""
    alerts = table(settings.alerts_table)
    cur.execute(
        sql.SQL(
            "SELECT count(*) FROM {t} WHERE alert_type = 'INTEGRITY_FAILURE' "
            "AND status IN ('ACTIVE', 'ACKNOWLEDGED')"
        ).format(t=alerts),
    )
    total = cur.fetchone()[0]
    cur.execute(
        sql.SQL(
            "SELECT id, backup_id::text, severity, status, message, details ->> 'kind', "
            "details ->> 'backend', details ->> 'first_seen', details ->> 'last_seen', "
            "COALESCE((details ->> 'occurrences')::int, 1), created_at, details ->> 'repair_error' "
            "FROM {t} WHERE alert_type = 'INTEGRITY_FAILURE' AND status IN ('ACTIVE', 'ACKNOWLEDGED') "
            "ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'ERROR' THEN 1 ELSE 2 END, "
            "created_at DESC, id DESC LIMIT %s"
        ).format(t=alerts),
        [limit],
    )
    listed = []
    for row in cur.fetchall():
        first_seen = _parse(row[7]) or row[10]
        age = max(0.0, (now - first_seen).total_seconds()) if first_seen else None
        listed.append(
            {
                "id": row[0],
                "backup_id": row[1],
                "severity": row[2],
                "status": row[3],
                "message": row[4],
                "kind": row[5],
                "backend": row[6],
                "first_seen": _iso(first_seen),
                "last_seen": row[8],
                "occurrences": row[9],
                "age_seconds": age,
                "age": human_age(age),
                "repair_error": row[11],
            }
        )
    return {"total": total, "alerts": listed}


def last_run(cur: Any) -> dict[str, Any] | None:
    cur.execute(
        "SELECT run_id, dag_id, mode, window_start, window_end, statistics, recorded_at "
        "FROM backup_integrity_run ORDER BY recorded_at DESC LIMIT 1"
    )
    row = cur.fetchone()
    if row is None:
        return None
    return {
        "run_id": row[0],
        "dag_id": row[1],
        "mode": row[2],
        "window_start": _iso(row[3]),
        "window_end": _iso(row[4]),
        "statistics": row[5],
        "recorded_at": _iso(row[6]),
    }


#: Coverage by (database, last recorded run, settings, 10-minute slot): it aggregates the
#: whole history of full reads, which changes only when a run records its results.
_COVERAGE_CACHE: dict[tuple[Any, ...], dict[str, Any]] = {}
COVERAGE_SLOT_MINUTES = 10


def coverage(cur: Any, settings: Settings, now: datetime) -> dict[str, Any]:
    """Per backend: copies expected, and how recently they were last read byte for byte.

    Cached until the next run is recorded (runs write results and repairs in the
    same transaction as their ``backup_integrity_run`` row) or the 10-minute slot of
    ``now`` changes, whichever comes first.
    """
    cur.execute(
        "SELECT max(recorded_at), count(*), current_database(), inet_server_addr()::text, "
        "inet_server_port() FROM backup_integrity_run"
    )
    stamp = cur.fetchone()
    slot = now.replace(minute=now.minute - now.minute % COVERAGE_SLOT_MINUTES, second=0, microsecond=0)
    key = (
        *stamp,
        settings.backups_table,
        json.dumps(settings.expected_backends, sort_keys=True),
        slot,
    )
    if key not in _COVERAGE_CACHE:
        if len(_COVERAGE_CACHE) > 16:
            _COVERAGE_CACHE.clear()
        _COVERAGE_CACHE[key] = compute_coverage(cur, settings, now)
    return _COVERAGE_CACHE[key]


def compute_coverage(cur: Any, settings: Settings, now: datetime) -> dict[str, Any]:
    """What :func:`coverage` caches: two aggregates over the catalog and the full reads."""
    backups = table(settings.backups_table)
    cur.execute(
        sql.SQL("SELECT backup_type, count(*) FROM {t} WHERE status = 'COMPLETED' GROUP BY 1").format(
            t=backups
        )
    )
    expected = dict.fromkeys(BACKENDS, 0)
    for backup_type, count in cur.fetchall():
        for backend in settings.expected_backends.get(backup_type, []):
            expected[backend] += count
    cur.execute(
        sql.SQL(
            "SELECT r.backend, count(*) FILTER (WHERE r.last_read >= %s), "
            "count(*) FILTER (WHERE r.last_read >= %s), count(*) FILTER (WHERE r.last_read >= %s), "
            "count(*), min(r.last_read) FROM ({reads}) r GROUP BY r.backend"
        ).format(reads=full_reads_query()),
        [now - timedelta(days=1), now - timedelta(days=7), now - timedelta(days=30)],
    )
    found = {row[0]: row[1:] for row in cur.fetchall()}
    per_backend = []
    for backend in BACKENDS:
        day, week, month, ever, oldest = found.get(backend, (0, 0, 0, 0, None))
        per_backend.append(
            {
                "backend": backend,
                "expected_copies": expected[backend],
                "read_last_day": day,
                "read_last_7_days": week,
                "read_last_30_days": month,
                "ever_read": ever,
                "never_read": max(0, expected[backend] - ever),
                "oldest_last_read": _iso(oldest),
            }
        )
    return {"backends": per_backend}


def failures_per_day(cur: Any, today: date, days: int = CHART_DAYS) -> list[dict[str, Any]]:
    """Distinct failing copies per UTC day and kind, for the last ``days`` days (gaps are zeros)."""
    start = today - timedelta(days=days - 1)
    cur.execute(
        "SELECT (checked_at AT TIME ZONE 'UTC')::date AS day, kind, "
        "count(DISTINCT (backup_id, backend)) FROM backup_integrity_result "
        "WHERE kind <> 'passed' AND checked_at >= %s GROUP BY 1, 2",
        [datetime(start.year, start.month, start.day, tzinfo=UTC)],
    )
    counts: dict[date, dict[str, int]] = {}
    for day, kind, count in cur.fetchall():
        counts.setdefault(day, {})[kind] = count
    series = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        by_kind = counts.get(day, {})
        series.append({"day": day.isoformat(), "total": sum(by_kind.values()), "by_kind": by_kind})
    return series


def view_model(
    cur: Any,
    settings: Settings,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    now: datetime | None = None,
    only_failing: bool = False,
) -> dict[str, Any]:
    """Everything the page shows."""
    now = now or datetime.now(UTC)
    return {
        "generated_at": now.isoformat(),
        "matrix": matrix(cur, settings, page, page_size, only_failing),
        "open_alerts": open_alerts(cur, settings, now),
        "last_run": last_run(cur),
        "coverage": coverage(cur, settings, now),
        "failures_per_day": failures_per_day(cur, now.date()),
    }


# --------------------------------------------------------------------------- helpers


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def _parse(value: str | None) -> datetime | None:
    from include.backup_integrity.catalog.backups import parse_timestamp

    return parse_timestamp(value)


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --------------------------------------------------------------------------- page


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def failures_chart_svg(series: list[dict[str, Any]], width: int = 720, height: int = 180) -> str:
    """Stacked bars of failing copies per day, by kind; inline SVG, nothing fetched."""
    top = max([s["total"] for s in series] + [1])
    left, bottom, bar_gap = 36, 22, 2
    plot_w, plot_h = width - left - 8, height - bottom - 10
    bar_w = plot_w / max(1, len(series))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="Failing copies per day, last {len(series)} days" id="failures-chart">',
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{left + plot_w}" y2="{10 + plot_h}" stroke="#90a4ae"/>',
        f'<text x="{left - 4}" y="16" font-size="10" text-anchor="end">{top}</text>',
        f'<text x="{left - 4}" y="{10 + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    for i, point in enumerate(series):
        x = left + i * bar_w
        y = 10 + plot_h
        for kind in FAILURE_KINDS:
            count = point["by_kind"].get(kind, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            colour = STATE_COLOURS.get(COULD_NOT_CHECK if kind == BACKEND_ERROR else kind, "#999")
            parts.append(
                f'<rect x="{x + bar_gap / 2:.1f}" y="{y:.1f}" width="{bar_w - bar_gap:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_e(point["day"])}: {count} '
                f"{_e(STATE_LABELS.get(kind, kind))}</title></rect>"
            )
        if i % 5 == 0 or i == len(series) - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" font-size="10" '
                f'text-anchor="middle">{_e(point["day"][5:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#263238;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #cfd8dc;padding:3px 6px;text-align:left}
th{background:#eceff1}td.cell{text-align:center;min-width:92px;color:#fff;font-weight:600}
td.cell.not_expected{color:#90a4ae;font-weight:400}
.legend span{display:inline-block;margin-right:10px;font-size:12px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px;
border:1px solid #b0bec5}
.muted{color:#607d8b;font-size:12px}.grid{display:flex;gap:28px;flex-wrap:wrap}
.pager a,.pager span{margin-right:8px;font-size:13px}.sev-CRITICAL{color:#c62828;font-weight:700}
.sev-ERROR{color:#ef6c00;font-weight:700}code{font-size:11px}
"""


def _repair_note(error: str | None) -> str:
    return f"<br><i>repair: {_e(error)}</i>" if error else ""


def render_page(model: dict[str, Any]) -> str:
    m = model["matrix"]
    legend = "".join(
        f'<span><i class="sw" style="background:{STATE_COLOURS[s]}"></i>{_e(STATE_LABELS[s])}</span>'
        for s in STATE_COLOURS
    )
    head = "".join(f"<th>{_e(b)}</th>" for b in m["backends"])
    body = []
    for row in m["rows"]:
        cells = []
        for backend in m["backends"]:
            cell = row["cells"][backend]
            tip = (
                f"{cell['label']}; last check {cell['checked_at'] or 'never'}; "
                f"last full read {cell['last_full_read'] or 'never'}"
            )
            if cell["message"] and cell["state"] not in (PASSED, NOT_EXPECTED):
                tip += f"; {cell['message']}"
            cells.append(
                f'<td class="cell {cell["state"]}" data-backend="{_e(backend)}" data-state="{cell["state"]}" '
                f'style="background:{STATE_COLOURS[cell["state"]]}" title="{_e(tip)}">'
                f"{_e(cell['label'])}</td>"
            )
        body.append(
            f'<tr data-backup-id="{_e(row["backup_id"])}"><td><code>{_e(row["backup_id"][:8])}</code></td>'
            f"<td>{_e(row['backup_type'])}</td><td>{_e((row['created_at'] or '')[:16])}</td>"
            f"<td>{_e(row['filename'])}</td>{''.join(cells)}</tr>"
        )
    failing = "&failing=1" if m["only_failing"] else ""
    pager = [f"<span>page {m['page']} of {m['pages']} ({m['total']} backups)</span>"]
    if m["page"] > 1:
        pager.insert(
            0, f'<a href="?page={m["page"] - 1}&page_size={m["page_size"]}{failing}">&larr; newer</a>'
        )
    if m["page"] < m["pages"]:
        pager.append(f'<a href="?page={m["page"] + 1}&page_size={m["page_size"]}{failing}">older &rarr;</a>')
    pager.append(
        f'<a href="?page_size={m["page_size"]}">show all backups</a>'
        if m["only_failing"]
        else f'<a id="only-failing" href="?page_size={m["page_size"]}&failing=1">'
        "only backups with open alerts</a>"
    )

    alerts = model["open_alerts"]
    alert_rows = "".join(
        f'<tr><td class="sev-{_e(a["severity"])}">{_e(a["severity"])}</td><td>{_e(a["kind"])}</td>'
        f"<td>{_e(a['backend'] or '')}</td><td><code>{_e((a['backup_id'] or '')[:8])}</code></td>"
        f"<td>{_e(a['age'])}</td><td>{_e(a['occurrences'])}</td><td>{_e(a['status'])}</td>"
        f"<td>{_e(a['message'][:160])}{_repair_note(a['repair_error'])}</td></tr>"
        for a in alerts["alerts"]
    )
    run = model["last_run"]
    if run:
        stats = run["statistics"] or {}
        order = {key: i for i, key in enumerate(STATISTICS_ORDER)}
        stat_rows = "".join(
            f"<tr><th>{_e(k)}</th><td>{_e(v if not isinstance(v, list | dict) else len(v))}</td></tr>"
            for k, v in sorted(stats.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
            if k not in ("run_id",)
        )
        run_html = (
            f'<p class="muted">run <code>{_e(run["run_id"])}</code>, mode {_e(run["mode"])}, '
            f'recorded {_e(run["recorded_at"])}</p><table id="last-run">{stat_rows}</table>'
        )
    else:
        run_html = '<p class="muted">No run recorded yet.</p>'
    coverage_rows = "".join(
        f"<tr><td>{_e(c['backend'])}</td><td>{c['expected_copies']}</td><td>{c['read_last_day']}</td>"
        f"<td>{c['read_last_7_days']}</td><td>{c['read_last_30_days']}</td><td>{c['never_read']}</td>"
        f"<td>{_e((c['oldest_last_read'] or '-')[:16])}</td></tr>"
        for c in model["coverage"]["backends"]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backup integrity</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body>
<h1>Backup integrity</h1>
<p class="muted">Generated {_e(model["generated_at"][:19])} UTC &middot;
<a href="{URL_PREFIX}/api/summary?page={m["page"]}&amp;page_size={m["page_size"]}{failing}">JSON</a></p>
<h2>Backups &times; backends (last result)</h2>
<div class="legend">{legend}</div>
<table id="matrix"><thead><tr><th>backup</th><th>type</th><th>created (UTC)</th><th>file</th>{head}</tr>
</thead>
<tbody>{"".join(body)}</tbody></table>
<div class="pager">{"".join(pager)}</div>
<div class="grid">
<div><h2>Open alerts ({alerts["total"]})</h2>
<table id="open-alerts"><thead><tr><th>severity</th><th>kind</th><th>backend</th><th>backup</th><th>age</th>
<th>seen in runs</th><th>status</th><th>message</th></tr></thead><tbody>{alert_rows}</tbody></table></div>
</div>
<div class="grid">
<div><h2>Failing copies per day (last {CHART_DAYS} days)</h2>
{failures_chart_svg(model["failures_per_day"])}</div>
<div><h2>Full SHA-256 verification coverage</h2>
<table id="coverage"><thead><tr><th>backend</th><th>expected copies</th><th>read &le; 1 day</th>
<th>&le; 7 days</th><th>&le; 30 days</th><th>never read</th><th>oldest last read</th></tr></thead>
<tbody>{coverage_rows}</tbody></table>
<p class="muted">"Read" means every byte was read and its SHA-256 compared with the catalog.</p></div>
<div><h2>Last run</h2>{run_html}</div>
</div>
</body></html>"""


# --------------------------------------------------------------------------- app


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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
        from include.backup_integrity.catalog.schema import schema_status
        from include.backup_integrity.config.settings import ConfigError

        try:
            settings = load_settings()
            conn = connect_catalog()
        except ConfigError as error:
            raise HTTPException(status_code=500, detail=str(error)) from None
        try:
            status = schema_status(conn)  # never DDL here: the verifier's first task migrates
            if status.pending:
                raise SchemaWaiting(status.waiting_message)
            with conn.cursor() as cur:
                return section(cur, settings, datetime.now(UTC))
        except DashboardError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        finally:
            conn.rollback()
            conn.close()

    @app.exception_handler(SchemaWaiting)
    def schema_waiting(request: Any, waiting: SchemaWaiting) -> Response:
        return Response(json.dumps({"detail": str(waiting)}), status_code=503, media_type="application/json")

    def as_json(value: Any) -> Response:
        return Response(json.dumps(value, default=_json_default), media_type="application/json")

    page_q = Query(1, ge=1)
    size_q = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)

    @app.get("/", response_class=HTMLResponse)
    def page(page: int = page_q, page_size: int = size_q, failing: bool = False) -> HTMLResponse:
        try:
            model = read(lambda c, s, now: view_model(c, s, page, page_size, now, failing))
        except SchemaWaiting as waiting:
            return HTMLResponse(render_waiting_page(str(waiting)))
        return HTMLResponse(render_page(model))

    @app.get("/api/summary")
    def api_summary(page: int = page_q, page_size: int = size_q, failing: bool = False) -> Response:
        return as_json(read(lambda c, s, now: view_model(c, s, page, page_size, now, failing)))

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

    @app.get("/api/")
    def api_index() -> Response:
        return as_json({"endpoints": [f"{URL_PREFIX}/api/{name}" for name in API_ENDPOINTS]})

    # Last, so that it matches only what nothing else does: an unknown path is answered
    # (404) only after authentication, so nothing about the app shows to an anonymous caller.
    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def not_found(rest: str) -> Response:
        raise HTTPException(status_code=404, detail="Not Found")

    return app


def iter_states(model: dict[str, Any]) -> Iterable[tuple[str, str, str]]:
    """(backup_id, backend, state) of every matrix cell: what tests and scripts look at."""
    for row in model["matrix"]["rows"]:
        for backend, cell in row["cells"].items():
            yield row["backup_id"], backend, cell["state"]
