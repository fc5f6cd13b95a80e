#!/usr/bin/env bash
# Set up, then run the scale benchmark (not a test): the DAG's quick run against the old way and
# `rclone check`, on the same seeded data, plus full-mode hashing against raw hashlib.
# Arguments go to bench/scale.py, e.g. `bash scripts/bench.sh --backups 1000 10000 100000`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v rclone >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing rclone from Debian's packages (for the comparison)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null || true
  else
    echo "bench: rclone is not installed; its comparison is skipped" >&2
  fi
fi
PYTHONPATH="$PWD" exec .venv/bin/python -m bench.scale "$@"
