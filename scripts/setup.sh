#!/usr/bin/env bash
# Creates .venv and installs the project with every extra; a no-op when nothing changed.
# torch comes first and pinned (constraints.txt), so that timm cannot pull another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.setup-stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing into .venv (torch==2.13.0, timm, polars, pyarrow, ...)"
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[metagen,weights,surrogates,dev]"
  echo "$want" > "$stamp"
fi
