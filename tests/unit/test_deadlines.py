"""Bounded waits without a service: the deadline decisions, the guard over a real folder, botocore's hooks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg
import pytest

from include.backup_integrity.catalog.deadlines import STORE_DEADLINE_DDL
from include.backup_integrity.catalog.sessions import CatalogWaitTimeout, SessionTimeouts, naming_waits
from include.backup_integrity.config.settings import ConfigError, parse_settings
from include.backup_integrity.domain import deadlines
from include.backup_integrity.stores.deadline import DeadlineGuard, RequestRefused, StoreDeadline
from include.backup_integrity.stores.local import LocalBackend

REPO = Path(__file__).resolve().parents[2]


class Clock:
    """Seconds since the epoch that a test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- the Variable


def test_the_wait_bounds_have_their_defaults():
    settings = parse_settings(None)
    assert settings.db_statement_timeout_seconds == 900
    assert settings.db_lock_timeout_seconds == 30
    assert settings.store_deadline_seconds == 120
    assert SessionTimeouts.of(settings) == SessionTimeouts(900, 30)
    assert SessionTimeouts.of(None) == SessionTimeouts(900, 30)


@pytest.mark.parametrize(
    "key", ["db_statement_timeout_seconds", "db_lock_timeout_seconds", "store_deadline_seconds"]
)
@pytest.mark.parametrize("value", [0, -1, 1.5, "30", True, None])
def test_a_wait_bound_must_be_a_positive_integer(key, value):
    with pytest.raises(ConfigError, match=rf"key '{key}': (expected an integer|must be >= 1)"):
        parse_settings({key: value})


def test_the_lock_timeout_may_not_exceed_the_statement_timeout():
    assert parse_settings({"db_statement_timeout_seconds": 5, "db_lock_timeout_seconds": 5})
    with pytest.raises(ConfigError, match=r"'db_lock_timeout_seconds': must not exceed db_statement_timeout"):
        parse_settings({"db_statement_timeout_seconds": 5, "db_lock_timeout_seconds": 6})
    with pytest.raises(ConfigError, match=r"must not exceed db_statement_timeout_seconds \(20\)"):
        parse_settings({"db_statement_timeout_seconds": 20})


# ----------------------------------------------------------------------------- pure decisions


def test_a_chunk_stops_five_minutes_before_its_timeout_or_a_quarter_of_a_short_one():
    assert deadlines.chunk_deadline(1000.0, 7200) == 1000.0 + 7200 - 300
    assert deadlines.chunk_deadline(1000.0, 8) == 1000.0 + 6
    assert deadlines.chunk_deadline(1000.0, None) is None


def test_a_request_starts_only_when_it_would_end_before_both_deadlines():
    decide = {"task_deadline": 100.0, "first_timeout_at": None, "store_deadline_seconds": 120}
    assert deadlines.refusal(60.0, 35.0, **decide) is None
    assert deadlines.refusal(65.0, 35.0, **decide) is None  # ends exactly at the deadline
    assert deadlines.refusal(65.1, 35.0, **decide) == "not asked: task deadline"
    assert deadlines.refusal(101.0, 0.0, **decide) == "not asked: task deadline"

    silent = {"task_deadline": None, "first_timeout_at": 10.0, "store_deadline_seconds": 120}
    assert deadlines.refusal(95.0, 35.0, **silent) is None
    assert deadlines.refusal(96.0, 35.0, **silent) == "not asked: the store did not answer for 120 s"
    both = {"task_deadline": 50.0, "first_timeout_at": 10.0, "store_deadline_seconds": 20}
    assert deadlines.refusal(40.0, 0.0, **both) == "not asked: the store did not answer for 20 s"


# ----------------------------------------------------------------------------- the deadline and its guard


def test_the_first_timeout_is_shared_once_and_the_run_s_earliest_wins():
    clock = Clock()
    shared = []

    def share(at: float) -> float:
        shared.append(at)
        return at - 50  # another chunk saw the store time out 50 s earlier

    deadline = StoreDeadline("b2", 120, share=share, clock=clock)
    assert deadline.refusal(35) is None
    deadline.timed_out()
    clock.now += 10
    deadline.timed_out()
    assert shared == [1_000_000.0], "one catalog write per task"
    assert deadline.first_timeout_at == 1_000_000.0 - 50
    clock.now = 1_000_000.0 - 50 + 120 - 35
    assert deadline.refusal(35) is None
    clock.now += 0.5
    assert deadline.refusal(35) == "not asked: the store did not answer for 120 s"


