#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (unit, DAG hygiene, integration, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
PYTHONPATH="$PWD" exec .venv/bin/python -m pytest "$@"
