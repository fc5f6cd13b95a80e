#!/usr/bin/env bash
# Rebuild tests/fixtures/catalog_release_<commit>.sql: the previous release's catalog database
# after real runs of its DAG, which tests/db/test_upgrade.py and tests/integration/test_upgrade.py
# upgrade with this code. The release runs from a temporary git worktree of its commit, with
# this checkout's virtualenv; the worktree is removed afterwards.
#
#   bash scripts/make_upgrade_fixture.sh [commit]     (default: 79647eb, the last release before migrations)
set -euo pipefail
release="${1:-79647eb}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="$repo/.venv/bin/python"
out="$repo/tests/fixtures/catalog_release_${release}.sql"
work="$(mktemp -d)"
cleanup() {
    git -C "$repo" worktree remove --force "$work/release" 2>/dev/null || true
    git -C "$repo" worktree prune
    rm -rf "$work"
}
trap cleanup EXIT

git -C "$repo" worktree add --detach --quiet "$work/release" "$release"
cd "$work/release"
# -P: the program's own folder stays off sys.path, so every import is the release's.
PYTHONPATH="$work/release" "$python" -P "$repo/scripts/upgrade_fixture_runs.py" \
    --release "$release" --out "$out"
echo "wrote $out ($(wc -c <"$out") bytes)"