def test_a_catalog_that_cannot_share_the_timeout_leaves_the_task_its_own_clock():
    def share(at: float) -> float:
        raise psycopg.OperationalError("the catalog is restarting")

    clock = Clock()
    deadline = StoreDeadline("r2", 30, share=share, clock=clock)
    deadline.timed_out()
    clock.now += 31
    assert deadline.refusal() == "not asked: the store did not answer for 30 s"


def test_the_guard_refuses_past_the_task_deadline_and_asks_before_it(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.dump").write_bytes(b"12345")
    clock = Clock()
    local = LocalBackend(str(tmp_path))
    guard = DeadlineGuard(local, StoreDeadline("local", 120, task_deadline=clock.now + 10, clock=clock))

    assert guard.open_session() is None
    assert guard.probe("a/x.dump").size == 5
    assert guard.list_keys(["a/x.dump"]).entries["a/x.dump"].size == 5
    clock.now += 11
    assert guard.open_session() == "not asked: task deadline"
    assert guard.probe("a/x.dump").error == "not asked: task deadline"
    assert guard.read("a/x.dump", None).error == "not asked: task deadline"
    assert guard.observe("a/x.dump", read_content=False).error == "not asked: task deadline"
    assert guard.list_keys(["a/x.dump"]).error == "not asked: task deadline"
    assert local.requests == {"stat": 1, "scandir": 1}, "nothing was asked after the deadline"


def test_botocore_starts_no_attempt_past_the_deadline():
    """A real boto3 client: once the store's deadline has passed, no request leaves the process."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard: nothing answers, and nothing must be tried
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 3}),
    )
    clock = Clock()
    deadline = StoreDeadline("b2", 5, first_timeout_at=clock.now - 3, clock=clock)
    assert deadline.watch(client) == 3.0
    with pytest.raises(RequestRefused, match=r"not asked: the store did not answer for 5 s") as refused:
        client.head_bucket(Bucket="securesyntax")
    assert isinstance(refused.value, OSError), "every store call handles it as an unreachable store"
    assert deadline.take_veto() == "not asked: the store did not answer for 5 s"
    assert deadline.take_veto() is None


# ----------------------------------------------------------------------------- catalog timeouts, named


def fail_while(timeouts: SessionTimeouts, steps: list[str], error: Exception) -> None:
    with naming_waits(timeouts, steps[0]) as step:
        for name in steps[1:]:
            step(name)
        raise error


def test_a_lock_timeout_is_named_with_the_step_under_way():
    timeouts = SessionTimeouts(statement_seconds=60, lock_seconds=3)
    lock = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    with pytest.raises(CatalogWaitTimeout) as raised:
        fail_while(timeouts, ["recording the run", "writing metadata"], lock)
    assert str(raised.value) == "waited 3 s (db_lock_timeout_seconds) for a table lock while writing metadata"
    assert raised.value.__cause__ is lock

    statement = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    with pytest.raises(CatalogWaitTimeout, match=r"a statement ran for 60 s .* while recording the run"):
        fail_while(timeouts, ["recording the run"], statement)


def test_other_errors_pass_unchanged():
    with pytest.raises(psycopg.errors.UniqueViolation):
        fail_while(SessionTimeouts(), ["recording"], psycopg.errors.UniqueViolation("duplicate key"))


def test_the_migration_creates_the_table_the_catalog_module_describes():
    path = REPO / "include/backup_integrity/catalog/migrations/versions/0003_store_deadlines.py"
    spec = importlib.util.spec_from_file_location("revision_0003", path)
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    assert revision.revision == "0003_store_deadlines"
    assert revision.down_revision == "0002_restore_drills"
    assert revision.STORE_DEADLINE_DDL == STORE_DEADLINE_DDL


def test_the_bounded_growth_migration_creates_the_table_the_handover_module_describes():
    from include.backup_integrity.catalog.handover import CHUNK_FAILURE_DDL

    path = REPO / "include/backup_integrity/catalog/migrations/versions/0006_bounded_growth.py"
    spec = importlib.util.spec_from_file_location("revision_0006", path)
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    assert revision.revision == "0006_bounded_growth"
    assert revision.down_revision == "0005_notice_expiry"
    assert revision.CHUNK_FAILURE_DDL == CHUNK_FAILURE_DDL
