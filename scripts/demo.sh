#!/usr/bin/env bash
# Set up, then run the verifier (twice, to show dedup) and a restore drill on the embedded default
# and print what they found.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTHONPATH="$PWD" exec .venv/bin/python -m devtools.demo "$@"
