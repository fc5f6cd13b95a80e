#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (unit, DAG hygiene, integration, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
# Two workers (pytest-xdist), each with its own services and Airflow home: most tests wait on
# Airflow and the stores rather than compute, so two share two cores (27:45 against 44:45 alone).
# Work-stealing keeps one worker from ending alone on a tail of slow tests. "-n 0" runs serially.
PYTHONPATH="$PWD" exec .venv/bin/python -m pytest -n 2 --dist worksteal "$@"
