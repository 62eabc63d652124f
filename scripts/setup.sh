#!/usr/bin/env bash
# Creates .venv and installs the project with every extra; a no-op when nothing changed (pyproject.toml,
# constraints.txt and this script).
# torch comes first and pinned (constraints.txt), so that timm cannot pull another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.setup-stamp
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing into .venv (torch==2.13.0, timm, polars, pyarrow, ...)"
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[metagen,datasets,weights,surrogates,dehb,dev]"
  # DEHB baseline: dehb pins numpy<2; its dependencies come with the dehb extra above (see pyproject.toml)
  .venv/bin/pip install -q --disable-pip-version-check --no-deps dehb==0.1.2
  echo "$want" > "$stamp"
fi
# Fashion-MNIST for the offline dataset suite comes from Debian (skipped with a note where apt is unusable).
if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: apt-get install dataset-fashion-mnist"
    (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null; }) \
      || echo "setup: could not install dataset-fashion-mnist; the fashion_mnist dataset kind stays unavailable"
  else
    echo "setup: note: 'apt-get install dataset-fashion-mnist' (as root) enables the fashion_mnist dataset kind"
  fi
fi
