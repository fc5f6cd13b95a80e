"""How a drill runs its tools: a minimal environment, the deadline, the process group, no password on argv."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from include.backup_integrity.domain.drills import DrillStop
from include.backup_integrity.tasks.drill_target import RestoreTarget
from include.backup_integrity.tasks.drill_tools import Deadline, minimal_env, run_tool


def test_a_tool_sees_only_the_minimal_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BACKUP_CATALOG", "postgres://u:secret@db/catalog")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    output = tmp_path / "env.txt"

    run = run_tool(
        ["env"],
        stage="decrypt",
        env=minimal_env(str(tmp_path), BACKUP_PASSPHRASE="pw"),
        cwd=str(tmp_path),
        deadline=Deadline(1),
        stdout_path=str(output),
    )

    assert run.returncode == 0
    names = {line.split("=", 1)[0] for line in output.read_text().splitlines()}
    assert names <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "BACKUP_PASSPHRASE", "PWD", "SHLVL", "_"}
    assert oct(output.stat().st_mode & 0o777) == "0o600", "what a tool writes is the drill's alone"


def test_the_tool_reads_stdin_from_a_file_and_its_error_output_is_kept(tmp_path):
    source = tmp_path / "in"
    source.write_bytes(b"hello")

    run = run_tool(
        ["sh", "-c", "cat; echo oops >&2; exit 4"],
        stage="decrypt",
        env=minimal_env(str(tmp_path)),
        cwd=str(tmp_path),
        deadline=Deadline(1),
        stdin_path=str(source),
        stdout_path=str(tmp_path / "out"),
    )

    assert (run.returncode, run.output.strip()) == (4, "oops")
    assert (tmp_path / "out").read_bytes() == b"hello"


def test_a_missing_command_is_an_environment_failure(tmp_path):
    with pytest.raises(DrillStop) as stop:
        run_tool(
            ["no-such-tool-here"],
            stage="restore",
            env=minimal_env(str(tmp_path)),
            cwd=str(tmp_path),
            deadline=Deadline(1),
        )

    assert (stop.value.status, stop.value.stage) == ("error", "restore")
    assert "'no-such-tool-here' is not installed" in stop.value.message


def test_past_the_deadline_the_whole_process_group_is_killed(tmp_path):
    marker = f"{os.getpid() % 1000 + 731000}"
    started = time.monotonic()

    with pytest.raises(DrillStop) as stop:
        run_tool(
            ["sh", "-c", f"sleep {marker} & sleep {marker}"],
            stage="decrypt",
            env=minimal_env(str(tmp_path)),
            cwd=str(tmp_path),
            deadline=Deadline(1 / 60),
        )

    assert time.monotonic() - started < 10
    assert (stop.value.status, stop.value.stage) == ("error", "decrypt")
    assert "ran out of time" in stop.value.message
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout
    assert left == "", "the background child died with its group"


def test_the_target_password_goes_to_the_environment_never_to_argv(tmp_path):
    target = RestoreTarget(
        host="db.internal",
        port=5433,
        login="drill",
        password="s3cret",
        maintenance_database="postgres",
        sslmode="require",
    )

    argv = target.tool_arguments("restore_drill_0a1b2c3d")
    env = target.tool_env(str(tmp_path))

    assert "s3cret" not in " ".join(argv)
    assert argv == [
        "--dbname",
        "restore_drill_0a1b2c3d",
        "--no-password",
        "--host",
        "db.internal",
        "--port",
        "5433",
        "--username",
        "drill",
    ]
    assert (env["PGPASSWORD"], env["PGSSLMODE"], env["PGPASSFILE"]) == ("s3cret", "require", os.devnull)
    assert not any(k.startswith("AIRFLOW") for k in env)
