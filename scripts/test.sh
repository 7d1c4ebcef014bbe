#!/usr/bin/env bash
# Fresh machine -> tests: create .venv, install requirements, run the default (fast) tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
