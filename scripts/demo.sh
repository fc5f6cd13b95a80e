#!/usr/bin/env bash
# Set up, then run the verifier once (twice, to show dedup) on the embedded default and print what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTHONPATH="$PWD" exec .venv/bin/python -m devtools.demo "$@"
