"""Run the DAG once with ``dag.test()`` in this process, for tests that need a separate process.

A test starts it as a subprocess when it must kill the process running the tasks
(SIGKILL mid-run), run two DAG runs at the same time, or audit every file the
run opens. The environment (AIRFLOW_HOME, connections, the Variable) is the
caller's. Prints one JSON line ``{"run_id": ..., "state": ...}`` when done.

    python -m devtools.rundag --logical-date 2026-01-01T10:00:00+00:00 \\
        [--run-after ISO] [--conf JSON] [--retries raise_alerts=2] [--retry-delay 1] \\
        [--audit-opens FILE]

``--audit-opens`` installs a :func:`sys.addaudithook` before anything else is
imported and appends the path of every ``open`` (and every folder listing) of
the process to FILE, one per line.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

AUDITED = {"open", "os.listdir", "os.scandir"}


def install_open_audit(path: str) -> None:
    """Record every file and folder this process opens (the log is opened before the hook exists)."""
    log = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def hook(event: str, args: tuple) -> None:
        if event in AUDITED and args:
            target = args[0]
            if isinstance(target, bytes):
                target = target.decode(errors="replace")
            if isinstance(target, str):
                log.write(f"{event}\t{target}\n")

    sys.addaudithook(hook)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logical-date", required=True)
    parser.add_argument("--run-after")
    parser.add_argument("--conf", default="{}")
    parser.add_argument("--retries", action="append", default=[], help="task_id=N")
    parser.add_argument("--retry-delay", type=float, default=1.0)
    parser.add_argument("--audit-opens")
    args = parser.parse_args(argv)
    if args.audit_opens:
        install_open_audit(args.audit_opens)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from devtools.runs import load_dag

    dag = load_dag()
    for spec in args.retries:
        task_id, _, count = spec.partition("=")
        task = dag.get_task(task_id)
        task.retries = int(count)
        task.retry_delay = timedelta(seconds=args.retry_delay)
        task.retry_exponential_backoff = False
    kwargs = {"run_after": datetime.fromisoformat(args.run_after)} if args.run_after else {}
    dag_run = dag.test(
        logical_date=datetime.fromisoformat(args.logical_date), run_conf=json.loads(args.conf), **kwargs
    )
    print(json.dumps({"run_id": dag_run.run_id, "state": str(dag_run.state)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
