"""A chunk stops asking a store after a run of failures, and only then."""

from __future__ import annotations

from include.backup_integrity.domain.checks import Observation
from include.backup_integrity.stores.breaker import CircuitBreaker


class ScriptedBackend:
    """Answers from a script of observations, counting what it was asked."""

    name = "r2"

    def __init__(self, answers: list[Observation]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def open_session(self) -> str | None:
        return None

    def describe(self, path: str) -> str:
        return f"s3://bucket/{path}"

    def observe(self, path: str, *, read_content: bool) -> Observation:
        self.asked.append(path)
        return self.answers.pop(0)


def test_after_threshold_failures_in_a_row_the_store_is_not_asked_again():
    backend = ScriptedBackend([Observation(error="Read timeout")] * 3 + [Observation(exists=True, size=1)])
    guarded = CircuitBreaker(backend, threshold=3)

    answers = [guarded.observe(f"k{i}", read_content=False) for i in range(5)]

    assert backend.asked == ["k0", "k1", "k2"]
    assert guarded.is_open
    assert answers[3].error is not None
    assert "not asked: r2 failed 3 requests in a row" in answers[3].error
    assert "Read timeout" in answers[4].error


def test_a_success_or_a_missing_object_resets_the_count():
    error = Observation(error="503")
    backend = ScriptedBackend(
        [error, error, Observation(exists=False), error, error, Observation(exists=True)]
    )
    guarded = CircuitBreaker(backend, threshold=3)

    answers = [guarded.observe(f"k{i}", read_content=False) for i in range(6)]

    assert len(backend.asked) == 6
    assert not guarded.is_open
    assert answers[5].exists
    assert guarded.describe("k") == "s3://bucket/k"
    assert guarded.open_session() is None


def test_what_the_breaker_does_not_guard_is_the_backends_own():
    backend = ScriptedBackend([])
    backend.bucket = "securesyntax"
    assert CircuitBreaker(backend).bucket == "securesyntax"
