"""Backend incidents: one cause behind many failures on one backend, reported once.

An unmounted volume, a wrong bucket or endpoint, or a mass deletion makes most
copies on a backend ``missing`` (or the wrong size) at once. Reported per copy,
that is one alert and one notice per backup, and with repair on, a copy of every
backup written into the wrong place. When one run finds at least ``min_copies``
such copies on a backend, making at least ``ratio`` of the checks that store
answered, the backend is *in incident*: one alert stands for them all, per-copy
alerts and repairs on it are held, and a later run large enough to tell
(``min_copies`` store-answered checks, under the threshold) resolves it.

Everything here is pure: tallies from a run's compact outcomes, the rule, and
what a run does to the open incidents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from include.backup_integrity.domain.checks import store_answered
from include.backup_integrity.domain.records import MISSING, SIZE_MISMATCH, unpack_ids
from include.backup_integrity.domain.timestamps import is_later, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable

    from include.backup_integrity.domain.records import CheckResult, ChunkOutcome

#: The alert kind (``details.kind``) of a backend incident.
BACKEND_INCIDENT = "backend_incident"
INCIDENT_SEVERITY = "CRITICAL"
#: The failures an incident stands for (when the store answered them).
INCIDENT_KINDS = (MISSING, SIZE_MISMATCH)
#: Backup ids an incident lists as examples (the counts are always exact).
SAMPLE_SIZE = 20
#: The reason every repair on a backend in incident is refused with.
REPAIR_REFUSAL = "backend incident"
LIKELY_CAUSES = (
    "volume not mounted (or another one mounted in its place), wrong bucket or endpoint "
    "(an empty bucket of the same name), or mass deletion of the backups"
)


@dataclass(frozen=True)
class IncidentRule:
    """When failures on one backend are one incident (the Variable's ``incident_*`` keys)."""

    min_copies: int = 20
    ratio: float = 0.5

    def is_incident(self, tally: BackendTally) -> bool:
        return tally.affected >= self.min_copies and tally.affected >= self.ratio * tally.answered

    def can_resolve(self, tally: BackendTally) -> bool:
        """A run answered for enough copies to tell, and found the backend under the threshold."""
        return tally.answered >= self.min_copies and not self.is_incident(tally)


@dataclass(frozen=True)
class BackendTally:
    """One backend in one run: checks its store answered, and how many of them an incident counts."""

    backend: str
    answered: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    sample: tuple[str, ...] = ()
    #: The latest store-answered check on the backend (None: the store answered none).
    checked_at: str | None = None

    @property
    def affected(self) -> int:
        return sum(self.kinds.values())


def counts_toward_incident(result: CheckResult) -> bool:
    """A ``missing`` or ``size_mismatch`` the store itself answered (not the catalog's silence)."""
    return result["kind"] in INCIDENT_KINDS and store_answered(result)


def tally_backends(
    outcomes: Iterable[ChunkOutcome], decided: Iterable[CheckResult] = ()
) -> dict[str, BackendTally]:
    """Per backend: store-answered checks of the run's chunks (passes travel as ids) and failures."""
    answered: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    affected_ids: dict[str, list[str]] = {}
    latest: dict[str, str] = {}

    def saw(backend: str, checked_at: str, checks: int = 1) -> None:
        answered[backend] += checks
        latest[backend] = max(latest.get(backend, ""), checked_at)

    failures = list(decided)
    for outcome in outcomes:
        failures.extend(outcome["failures"])
        passes = sum(len(unpack_ids(packed)) for packed in outcome["passed"].values())
        if passes:
            saw(outcome["backend"], outcome["checked_at"], passes)
    for result in failures:
        backend = result["backend"]
        if not backend or not store_answered(result):
            continue
        saw(backend, result["checked_at"])
        if counts_toward_incident(result):
            kinds.setdefault(backend, Counter())[result["kind"]] += 1
            affected_ids.setdefault(backend, []).append(result["backup_id"])
    return {
        backend: BackendTally(
            backend=backend,
            answered=answered[backend],
            kinds=dict(sorted(kinds.get(backend, Counter()).items())),
            sample=tuple(sorted(set(affected_ids.get(backend, [])))[:SAMPLE_SIZE]),
            checked_at=latest.get(backend),
        )
        for backend in sorted(answered)
    }


@dataclass(frozen=True)
class OpenIncident:
    alert_id: int
    backend: str
    last_seen: str | None = None


@dataclass
class IncidentDecision:
    """What one run does to backend incidents, and which backends it holds back."""

    opened: list[BackendTally] = field(default_factory=list)
    observed: list[tuple[OpenIncident, BackendTally]] = field(default_factory=list)
    resolved: list[tuple[OpenIncident, BackendTally]] = field(default_factory=list)
    #: Backends whose ``missing``/``size_mismatch`` failures open no per-copy alert, whose
    #: open per-copy alerts are left as they are, and where no repair is made, this run.
    held: list[str] = field(default_factory=list)

    @property
    def counted(self) -> list[tuple[str, str]]:
        """(backend, checked_at) of each incident this run saw: each counts as one failure."""
        seen = [(t.backend, t.checked_at or "") for t in self.opened]
        return seen + [(t.backend, t.checked_at or "") for _, t in self.observed]


@dataclass(frozen=True)
class RunIncidents:
    """A run's tallies under the rule: everything the alert planner needs to decide incidents."""

    rule: IncidentRule
    tallies: dict[str, BackendTally]

    @property
    def found(self) -> list[str]:
        """The backends this run alone finds in incident."""
        return sorted(b for b, tally in self.tallies.items() if self.rule.is_incident(tally))

    def decide(self, open_incidents: Iterable[OpenIncident]) -> IncidentDecision:
        """Open, observe or resolve each backend's incident; say which backends are held.

        One incident per backend: an open one is observed, never doubled. It is
        resolved only by a run that answered for at least ``min_copies`` copies there
        (later than its last sighting) and found the backend under the threshold; a
        smaller run neither resolves it nor reports per copy what the incident stands for.
        """
        open_by_backend: dict[str, OpenIncident] = {}
        for incident in sorted(open_incidents, key=lambda i: i.alert_id):
            open_by_backend.setdefault(incident.backend, incident)
        decision = IncidentDecision()
        held: set[str] = set()
        for backend in self.found:
            tally = self.tallies[backend]
            held.add(backend)
            if backend in open_by_backend:
                decision.observed.append((open_by_backend[backend], tally))
            else:
                decision.opened.append(tally)
        for backend, incident in sorted(open_by_backend.items()):
            if backend in held:
                continue
            tally = self.tallies.get(backend, BackendTally(backend))
            if (
                self.rule.can_resolve(tally)
                and tally.checked_at is not None
                and is_later(tally.checked_at, parse_timestamp(incident.last_seen))
            ):
                decision.resolved.append((incident, tally))
            elif tally.affected:
                held.add(backend)
        decision.held = sorted(held)
        return decision


def assess_run(
    outcomes: Iterable[ChunkOutcome], decided: Iterable[CheckResult], rule: IncidentRule
) -> RunIncidents:
    return RunIncidents(rule, tally_backends(outcomes, decided))


# --------------------------------------------------------------------------- alerts


class AlertView(Protocol):
    """What the incident rules read of an open alert (the planner's ``OpenAlert``)."""

    id: int
    backup_id: str | None
    details: dict[str, Any]


Alert = TypeVar("Alert", bound=AlertView)


def open_incidents_of(open_alerts: Iterable[AlertView]) -> list[OpenIncident]:
    return [
        OpenIncident(alert.id, str(alert.details.get("backend")), alert.details.get("last_seen"))
        for alert in open_alerts
        if alert.details.get("kind") == BACKEND_INCIDENT and alert.details.get("backend")
    ]


def outside_incidents(
    open_alerts: list[Alert], results: list[CheckResult], held: Iterable[str]
) -> tuple[list[Alert], list[CheckResult]]:
    """The open alerts and results the per-copy planner sees while ``held`` backends are in incident.

    On a held backend the failures the incident stands for open no alert, and the
    copies that already have an open per-copy alert there are left out altogether,
    so that alert is neither updated, nor resolved, nor notified again.
    """
    held = set(held)
    if not held:
        return open_alerts, results
    untouched = {
        (alert.backup_id, alert.details.get("backend"))
        for alert in open_alerts
        if alert.backup_id is not None and alert.details.get("backend") in held
    }
    alerts = [a for a in open_alerts if (a.backup_id, a.details.get("backend")) not in untouched]
    kept = [
        r
        for r in results
        if not (
            r["backend"] in held
            and (counts_toward_incident(r) or (r["backup_id"], r["backend"]) in untouched)
        )
    ]
    return alerts, kept


def incident_content(tally: BackendTally, rule: IncidentRule, run_id: str) -> tuple[str, dict[str, Any]]:
    """The message and details of a backend's incident alert, as this run saw it."""
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in tally.kinds.items())
    examples = ", ".join(tally.sample[:3]) + (", ..." if tally.affected > 3 else "")
    message = (
        f"Backend incident on {tally.backend}: {tally.affected} of the {tally.answered} copies its "
        f"store answered for in run {run_id} are missing or the wrong size ({counts}; e.g. "
        f"{examples}). Likely one cause: {LIKELY_CAUSES}. No per-copy alert is raised and no "
        f"copy is repaired on {tally.backend} until a run finds it under the threshold."
    )
    details = {
        "kind": BACKEND_INCIDENT,
        "backend": tally.backend,
        "backup_id": None,
        "path": None,
        "expected": None,
        "actual": {"answered_checks": tally.answered, "affected_count": tally.affected, "kinds": tally.kinds},
        "run_id": run_id,
        "affected_count": tally.affected,
        "answered_checks": tally.answered,
        "kinds": dict(tally.kinds),
        "sample": list(tally.sample),
        "threshold": {"incident_min_copies": rule.min_copies, "incident_ratio": rule.ratio},
        "likely_causes": LIKELY_CAUSES,
        "reason": f"{tally.affected} of {tally.answered} store-answered checks: missing or size mismatch",
    }
    return message, details


def resolution_message(tally: BackendTally, run_id: str) -> str:
    return (
        f"{tally.backend} is under the incident threshold again: {tally.affected} of the "
        f"{tally.answered} copies its store answered for are missing or the wrong size (run {run_id}); "
        "what still fails is reported per copy."
    )
