#!/usr/bin/env bash
# One entry point for people and CI: creates (or reuses) .venv with the project installed, then runs
#   ./dev.sh demo [ARGS]   neuropathy-kg recommend on the bundled example patients (as of 2026-11-24)
#   ./dev.sh test [ARGS]   the test suite on all cores (pytest -n auto; heavy benchmarks are marked and run apart)
#   ./dev.sh run ARGS      any neuropathy-kg command
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
if [ ! -x "$venv/bin/neuropathy-kg" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -e '.[test]'
  touch "$venv/.installed"
fi
command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  demo) exec "$venv/bin/neuropathy-kg" recommend --as-of 2026-11-24 --format text "$@" examples/ ;;
  test) exec "$venv/bin/python" -m pytest -q -n auto "$@" ;;
  run)  exec "$venv/bin/neuropathy-kg" "$@" ;;
  *) echo "usage: ./dev.sh demo|test|run [ARGS]" >&2; exit 2 ;;
esac
