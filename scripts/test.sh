#!/usr/bin/env bash
# Sets up .venv, lints (ruff), type-checks the whole project (mypy; settings in pyproject.toml) and runs the default
# test suite (all but slow tests and those needing SLURM or a GPU).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -m "not slurm and not gpu and not slow" "$@"
