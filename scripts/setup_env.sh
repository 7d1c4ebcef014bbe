#!/usr/bin/env bash
# Create .venv (if missing) and install the run-time and test requirements into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet -r requirements-test.txt
