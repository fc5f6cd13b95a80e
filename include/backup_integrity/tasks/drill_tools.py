"""Running a drill's tools: within the drill's time, in their own process group, with a minimal environment.

Tools (the decrypt command, pg_restore, psql) run without a shell, in a process group
of their own that is killed as a whole when the drill's time is up or the tool ends,
so nothing they start outlives the drill. Their environment holds a PATH, a C locale
and the work folder as HOME and TMPDIR, plus exactly what the caller adds: none of
the worker's ``AIRFLOW_CONN_*`` or other secrets.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from include.backup_integrity.domain.drills import DrillStop, environment_failed

#: Bytes of a tool's error output kept (its end, where the error is).
OUTPUT_TAIL_BYTES = 8192
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Below this much free space the work folder counts as full.
LOW_SPACE_BYTES = 1024 * 1024


class Deadline:
    """The drill's time budget (``timeout_minutes``), checked between blocks and given to tools."""

    def __init__(self, minutes: float) -> None:
        self.minutes = minutes
        self.end = time.monotonic() + minutes * 60

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, stage: str) -> None:
        if self.remaining() <= 0:
            raise self.exceeded(stage)

    def exceeded(self, stage: str) -> DrillStop:
        return environment_failed(stage, f"the drill ran out of time (timeout_minutes = {self.minutes:g})")


def minimal_env(work_dir: str, **extra: str) -> dict[str, str]:
    """The environment of every tool: a PATH, a C locale, the work folder as HOME and TMPDIR."""
    return {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": work_dir,
        "TMPDIR": work_dir,
        **extra,
    }


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    output: str


def run_tool(
    argv: list[str],
    *,
    stage: str,
    env: dict[str, str],
    cwd: str,
    deadline: Deadline,
    stdin_path: str | None = None,
    stdout_path: str | None = None,
) -> ToolRun:
    """Run one tool to its end within the deadline; its process group is killed when it is not.

    A missing or unrunnable command is an environment failure; so is the deadline.
    """
    stderr_path = os.path.join(cwd, f"stderr.{stage}")
    with contextlib.ExitStack() as files:
        stdin = files.enter_context(open(stdin_path, "rb")) if stdin_path else subprocess.DEVNULL
        stdout = (
            files.enter_context(open(stdout_path, "xb", opener=private_opener))
            if stdout_path
            else subprocess.DEVNULL
        )
        stderr = files.enter_context(open(stderr_path, "xb", opener=private_opener))
        try:
            process = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError:
            raise environment_failed(
                stage, f"command {argv[0]!r} is not installed on this worker (or not on its PATH)"
            ) from None
        except PermissionError:
            raise environment_failed(
                stage, f"command {argv[0]!r} cannot be run (permission denied)"
            ) from None
        try:
            returncode = process.wait(timeout=max(deadline.remaining(), 0.001))
        except subprocess.TimeoutExpired:
            raise deadline.exceeded(stage) from None
        finally:
            _kill_group(process)
    return ToolRun(returncode, _read_tail(stderr_path))


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the tool's whole process group: nothing it started outlives the drill."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.wait(10)


def private_opener(path: str, flags: int) -> int:
    """Open files the drill writes readable by this user only."""
    return os.open(path, flags, 0o600)


def _read_tail(path: str) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(os.path.getsize(path) - OUTPUT_TAIL_BYTES, 0))
        return handle.read().decode("utf-8", errors="replace")


def out_of_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def work_folder_full(work_dir: str) -> bool:
    """Whether the work folder's file system has (next to) no space left."""
    try:
        return shutil.disk_usage(work_dir).free < LOW_SPACE_BYTES
    except OSError:
        return False
