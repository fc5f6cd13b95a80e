"""One digest message instead of a flood: what a run's many notices say, in one title and body.

Pure: the notices come as :class:`~include.backup_integrity.catalog.outbox.DigestItem`
records, the link as a plain URL (None when ``[api] base_url`` is unset).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.backup_integrity.catalog.outbox import DigestItem

MAX_DIGEST_LINES = 50
MESSAGE_CHARS = 100
SEVERITY_ORDER = ("CRITICAL", "ERROR", "WARNING", "INFO")
ALERTS_PAGE = "/backup-integrity/alerts"


def change_of(event: str) -> str:
    """What a notice's event says happened: opened, changed (a summary) or resolved."""
    if event == "opened":
        return "opened"
    if event.startswith("changed"):
        return "changed"
    return "resolved"


def _counts(counter: Counter[str], order: tuple[str, ...] = ()) -> str:
    rank = {name: i for i, name in enumerate(order)}
    ranked = sorted(counter.items(), key=lambda kv: (rank.get(kv[0], len(rank)), -kv[1], kv[0]))
    return ", ".join(f"{count} {name}" for name, count in ranked)


def digest_message(run_id: str, items: list[DigestItem], alerts_url: str | None) -> tuple[str, str, str]:
    """(title, body, notify type) of the digest of ``items``, all queued by run ``run_id``."""
    changes = Counter(change_of(item.event) for item in items)
    kinds = Counter(item.kind or "unknown" for item in items)
    severities = Counter(item.severity or "UNKNOWN" for item in items)
    worst = next((s for s in SEVERITY_ORDER if severities.get(s)), "INFO")
    opened = changes.get("opened", 0) + changes.get("changed", 0)
    title = (
        f"[{worst if opened else 'RESOLVED'}] Backup integrity: {len(items)} changes "
        f"({_counts(changes, ('opened', 'changed', 'resolved'))}); by kind: {_counts(kinds)}; "
        f"by severity: {_counts(severities, SEVERITY_ORDER)}"
    )
    lines = [f"Run {run_id} changed {len(items)} alerts:"]
    for item in items[:MAX_DIGEST_LINES]:
        message = " ".join((item.message or "").split())
        if len(message) > MESSAGE_CHARS:
            message = message[: MESSAGE_CHARS - 1] + "\u2026"
        lines.append(
            f"- {change_of(item.event)} {item.kind or '?'} on {item.backend or '-'}, "
            f"backup {item.backup_id or '-'}: {message}"
        )
    if len(items) > MAX_DIGEST_LINES:
        lines.append(f"and {len(items) - MAX_DIGEST_LINES} more")
    if alerts_url:
        lines.append(f"All alerts: {alerts_url}")
    return title, "\n".join(lines), "failure" if opened else "success"


def alerts_page_url() -> str | None:
    """The console's alerts page, from Airflow's ``[api] base_url`` (None when it is unset)."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{ALERTS_PAGE}" if base else None
