"""The DAG run in a child process (``devtools.rundag``), for runs that are killed, audited or overlapped."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

from devtools.runs import REPO, release_metadata_db

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path


class DagProcess:
    """The DAG running in a child process (``devtools.rundag``); its output is read as it comes."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        release_metadata_db()  # the child writes the same metadata DB (unless env says otherwise)
        self.process = subprocess.Popen(
            command,
            cwd=str(REPO),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 180) -> None:
        """Block until the process has printed ``text``."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or self.process.poll() is not None,
                timeout,
            )
        if not done or text not in self.output:
            self.kill()
            raise AssertionError(f"DAG process never printed {text!r}:\n{self.output[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean anything up."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(10)

    def finish(self, timeout: float = 300) -> dict[str, Any]:
        """Wait for the run to end; its ``{"run_id", "state"}``."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"DAG process did not finish in {timeout}s:\n{self.output[-4000:]}"
            ) from None
        self._reader.join(10)
        outcome = [line for line in self.lines if line.startswith('{"run_id"')]
        assert outcome, (
            f"DAG process printed no outcome (exit {self.process.returncode}):\n{self.output[-4000:]}"
        )
        return json.loads(outcome[-1])


def private_airflow_home(airflow_db: str, home: Path) -> dict[str, str]:
    """A copy of the suite's metadata DB in ``home``: the environment of a child that must not share it.

    Copied with SQLite's backup API, never as a plain file: opening and closing the
    live file from this process would drop the locks SQLite holds on it here.
    """
    home.mkdir(parents=True, exist_ok=True)
    release_metadata_db()
    source = sqlite3.connect(f"{airflow_db}/airflow.db")
    target = sqlite3.connect(home / "airflow.db")
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return {"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}


def start_dag_process(
    logical_date: datetime,
    *,
    run_after: datetime | None = None,
    conf: dict[str, Any] | None = None,
    retries: dict[str, int] | None = None,
    audit_opens: str | None = None,
    env: dict[str, str] | None = None,
) -> DagProcess:
    """Run the DAG in a child process with this process's environment (plus ``env``)."""
    command = [
        sys.executable,
        "-m",
        "devtools.rundag",
        "--logical-date",
        logical_date.isoformat(),
        "--conf",
        json.dumps(conf or {}),
    ]
    if run_after:
        command += ["--run-after", run_after.isoformat()]
    for task_id, count in (retries or {}).items():
        command += ["--retries", f"{task_id}={count}"]
    if audit_opens:
        command += ["--audit-opens", audit_opens]
    return DagProcess(command, {**os.environ, **(env or {})})
