#!/usr/bin/env bash
# The default (fast) test run. Slow tests: `python -m pytest -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" -m pytest -q "$@"
