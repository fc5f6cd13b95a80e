#!/usr/bin/env bash
# Refresh the screenshots under docs/ on purpose. The browser test writes its screenshots to the
# artefacts folder (`artefacts/`, or $BI_ARTEFACTS_DIR), never into a tracked file; this script
# runs that test and copies what it took into docs/, for a commit that says why the picture changed.
# Arguments go to pytest, e.g. `bash scripts/refresh_screenshots.sh -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh

export BI_ARTEFACTS_DIR="${BI_ARTEFACTS_DIR:-$PWD/artefacts}"
SCREENSHOTS=(dashboard.png console-overview.png console-backup.png console-alerts.png console-alert.png)

# A screenshot left by an earlier run must never be taken for a new one.
for shot in "${SCREENSHOTS[@]}"; do rm -f "$BI_ARTEFACTS_DIR/$shot"; done
PYTHONPATH="$PWD" .venv/bin/python -m pytest -q -p no:cacheprovider -m browser \
  tests/integration/test_dashboard.py "$@"

mkdir -p docs
for shot in "${SCREENSHOTS[@]}"; do
  cp "$BI_ARTEFACTS_DIR/$shot" "docs/$shot"
  echo "refreshed docs/$shot (from $BI_ARTEFACTS_DIR/$shot)"
done
