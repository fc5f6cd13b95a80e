"""The run's statistics reach a real StatsD listener through Airflow's own metrics client."""

from __future__ import annotations

import socket

import pytest

from include.backup_integrity.tasks.metrics import emit_statistics, numeric_statistics


@pytest.fixture
def statsd_listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


@pytest.fixture
def airflow_statsd(statsd_listener, monkeypatch):
    """Airflow's metrics configured for StatsD on the listener, as a worker would be."""
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(statsd_listener.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    return statsd_listener


def receive_all(sock: socket.socket, expected: int) -> list[str]:
    """The package's metrics among what the listener receives (Airflow sends its own too)."""
    lines: list[str] = []
    while len(lines) < expected:
        data, _ = sock.recvfrom(65535)
        lines.extend(
            line for line in data.decode().splitlines() if line.startswith("airflow.backup_integrity.")
        )
    return lines


def test_numeric_statistics_become_backup_integrity_gauges(airflow_statsd):
    stats = {
        "total_backups_checked": 7,
        "verified_successfully": 5,
        "missing_files": 2,
        "repaired": 1,
        "mode": "full",
        "run_id": "manual__x",
        "skipped_backup_ids": ["nope"],
        "repair_plan": [{"backup_id": "b"}],
        "window_start": None,
    }

    sent = emit_statistics(stats)

    assert sent == 4
    lines = receive_all(airflow_statsd, 4)
    assert sorted(lines) == sorted(
        [
            "airflow.backup_integrity.total_backups_checked:7|g",
            "airflow.backup_integrity.verified_successfully:5|g",
            "airflow.backup_integrity.missing_files:2|g",
            "airflow.backup_integrity.repaired:1|g",
        ]
    )


def test_booleans_and_text_are_not_metrics():
    assert numeric_statistics({"a": 1, "b": 2.5, "c": True, "d": "x", "e": None, "f": []}) == {
        "a": 1,
        "b": 2.5,
    }
