#!/usr/bin/env bash
# Set up .venv on a fresh machine: CPU torch first (an open range would pull a multi-GB CUDA
# build), then lgc itself, non-editable, with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q --force-reinstall --no-deps . >/dev/null
.venv/bin/python -m pip install -q ".[test]"
