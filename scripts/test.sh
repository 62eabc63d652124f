#!/usr/bin/env bash
# Sets up .venv, lints, and runs the default test suite (all but slow tests and those needing SLURM or a GPU).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest -m "not slurm and not gpu and not slow" "$@"
